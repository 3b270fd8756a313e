"""Request values in log lines, and how often anonymous rejections are logged.

A value from a request (a route parameter, a header) is escaped before it goes into a log line, so that a newline
or a terminal escape cannot forge a line; and rejections of anonymous requests are sampled, so that nobody can
flood the logs (or the Application Insights bill) from outside.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


def untrusted(value: object, limit: int = 200) -> str:
    """The value on one line: non-printable characters and backslashes escaped as Python writes them, clipped."""
    text = str(value)
    clipped = text[:limit]
    if not (clipped.isprintable() and "\\" not in clipped):
        clipped = "".join(
            char if char.isprintable() and char != "\\" else char.encode("unicode_escape").decode("ascii")
            for char in clipped
        )
    return clipped if len(text) <= limit else f"{clipped}…(+{len(text) - limit} characters)"


class LogSampler:
    """Admits at most `per_window` lines per `window` seconds and counts the others; the first line admitted in a
    new window says how many were held back. Thread-safe: synchronous functions run on the host's thread pool."""

    def __init__(self, per_window: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._per_window = per_window
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._admitted = 0
        self._held_back = 0

    def admit(self) -> int | None:
        """None: leave this line out. Otherwise log it, with the number of lines held back since the last one."""
        with self._lock:
            now = self._clock()
            if now - self._started >= self._window:
                self._started, self._admitted = now, 0
            if self._admitted >= self._per_window:
                self._held_back += 1
                return None
            self._admitted += 1
            held_back, self._held_back = self._held_back, 0
            return held_back

    def warning(self, logger: logging.Logger, message: str, *args: object) -> None:
        """Logs the line if admitted, saying how many like it were left out before it."""
        held_back = self.admit()
        if held_back is None:
            return
        more = f" ({held_back} more like it not logged)" if held_back else ""
        logger.warning(message + "%s", *args, more)

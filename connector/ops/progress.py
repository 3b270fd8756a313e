"""Progress of a long operator command: a tqdm bar on a terminal (done of total, rate, ETA, and the command's counts),
and a plain line every so often otherwise (a log, CI, a pipe), which a terminal's carriage returns would garble."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO


class Progress:
    """One phase of the command (e.g. validating one file): `update` as often as convenient, it prints when due."""

    def __init__(self, label: str, total: int, unit: str, *, initial: int = 0, every: float = 10.0) -> None:
        """On stderr. `initial`: done before this run (a resumed one); the rate and ETA count only this run's."""
        self._label, self._total, self._unit = label, total, unit
        self._stream = sys.stderr
        self._every = every
        self._started = self._printed = time.monotonic()
        self._initial = self._done = initial
        self._printed_done = -1
        self._counts: Mapping[str, int] = {}
        self._bar: Any = None
        if _terminal_width(self._stream) > 0:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=label,
                unit=f" {unit}",
                unit_scale=unit == "B",
                file=self._stream,
                dynamic_ncols=True,
                smoothing=0.1,
                mininterval=0.2,
            )

    def update(self, done: int, counts: Mapping[str, int] | None = None) -> None:
        """`done` of the total so far, and the counts to show beside it (e.g. accepted, rejected)."""
        self._done = done
        if counts is not None:
            self._counts = counts
        if self._bar is not None:
            if counts is not None:
                self._bar.set_postfix_str(self._counted(), refresh=False)
            self._bar.update(done - self._bar.n)
        elif time.monotonic() - self._printed >= self._every:
            self._line()

    def say(self, text: str, stream: TextIO | None = None) -> None:
        """A line of its own (to stdout by default), above the bar on a terminal."""
        out = stream or sys.stdout
        if self._bar is not None:
            self._bar.write(text, file=out)
        else:
            print(text, file=out, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._counted(), refresh=False)
            self._bar.update(self._done - self._bar.n)
            self._bar.close()
        elif self._printed_done != self._done:
            self._line()

    def _line(self) -> None:
        self._printed = now = time.monotonic()
        self._printed_done = self._done
        elapsed = max(now - self._started, 1e-6)
        rate = (self._done - self._initial) / elapsed
        share = f" ({self._done / self._total:.0%})" if self._total else ""
        if self._unit == "B":
            parts = [f"{self._label}: {_bytes(self._done)} of {_bytes(self._total)}{share}", f"{_bytes(rate)}/s"]
        else:
            unit = self._unit
            parts = [f"{self._label}: {self._done:,} of {self._total:,} {unit}{share}", f"{rate:,.0f} {unit}/s"]
        if self._done < self._total and rate > 0:
            parts.append(f"ETA {duration((self._total - self._done) / rate)}")
        else:
            parts.append(f"in {duration(elapsed)}")
        if self._counts:
            parts.append(self._counted())
        print(", ".join(parts), file=self._stream, flush=True)

    def _counted(self) -> str:
        return ", ".join(f"{name} {value:,}" for name, value in self._counts.items())


def _bytes(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{count:,.0f} B"


def duration(seconds: float) -> str:
    """12.5 s below a minute, else h:mm:ss, as tqdm writes it."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _terminal_width(stream: TextIO) -> int:
    """The terminal's width; 0 off a terminal, and on one whose size is unknown (where tqdm would print nothing)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 0
    except (AttributeError, OSError, ValueError):  # a stream without a file descriptor (tests, redirections)
        return 0

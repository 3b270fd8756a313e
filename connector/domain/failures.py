"""What can go wrong with a Graph call, in the connector's terms, and what to do about it.

The Graph adapter turns HTTP answers into a Failure of one Kind; the use cases decide on kinds, never on status
numbers. The retry policy for throttling (how long to wait, when to give up) lives here too, so it is tested without
any I/O.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """How a failed Graph call should be treated."""

    NOT_FOUND = "notFound"
    """No such activity, content or user: created when allowed, else dead-lettered."""
    CONFLICT = "conflict"
    """It exists already (a create raced another)."""
    THROTTLED = "throttled"
    """Too many requests: wait as long as Graph says, then try again."""
    TRANSIENT = "transient"
    """Not done, for a passing reason (no token, 401, 408): try again."""
    UNSURE = "unsure"
    """Maybe done (a timeout, a dropped connection, a 5xx): try again; read Graph back before calling it a repeat."""
    PERMANENT = "permanent"
    """Graph refuses it (400, 403, 405, …): trying again changes nothing; dead-letter it with Graph's reason."""


#: Kinds worth another try later.
RETRIED = frozenset({Kind.THROTTLED, Kind.TRANSIENT, Kind.UNSURE})


def first_line(text: str, when_empty: str) -> str:
    """An error's first line, for one-line messages (azure.identity's errors run to many lines)."""
    text = text.strip()
    return text.splitlines()[0] if text else when_empty


def kind_of(status: int) -> Kind:
    """The kind of an HTTP error status from Graph."""
    if status == 404:
        return Kind.NOT_FOUND
    if status == 409:
        return Kind.CONFLICT
    if status in (429, 503):
        return Kind.THROTTLED
    if status in (401, 408):
        return Kind.TRANSIENT
    if status >= 500:
        return Kind.UNSURE
    return Kind.PERMANENT


@dataclass
class GraphFailure(Exception):
    """A Graph call that did not succeed, with what an operator needs to act on it."""

    status: int | None
    code: str
    message: str
    request_id: str | None = None
    retry_after: float | None = None
    kind: Kind | None = None
    """Given for failures without a status (timeouts, no token); else derived from the status."""

    def __post_init__(self) -> None:
        super().__init__(f"{self.status or ''} {self.code}: {self.message}".strip())
        if self.kind is None:
            self.kind = kind_of(self.status) if self.status is not None else Kind.UNSURE

    @property
    def retried(self) -> bool:
        return self.kind in RETRIED

    def reason(self) -> dict[str, Any]:
        return {
            "source": "graph",
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "requestId": self.request_id,
        }


_RETRY_MINUTES = re.compile(r"retry after (\d+(?:\.\d+)?) minute", re.IGNORECASE)


def parse_retry_after(header: str | None, message: str | None = None) -> float | None:
    """Seconds to wait: the Retry-After header (seconds or an HTTP date), else Graph's "Retry after N minutes"."""
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    if message:
        found = _RETRY_MINUTES.search(message)
        if found:
            return float(found.group(1)) * 60
    return None


#: How long a throttled update keeps coming back before it is dead-lettered (then replayable).
THROTTLE_WINDOW = timedelta(hours=24)
#: The longest single wait, whatever Retry-After says; the queue allows up to 7 days.
MAX_DELAY_SECONDS = 3600


def throttle_delay(attempt: int, retry_after: float | None, base_seconds: float) -> int:
    """Seconds to wait before the attempt-th retry: Graph's Retry-After, else 1, 2, 4 … up to 30 times the base
    (30 s … 15 min by default), with jitter so that a burst spreads out; at least 1 s, at most an hour."""
    delay = retry_after
    if delay is None:
        delay = min(base_seconds * 2 ** (attempt - 1), base_seconds * 30) * random.uniform(0.8, 1.2)
    return int(min(max(delay, 1), MAX_DELAY_SECONDS))


def beyond_window(first_attempt: datetime, now: datetime, delay_seconds: int) -> bool:
    """Whether waiting that long would keep the update throttled past THROTTLE_WINDOW: then it is dead-lettered."""
    return now + timedelta(seconds=delay_seconds) - first_attempt > THROTTLE_WINDOW

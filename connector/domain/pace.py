"""How fast one registration's requests may go to Graph, learned from Graph's 429s.

Graph publishes no limits for the learning APIs; it answers 429 with a wait. Each instance keeps, per registration, a
token bucket whose rate it learns: unlimited until the first 429; then a little below the rate Graph was accepting
(the successes of the last few seconds); then slowly up again, so that the rate settles just under Graph's limit with a
429 now and then rather than a storm. A 429's wait is shared by every instance (the `not_before` the app keeps in
storage), so that the whole fleet holds that registration's requests until it is over; after it, the bucket starts
nearly empty, so requests come back gradually rather than all at once.

Pure: times are given (UTC datetimes), nothing sleeps here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

#: Below Graph's accepted rate after a 429, so the next minute is not spent at the limit.
BACK_OFF = 0.9
#: Up again by this factor every INCREASE_EVERY without a 429: slow, so 429s stay rare.
INCREASE = 1.02
INCREASE_EVERY = timedelta(seconds=5)
#: The window the accepted rate is measured over.
WINDOW = timedelta(seconds=5)
MIN_RATE = 0.2
#: Accepted requests in the window below which the instance was not busy: a 429 then says nothing of a rate.
BUSY = 5
#: Requests the bucket holds at most: a burst no larger than a second's worth.
MAX_BURST_SECONDS = 1.0


@dataclass
class Pace:
    """One registration's pace in this instance."""

    rate: float | None = None
    """Requests per second; None: no 429 seen, no limit."""
    not_before: datetime | None = None
    """No request before this (a 429's wait, this instance's or another's)."""
    tokens: float = 0.0
    refilled: datetime | None = None
    increased: datetime | None = None
    accepted: deque[datetime] = field(default_factory=deque)

    def wait(self, now: datetime) -> float:
        """Seconds until the next request may go; 0 means now, and the request is counted."""
        if self.not_before is not None and now < self.not_before:
            return (self.not_before - now).total_seconds()
        if self.rate is None:
            return 0.0
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def succeeded(self, now: datetime) -> None:
        """A request Graph accepted: counted for the accepted rate; the rate creeps up while none is refused."""
        self.accepted.append(now)
        while self.accepted and now - self.accepted[0] > WINDOW:
            self.accepted.popleft()
        if self.rate is not None and self.increased is not None and now - self.increased >= INCREASE_EVERY:
            self.rate = max(self.rate * INCREASE, self.rate + MIN_RATE)
            self.increased = now

    def throttled(self, now: datetime, retry_after_seconds: float | None) -> datetime:
        """A 429: hold until its wait is over (returned), and, if this instance was busy, back off below the rate
        Graph was accepting."""
        accepted = len([t for t in self.accepted if now - t <= WINDOW])
        if accepted >= BUSY:
            proposal = max(MIN_RATE, BACK_OFF * accepted / WINDOW.total_seconds())
            self.rate = min(self.rate, proposal) if self.rate is not None else proposal
            self.tokens, self.refilled, self.increased = 0.0, now, now
        until = now + timedelta(seconds=max(retry_after_seconds or 1.0, 0.0))
        self.hold(until)
        return until

    def hold(self, until: datetime) -> None:
        """Holds requests until then (a wait another instance learned of)."""
        if self.not_before is None or until > self.not_before:
            self.not_before = until

    def _refill(self, now: datetime) -> None:
        assert self.rate is not None
        start = self.refilled or now
        if self.not_before is not None and start < self.not_before <= now:
            start = self.not_before  # nothing accrues during a hold: requests come back gradually
        elapsed = max((now - start).total_seconds(), 0.0)
        self.tokens = min(self.tokens + elapsed * self.rate, max(1.0, self.rate * MAX_BURST_SECONDS))
        self.refilled = now

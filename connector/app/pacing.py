"""One fleet, one pace: every Graph request of a registration goes through its Pace (connector/domain/pace.py).

A 429 holds the registration's requests in this instance and, through the PaceStore, in every other: each instance
reads the shared hold at most once every SHARED_TTL per registration (one storage read, whoever asks meanwhile waits
for it). A request that would wait longer than MAX_WAIT is not kept waiting in the invocation: Held is raised and the
worker puts the message back on the queue for the rest of the wait, spread out so they do not all return at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from connector.app.ports import Clock, Graph, PaceStore
from connector.domain.failures import GraphFailure, Kind
from connector.domain.pace import Pace

logger = logging.getLogger(__name__)

SHARED_TTL = timedelta(seconds=5)
#: The longest a request waits inside an invocation; longer, and the message goes back on the queue.
MAX_WAIT_SECONDS = 5.0
_T = TypeVar("_T")


class Held(Exception):
    """The registration's requests are held (a 429's wait) until `until`: try the message again then."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"held until {until.isoformat()}")
        self.until = until

    def delay_seconds(self, now: datetime) -> int:
        """The wait, plus up to as much again (at most 30 s) so that held messages come back spread out."""
        wait = max((self.until - now).total_seconds(), 1.0)
        return int(wait + random.uniform(0, min(wait, 30.0)))


class Pacer:
    """The paces of this instance's registrations, and the fleet's shared holds."""

    def __init__(
        self,
        store: PaceStore,
        clock: Clock,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._paces: dict[str, Pace] = {}
        self._read: dict[str, datetime] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}

    def pace(self, registration_id: str) -> Pace:
        return self._paces.setdefault(registration_id.lower(), Pace())

    async def before(self, registration_id: str) -> None:
        """Waits for the registration's turn; raises Held if that is more than MAX_WAIT_SECONDS away."""
        pace = self.pace(registration_id)
        await self._share(registration_id, pace)
        while True:
            now = self._clock()
            wait = pace.wait(now)
            if wait <= 0:
                return
            if wait > MAX_WAIT_SECONDS:
                raise Held(now + timedelta(seconds=wait))
            await self._sleep(wait)

    def succeeded(self, registration_id: str) -> None:
        self.pace(registration_id).succeeded(self._clock())

    async def throttled(self, registration_id: str, retry_after_seconds: float | None) -> None:
        """A 429: this instance backs off, and the wait is shared with the fleet (best effort: the message's own
        fate does not depend on it)."""
        until = self.pace(registration_id).throttled(self._clock(), retry_after_seconds)
        try:
            await self._store.hold(registration_id, until)
        except Exception:
            logger.warning("could not share the hold of provider %s with the other instances", registration_id)

    async def _share(self, registration_id: str, pace: Pace) -> None:
        """Reads the fleet's hold for the registration, at most once every SHARED_TTL (one read at a time)."""
        key = registration_id.lower()
        read = self._read.get(key)
        if read is not None and self._clock() - read < SHARED_TTL:
            return
        task = self._reading.get(key)
        if task is None:
            task = self._reading[key] = asyncio.ensure_future(self._read_hold(registration_id, pace))
            task.add_done_callback(lambda _: self._reading.pop(key, None))
        await asyncio.shield(task)

    async def _read_hold(self, registration_id: str, pace: Pace) -> None:
        try:
            until = await self._store.not_before(registration_id)
        except Exception:
            logger.warning("could not read the shared hold of provider %s; going on without it", registration_id)
            until = None
        if until is not None:
            pace.hold(until)
        self._read[registration_id.lower()] = self._clock()


class PacedGraph:
    """The Graph port with every request of one registration paced: waits its turn, learns from 429s."""

    def __init__(self, graph: Graph, pacer: Pacer, registration_id: str) -> None:
        self._graph = graph
        self._pacer = pacer
        self._registration_id = registration_id

    async def _paced(self, call: Callable[[], Awaitable[_T]]) -> _T:
        await self._pacer.before(self._registration_id)
        try:
            result = await call()
        except GraphFailure as failure:
            if failure.kind is Kind.THROTTLED:
                await self._pacer.throttled(self._registration_id, failure.retry_after)
            raise
        self._pacer.succeeded(self._registration_id)
        return result

    async def find_activity(self, registration_id: str, external_id: str) -> dict[str, Any]:
        return await self._paced(lambda: self._graph.find_activity(registration_id, external_id))

    async def get_activity(self, registration_id: str, activity_id: str) -> dict[str, Any]:
        return await self._paced(lambda: self._graph.get_activity(registration_id, activity_id))

    async def update_activity(
        self, registration_id: str, activity_id: str, odata_type: str, changes: Mapping[str, Any]
    ) -> str | None:
        return await self._paced(lambda: self._graph.update_activity(registration_id, activity_id, odata_type, changes))

    async def create_activity(
        self, registration_id: str, odata_type: str, identity: Mapping[str, str], changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._paced(lambda: self._graph.create_activity(registration_id, odata_type, identity, changes))

    async def delete_activity(self, registration_id: str, activity_id: str) -> str | None:
        return await self._paced(lambda: self._graph.delete_activity(registration_id, activity_id))

    async def find_users(self, odata_filter: str, *, advanced: bool = False) -> list[dict[str, Any]]:
        return await self._paced(lambda: self._graph.find_users(odata_filter, advanced=advanced))

    async def find_content(self, registration_id: str, external_id: str) -> dict[str, Any]:
        return await self._paced(lambda: self._graph.find_content(registration_id, external_id))

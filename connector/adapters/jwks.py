"""Published signing keys (JWK sets) over HTTPS, cached: the KeySets port, for Canvas's signed Live Events.

A set is fetched on first use and kept for `max_age` (Instructure rotates its keys monthly and publishes the next
one ahead). A token naming a key the cached set lacks asks for a refresh; fetches of one URL are at most one per
`min_refresh_interval` (as Microsoft.IdentityModel's refresh on an unknown key), so a stream of forged `kid`s costs
one fetch a minute, not one per request. Concurrent requests share one fetch. When a fetch fails the set in hand
stays in use; with none, KeySetUnavailable until the next try. The event loop is never blocked: aiohttp, with a
timeout and a size limit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from connector.app.ports import KeySetUnavailable

MAX_AGE_SECONDS = 6 * 3600.0
MIN_REFRESH_INTERVAL_SECONDS = 60.0
TIMEOUT_SECONDS = 10.0
#: A key set holds a few RSA keys, a few kB: anything much larger is not one.
MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class _Cached:
    keys: Mapping[str, Any] | None
    """None until a fetch succeeds."""
    fetched_at: float
    attempted_at: float
    problem: str = ""
    """Why the last fetch failed, if it did."""


class KeySetClient:
    """The KeySets port over one aiohttp session (the app's shared connection pool)."""

    max_age = MAX_AGE_SECONDS
    min_refresh_interval = MIN_REFRESH_INTERVAL_SECONDS

    def __init__(
        self, session: Callable[[], aiohttp.ClientSession], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._session = session
        self._clock = clock
        self._cached: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key_set(self, url: str, *, refresh: bool = False) -> Mapping[str, Any]:
        cached = self._cached.get(url)
        if cached is None or self._due(cached, refresh):
            async with self._locks.setdefault(url, asyncio.Lock()):
                cached = self._cached.get(url)  # another request may have fetched it while this one waited
                if cached is None or self._due(cached, refresh):
                    cached = await self._fetched(url, cached)
        if cached.keys is None:
            raise KeySetUnavailable(cached.problem)
        return cached.keys

    def _due(self, cached: _Cached, refresh: bool) -> bool:
        """Whether to fetch again: never within the minimum interval of the last try, successful or not."""
        now = self._clock()
        if now - cached.attempted_at < self.min_refresh_interval:
            return False
        return refresh or cached.keys is None or now - cached.fetched_at >= self.max_age

    async def _fetched(self, url: str, cached: _Cached | None) -> _Cached:
        now = self._clock()
        try:
            fresh = _Cached(await self._fetch(url), now, now)
        except KeySetUnavailable as exc:  # the set in hand stays in use
            fresh = _Cached(cached.keys if cached else None, cached.fetched_at if cached else now, now, str(exc))
        self._cached[url] = fresh
        return fresh

    async def _fetch(self, url: str) -> Mapping[str, Any]:
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        try:
            async with self._session().get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            ) as response:
                if response.status != 200:
                    raise KeySetUnavailable(f"the key set URL answered {response.status}")
                body = await response.content.read(MAX_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KeySetUnavailable(f"the key set URL cannot be reached: {type(exc).__name__}") from None
        if len(body) > MAX_BYTES:
            raise KeySetUnavailable(f"the key set is larger than {MAX_BYTES} bytes")
        try:
            keys = json.loads(body)
        except (ValueError, RecursionError):
            raise KeySetUnavailable("the key set is not JSON") from None
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            raise KeySetUnavailable('the key set is not a JWK set ({"keys": [...]})')
        return keys

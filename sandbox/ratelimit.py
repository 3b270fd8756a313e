"""Rate-limit mode: each app in each tenant gets a request budget; beyond it Graph answers 429.

Graph limits requests per app per tenant (besides global and per-tenant limits), so a budget here belongs to a
``(tenant id, app id)`` pair, both read from the caller's verified token: two credentials of one app in one
tenant share a budget, as they would against Graph. A budget is a token bucket: it holds up to ``burst``
requests (by default one second's worth) and refills at ``requestsPerSecond``. A request that finds it empty
is answered 429 ``tooManyRequests`` with ``Retry-After: <seconds until one request is available, rounded up>``
(or the configured ``retryAfterSeconds``; no header when ``retryAfterHeader`` is false, since whether Graph
sends one is unverified) and the learning APIs' body "Retry after {n} minutes" (the same wait in minutes,
rounded up). A throttled request spends nothing and changes nothing. Only authenticated Graph requests count;
faults answer before the budget is consulted.

Cheap by design: when no limit is set, one attribute test per request; otherwise one dict lookup and a few
float operations.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Final

from .rules import DEFAULT_ERRORS, GraphError

_SETTINGS: Final = ("requestsPerSecond", "burst", "retryAfterSeconds", "retryAfterHeader", "tenantId")


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests_per_second: float
    burst: float
    retry_after_seconds: int | None  # None: the time until the bucket holds one request again
    retry_after_header: bool

    @classmethod
    def from_json(cls, settings: dict[str, Any]) -> RateLimit:
        rate = settings.get("requestsPerSecond")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError("requestsPerSecond must be a number > 0")
        burst = settings.get("burst", max(1, rate))
        if isinstance(burst, bool) or not isinstance(burst, int | float) or burst < 1:
            raise ValueError("burst must be a number >= 1 (requests the budget holds when full)")
        retry_after = settings.get("retryAfterSeconds")
        if retry_after is not None and (type(retry_after) is not int or retry_after < 0):
            raise ValueError("retryAfterSeconds must be an integer >= 0 (or null: computed)")
        header = settings.get("retryAfterHeader", True)
        if not isinstance(header, bool):
            raise ValueError("retryAfterHeader must be a boolean")
        return cls(rate, burst, retry_after, header)

    def to_json(self) -> dict[str, Any]:
        return {
            "requestsPerSecond": self.requests_per_second,
            "burst": self.burst,
            "retryAfterSeconds": self.retry_after_seconds,
            "retryAfterHeader": self.retry_after_header,
        }


class _Bucket:
    __slots__ = ("level", "updated")

    def __init__(self, level: float, updated: float) -> None:
        self.level = level
        self.updated = updated


class RateLimiter:
    """The limits (one for every tenant, overrides per tenant), the buckets and the counters."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.default: RateLimit | None = None
        self.per_tenant: dict[str, RateLimit] = {}
        self.active = False
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.allowed = 0
        self.throttled = 0
        self._by_tenant: dict[str, list[int]] = {}  # tenant -> [allowed, throttled]

    def configure(self, settings: Any) -> None:
        """``{"requestsPerSecond", "burst"?, "retryAfterSeconds"?, "retryAfterHeader"?, "tenantId"?}``: the limit
        of one tenant, or without ``tenantId`` of every tenant that has none of its own. Buckets start full."""
        if not isinstance(settings, dict):
            raise ValueError("a rate limit must be a JSON object")
        unknown = set(settings) - set(_SETTINGS)
        if unknown:
            raise ValueError(f"unknown rate-limit settings: {sorted(unknown)}; known: {list(_SETTINGS)}")
        tenant_id = settings.get("tenantId")
        if tenant_id is not None and (not isinstance(tenant_id, str) or not tenant_id):
            raise ValueError("tenantId must be a non-empty string")
        limit = RateLimit.from_json(settings)
        if tenant_id is None:
            self.default = limit
        else:
            self.per_tenant[tenant_id] = limit
        self._changed()

    def clear(self, tenant_id: str | None = None) -> None:
        """No limit at all, or none of that tenant's own (it falls back to the limit of every tenant)."""
        if tenant_id is None:
            self.default = None
            self.per_tenant.clear()
        else:
            self.per_tenant.pop(tenant_id, None)
        self._changed()

    def _changed(self) -> None:
        self._buckets.clear()
        self.active = self.default is not None or bool(self.per_tenant)

    def spend(self, tenant_id: str, app_id: str) -> GraphError | None:
        """Take one request from the caller's budget: None when allowed (or unlimited), else the 429 to answer."""
        limit = self.per_tenant.get(tenant_id, self.default)
        if limit is None:
            return None
        now = time.monotonic()
        key = (tenant_id, app_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(limit.burst, now)
        else:
            bucket.level = min(limit.burst, bucket.level + (now - bucket.updated) * limit.requests_per_second)
            bucket.updated = now
        counts = self._by_tenant.get(tenant_id)
        if counts is None:
            counts = self._by_tenant[tenant_id] = [0, 0]
        if bucket.level >= 1:
            bucket.level -= 1
            self.allowed += 1
            counts[0] += 1
            return None
        self.throttled += 1
        counts[1] += 1
        return _throttled(limit, (1 - bucket.level) / limit.requests_per_second)

    def describe(self) -> dict[str, Any]:
        return {
            "default": None if self.default is None else self.default.to_json(),
            "tenants": {tenant: limit.to_json() for tenant, limit in self.per_tenant.items()},
        }

    def counters(self) -> dict[str, Any]:
        """Requests a limit applied to: allowed and throttled, in all and per tenant (for the share throttled)."""
        return {
            "allowed": self.allowed,
            "throttled": self.throttled,
            "byTenant": {t: {"allowed": a, "throttled": th} for t, (a, th) in self._by_tenant.items()},
        }


def _throttled(limit: RateLimit, wait: float) -> GraphError:
    """The 429: the configured Retry-After or the wait rounded up (at least 1 s), and the wait in minutes."""
    seconds = limit.retry_after_seconds if limit.retry_after_seconds is not None else max(1, math.ceil(wait))
    code, message = DEFAULT_ERRORS[429]
    headers = {"Retry-After": str(seconds)} if limit.retry_after_header else None
    return GraphError(429, code, message.replace("{n}", str(max(1, math.ceil(seconds / 60)))), headers)

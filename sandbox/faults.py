"""Fault rules: throttling, outages, gateway pages, slow answers and dropped connections, on demand.

A rule picks requests by target (Graph, the identity endpoint or Entra's token endpoint, whose path names the
tenant), method and path substring; it fires with a probability (seedable, so a test run is reproducible) at
most ``count`` times. Rules are tried in order and the first one that matches *and fires* applies, so
``[10% 429, 5% 503]`` composes. A rule with neither ``status`` nor ``drop`` only adds latency and lets the
request through; ``dropAfterApplying`` lets it through, then drops the connection (the work done, its answer
lost).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Final

from .rules import DEFAULT_ERRORS

TARGETS: Final = ("graph", "identity", "entra")
_KEYS: Final = {
    "target": "target",
    "method": "method",
    "pathContains": "path_contains",
    "status": "status",
    "code": "code",
    "message": "message",
    "retryAfter": "retry_after",
    "retryAfterMinutesInBody": "retry_after_minutes_in_body",
    "latencyMs": "latency_ms",
    "drop": "drop",
    "dropAfterApplying": "drop_after_applying",
    "html": "html",
    "body": "body",
    "probability": "probability",
    "count": "count",
    "seed": "seed",
}


def _number(value: Any, name: str, *, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum}")
    return value


def _integer(value: Any, name: str, *, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}")
    return value


@dataclass
class FaultRule:
    """One rule; field names mirror the admin API's camelCase keys."""

    target: str = "graph"
    method: str | None = None
    path_contains: str | None = None
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    retry_after_minutes_in_body: int | None = None
    latency_ms: float | None = None
    drop: bool = False
    drop_after_applying: bool = False
    """Graph does the work, then the connection drops: the caller never learns that it did (a lost answer)."""
    html: bool = False
    body: str | None = None
    probability: float = 1.0
    count: int | None = None
    seed: int | None = None
    applied: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError("a fault rule must be a JSON object")
        unknown = set(data) - set(_KEYS)
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
        rule = cls(**{_KEYS[k]: v for k, v in data.items() if v is not None})
        if rule.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}")
        if rule.method is not None:
            if not isinstance(rule.method, str):
                raise ValueError("method must be a string")
            rule.method = rule.method.upper()
        if rule.path_contains is not None and not isinstance(rule.path_contains, str):
            raise ValueError("pathContains must be a string")
        if rule.status is not None:
            _integer(rule.status, "status", minimum=100)
            if rule.status > 599:
                raise ValueError("status must be < 600")
        for name in ("code", "message", "body"):
            if getattr(rule, name) is not None and not isinstance(getattr(rule, name), str):
                raise ValueError(f"{name} must be a string")
        if rule.retry_after is not None:
            _number(rule.retry_after, "retryAfter")
        if rule.retry_after_minutes_in_body is not None:
            _integer(rule.retry_after_minutes_in_body, "retryAfterMinutesInBody")
        if rule.latency_ms is not None:
            _number(rule.latency_ms, "latencyMs")
        if not all(isinstance(flag, bool) for flag in (rule.drop, rule.drop_after_applying, rule.html)):
            raise ValueError("drop, dropAfterApplying and html must be booleans")
        rule.probability = _number(rule.probability, "probability")
        if rule.probability > 1:
            raise ValueError("probability must be between 0 and 1")
        if rule.count is not None:
            _integer(rule.count, "count")
        if rule.seed is not None:
            _integer(rule.seed, "seed", minimum=-(2**63))
            rule._rng = random.Random(rule.seed)
        if rule.status is None and not rule.drop and not rule.drop_after_applying and rule.latency_ms is None:
            raise ValueError("a fault rule needs status, drop, dropAfterApplying or latencyMs")
        return rule

    def to_json(self) -> dict[str, Any]:
        data = {key: getattr(self, attr) for key, attr in _KEYS.items()}
        data["applied"] = self.applied
        return {k: v for k, v in data.items() if v is not None}

    def matches(self, target: str, method: str, path: str) -> bool:
        return (
            self.target == target
            and (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in path)
            and (self.count is None or self.applied < self.count)
        )

    def fires(self) -> bool:
        return self.probability >= 1 or self._rng.random() < self.probability

    def body_minutes(self) -> int:
        """N of "Retry after N minutes": given, else the Retry-After header rounded up, else 1."""
        if self.retry_after_minutes_in_body is not None:
            return self.retry_after_minutes_in_body
        if self.retry_after is not None:
            return max(1, math.ceil(self.retry_after / 60))
        return 1

    def code_and_message(self) -> tuple[str, str]:
        assert self.status is not None
        default_code, default_message = DEFAULT_ERRORS.get(self.status, ("error", "Injected fault."))
        message = self.message if self.message is not None else default_message
        return self.code or default_code, message.replace("{n}", str(self.body_minutes()))


class FaultInjector:
    """The rule list, the global latency and how often faults fired."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.latency_ms: float = 0.0
        self.injected = 0

    def reset(self) -> None:
        self.rules.clear()
        self.latency_ms = 0.0
        self.injected = 0

    def select(self, target: str, method: str, path: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.matches(target, method, path) and rule.fires():
                rule.applied += 1
                self.injected += 1
                return rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [rule.to_json() for rule in self.rules]


HTML_GATEWAY_PAGE: Final = (
    "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n"
    "<body><h1>{status} {reason}</h1><p>The server, while acting as a gateway or proxy, did not get a valid "
    "response from the upstream server.</p><hr><p>Microsoft-Azure-Application-Gateway/v2</p></body></html>\n"
)

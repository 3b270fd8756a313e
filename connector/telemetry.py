"""What happens to callbacks, counted: accepted, rejected, applied, duplicate, unchanged (no-op), throttled,
retried, dead-lettered. Kept in-process for the soak test and benchmarks."""

from __future__ import annotations

from collections import Counter

_counts: Counter[str] = Counter()


def record(outcome: str, count: int = 1) -> None:
    _counts[outcome] += count


def snapshot() -> dict[str, int]:
    return dict(_counts)


def reset() -> None:
    _counts.clear()

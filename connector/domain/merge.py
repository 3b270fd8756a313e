"""The order-independent merge of an activity's callbacks: progress only moves forward.

- `status`: the furthest of notStarted < inProgress < completed.
- `completionPercentage`: the highest value given.
- `startedDateTime`: the earliest value given.
- `completedDateTime`: taken only from events that complete the activity (the earliest such value).
- `assignedDateTime`, `dueDateTime`, `notes`: the value of the newest event that sets them (by the provider's
  webhook-timestamp, then position in its batch, then event id), explicit null included.
- `learnerUserId`, `learningContentId`, `assignerUserId`, `assignmentType` (who and what, as the events name them; what
  a create needs): the newest event's, like the latest-wins fields, but kept apart from the values Graph is sent.
- A removal (the activity withdrawn) is a tombstone stamped like any event: the activity's state is the merge of the
  events newer than the newest removal, and it exists while there is one.

One rule table (RULES) says how each field merges; folding an event and combining two states both go through it, so
they cannot disagree. Each field keeps, besides its value, the few candidates that could still become its value once
a late removal drops older events (for `completionPercentage`: the highest value among the events newer than each
point in time). Every rule is commutative, associative and idempotent, so any order and any number of deliveries of
the same callbacks, removals included, give the same state. An explicit null is kept only where nothing else has set
the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.domain.envelope import parse_instant, utc_iso

STATUS_RANK = {"notStarted": 0, "inProgress": 1, "completed": 2}


@dataclass(frozen=True, order=True)
class Stamp:
    """When an event happened, as far as ordering goes: provider time (an instant, never compared as text: a queue
    round trip may rewrite `…:31.000000Z` as `…:31Z`), then batch position, then id."""

    time: datetime
    sequence: int = 0
    event_id: str = ""

    def to_json(self) -> list[Any]:
        return [utc_iso(self.time), self.sequence, self.event_id]

    @classmethod
    def from_json(cls, data: list[Any]) -> Stamp:
        return cls(parse_instant(str(data[0])), int(data[1]), str(data[2]))


#: Orders below every real stamp (a value kept before stamps were).
EARLIEST = Stamp(datetime.min.replace(tzinfo=UTC))


@dataclass(frozen=True)
class _Rule:
    """How one field merges. `rank` orders values (higher wins; None, an explicit null, lowest of all); a latest-wins
    field ranks every value alike, so the newest stamp wins. `completing_only`: taken only from completing events."""

    rank: Callable[[Any], Any]
    latest_wins: bool = False
    completing_only: bool = False


def _instant_rank(value: Any) -> Any:
    return -parse_instant(value).timestamp()  # the earliest ranks highest


RULES: Mapping[str, _Rule] = {
    "status": _Rule(rank=STATUS_RANK.__getitem__),
    "completionPercentage": _Rule(rank=int),
    "startedDateTime": _Rule(rank=_instant_rank),
    "completedDateTime": _Rule(rank=_instant_rank, completing_only=True),
    "assignedDateTime": _Rule(rank=lambda _: 0, latest_wins=True),
    "dueDateTime": _Rule(rank=lambda _: 0, latest_wins=True),
    "notes": _Rule(rank=lambda _: 0, latest_wins=True),
    **{name: _Rule(rank=lambda _: 0, latest_wins=True) for name in ("learnerUserId", "learningContentId")},
    **{name: _Rule(rank=lambda _: 0, latest_wins=True) for name in ("assignerUserId", "assignmentType")},
}
#: Who and what the activity is about: merged like the rest, never sent in a PATCH.
IDENTITY = frozenset({"learnerUserId", "learningContentId", "assignerUserId", "assignmentType"})
FORWARD_ONLY = tuple(name for name, rule in RULES.items() if not rule.latest_wins)
LATEST_WINS = tuple(name for name, rule in RULES.items() if rule.latest_wins and name not in IDENTITY)


@dataclass(frozen=True)
class Candidate:
    """A value one event gave a field, with that event's stamp."""

    stamp: Stamp
    value: Any


def _key(rule: _Rule, candidate: Candidate) -> tuple[Any, ...]:
    """How good a candidate is: by the rule's rank (a null below all), ties broken by any fixed order of values."""
    rank = (0,) if candidate.value is None else (1, rule.rank(candidate.value))
    return (*rank, repr(candidate.value))


def _add(rule: _Rule, kept: tuple[Candidate, ...], new: Candidate) -> tuple[Candidate, ...]:
    """The candidates that no other beats on both counts (newer and at least as good): whichever events later turn out
    to be before a removal, the field's value is the best of those after it. Kept oldest first; the first is the
    value. A latest-wins field ranks all values alike, so only its newest candidate stays."""
    key = _key(rule, new)

    def beats(one: Candidate, other: Candidate, one_key: tuple[Any, ...]) -> bool:
        other_key = _key(rule, other)
        if rule.latest_wins:
            return (one.stamp, one_key) >= (other.stamp, other_key)
        return one.stamp >= other.stamp and one_key >= other_key

    if any(beats(old, new, _key(rule, old)) for old in kept):
        return kept
    return tuple(sorted((*(old for old in kept if not beats(new, old, key)), new), key=lambda c: c.stamp))


@dataclass(frozen=True)
class MergedState:
    """The merge of every callback seen for one activity: per field the candidates that can still be its value, the
    newest removal, and the newest event after it (the activity exists while there is one)."""

    candidates: Mapping[str, tuple[Candidate, ...]] = field(default_factory=dict)
    removed: Stamp | None = None
    latest: Stamp | None = None

    @property
    def values(self) -> dict[str, Any]:
        """The activity's properties, as Graph is to hold them."""
        return {name: kept[0].value for name, kept in self.candidates.items() if kept and name not in IDENTITY}

    @property
    def identity(self) -> dict[str, Any]:
        """Who and what the activity is about, as the newest events named them (a create needs them)."""
        return {name: kept[0].value for name, kept in self.candidates.items() if kept and name in IDENTITY}

    @property
    def exists(self) -> bool:
        """Whether an event newer than the newest removal was seen (a removed activity comes back only so)."""
        return self.latest is not None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "candidates": {
                name: [[c.stamp.to_json(), c.value] for c in kept] for name, kept in self.candidates.items()
            },
        }
        if self.removed is not None:
            data["removed"] = self.removed.to_json()
        if self.latest is not None:
            data["latest"] = self.latest.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> MergedState:
        if not data:
            return cls()
        if "candidates" not in data:
            return cls._from_version_1(data)
        candidates = {
            name: tuple(Candidate(Stamp.from_json(stamp), value) for stamp, value in kept)
            for name, kept in data["candidates"].items()
        }
        removed, latest = data.get("removed"), data.get("latest")
        return cls(
            candidates,
            Stamp.from_json(removed) if removed else None,
            Stamp.from_json(latest) if latest else None,
        )

    @classmethod
    def _from_version_1(cls, data: Mapping[str, Any]) -> MergedState:
        """A row written before candidates were kept: its values, stamped as they were (latest-wins fields) or as
        older than any event (the rest)."""
        stamps = {name: Stamp.from_json(stamp) for name, stamp in data.get("stamps", {}).items()}
        candidates = {
            name: (Candidate(stamps.get(name, EARLIEST), value),) for name, value in data.get("values", {}).items()
        }
        return cls(candidates, None, max(stamps.values(), default=EARLIEST) if candidates else None)


def fold(state: MergedState, changes: Mapping[str, Any], stamp: Stamp) -> MergedState:
    """Merges one event's changeable properties into the state; an event older than the newest removal belongs to
    the activity's earlier life and changes nothing."""
    if state.removed is not None and stamp < state.removed:
        return state
    completing = changes.get("status") == "completed"
    candidates = dict(state.candidates)
    for name, value in changes.items():
        rule = RULES[name]
        if rule.completing_only and not completing:
            continue
        candidates[name] = _add(rule, candidates.get(name, ()), Candidate(stamp, value))
    latest = stamp if state.latest is None else max(state.latest, stamp)
    return MergedState(candidates, state.removed, latest)


def remove(state: MergedState, stamp: Stamp) -> MergedState:
    """Folds in a removal: every event older than it is forgotten."""
    removed = stamp if state.removed is None else max(state.removed, stamp)
    candidates = {name: tuple(c for c in kept if c.stamp > removed) for name, kept in state.candidates.items()}
    latest = state.latest if state.latest is not None and state.latest > removed else None
    return MergedState({name: kept for name, kept in candidates.items() if kept}, removed, latest)


def combine(first: MergedState, second: MergedState) -> MergedState:
    """The merge of two states of one activity (reached by Graph id and by external id): every candidate of the
    second folded into the first by the same rules, so it is the state their callbacks would have made together."""
    candidates = dict(first.candidates)
    for name, kept in second.candidates.items():
        for candidate in kept:
            candidates[name] = _add(RULES[name], candidates.get(name, ()), candidate)
    latest = max((s for s in (first.latest, second.latest) if s is not None), default=None)
    merged = MergedState(candidates, None, latest)
    removals = [s for s in (first.removed, second.removed) if s is not None]
    return remove(merged, max(removals)) if removals else merged


def patch_body(merged: MergedState, event_changes: Mapping[str, Any]) -> dict[str, Any]:
    """The properties to send: the whole merged state, so whichever PATCH Graph receives last carries all of it.

    The event's own explicit nulls go too where the merged state has no value, so a provider's
    `"completedDateTime": null` reaches Graph as the contract says.
    """
    body = merged.values
    for name, value in event_changes.items():
        if value is None and name not in body:
            body[name] = None
    return body


def graph_agrees(values: Mapping[str, Any], activity: Mapping[str, Any]) -> bool:
    """Whether Graph's copy of the activity already holds these values (formats aside: 'Z' vs '+00:00' etc.)."""
    return all(_same(name, value, activity.get(name)) for name, value in values.items())


def _same(name: str, ours: Any, theirs: Any) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    try:
        if name.endswith("DateTime") and name != "dueDateTime":
            return parse_instant(ours) == parse_instant(theirs)
        if name == "dueDateTime":
            return str(ours["timeZone"]).lower() == str(theirs.get("timeZone", "")).lower() and datetime.fromisoformat(
                ours["dateTime"]
            ) == datetime.fromisoformat(theirs.get("dateTime", ""))
        if name == "notes":
            return ours["content"] == theirs.get("content") and (
                str(ours["contentType"]).lower() == str(theirs.get("contentType", "")).lower()
            )
    except (AttributeError, KeyError, TypeError, ValueError):
        return False
    return bool(ours == theirs)

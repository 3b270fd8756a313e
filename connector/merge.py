"""The order-independent merge of an activity's callbacks: progress only moves forward.

- `status`: the furthest of notStarted < inProgress < completed.
- `completionPercentage`: the highest value given.
- `startedDateTime`: the earliest value given.
- `completedDateTime`: taken only from events that complete the activity (the earliest such value).
- `assignedDateTime`, `dueDateTime`, `notes`: the value of the newest event that sets them (by the provider's
  webhook-timestamp, then position in its batch, then event id), explicit null included.

Each rule is commutative, associative and idempotent, so any order and any number of deliveries of the same set of
callbacks give the same state. An explicit null is kept only where nothing else has set the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.messages import parse_instant, utc_iso

STATUS_RANK = {"notStarted": 0, "inProgress": 1, "completed": 2}
FORWARD_ONLY = ("status", "completionPercentage", "startedDateTime", "completedDateTime")
LATEST_WINS = ("assignedDateTime", "dueDateTime", "notes")


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


#: Orders below every real stamp (a state merged before stamps were kept).
EARLIEST = Stamp(datetime.min.replace(tzinfo=UTC))


@dataclass(frozen=True)
class MergedState:
    """The fold of every callback seen for one activity: values, and for latest-wins fields their stamps."""

    values: Mapping[str, Any] = field(default_factory=dict)
    stamps: Mapping[str, Stamp] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"values": dict(self.values), "stamps": {k: s.to_json() for k, s in self.stamps.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> MergedState:
        if not data:
            return cls()
        return cls(dict(data.get("values", {})), {k: Stamp.from_json(v) for k, v in data.get("stamps", {}).items()})


def fold(state: MergedState, changes: Mapping[str, Any], stamp: Stamp) -> MergedState:
    """Merges one event's changeable properties into the state."""
    values = dict(state.values)
    stamps = dict(state.stamps)
    completing = changes.get("status") == "completed"
    for name, value in changes.items():
        if name in LATEST_WINS:
            if name not in stamps or stamp > stamps[name]:
                values[name], stamps[name] = value, stamp
            elif stamp == stamps[name] and _key(value) > _key(values[name]):
                values[name] = value  # the same stamp twice with other values: any fixed choice will do
        elif name == "status":
            if name not in values or STATUS_RANK[value] > STATUS_RANK[values[name]]:
                values[name] = value
        elif name == "completionPercentage":
            values[name] = _pick(values, name, value, max)
        elif name == "startedDateTime" or (name == "completedDateTime" and completing):
            values[name] = _pick(values, name, value, min)
    return MergedState(values, stamps)


def combine(first: MergedState, second: MergedState) -> MergedState:
    """The merge of two activity states (the same activity reached by Graph id and by external id): by the same rules,
    so it is the state their callbacks would have made together."""
    values, stamps = dict(first.values), dict(first.stamps)
    for name, value in second.values.items():
        if name in LATEST_WINS:
            stamp = second.stamps.get(name, EARLIEST)
            if name not in stamps or stamp > stamps[name]:
                values[name], stamps[name] = value, stamp
        elif name == "status":
            if name not in values or STATUS_RANK[value] > STATUS_RANK[values[name]]:
                values[name] = value
        else:
            values[name] = _pick(values, name, value, max if name == "completionPercentage" else min)
    return MergedState(values, stamps)


def _pick(values: Mapping[str, Any], name: str, value: Any, choose: Any) -> Any:
    """The chosen one of the old and new value; a null yields to any value, and stays only if alone."""
    if name not in values or values[name] is None:
        return value
    if value is None:
        return values[name]
    if name.endswith("DateTime"):
        return choose(values[name], value, key=datetime.fromisoformat)
    return choose(values[name], value)


def _key(value: Any) -> str:
    return repr(value)


def patch_body(merged: MergedState, event_changes: Mapping[str, Any]) -> dict[str, Any]:
    """The properties to send: the whole merged state, so whichever PATCH Graph receives last carries all of it.

    The event's own explicit nulls go too where the merged state has no value, so a provider's
    `"completedDateTime": null` reaches Graph as the contract says.
    """
    body = dict(merged.values)
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
            return datetime.fromisoformat(ours) == datetime.fromisoformat(theirs)
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

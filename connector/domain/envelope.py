"""The queue message: a versioned JSON envelope around one event, and the bare events trusted systems may send.

Version 2: {"schemaVersion": 2, "kind": "courseActivityUpdate", "eventId", "registrationId", "source", "webhookId",
"eventTime", "sequence", "receivedAt", "event", optional "attempt", "firstAttemptAt", "deadLetter"}.
Version 1 (still read) named the event id "id". The Functions host copies a JSON message's top-level properties into
the trigger metadata, ignoring case, so a top-level `id` replaced the storage message id: no message this app writes
has a top-level property named like a metadata field (RESERVED_NAMES).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: The queue trigger's metadata fields (compared without regard to case): never a message's top-level property.
RESERVED_NAMES = frozenset(
    {"id", "queuetrigger", "dequeuecount", "expirationtime", "insertiontime", "nextvisibletime", "popreceipt", "sys"}
)
KIND = "courseActivityUpdate"
QUEUE_NAME = "course-activity-updates"
POISON_QUEUE_NAME = f"{QUEUE_NAME}-poison"
#: Azure Storage queues take at most 64 KiB per message (escaped for XML on the wire): leave room for that.
MAX_MESSAGE_BYTES = 48 * 1024


class MessageError(ValueError):
    """A queue message that cannot be read as an envelope or a bare event."""


@dataclass(frozen=True)
class Envelope:
    """One event on its way to Graph, with what the worker needs to order, deduplicate and trace it."""

    id: str
    registration_id: str
    event: dict[str, Any]
    source: str
    event_time: str
    received_at: str
    webhook_id: str | None = None
    sequence: int = 0
    attempt: int = 0
    first_attempt_at: str | None = None
    dead_letter: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # pydantic-core writes it (the event's date-times included) several times faster than json.dumps, but refuses
        # a lone surrogate, which only a bare event read by json.loads can hold: that one is written escaped.
        try:
            return _joined(to_json(self._shared()), self.id, self.sequence, to_json(self.event))
        except PydanticSerializationError:
            data = {**self._shared(), "eventId": self.id, "sequence": self.sequence, "event": self.event}
            return json.dumps(data, separators=(",", ":"))

    def _shared(self) -> dict[str, Any]:
        """Every field but the three that differ between the events of one webhook request."""
        data: dict[str, Any] = {
            "schemaVersion": SCHEMA_VERSION,
            "kind": KIND,
            "registrationId": self.registration_id,
            "source": self.source,
            "webhookId": self.webhook_id,
            "eventTime": self.event_time,
            "receivedAt": self.received_at,
        }
        if self.attempt:
            data["attempt"] = self.attempt
        if self.first_attempt_at:
            data["firstAttemptAt"] = self.first_attempt_at
        if self.dead_letter is not None:
            data["deadLetter"] = self.dead_letter
        data.update({k: v for k, v in self.extra.items() if k.lower() not in RESERVED_NAMES})
        return data

    def with_dead_letter(self, reason: dict[str, Any]) -> Envelope:
        return replace(self, dead_letter=reason)

    @property
    def from_statement(self) -> bool:
        """Mapped from an xAPI statement, by the LRS or by a backfill (its `xapi` context): the learner is its actor."""
        return self.source == "xapi" or isinstance(self.extra.get("xapi"), dict)

    @property
    def typed_by_graph(self) -> bool:
        """An event the connector mapped itself (a statement, a platform's event) may leave out @odata.type: the
        activity's type is Graph's to tell. A bare event put on the queue by a trusted system must name it."""
        return self.from_statement or (self.source != "queue" and "@odata.type" not in self.event)


def batch_messages(shared: Envelope, ids: Sequence[str], events: Sequence[Mapping[str, Any]]) -> list[str]:
    """One message per event of a webhook request, each what `Envelope.to_json` writes for it; the fields they share
    are written once (this is the webhook's hot path). The events come validated: no lone surrogates."""
    head = to_json(shared._shared())
    return [
        _joined(head, event_id, index, to_json(event))
        for index, (event_id, event) in enumerate(zip(ids, events, strict=True))
    ]


def _joined(head: bytes, event_id: str, sequence: int, event: bytes) -> str:
    return b"".join(
        (head[:-1], b',"eventId":', to_json(event_id), b',"sequence":', b"%d" % sequence, b',"event":', event, b"}")
    ).decode()


def utc_iso(moment: datetime) -> str:
    """One fixed format for the times the app writes (UTC, microseconds, Z). Not strftime: its %Y writes the year 1
    (connector.domain.merge.EARLIEST, the time of a backfilled line without its own) as "1", which no reader parses."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time with an offset (a missing one is UTC); raises ValueError for anything else. Times read
    back from a queue are compared as instants: the host may rewrite `…:31.000000Z` as `…:31Z`."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def now_iso() -> str:
    return utc_iso(datetime.now(UTC))


def decode_body(body: bytes | str) -> Any:
    """The message's JSON: as written (messageEncoding none), or base64 of it (a client's default encoding)."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise MessageError("the message body is not UTF-8 text") from None
    try:
        return json.loads(text)
    except ValueError:
        pass
    except RecursionError:
        raise MessageError("the message body is JSON nested too deeply") from None
    try:
        decoded = base64.b64decode(text.strip(), validate=True).decode("utf-8")
        return json.loads(decoded)
    except (binascii.Error, ValueError, RecursionError):
        raise MessageError("the message body is not JSON (nor base64-encoded JSON)") from None


_KNOWN = {
    "schemaVersion",
    "kind",
    "id",
    "eventId",
    "registrationId",
    "source",
    "webhookId",
    "eventTime",
    "sequence",
    "receivedAt",
    "event",
    "attempt",
    "firstAttemptAt",
    "deadLetter",
}


def read_envelope(data: dict[str, Any]) -> Envelope:
    """Reads a versioned envelope; raises MessageError when it is not one this version understands."""
    version = data.get("schemaVersion")
    if version not in READABLE_VERSIONS or isinstance(version, bool) or data.get("kind") != KIND:
        raise MessageError(f"unsupported message schemaVersion {version!r} or kind {data.get('kind')!r}")
    id_name = "eventId" if version == 2 else "id"
    for name in (id_name, "registrationId", "eventTime", "receivedAt"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise MessageError(f"the envelope's {name} is missing or not a string")
    try:
        parse_instant(data["eventTime"])
    except ValueError:
        raise MessageError("the envelope's eventTime is not an ISO 8601 date-time") from None
    if not isinstance(data.get("event"), dict):
        raise MessageError("the envelope's event is missing or not a JSON object")
    for name in ("sequence", "attempt"):
        if not isinstance(data.get(name, 0), int) or isinstance(data.get(name), bool):
            raise MessageError(f"the envelope's {name} is not an integer")
    for name in ("webhookId", "firstAttemptAt", "source"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise MessageError(f"the envelope's {name} is not a string")
    if data.get("deadLetter") is not None and not isinstance(data["deadLetter"], dict):
        raise MessageError("the envelope's deadLetter is not a JSON object")
    return Envelope(
        id=data[id_name],
        registration_id=data["registrationId"],
        event=data["event"],
        source=str(data.get("source") or "queue"),
        event_time=data["eventTime"],
        received_at=data["receivedAt"],
        webhook_id=data.get("webhookId"),
        sequence=int(data.get("sequence") or 0),
        attempt=int(data.get("attempt") or 0),
        first_attempt_at=data.get("firstAttemptAt"),
        dead_letter=data.get("deadLetter"),
        extra={k: v for k, v in data.items() if k not in _KNOWN},
    )


def is_envelope(data: Any) -> bool:
    return isinstance(data, dict) and "schemaVersion" in data


RECONCILE_KIND = "reconcileSlice"


@dataclass(frozen=True)
class ReconcileSlice:
    """A queue message asking the worker to reconcile one page of a provider's activities with Graph, then to put
    the next page's message on the queue: a reconciliation of any size, in invocations of bounded time, through the
    same queue and pace as the updates. Version 2: {"schemaVersion": 2, "kind": "reconcileSlice", "registrationId",
    "runId", "since", "continuation"}."""

    registration_id: str
    run_id: str
    since: str | None = None
    """Only activities with an attempt since then (ISO 8601); all when None."""
    continuation: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "schemaVersion": SCHEMA_VERSION,
                "kind": RECONCILE_KIND,
                "registrationId": self.registration_id,
                "runId": self.run_id,
                "since": self.since,
                "continuation": self.continuation,
            }
        )


def read_reconcile_slice(data: Mapping[str, Any]) -> ReconcileSlice | None:
    """The slice a message asks for, or None when it is not one; raises MessageError when it is one, malformed."""
    if data.get("kind") != RECONCILE_KIND:
        return None
    if not all(isinstance(data.get(name), str) and data[name] for name in ("registrationId", "runId")):
        raise MessageError("a reconcileSlice names its registrationId and runId")
    for name in ("since", "continuation"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise MessageError(f"the reconcileSlice's {name} is not a string")
    return ReconcileSlice(data["registrationId"], data["runId"], data.get("since"), data.get("continuation"))

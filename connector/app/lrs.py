"""The write-only LRS statements resource (xAPI 1.0.3 communication rules, for what this endpoint does).

- `X-Experience-API-Version` 1.0.x is required on statement requests (400 otherwise) and answered on every response.
- HTTP Basic credentials per provider (`xapiCredentials`); 401 with `WWW-Authenticate: Basic` otherwise.
- POST takes one statement or an array and answers 200 with the ids in order; PUT `?statementId=` answers 204.
- Ids are assigned when absent. A repeated id with the same content changes nothing; with other content it is a 409.
  The same id twice in one batch is a 400. A batch is all-or-nothing.
- Statements that change a course activity go on the same queue as webhook events; the rest are recorded only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.app.credentials import basic_authorized
from connector.app.logsafe import LogSampler, untrusted
from connector.app.ports import StatementRecords
from connector.app.replies import MAX_BODY_BYTES, Reply, bad_request, error_reply, first_oversized, withheld_body
from connector.app.tracing import record, span, traceparent
from connector.domain.envelope import MAX_MESSAGE_BYTES, Envelope, now_iso, utc_iso
from connector.domain.events import EventValidationError, FieldError
from connector.domain.xapi.mapping import ProgressError, XapiChange, change_of, external_id
from connector.domain.xapi.statements import UUID, ParsedStatement, parse_statements
from connector.settings import ProviderSettings, Settings

logger = logging.getLogger(__name__)

VERSIONS = ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]
_VERSION_HEADER = re.compile(r"^1\.0(\.\d+)?$")
Enqueue = Callable[[str], Awaitable[None]]
#: The statements route is anonymous at the platform: its rejections are logged 10 a minute at most.
_ANONYMOUS_REJECTIONS = LogSampler(per_window=10, window=60.0)


#: Every LRS answer says which xAPI version it speaks.
_VERSION = {"X-Experience-API-Version": VERSIONS[0]}


def _reply(status: int, body: Any) -> Reply:
    return Reply(status, body, headers=dict(_VERSION))


def _error(status: int, code: str, message: str, **headers: str) -> Reply:
    return error_reply(status, code, message, headers={**_VERSION, **headers})


def about() -> Reply:
    """GET …/xapi/about: the xAPI versions this endpoint speaks."""
    return _reply(200, {"version": VERSIONS})


def only_receives() -> Reply:
    """GET …/xapi/statements: this LRS keeps nothing to read back."""
    return _error(
        405,
        "methodNotAllowed",
        "This LRS endpoint only receives statements (POST, PUT); it forwards them to Viva Learning and keeps none "
        "to read back.",
        Allow="POST, PUT",
    )


@dataclass(frozen=True)
class LrsRequest:
    """What the statements function hands over: headers with lower-case names, the query, the raw body."""

    registration_id: str
    method: str
    headers: Mapping[str, str]
    params: Mapping[str, str]
    body: bytes


async def receive_statements(
    settings: Settings, records: StatementRecords, enqueue: Enqueue, request: LrsRequest
) -> Reply:
    """POST or PUT …/xapi/statements."""
    with span("receive xAPI statements", {"connector.registration_id": request.registration_id}) as current:
        reply = await _receive(settings, records, enqueue, request)
        current.set_attribute("http.response.status_code", reply.status)
    record("accepted" if reply.status in (200, 204) else "rejected")
    return reply


async def _receive(settings: Settings, records: StatementRecords, enqueue: Enqueue, request: LrsRequest) -> Reply:
    registration_id, method, headers, params, body = (
        request.registration_id,
        request.method,
        request.headers,
        request.params,
        request.body,
    )
    provider = settings.provider(registration_id)
    # Anonymous at the platform: an unknown provider is a 401 too, so that nobody can probe for registrationIds.
    if not basic_authorized(provider, headers.get("authorization", "")) or provider is None:
        _ANONYMOUS_REJECTIONS.warning(
            logger, "xAPI request rejected (401) for registrationId %s", untrusted(registration_id, 64)
        )
        return _error(
            401,
            "unauthorized",
            "Send this provider's LRS key and secret with HTTP Basic authentication.",
            **{"WWW-Authenticate": 'Basic realm="xAPI"'},
        )
    version = headers.get("x-experience-api-version", "").strip()
    if not _VERSION_HEADER.match(version):
        problem = "is required" if not version else f"'{version}' is not supported"
        return _error(400, "badRequest", f"X-Experience-API-Version {problem}: send 1.0.3 (any 1.0.x is accepted).")
    if len(body) > MAX_BODY_BYTES:
        return _error(413, "payloadTooLarge", f"The body exceeds {MAX_BODY_BYTES} bytes.")
    withheld = withheld_body(headers, body, dict(_VERSION))
    if withheld is not None:
        return withheld
    content_type = (headers.get("content-type") or "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        return _error(415, "unsupportedMediaType", "Send statements as application/json (attachments are not taken).")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return _bad([FieldError("body", "is invalid", "must be JSON: one statement or an array of statements")])
    statement_id = params.get("statementId")
    if method == "PUT":
        if not statement_id:
            return _bad([FieldError("statementId", "is required", "PUT names the statement: ?statementId=<uuid>")])
        if not UUID.match(statement_id):
            return _bad([FieldError("statementId", "is invalid", "must be a UUID")])
        if not isinstance(data, dict):
            return _bad([FieldError("body", "is invalid", "PUT takes one statement")])
        if "id" not in data:
            data = {**data, "id": statement_id}
    try:
        statements = parse_statements(data, batch=isinstance(data, list))
    except EventValidationError as exc:
        return _bad(exc.errors)
    if method == "PUT" and statements[0].id != (statement_id or "").lower():
        return _bad([FieldError("statementId", "is invalid", "must be a UUID equal to the statement's id")])
    return await _accept(provider, records, enqueue, statements, method)


async def _accept(
    provider: ProviderSettings,
    records: StatementRecords,
    enqueue: Enqueue,
    statements: list[ParsedStatement],
    method: str,
) -> Reply:
    ids = [s.id for s in statements]
    first_at: dict[str, int] = {}
    for index, statement_id in enumerate(ids):
        if statement_id in first_at:
            rule = f"statement {first_at[statement_id]} has the same id {statement_id}: ids must be unique in a batch"
            return _bad([FieldError("id", "is invalid", rule, index)])
        first_at[statement_id] = index
    received = datetime.now(UTC)
    changes = []
    for index, statement in enumerate(statements):
        try:
            changes.append(change_of(statement, received))
        except ProgressError as exc:
            return _bad([FieldError(exc.field, "is invalid", str(exc), index)])
    known = await records.hashes(provider.registration_id, ids)
    for statement in statements:
        if statement.id in known and known[statement.id] != statement.content_hash:
            return _error(
                409,
                "conflict",
                f"Statement {statement.id} was received before with different content; statements are immutable.",
            )
    trace = traceparent()
    new = [(index, s, change) for index, (s, change) in enumerate(zip(statements, changes, strict=True))]
    new = [item for item in new if item[1].id not in known]
    queued = [
        (index, statement_envelope(provider, s, change, event_id=s.id, sequence=index, extra=trace).to_json())
        for index, s, change in new
        if change
    ]
    too_large = first_oversized([message for _, message in queued])
    if too_large is not None:
        return _error(
            413,
            "payloadTooLarge",
            f"statement {queued[too_large][0]} is too large for the queue ({MAX_MESSAGE_BYTES} bytes at most).",
        )
    for _, message in queued:
        await enqueue(message)
    await records.add(provider.registration_id, [(s.id, s.content_hash) for _, s, _ in new])
    logger.info(
        "xAPI: %d statement(s) for provider %s, %d new, %d changing an activity",
        len(statements),
        provider.registration_id,
        len(new),
        sum(change is not None for _, _, change in new),
        extra={"registrationId": provider.registration_id},
    )
    return _reply(204, None) if method == "PUT" else _reply(200, ids)


def statement_envelope(
    provider: ProviderSettings,
    statement: ParsedStatement,
    change: XapiChange,
    *,
    event_id: str,
    sequence: int,
    source: str = "xapi",
    extra: Mapping[str, Any] | None = None,
) -> Envelope:
    """The queue message of one statement that changes an activity (the LRS's, and a backfilled statement's).

    Its `xapi` context marks the event as mapped from a statement: the worker learns the activity's type from Graph."""
    event = {"externalcourseActivityId": external_id(statement, provider.xapi_activity_id), **change.changes}
    return Envelope(
        id=event_id,
        registration_id=provider.registration_id,
        event=event,
        source=source,
        event_time=utc_iso(change.time),
        sequence=sequence,
        received_at=now_iso(),
        extra={"xapi": _xapi_context(statement, provider), **(extra or {})},
    )


def _xapi_context(parsed: ParsedStatement, provider: ProviderSettings) -> dict[str, Any]:
    """Which statement and activity; and, only for a provider that creates missing activities, what finds the
    learner (the email, else the account name: connector.app.lookups). Never a display name."""
    statement = parsed.statement
    context: dict[str, Any] = {"statementId": parsed.id, "verb": statement.verb.id, "activityId": statement.object.id}
    if provider.create_missing:
        actor = statement.actor
        if actor.mbox:
            context["actor"] = {"mbox": actor.mbox}
        elif actor.account:
            context["actor"] = {"account": {"name": actor.account.name}}
        else:
            context["actor"] = {}  # the worker dead-letters it: nothing to find the learner by
    return context


def _bad(errors: list[FieldError]) -> Reply:
    """400 naming the statement's index and the field, with the rule: "statement 0: verb is required (…)"."""
    first = errors[0]
    if first.index is None:  # the body or the query, not one statement
        message = f"{first.message} ({first.rule})"
    else:
        message = f"statement {first.index}: {first.field} {first.problem} ({first.rule})"
    return bad_request(errors, message, dict(_VERSION))

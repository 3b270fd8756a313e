"""The IMS Caliper endpoint (Caliper 1.1 and 1.2, §6 of the spec): a sensor's envelopes in, queue messages out.

- `POST`: the provider's `caliperKeys` as the Authorization header, with or without `Bearer ` (caliper-php sends the
  bare key); or, as Canvas's Caliper feed sends it with "Sign Payload" (no header), the envelope as a JWT signed by
  Instructure, verified as Canvas's Live Events are (connector.app.canvas_intake: canvasJwksUrl, 403 for another
  account than canvasRootAccountUuids names, 503 when the key set cannot be fetched). 401 otherwise, and for an
  unknown registrationId. 413 over 1 MiB, 411 for a withheld chunked body, 415 for a Content-Type other than JSON
  (`application/json`, or `application/ld+json`), 400 for a malformed envelope naming the field, 422 for a
  `dataVersion` other than 1.1 or 1.2. Otherwise 200 with an empty body once every event that carries progress is
  queued: senders treat any other answer as a failure.
- Events without progress (sessions, a view after the first) are skipped; events that cannot name their activity
  are dead-lettered (connector.app.platform_intake).
- `GET`: the endpoint's configuration, for any registrationId (it says nothing about the provider).
"""

from __future__ import annotations

from typing import cast

from connector.app.credentials import caliper_authorized
from connector.app.platform_intake import (
    Intake,
    PlatformRequest,
    Queues,
    Refused,
    content_id_for,
    instructure_claims,
    other_canvas_account,
    unauthorized,
    unreadable_size,
)
from connector.app.ports import KeySets
from connector.app.replies import MAX_BODY_BYTES, Reply, bad_request, error_reply
from connector.app.tracing import record, span
from connector.domain.formats.caliper import (
    CaliperError,
    Completion,
    endpoint_configuration,
    map_envelope,
    normal_event_id,
    parse_envelope,
)
from connector.domain.formats.canvas import held, is_jwt
from connector.settings import Settings

SOURCE = "caliper"
_CHALLENGE = 'Bearer realm="caliper"'
_JSON_TYPES = ("application/json", "application/ld+json")
#: What a signed envelope's claims hold (the envelope itself, or one claim holding it).
_ENVELOPE = ("dataVersion", "data")


def configuration() -> Reply:
    """GET …/caliper: the payload limit, the Caliper versions and the extensions this endpoint takes."""
    return Reply(200, endpoint_configuration(MAX_BODY_BYTES // 1024))


async def receive_envelope(settings: Settings, queues: Queues, key_sets: KeySets, request: PlatformRequest) -> Reply:
    """POST …/caliper: one envelope."""
    with span("receive Caliper envelope", {"connector.registration_id": request.registration_id}) as current:
        try:
            reply = await _receive(settings, queues, key_sets, request)
        except Refused as refusal:
            reply = refusal.reply
        current.set_attribute("http.response.status_code", reply.status)
    record("accepted" if reply.status == 200 else "rejected")
    return reply


async def _receive(settings: Settings, queues: Queues, key_sets: KeySets, request: PlatformRequest) -> Reply:
    provider = settings.provider(request.registration_id)
    signed = is_jwt(request.body)  # Canvas's Caliper feed with Sign Payload: no header, Instructure's signature
    authorized = signed or caliper_authorized(provider, request.header("authorization"))  # constant time
    if provider is None or not authorized:
        message = (
            "Send one of this provider's caliperKeys as the Authorization header (Bearer <key>, or the key alone), "
            "or an envelope signed by Canvas (Sign Payload; the provider's canvasJwksUrl verifies it)."
        )
        return unauthorized(SOURCE, request, message, _CHALLENGE)
    refused = unreadable_size(request)
    if refused is not None:
        return refused
    if not signed and request.media_type and request.media_type not in _JSON_TYPES:
        return error_reply(
            415, "unsupportedMediaType", f"Content-Type must be application/json, not {request.media_type}."
        )
    body = held(await instructure_claims(SOURCE, provider, key_sets, request), _ENVELOPE) if signed else request.body
    try:
        envelope = parse_envelope(body)
    except CaliperError as exc:
        first = exc.errors[0]
        if exc.status == 422:
            return error_reply(422, "unsupportedVersion", f"{first.message} ({first.rule})", [first.to_detail()])
        return bad_request(exc.errors, f"{first.message} ({first.rule})")
    if signed:
        forbidden = other_canvas_account(provider, [event.canvas_root_account for event in envelope.events])
        if forbidden is not None:
            return forbidden
    completion = cast(Completion, provider.caliper_completion)  # one of the three: checked at start-up
    intake = Intake(provider, SOURCE)
    mapped = map_envelope(envelope, completion=completion, content_id=content_id_for(provider))
    for index, (event, change) in enumerate(zip(envelope.events, mapped, strict=True)):
        intake.add(change, event_id=normal_event_id(event.id), event_time=event.event_time, sequence=index)
    too_large = await intake.send(queues)
    return too_large or Reply(200, None)

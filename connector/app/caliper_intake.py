"""The IMS Caliper endpoint (Caliper 1.1 and 1.2, §6 of the spec): a sensor's envelopes in, queue messages out.

- `POST`: the provider's `caliperKeys` as the Authorization header, with or without `Bearer ` (caliper-php sends the
  bare key); 401 otherwise, and for an unknown registrationId. 413 over 1 MiB, 411 for a withheld chunked body, 415
  for a Content-Type other than JSON (`application/json`, or `application/ld+json`), 400 for a malformed envelope
  naming the field, 422 for a `dataVersion` other than 1.1 or 1.2. Otherwise 200 with an empty body once every
  event that carries progress is queued: senders treat any other answer as a failure.
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
    content_id_for,
    unauthorized,
    unreadable_size,
)
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
from connector.settings import Settings

SOURCE = "caliper"
_JSON_TYPES = ("application/json", "application/ld+json")


def configuration() -> Reply:
    """GET …/caliper: the payload limit, the Caliper versions and the extensions this endpoint takes."""
    return Reply(200, endpoint_configuration(MAX_BODY_BYTES // 1024))


async def receive_envelope(settings: Settings, queues: Queues, request: PlatformRequest) -> Reply:
    """POST …/caliper: one envelope."""
    with span("receive Caliper envelope", {"connector.registration_id": request.registration_id}) as current:
        reply = await _receive(settings, queues, request)
        current.set_attribute("http.response.status_code", reply.status)
    record("accepted" if reply.status == 200 else "rejected")
    return reply


async def _receive(settings: Settings, queues: Queues, request: PlatformRequest) -> Reply:
    provider = settings.provider(request.registration_id)
    if not caliper_authorized(provider, request.header("authorization")) or provider is None:
        return unauthorized(
            SOURCE,
            request,
            "Send one of this provider's caliperKeys as the Authorization header (Bearer <key>, or the key alone).",
            'Bearer realm="caliper"',
        )
    refused = unreadable_size(request)
    if refused is not None:
        return refused
    if request.media_type and request.media_type not in _JSON_TYPES:
        return error_reply(
            415, "unsupportedMediaType", f"Content-Type must be application/json, not {request.media_type}."
        )
    try:
        envelope = parse_envelope(request.body)
    except CaliperError as exc:
        if exc.status == 422:
            first = exc.errors[0]
            return error_reply(422, "unsupportedVersion", f"{first.message} ({first.rule})", [first.to_detail()])
        return bad_request(exc.errors, f"{exc.errors[0].message} ({exc.errors[0].rule})")
    completion = cast(Completion, provider.caliper_completion)  # one of the three: checked at start-up
    intake = Intake(provider, SOURCE)
    mapped = map_envelope(envelope, completion=completion, content_id=content_id_for(provider))
    for index, (event, change) in enumerate(zip(envelope.events, mapped, strict=True)):
        intake.add(change, event_id=normal_event_id(event.id), event_time=event.event_time, sequence=index)
    too_large = await intake.send(queues)
    return too_large or Reply(200, None)


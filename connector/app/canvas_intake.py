"""The Canvas Live Events endpoint (Canvas's own format; Canvas's Caliper events go to the Caliper endpoint).

Canvas posts one event per request, as JSON or, with "Sign Payload", as a JWT signed by Instructure (RS256). No
other credential is documented, so trust comes from the signature:
- a signed event is verified against the key set at the provider's `canvasJwksUrl` (cached; fetched again, at most
  once a minute, when a token names a key the cached set lacks: Instructure rotates its keys monthly); with
  `canvasRootAccountUuids`, only those Canvas accounts' events are taken (Instructure signs every customer's alike);
- an unsigned event is taken only when the provider sets `canvasAllowUnsigned`.
Answers: 401 for a token that does not verify, an unsigned event the provider does not take, or an unknown
registrationId; 403 for another Canvas account's event; 503 when the key set cannot be fetched (Canvas retries);
400 naming the field for a body that is not a Live Event (Canvas itself never sends one); 413, 411 as elsewhere;
otherwise 200: the event queued, skipped (no course progress in it) or dead-lettered (it cannot name its activity).
Canvas retries any other answer 3 times and switches a subscription off after about 28,000 errors a day.
"""

from __future__ import annotations

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
from connector.app.replies import Reply, bad_request
from connector.app.tracing import record, span
from connector.domain.formats.canvas import CanvasError, CanvasEvent, held, is_jwt, map_event, parse_event
from connector.settings import ProviderSettings, Settings

SOURCE = "canvas"
_CHALLENGE = 'Bearer realm="canvas"'


async def receive_event(settings: Settings, queues: Queues, key_sets: KeySets, request: PlatformRequest) -> Reply:
    """POST …/canvas: one Live Event."""
    with span("receive Canvas Live Event", {"connector.registration_id": request.registration_id}) as current:
        reply = await _receive(settings, queues, key_sets, request)
        current.set_attribute("http.response.status_code", reply.status)
    record("accepted" if reply.status == 200 else "rejected")
    return reply


async def _receive(settings: Settings, queues: Queues, key_sets: KeySets, request: PlatformRequest) -> Reply:
    provider = settings.provider(request.registration_id)
    if provider is None:
        return unauthorized(SOURCE, request, "Events for this registrationId are not taken.", _CHALLENGE)
    refused = unreadable_size(request)
    if refused is not None:
        return refused
    try:
        event = await _event(provider, key_sets, request)
    except Refused as refusal:
        return refusal.reply
    except CanvasError as exc:
        return bad_request(exc.errors, f"{exc.errors[0].message} ({exc.errors[0].rule})")
    forbidden = other_canvas_account(provider, [event.metadata.root_account_uuid])
    if forbidden is not None:
        return forbidden
    intake = Intake(provider, SOURCE)
    intake.add(map_event(event, content_id=content_id_for(provider)), event_id=event.event_id, event_time=event.time)
    too_large = await intake.send(queues)
    return too_large or Reply(200, {**intake.counts, "ids": intake.ids})


async def _event(provider: ProviderSettings, key_sets: KeySets, request: PlatformRequest) -> CanvasEvent:
    """The event, verified when signed; raises Refused, or CanvasError when the body is not a Live Event."""
    if is_jwt(request.body):
        claims = await instructure_claims(SOURCE, provider, key_sets, request)
        return parse_event(held(claims, ("metadata", "body")))
    if not provider.canvas_allow_unsigned:
        message = (
            "Unsigned events are not taken for this provider: turn on Sign Payload in Canvas's Live Events "
            "settings (the provider's canvasJwksUrl verifies it), or set canvasAllowUnsigned."
        )
        raise Refused(unauthorized(SOURCE, request, message, _CHALLENGE))
    return parse_event(request.body)

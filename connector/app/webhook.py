"""The native webhook: a provider's signed callback in, queue messages and the contract's answer out.

Checks run cheapest and least revealing first: the provider must exist (404), the body must fit (413) and be
there (411: the host drops a chunked body), the signature must match (401), the body must be JSON (415) and follow
the reference's rules (400). Only a request that passes all of them puts anything on the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from connector.app.logsafe import untrusted
from connector.app.replies import MAX_BODY_BYTES, Reply, bad_request, error_reply, first_oversized, withheld_body
from connector.app.tracing import record, span, traceparent
from connector.domain.envelope import MAX_MESSAGE_BYTES, Envelope, batch_messages, now_iso, utc_iso
from connector.domain.events import (
    EventValidationError,
    FieldError,
    TooManyEvents,
    validate_events_json,
)
from connector.domain.signatures import SignatureError, verify
from connector.settings import Settings

logger = logging.getLogger(__name__)


def receive(settings: Settings, registration_id: str, headers: Mapping[str, str], body: bytes) -> Reply:
    """Authenticates, validates and turns one webhook request into queue messages."""
    with span("receive course activity callbacks", {"connector.registration_id": registration_id}) as current:
        reply = _receive(settings, registration_id, headers, body)
        current.set_attribute("http.response.status_code", reply.status)
        current.set_attribute("connector.events", len(reply.messages))
    record("accepted" if reply.status == 202 else "rejected", len(reply.messages) or 1)
    return reply


def _receive(settings: Settings, registration_id: str, headers: Mapping[str, str], body: bytes) -> Reply:
    provider = settings.provider(registration_id)
    if provider is None:
        return error_reply(404, "notFound", f"No provider with registrationId '{registration_id}' is configured.")
    if len(body) > MAX_BODY_BYTES:
        return error_reply(413, "payloadTooLarge", f"The body exceeds {MAX_BODY_BYTES} bytes.")
    withheld = withheld_body(headers, body)
    if withheld is not None:
        return withheld
    try:
        webhook_id = verify(body, headers, provider.webhook_secrets)
    except SignatureError as exc:
        logger.warning(
            "webhook rejected (401) for provider %s: %s",
            provider.registration_id,
            exc,
            extra={"registrationId": provider.registration_id, "webhookId": headers.get("webhook-id")},
        )
        return error_reply(401, "unauthorized", f"Invalid webhook signature: {exc}.")
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and not _is_json_media_type(content_type):
        return error_reply(415, "unsupportedMediaType", f"Content-Type must be application/json, not {content_type}.")
    start = body.lstrip()[:1]
    if start not in (b"{", b"["):
        if not content_type:
            return error_reply(415, "unsupportedMediaType", "The body is not JSON: send application/json.")
        return bad_request([FieldError("body", "is invalid", "must be one event object or a JSON array of events")])
    is_batch = start == b"["
    try:
        events = validate_events_json(body, provider.registration_id, batch=is_batch)
    except TooManyEvents as exc:
        return error_reply(413, "payloadTooLarge", str(exc))
    except EventValidationError as exc:
        logger.info(
            "webhook %s rejected (400) for provider %s: %s",
            untrusted(webhook_id),
            provider.registration_id,
            untrusted(exc.errors[0].message),  # names the request's fields
            extra={"registrationId": provider.registration_id, "webhookId": webhook_id},
        )
        return bad_request(exc.errors)
    if not events:
        return bad_request([FieldError("body", "shouldn't be empty", "send at least one event")])
    event_time = _event_time(headers)
    received_at = now_iso()
    trace_context = traceparent()  # the worker's spans join this callback's trace across the queue
    ids = [f"{webhook_id}:{index}" if is_batch else webhook_id for index in range(len(events))]
    shared = Envelope(
        id="",
        registration_id=provider.registration_id,
        event={},
        source="webhook",
        webhook_id=webhook_id,
        event_time=event_time,
        received_at=received_at,
        extra=trace_context,
    )
    messages = batch_messages(shared, ids, events)
    too_large = first_oversized(messages)
    if too_large is not None:
        return error_reply(
            413, "payloadTooLarge", f"Event {too_large} is too large for the queue ({MAX_MESSAGE_BYTES} bytes at most)."
        )
    logger.info(
        "webhook %s accepted %d event(s) for provider %s",
        untrusted(webhook_id),
        len(messages),
        provider.registration_id,
        extra={"registrationId": provider.registration_id, "webhookId": webhook_id},
    )
    return Reply(202, {"accepted": len(messages), "ids": ids}, messages)


def _is_json_media_type(media_type: str) -> bool:
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


def _event_time(headers: Mapping[str, str]) -> str:
    """When the provider sent the callback (its signed webhook-timestamp, digits only): orders late callbacks."""
    stamp = int(headers["webhook-timestamp"])
    return utc_iso(datetime.fromtimestamp(stamp, UTC))

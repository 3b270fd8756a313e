"""The SCORM Cloud (and Rustici Engine) registration postback endpoint.

SCORM Cloud posts a registration whenever it changes, with either auth type: `form` (a form with the fields `data`,
`userName` and `password`; v1 `username`) or `httpbasic` (the registration as the body, credentials in
`Authorization: Basic`). It retries every 4xx and 5xx answer up to 70 times and takes a 3xx as success, so:
- 401 only for credentials that are not one of the provider's `scormCloudCredentials` (or an unknown
  registrationId); 413 over 1 MiB and 411 for a withheld chunked body, which SCORM Cloud does not send;
- 200 for everything else: a registration is queued (or dead-lettered when its course is not a content of the
  provider); a body that is not a registration is dead-lettered with the fields at fault, and the 200 says so.
A retried postback older than one applied since (the same registration and instance, an older `updated`) is queued
and changes nothing: the merge only moves forward.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connector.app.credentials import basic_credentials, scorm_cloud_authorized
from connector.app.platform_intake import (
    Intake,
    PlatformRequest,
    Queues,
    content_id_for,
    unauthorized,
    unreadable_size,
)
from connector.app.replies import Reply
from connector.app.tracing import record, span
from connector.domain.formats.mapped import hashed_id
from connector.domain.formats.scorm_cloud import (
    FormDataError,
    ScormCloudError,
    map_registration,
    parse_registration,
    read_form,
    registration_event_id,
)
from connector.settings import Settings

SOURCE = "scorm-cloud"
_FORM = "application/x-www-form-urlencoded"


async def receive_postback(settings: Settings, queues: Queues, request: PlatformRequest) -> Reply:
    """POST …/scorm-cloud: one registration postback."""
    with span("receive SCORM Cloud postback", {"connector.registration_id": request.registration_id}) as current:
        reply = await _receive(settings, queues, request)
        current.set_attribute("http.response.status_code", reply.status)
    record("accepted" if reply.status == 200 else "rejected")
    return reply


async def _receive(settings: Settings, queues: Queues, request: PlatformRequest) -> Reply:
    refused = unreadable_size(request)
    if refused is not None:
        return refused
    (user_name, password), document, problem = _read(request)
    provider = settings.provider(request.registration_id)
    if not scorm_cloud_authorized(provider, user_name, password) or provider is None:
        return unauthorized(
            SOURCE,
            request,
            "Send one of this provider's scormCloudCredentials: the postback's user name and password (form fields "
            "userName and password, or HTTP Basic).",
            'Basic realm="scorm-cloud"',
        )
    received = datetime.now(UTC)
    intake = Intake(provider, SOURCE)
    if problem is None:
        try:
            registration = parse_registration(document)
        except ScormCloudError as exc:
            problem = exc
        else:
            mapped = map_registration(
                registration,
                received=received,
                failed_in_progress=provider.scorm_failed_in_progress,
                content_id=content_id_for(provider),
            )
            event_time = registration.updated or received
            intake.add(mapped, event_id=registration_event_id(registration), event_time=event_time)
    if problem is not None:  # from a sender who may post: recorded where an operator sees it, never retried
        event_id = hashed_id("scorm-unreadable", request.body.decode("utf-8", "replace"))
        intake.refuse(problem.errors, event_id=event_id, event_time=received)
    too_large = await intake.send(queues)
    if too_large is not None:
        return too_large
    body: dict[str, object] = {**intake.counts, "ids": intake.ids}
    if problem is not None:
        body["errors"] = [error.to_detail() for error in problem.errors[:20]]
    return Reply(200, body)


def _read(request: PlatformRequest) -> tuple[tuple[str | None, str | None], bytes | str, ScormCloudError | None]:
    """The credentials (HTTP Basic, else the form's), the registration document, and why it cannot be read."""
    basic = basic_credentials(request.header("authorization"))
    is_form = request.media_type == _FORM or (not request.media_type and request.body.startswith(b"data="))
    if not is_form:
        return basic or (None, None), request.body, None
    try:
        form = read_form(request.body)
    except FormDataError as exc:
        return basic or (exc.user_name, exc.password), b"", exc
    except ScormCloudError as exc:
        return basic or (None, None), b"", exc
    return basic or (form.user_name, form.password), form.data, None

"""The status endpoint: what the connector knows about one activity (last applied values, pending, failure).

Besides the Functions key, a request carries the provider's own credential, so that a provider reads only its own
activities: Standard Webhooks headers signed with one of its webhook secrets over the empty body (the HMAC-SHA256 of
"{webhook-id}.{webhook-timestamp}.", 5 minutes' tolerance), or one of its LRS key and secret pairs with HTTP Basic.
Without a valid one the answer is the same 401 for every registrationId, configured or not; an activity the
provider has not sent is a 404 that names no provider.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from connector.app.credentials import basic_authorized, signature_authorized
from connector.app.logsafe import LogSampler, untrusted
from connector.app.ports import ActivityStore
from connector.app.replies import Reply, error_reply
from connector.domain.events import MAX_ID_LENGTH
from connector.domain.signatures import HEADERS, SignatureError
from connector.settings import ProviderSettings, Settings

logger = logging.getLogger(__name__)

_NO_CREDENTIAL = (
    "Send this provider's own credential: sign the request as its webhooks are signed (Standard Webhooks headers "
    "over the empty body) or send its LRS key and secret with HTTP Basic."
)
_REJECTIONS = LogSampler(per_window=10, window=60.0)


async def receive(
    settings: Settings, store: ActivityStore, registration_id: str, activity_id: str, headers: Mapping[str, str]
) -> Reply:
    """GET …/course-activities/{id}: the provider's credential first, then the lookup."""
    provider = settings.provider(registration_id)
    refusal = _refusal(provider, headers)
    if refusal is not None or provider is None:  # an unknown provider always has a refusal
        reason = refusal or _NO_CREDENTIAL
        _REJECTIONS.warning(
            logger, "status request rejected (401) for registrationId %s: %s", untrusted(registration_id, 64), reason
        )
        return error_reply(401, "unauthorized", reason, headers={"WWW-Authenticate": 'Basic realm="status"'})
    if len(activity_id) > MAX_ID_LENGTH:  # no event can have named it
        return _not_seen(activity_id[:MAX_ID_LENGTH] + "…")
    return await activity_status(settings, store, provider.registration_id, activity_id)


async def activity_status(settings: Settings, store: ActivityStore, registration_id: str, activity_id: str) -> Reply:
    """Looks the activity up by its external id or its Graph id (the caller has authenticated the provider)."""
    provider = settings.provider(registration_id)
    if provider is None:
        return error_reply(404, "notFound", f"No provider with registrationId '{registration_id}' is configured.")
    state = await store.find(provider.registration_id, activity_id)
    if state is None:
        return _not_seen(activity_id)
    return Reply(200, state.public())


def _refusal(provider: ProviderSettings | None, headers: Mapping[str, str]) -> str | None:
    """Why the request does not carry the provider's credential, or None when it does."""
    if "authorization" in headers:
        if basic_authorized(provider, headers["authorization"]):
            return None
        return "The LRS key and secret in the Authorization header are not this provider's."
    if not any(name in headers for name in HEADERS):
        return _NO_CREDENTIAL
    try:
        signature_authorized(provider, headers, b"")
    except SignatureError as exc:
        return f"Invalid webhook signature: {exc}."
    return None


def _not_seen(activity_id: str) -> Reply:
    return error_reply(404, "notFound", f"No callback for activity '{activity_id}' has been seen.")

"""The status endpoint: what the connector knows about one activity (last applied values, pending, failure)."""

from __future__ import annotations

from connector.replies import Reply, error_reply
from connector.settings import Settings
from connector.state import StateStore


async def activity_status(settings: Settings, store: StateStore, registration_id: str, activity_id: str) -> Reply:
    """Looks the activity up by its external id or its Graph id."""
    provider = settings.provider(registration_id)
    if provider is None:
        return error_reply(404, "notFound", f"No provider with registrationId '{registration_id}' is configured.")
    state = await store.find(provider.registration_id, activity_id)
    if state is None:
        return error_reply(
            404, "notFound", f"No callback for activity '{activity_id}' of provider '{registration_id}' has been seen."
        )
    return Reply(200, state.public())

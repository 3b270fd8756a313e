"""The status route through the app: a provider reads only its own activities, with its own credential, and no
answer tells which registrationIds exist or which activities were seen by another provider."""

from __future__ import annotations

import base64
import time

import pytest

from devtools.examples import ASSIGNMENT_EXTERNAL_ID, EXAMPLE_1_ASSIGNMENT, REGISTRATION_ID
from tests.support.functions import call_http_async
from tests.support.signing import OTHER_SECRET, signed_headers
from tests.support.xapi import CREATING_PROVIDER, basic

UNKNOWN = "00000000-0000-0000-0000-000000000000"
NO_CREDENTIAL = (
    "Send this provider's own credential: sign the request as its webhooks are signed (Standard Webhooks headers "
    "over the empty body) or send its LRS key and secret with HTTP Basic."
)


def signed(secret: str | None = None, **sign) -> dict[str, str]:
    """Standard Webhooks headers over the empty body: HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}."."""
    return signed_headers(b"", *([secret] if secret else []), content_type=None, **sign)


async def status(registration_id: str = REGISTRATION_ID, activity_id: str = ASSIGNMENT_EXTERNAL_ID, **headers):
    return await call_http_async(
        "course_activity_status", "GET", {"registrationId": registration_id, "id": activity_id}, headers=headers
    )


@pytest.fixture
async def applied(connector):
    """The example provider's assignment, updated once through the webhook and the queue function."""
    await connector.deliver(REGISTRATION_ID, EXAMPLE_1_ASSIGNMENT)
    return connector


async def test_a_request_signed_like_the_providers_webhooks_reads_its_activity(applied):
    reply = await status(**signed())
    assert reply.status == 200
    assert reply.body["state"] == "applied"
    assert (await status(**signed(OTHER_SECRET))).status == 200  # any of its current secrets


async def test_the_providers_lrs_credentials_read_its_activity(applied):
    reply = await status(authorization=basic())
    assert (reply.status, reply.body["state"]) == (200, "applied")


async def test_without_a_credential_known_and_unknown_providers_answer_the_same_401(connector):
    known, unknown = await status(), await status(UNKNOWN)
    assert (
        (known.status, known.body)
        == (unknown.status, unknown.body)
        == (
            401,
            {"error": {"code": "unauthorized", "message": NO_CREDENTIAL}},
        )
    )
    assert known.headers["www-authenticate"].startswith("Basic")


async def test_another_providers_signature_or_lrs_credential_is_401_like_an_unknown_provider(applied, monkeypatch):
    """The key given for one provider no longer reads another's activities."""
    signed_by_a = signed()
    at_b = await status(CREATING_PROVIDER, ASSIGNMENT_EXTERNAL_ID, **signed_by_a)
    at_unknown = await status(UNKNOWN, ASSIGNMENT_EXTERNAL_ID, **signed_by_a)
    assert (at_b.status, at_b.body) == (at_unknown.status, at_unknown.body)
    assert at_b.status == 401
    assert "no signature in webhook-signature matches" in at_b.body["error"]["message"]
    wrong_basic = await status(authorization=basic(secret="w" * 43))
    unknown_basic = await status(UNKNOWN, authorization=basic(secret="w" * 43))
    assert (wrong_basic.status, wrong_basic.body) == (unknown_basic.status, unknown_basic.body)
    assert wrong_basic.status == 401


async def test_a_stale_or_malformed_signature_says_what_is_wrong(connector):
    stale = await status(**signed(timestamp=time.time() - 600))
    assert stale.status == 401
    assert "5 minutes" in stale.body["error"]["message"]
    malformed = await status(**{**signed(), "webhook-timestamp": "soon"})
    assert "webhook-timestamp must be Unix time in whole seconds, digits only" in malformed.body["error"]["message"]


async def test_a_signature_over_a_body_is_not_a_status_credential(applied):
    reply = await status(**signed_headers(b"{}", content_type=None))
    assert reply.status == 401


async def test_an_unseen_activity_is_404_without_naming_the_provider(connector):
    reply = await status(activity_id="never-seen", **signed())
    assert reply.status == 404
    assert reply.body["error"]["code"] == "notFound"
    assert REGISTRATION_ID not in reply.body["error"]["message"]
    too_long = await status(activity_id="x" * 5000, **signed())
    assert (too_long.status, too_long.body["error"]["code"]) == (404, "notFound")


async def test_a_malformed_basic_header_is_401_not_500(connector):
    for header in ("Basic !!", "Basic " + base64.b64encode(b"\xff\xfe").decode(), "Bearer x", "Basic"):
        assert (await status(authorization=header)).status == 401

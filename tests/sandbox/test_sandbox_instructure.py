"""The sandbox's stand-in for Instructure's published Live Events keys: a key set, and events signed with its key
that the connector's Canvas mapper verifies against it."""

from __future__ import annotations

import httpx

from connector.domain.formats.canvas import verify_jwt
from devtools.platform_examples import local_canvas_example


def test_a_signed_event_verifies_against_the_published_key_set_and_survives_a_reset(sandbox):
    root = sandbox.graph_url.removesuffix("/v1.0")
    keys = httpx.get(f"{root}/_sandbox/canvas/jwks").json()
    assert [(key["kty"], key["alg"], key["use"]) for key in keys["keys"]] == [("RSA", "RS256", "sig")]
    assert "d" not in keys["keys"][0]  # the public half only
    event = local_canvas_example()
    token = httpx.post(f"{root}/_sandbox/canvas/sign", json=event).json()["token"]
    assert verify_jwt(token, keys).metadata.event_name == "course_progress"
    sandbox.admin.reset(seed_example=True)
    assert httpx.get(f"{root}/_sandbox/canvas/jwks").json() == keys


def test_sign_takes_a_json_object(sandbox):
    root = sandbox.graph_url.removesuffix("/v1.0")
    for body in (b"[1]", b"not json"):
        response = httpx.post(f"{root}/_sandbox/canvas/sign", content=body)
        assert response.status_code == 400
        assert "JSON object" in response.json()["error"]

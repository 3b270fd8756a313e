"""The operator commands for the platforms' formats: new-secret's Caliper keys and SCORM Cloud passwords, and what
`check` says of a provider that takes only platform events."""

from __future__ import annotations

import json
import re

from connector.settings import load_settings
from tests.support.platforms import PLATFORM_PROVIDER, PLATFORM_SETTINGS


def test_new_secret_prints_a_caliper_key_and_a_provider_entry(command):
    key = command("new-secret", "--caliper").stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key)
    printed = command("new-secret", "--caliper", "--registration-id", "reg-9").stdout
    (generated,) = load_settings({"CONNECTOR_PROVIDERS": printed}).provider("reg-9").caliper_keys
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", generated)
    assert generated != key


def test_new_secret_prints_a_scorm_cloud_password_with_its_user_name(command):
    printed = command("new-secret", "--scorm-cloud", "--registration-id", "reg-9", "--user-name", "lms").stdout
    (credential,) = load_settings({"CONNECTOR_PROVIDERS": printed}).provider("reg-9").scorm_cloud_credentials
    assert credential.user_name == "lms"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", credential.password)
    both = command("new-secret", "--scorm-cloud", "--caliper")
    assert (both.returncode, "not allowed with" in both.stderr) == (2, True)


def test_check_counts_a_providers_platform_credentials_and_warns_of_canvas_events_anyone_may_send(command, graph):
    graph.seed(providers=[{"id": PLATFORM_PROVIDER, "displayName": "LMS", "isCourseActivitySyncEnabled": True}])
    settings = {**PLATFORM_SETTINGS, "canvasJwksUrl": "https://keys.example/jwks"}
    result = command("check", CONNECTOR_PROVIDERS=json.dumps({PLATFORM_PROVIDER: settings}))
    counted = "0 webhook secret(s), 0 xAPI credential(s), 2 Caliper key(s), 1 SCORM Cloud credential(s), signed Canvas"
    assert f"[ok] provider {PLATFORM_PROVIDER}: {counted} Live Events" in result.stdout
    assert f"[warn] provider {PLATFORM_PROVIDER}: signed Canvas events of any Canvas account" in result.stdout
    assert "canvasRootAccountUuids" in result.stdout
    named = {**settings, "canvasRootAccountUuids": ["Kq2uJ4oTy8wB1cR5dXe7F3gH9iL0mN6pS2tV4"]}
    result = command("check", CONNECTOR_PROVIDERS=json.dumps({PLATFORM_PROVIDER: named}))
    assert (result.returncode, "[warn]" in result.stdout) == (0, False), result.stdout
    unsigned = {"canvasAllowUnsigned": True}
    result = command("check", CONNECTOR_PROVIDERS=json.dumps({PLATFORM_PROVIDER: unsigned}))
    assert "[warn] provider 053737f5-fbee-4958-8177-efbe019da192: canvasAllowUnsigned is true" in result.stdout

"""Test-wide settings: one configured provider whose secrets are being rotated (two secrets)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from devtools.examples import REGISTRATION_ID
from tests.support.signing import CREATING_SECRET, OTHER_SECRET, SECRET
from tests.support.xapi import CREATING_PROVIDER, ROTATED_SECRET, XAPI_KEY, XAPI_SECRET

_XAPI = [{"key": XAPI_KEY, "secret": XAPI_SECRET}, {"key": XAPI_KEY, "secret": ROTATED_SECRET}]
_HERE = Path(__file__).resolve().parent
BASE_ENV = {
    "CONNECTOR_PROVIDERS": json.dumps(
        {
            REGISTRATION_ID: {"webhookSecrets": [OTHER_SECRET, SECRET], "xapiCredentials": _XAPI},
            CREATING_PROVIDER: {
                "webhookSecrets": [CREATING_SECRET],
                "xapiCredentials": _XAPI,
                "createMissing": True,
                "xapiActivityId": "derived",
                "contentIdPattern": "/courses/(?P<id>[^/?#]+)",
            },
        }
    ),
    "FUNCTIONS_WORKER_RUNTIME": "python",
}
for _name in ("GRAPH_BASE_URL", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "AZURE_CLIENT_ID"):
    os.environ.pop(_name, None)
os.environ.update(BASE_ENV)


_TIERS = ("unit", "sandbox", "devtools", "integration", "e2e", "infra", "bench")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker (its folder under tests/): `scripts/test -m unit` runs the fast tier."""
    for item in items:
        tier = next((part for part in item.path.relative_to(_HERE).parts[:1] if part in _TIERS), None)
        if tier is not None:
            item.add_marker(tier)


@pytest.fixture(scope="session")
def azurite():
    """A real Azurite (queues, tables, blobs) on free ports, shared by the session."""
    from devtools.azurite import start_azurite

    with start_azurite() as running:
        yield running


@pytest.fixture(scope="session")
def sandbox():
    """The project's Graph sandbox with its managed-identity endpoint, in its own process."""
    from sandbox.process import start_sandbox_process

    with start_sandbox_process(seed_example=True) as running:
        yield running

"""The operator commands, run as an operator runs them (`python -m connector ...`), against the sandbox and Azurite."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.settings import load_settings
from tests.conftest import BASE_ENV
from tests.support.examples import REGISTRATION_ID
from tests.support.xapi import CREATING_PROVIDER

ROOT = Path(__file__).resolve().parents[2]
ADMIN_ROLES = ["Application.Read.All", "AppRoleAssignment.ReadWrite.All"]


@pytest.fixture
def command(connector, tmp_path):
    """Runs `python -m connector` in a clean directory with the app's settings, as `azd` hooks and admins do."""
    env = {
        **os.environ,
        **BASE_ENV,
        "PYTHONPATH": str(ROOT),
        "AzureWebJobsStorage": connector.azurite.connection_string,
        "GRAPH_BASE_URL": connector.sandbox.graph_url,
        **connector.sandbox.identity_env(),
    }

    def run(*args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "connector", *args],
            cwd=tmp_path,
            env={**env, **overrides},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def test_new_secret_prints_a_usable_standard_webhooks_secret(command):
    result = command("new-secret")
    secret = result.stdout.strip()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    entry = json.loads(command("new-secret", "--registration-id", "reg-9").stdout)
    assert (
        load_settings({"CONNECTOR_PROVIDERS": json.dumps(entry)})
        .provider("reg-9")
        .webhook_secrets[0]
        .startswith("whsec_")
    )
    assert command("new-secret").stdout != result.stdout


def test_grant_permissions_grants_what_is_missing_and_is_idempotent(command, graph):
    graph.set_identity(roles=ADMIN_ROLES)
    principal = graph.identity()["principalId"]
    no_create = json.dumps({REGISTRATION_ID: {}})  # no provider uses createMissing: the lookup roles are not needed

    def grant(*extra: str):
        return command("grant-permissions", "--principal-id", principal, *extra, CONNECTOR_PROVIDERS=no_create)

    first = grant()
    assert first.returncode == 0, first.stderr
    assert "granted         LearningAssignedCourse.ReadWrite.All" in first.stdout
    assert "granted         LearningSelfInitiatedCourse.ReadWrite.All" in first.stdout
    assert "User.Read.All" not in first.stdout
    again = grant()
    assert again.returncode == 0
    assert "0 granted, 2 already in place" in again.stdout
    more = grant("--create-missing")
    assert "2 granted, 2 already in place" in more.stdout
    assert "granted         LearningContent.Read.All" in more.stdout


async def test_granted_roles_let_the_identity_update_activities(command, connector, graph):
    graph.set_identity(roles=ADMIN_ROLES)
    (before,) = await connector.deliver(REGISTRATION_ID, _progress(10))
    assert json.loads(before.poison)["deadLetter"]["status"] == 403
    command("grant-permissions", "--principal-id", graph.identity()["principalId"])
    from connector import bootstrap

    await bootstrap.close()  # a new process would get a new token
    bootstrap.reset()
    (after,) = await connector.deliver(REGISTRATION_ID, _progress(11))
    assert (after.error, after.poison) == (None, None)


def test_grant_permissions_without_the_right_says_how_to_fix_it(command, graph):
    graph.set_identity(roles=["Application.Read.All"])
    result = command("grant-permissions", "--principal-id", graph.identity()["principalId"])
    assert result.returncode == 1
    assert "403" in result.stderr
    assert "AppRoleAssignment.ReadWrite.All" in result.stderr


def test_a_provider_that_creates_missing_activities_gets_the_lookup_roles(command, graph):
    graph.set_identity(roles=ADMIN_ROLES)
    result = command("grant-permissions", "--principal-id", graph.identity()["principalId"])
    assert "4 granted" in result.stdout  # CONNECTOR_PROVIDERS has a provider with createMissing


def test_check_passes_on_a_healthy_deployment(command, graph):
    graph.seed(providers=[{"id": CREATING_PROVIDER, "displayName": "LMS", "isCourseActivitySyncEnabled": True}])
    result = command("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[fail]" not in result.stdout
    assert f"[ok] provider {REGISTRATION_ID}" in result.stdout
    assert "[ok] graph: a token" in result.stdout
    assert "all checks passed" in result.stdout


def test_check_reports_a_disabled_provider_with_the_fix(command, graph):
    graph.put_provider(REGISTRATION_ID, isCourseActivitySyncEnabled=False)
    result = command("check")
    assert result.returncode == 1
    assert f"[fail] provider {REGISTRATION_ID}" in result.stdout
    assert "isCourseActivitySyncEnabled" in result.stdout
    assert "fix:" in result.stdout


def test_check_reports_a_bad_setting_by_name(command):
    result = command("check", GRAPH_BASE_URL="graph.microsoft.com")
    assert result.returncode == 1
    assert "[fail] settings: GRAPH_BASE_URL:" in result.stdout


def test_check_reports_a_failing_identity_endpoint(command, graph):
    graph.add_fault(target="identity", status=500)
    result = command("check")
    assert result.returncode == 1
    assert "[fail] graph: no token" in result.stdout


def test_check_reports_unreachable_storage(command):
    unreachable = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    result = command("check", AzureWebJobsStorage=unreachable)
    assert result.returncode == 1
    assert "[fail] storage: cannot read queue" in result.stdout


def _progress(percent: int) -> dict:
    return {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "externalcourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
        "status": "inProgress",
        "completionPercentage": percent,
    }


def test_replay_without_reachable_storage_fails_fast_with_one_line(command):
    unreachable = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    result = command("replay", "--dry-run", AzureWebJobsStorage=unreachable)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the storage account in AzureWebJobsStorage:")
    assert "Traceback" not in result.stderr


def test_replay_with_nothing_dead_lettered_says_so(command, connector):
    result = command("replay", "--dry-run")
    assert result.returncode == 0
    assert result.stdout.startswith("would move 0 message(s)")

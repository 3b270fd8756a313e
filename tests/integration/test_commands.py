"""The operator commands, run as an operator runs them (`python -m connector ...`), against the sandbox and Azurite."""

from __future__ import annotations

import base64
import json
import re

import pytest

from connector.domain.envelope import POISON_QUEUE_NAME
from connector.settings import load_settings
from devtools.examples import ASSIGNMENT_EXTERNAL_ID, ASSIGNMENT_ID, REGISTRATION_ID
from tests.support.signing import SECRET
from tests.support.xapi import CREATING_PROVIDER

ADMIN_ROLES = ["Application.Read.All", "AppRoleAssignment.ReadWrite.All"]


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
    assert result.stderr.startswith("error: storage: cannot reach the storage account in AzureWebJobsStorage:")
    assert "Traceback" not in result.stderr


def test_replay_with_nothing_dead_lettered_says_so(command, connector):
    result = command("replay", "--dry-run")
    assert result.returncode == 0
    assert result.stdout.startswith("would move 0 message(s)")


async def _dead_letter(connector, graph, percent: int, status: int = 403) -> str:
    """Delivers an update that Graph refuses; returns the dead letter the worker wrote (named by external id)."""
    graph.add_fault(method="PATCH", status=status, count=1)
    (run,) = await connector.deliver(REGISTRATION_ID, _progress(percent))
    assert run.poison is not None, run.error
    return run.poison


async def test_replay_by_graph_id_moves_a_dead_letter_that_names_the_external_id(command, connector, graph):
    (applied,) = await connector.deliver(REGISTRATION_ID, _progress(10))  # the state row now knows both ids
    assert (applied.error, applied.poison) == (None, None)
    mine = await _dead_letter(connector, graph, 20)
    assert "learningCourseActivityId" not in json.loads(mine)["event"]
    other = json.loads(mine)
    other["event"]["externalcourseActivityId"] = "13a2228a-e020-11ec-9d64-0242ac120002"
    async with connector.queue(POISON_QUEUE_NAME) as poison:
        await poison.send_message(mine)
        await poison.send_message(json.dumps(other))

    dry = command("replay", "--activity", ASSIGNMENT_ID, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listed, summary = dry.stdout.splitlines()
    assert listed.startswith(f"{REGISTRATION_ID} {ASSIGNMENT_EXTERNAL_ID}: 403 ")
    assert re.search(r"; first attempt 20\d\d-\S+, last attempt 20\d\d-\S+$", listed), listed
    assert summary.startswith("would move 1 message(s)")
    assert await connector.count() == 0

    moved = command("replay", "--activity", ASSIGNMENT_ID)
    assert moved.stdout.startswith("moved 1 message(s)"), moved.stdout + moved.stderr
    (replayed,) = await connector.messages()
    assert json.loads(replayed)["event"]["completionPercentage"] == 20
    assert await connector.count(POISON_QUEUE_NAME) == 1


async def test_replay_dry_run_gives_the_recorded_error_of_a_message_the_host_moved(command, connector, graph):
    graph.add_fault(method="PATCH", status=500)
    reply = connector.post(REGISTRATION_ID, _progress(30))
    last = await connector.run(reply.messages[0], dequeue_count=5)
    assert last.error is not None
    assert last.poison is None
    async with connector.queue(POISON_QUEUE_NAME) as poison:
        await poison.send_message(reply.messages[0])
    dry = command("replay", "--dry-run")
    listed = dry.stdout.splitlines()[0]
    assert listed.startswith(f"{REGISTRATION_ID} {ASSIGNMENT_EXTERNAL_ID}: 500 "), dry.stdout
    assert "first attempt 20" in listed
    assert "last attempt 20" in listed


def test_check_fails_a_provider_with_an_unknown_key_and_names_the_key_it_meant(command, graph):
    typo = json.dumps({REGISTRATION_ID: {"webhookSecret": [SECRET]}})
    result = command("check", CONNECTOR_PROVIDERS=typo)
    assert result.returncode == 1
    assert f'[fail] provider {REGISTRATION_ID}: unknown key "webhookSecret"' in result.stdout
    assert 'fix: rename "webhookSecret" to "webhookSecrets"' in result.stdout
    assert f"[fail] provider {REGISTRATION_ID}: no webhookSecrets and no xapiCredentials" in result.stdout
    assert "all checks passed" not in result.stdout


def test_check_fails_a_provider_that_can_authenticate_nobody(command, graph):
    result = command("check", CONNECTOR_PROVIDERS=json.dumps({REGISTRATION_ID: {"createMissing": False}}))
    assert result.returncode == 1
    assert f"[fail] provider {REGISTRATION_ID}: no webhookSecrets and no xapiCredentials" in result.stdout
    assert "new-secret --xapi" in result.stdout


async def test_check_reports_the_dead_letters_waiting_and_the_oldest_ones_age(command, connector):
    async with connector.queue(POISON_QUEUE_NAME) as poison:
        for text in ("one", "two"):
            await poison.send_message(text)
    result = command("check")
    assert re.search(
        rf"\[warn\] storage: 2 dead letter\(s\) in {POISON_QUEUE_NAME}, the oldest \d+ (s|min) old", result.stdout
    ), result.stdout
    assert "replay --dry-run" in result.stdout


# Usual operator mistakes. Without a login: no managed identity endpoint, and no `az`/`azd` on the PATH.
NO_LOGIN = {"IDENTITY_ENDPOINT": None, "IDENTITY_HEADER": None, "PATH": "/nonexistent"}
IDENTITY_BASED_STORAGE = {
    "AzureWebJobsStorage": None,
    "AzureWebJobsStorage__queueServiceUri": "https://127.0.0.1:9/devstoreaccount1",
    "AzureWebJobsStorage__tableServiceUri": "https://127.0.0.1:9/devstoreaccount1",
}
PROBLEMS = {
    "bad settings": {"GRAPH_BASE_URL": "graph.microsoft.com"},
    "no storage": {"AzureWebJobsStorage": None},
    "no login": {**NO_LOGIN, **IDENTITY_BASED_STORAGE},
    "identity endpoint down": {"IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token"},
    "graph unreachable": {"GRAPH_BASE_URL": "http://127.0.0.1:9/v1.0"},
}
PRINCIPAL = "5b0d3f3e-0000-4000-8000-00000000b001"


@pytest.mark.parametrize(
    ("args", "problem", "code", "says"),
    [
        (("grant-permissions", "--principal-id", PRINCIPAL), "no login", 1, "az login"),
        (("grant-permissions", "--principal-id", PRINCIPAL), "identity endpoint down", 1, "managed identity"),
        (("grant-permissions", "--principal-id", PRINCIPAL), "bad settings", 2, "GRAPH_BASE_URL"),
        (("replay", "--dry-run"), "no login", 1, "az login"),
        (("replay", "--dry-run"), "no storage", 2, "AzureWebJobsStorage"),
        (("replay", "--dry-run"), "bad settings", 2, "GRAPH_BASE_URL"),
        (("--settings", "broken.json", "replay"), None, 2, "broken.json"),
        (("--settings", "broken.json", "new-secret"), None, 2, "broken.json"),
    ],
)
def test_an_operator_error_is_one_line_and_a_non_zero_exit(command, tmp_path, args, problem, code, says):
    (tmp_path / "broken.json").write_text('{"Values": {"GRAPH_BASE_URL": ')
    result = command(*args, **PROBLEMS.get(problem, {}))
    assert (result.returncode, result.stdout) == (code, ""), result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert says in line


@pytest.mark.parametrize(
    ("problem", "says"),
    [
        ("no login", "[fail] storage: no token for the storage account: you are not signed in"),
        ("identity endpoint down", "[fail] graph: no token for https://graph.microsoft.com/.default from the managed"),
        ("no storage", "[fail] storage: AzureWebJobsStorage: is not set"),
        ("graph unreachable", f"[fail] provider {REGISTRATION_ID}: Graph was not reached"),
    ],
)
def test_check_reports_an_operator_error_as_a_finding_and_nothing_else(command, problem, says):
    result = command("check", **PROBLEMS[problem])
    assert result.returncode == 1
    assert says in result.stdout
    assert result.stderr == ""


def test_new_secret_for_xapi_prints_a_generated_lrs_secret_and_a_provider_entry(command):
    secret = command("new-secret", "--xapi").stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)
    assert command("new-secret", "--xapi").stdout.strip() != secret
    printed = command("new-secret", "--xapi", "--registration-id", "reg-9", "--xapi-key", "lms")
    (credential,) = load_settings({"CONNECTOR_PROVIDERS": printed.stdout}).provider("reg-9").xapi_credentials
    assert credential.key == "lms"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", credential.secret)
    without_key = command("new-secret", "--xapi", "--registration-id", "reg-9")
    assert without_key.returncode == 2
    assert "--xapi-key" in without_key.stderr

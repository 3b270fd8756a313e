"""The README's local development as shipped: local.settings.example.json, the runner without a function key, and
``python -m devtools.send``'s webhook, xAPI and platform examples updating the Graph sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest

from devtools.azurite import REPO_ROOT
from devtools.dev import create_queues_and_tables
from devtools.examples import ASSIGNMENT_ID, REGISTRATION_ID
from devtools.platform_examples import LOCAL_CONTENTS
from tests.e2e.conftest import wait_until

EXAMPLE_VALUES = json.loads((REPO_ROOT / "local.settings.example.json").read_text())["Values"]
SELF_INITIATED_ID = "9ca2228a-e020-11ec-9d64-0242ac120004"
SELF_INITIATED_EXTERNAL_ID = "13a2228a-e020-11ec-9d64-0242ac120002"

Send = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def local(azurite, sandbox, tmp_path) -> Iterator[tuple[str, Send]]:
    """The runner on the example settings (storage, Graph and identity pointed at this test's Azurite and sandbox),
    and devtools.send aimed at it, both with the example's settings file only."""
    sandbox.admin.reset(seed_example=True)
    create_queues_and_tables(azurite.connection_string)  # as scripts/dev does
    sandbox_root = sandbox.graph_url.removesuffix("/v1.0")  # the example's Canvas key set is the sandbox's
    values = {
        **EXAMPLE_VALUES,
        "CONNECTOR_PROVIDERS": EXAMPLE_VALUES["CONNECTOR_PROVIDERS"].replace("http://127.0.0.1:8765", sandbox_root),
        "AzureWebJobsStorage": azurite.connection_string,
        "GRAPH_BASE_URL": sandbox.graph_url,
        **sandbox.identity_env(),
    }
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    # The environment wins over the file: leave out what the test session set, and any function key.
    env = {k: v for k, v in os.environ.items() if k not in values and k != "CONNECTOR_RUNNER_FUNCTION_KEY"}
    log = tmp_path / "runner.log"
    command = [sys.executable, "-m", "devtools.runner", "--runner", "--port", "0", "--settings", str(settings)]
    with log.open("w") as stderr:
        runner = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        ready = runner.stdout.readline() if runner.stdout else ""
        assert ready, f"the runner did not start: {log.read_text()}"
        url = json.loads(ready)["http"]

        def send(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "devtools.send", "--url", url, "--settings", str(settings), *args],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        yield url, send
    finally:
        runner.terminate()
        runner.wait(30)


def _activity(sandbox, activity_id: str) -> dict:
    return sandbox.admin.activity(activity_id) or {}


def test_the_webhook_examples_and_a_file_update_the_sandbox_without_a_function_key(local, sandbox, tmp_path):
    _, send = local
    first = send("--example", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert " -> 202" in first.stdout
    wait_until(lambda: _activity(sandbox, ASSIGNMENT_ID).get("completionPercentage") == 20)
    assert send("--example", "2").returncode == 0
    wait_until(lambda: _activity(sandbox, SELF_INITIATED_ID).get("completionPercentage") == 30)
    done = tmp_path / "completed.json"
    done.write_text(
        json.dumps(
            {
                "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
                "externalcourseActivityId": SELF_INITIATED_EXTERNAL_ID,
                "status": "completed",
                "completionPercentage": 100,
                "completedDateTime": "2026-11-27T10:00:00Z",
            }
        )
    )
    assert send("--file", str(done)).returncode == 0
    wait_until(lambda: _activity(sandbox, SELF_INITIATED_ID).get("status") == "completed")


def test_the_xapi_example_updates_the_activity_its_registration_names(local, sandbox):
    url, send = local
    posted = send("--xapi-example")
    assert posted.returncode == 0, posted.stdout + posted.stderr
    assert " -> 200" in posted.stdout
    wait_until(lambda: _activity(sandbox, ASSIGNMENT_ID).get("completionPercentage") == 60)
    assert _activity(sandbox, ASSIGNMENT_ID)["status"] == "inProgress"
    about = httpx.get(f"{url}/api/providers/not-a-provider/xapi/about", timeout=30)  # anonymous, as xAPI wants
    assert about.status_code == 200


def test_each_platforms_example_creates_the_learners_activity_on_its_content(local, sandbox):
    """Caliper with the example's API key, SCORM Cloud's form postback, Canvas signed by the sandbox's stand-in for
    Instructure's keys: each creates the sandbox learner's activity (the example provider has createMissing)."""
    _, send = local
    expected = {"caliper-101": ("completed", 100), "scorm-101": ("inProgress", 60), "565": ("inProgress", 50)}
    for option in ("--caliper-example", "--scorm-example", "--canvas-example"):
        posted = send(option)
        assert posted.returncode == 0, posted.stdout + posted.stderr
        assert " -> 200" in posted.stdout

    def created() -> dict:
        activities = sandbox.admin.activities(REGISTRATION_ID)
        return {
            content: (a["status"], a["completionPercentage"])
            for a in activities
            for content, content_id in LOCAL_CONTENTS.items()
            if a["learningContentId"] == content_id
        }

    wait_until(lambda: created() == expected)


def test_send_says_in_one_line_what_is_missing(local, tmp_path):
    _, send = local
    webhook_only = tmp_path / "webhook-only.json"
    webhook_only.write_text(json.dumps({"Values": {"CONNECTOR_PROVIDERS": json.dumps({REGISTRATION_ID: {}})}}))
    for args in (
        ["--settings", str(webhook_only), "--xapi-example"],
        ["--settings", str(webhook_only), "--caliper-example"],
        ["--settings", str(webhook_only), "--canvas-example"],
        ["--settings", str(tmp_path / "none.json")],
    ):
        result = send(*args)  # the last --settings wins
        assert result.returncode == 1
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: ")

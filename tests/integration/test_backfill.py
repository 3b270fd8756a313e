"""`python -m connector backfill` and `status`, run as an operator runs them, against Azurite and the Graph sandbox;
the messages they enqueue go through the app's real queue function."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.domain.envelope import QUEUE_NAME
from devtools.examples import (
    ASSIGNMENT_EXTERNAL_ID,
    ASSIGNMENT_ID,
    REGISTRATION_ID,
    SELF_INITIATED_EXTERNAL_ID,
    SELF_INITIATED_ID,
)
from tests.support.waiting import wait_until
from tests.support.xapi import progressed, statement

ASSIGNMENT = "#microsoft.graph.learningAssignment"
SELF_INITIATED = "#microsoft.graph.learningSelfInitiatedCourse"
EARLIEST = "0001-01-01T00:00:00.000000Z"


def assignment(percent: int, external_id: str = ASSIGNMENT_EXTERNAL_ID, **extra: Any) -> dict[str, Any]:
    return {"@odata.type": ASSIGNMENT, "externalcourseActivityId": external_id, "status": "inProgress",
            "completionPercentage": percent, **extra}  # fmt: skip


def write_lines(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def ids_of(path: Path, numbers: range | list[int]) -> set[str]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {f"backfill-{digest[:32]}-{n}" for n in numbers}


async def take(connector) -> list[dict[str, Any]]:
    """Every message on the update queue, removed from it: as the queue function would receive them."""
    taken = []
    async with connector.queue() as queue:
        while batch := [m async for m in queue.receive_messages(max_messages=32, visibility_timeout=300)]:
            for message in batch:
                taken.append(json.loads(message.content))
                await queue.delete_message(message)
    return taken


async def apply(connector, messages: list[dict[str, Any]]) -> None:
    """Each message through the app's queue function; none may fail or be dead-lettered."""
    for index, message in enumerate(messages):
        run = await connector.run(json.dumps(message), message_id=f"m-{index}")
        assert (run.error, run.poison) == (None, None), (message, run)


def backfill(command, *args: str, **overrides: str | None):
    return command("backfill", "--registration-id", REGISTRATION_ID, *args, **overrides)


async def start(command_env: dict[str, str], cwd: Path, *args: str, stderr: int = subprocess.DEVNULL):
    """`python -m connector ARGS` left running, as an operator's terminal runs it."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector", *args, cwd=cwd, env=command_env, stdout=subprocess.DEVNULL, stderr=stderr
    )


# --- each format, through the worker to Graph ---

_CSV = (
    "@odata.type,externalcourseActivityId,status,completionPercentage,dueDateTime,dueDateTimeZone,notes\n"
    f"{ASSIGNMENT},{ASSIGNMENT_EXTERNAL_ID},inProgress,20,2026-12-01T17:00:00,W. Europe Standard Time,\n"
    f'{ASSIGNMENT},{ASSIGNMENT_EXTERNAL_ID},inProgress,60,,,"from the old LMS, line 3"\n'
)
_STATEMENTS = [
    progressed(40, registration=SELF_INITIATED_EXTERNAL_ID, timestamp="2026-10-01T08:00:00Z"),
    statement("completed", registration=SELF_INITIATED_EXTERNAL_ID, timestamp="2026-10-02T08:00:00Z"),
]
FILES = {
    "jsonl": ("history.jsonl", "".join(json.dumps(assignment(p)) + "\n" for p in (20, 60))),
    "csv": ("history.csv", _CSV),
    "xapi-jsonl": ("statements.jsonl", "".join(json.dumps(s) + "\n" for s in _STATEMENTS)),
    "xapi-array": ("statements.json", json.dumps(_STATEMENTS, indent=2)),
}


@pytest.mark.parametrize("kind", list(FILES))
async def test_each_format_is_validated_enqueued_and_applied_like_a_live_callback(command, connector, graph, kind,
                                                                                  tmp_path):  # fmt: skip
    name, text = FILES[kind]
    path = tmp_path / name
    path.write_text(text)
    result = backfill(command, name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{name} (" in result.stdout
    assert ": 2 record(s), 2 accepted, 0 rejected; 2 enqueued now" in result.stdout
    messages = await take(connector)
    statements = kind.startswith("xapi")
    numbers = [2, 3] if kind == "csv" else [1, 2]  # their lines (a header first), or their places in an array
    assert {m["eventId"] for m in messages} == ids_of(path, numbers)
    assert {m["source"] for m in messages} == {"backfill"}
    assert [m["sequence"] for m in sorted(messages, key=lambda m: m["sequence"])] == numbers
    if statements:  # a statement's own time orders it
        times = sorted(m["eventTime"] for m in messages)
        assert times == ["2026-10-01T08:00:00.000000Z", "2026-10-02T08:00:00.000000Z"]
        assert all(m["xapi"]["verb"] for m in messages)
    else:  # no time of its own: below every live callback
        assert {m["eventTime"] for m in messages} == {EARLIEST}

    await apply(connector, messages)
    if statements:
        activity = graph.activity(SELF_INITIATED_ID)
        assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)
        assert activity["startedDateTime"].startswith("2026-10-01T08:00:00")
    else:
        activity = graph.activity(ASSIGNMENT_ID)
        assert activity["completionPercentage"] == 60  # the higher one, whatever the order
    if kind == "csv":
        due = {"dateTime": "2026-12-01T17:00:00", "timeZone": "W. Europe Standard Time"}
        assert activity["dueDateTime"] == due
        assert activity["notes"] == {"content": "from the old LMS, line 3", "contentType": "text"}


# --- validation first ---


async def test_rejected_records_are_named_by_file_and_line_with_the_webhooks_400_and_nothing_is_enqueued(
    command, connector, tmp_path
):
    bad_status = {**assignment(10), "status": "finished"}
    no_id = {"@odata.type": ASSIGNMENT, "status": "inProgress"}
    path = write_lines(tmp_path / "history.jsonl", [assignment(10), bad_status, "{not json", assignment(20), no_id])
    result = backfill(command, "history.jsonl", "--report", "rejected.jsonl")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "history.jsonl:2: Input field status is invalid (must be one of notStarted, inProgress, completed for a "
        "learningAssignment)"
    )
    assert lines[1].startswith("history.jsonl:3: Input field body is invalid (must be valid JSON")
    assert lines[2].startswith("history.jsonl:5: Input field externalcourseActivityId is required")
    assert "history.jsonl (native events, JSON Lines): 5 record(s), 2 accepted, 3 rejected" in result.stdout
    assert "nothing enqueued: 3 record(s) rejected (rejected.jsonl lists them all)" in result.stdout
    assert "--skip-rejected" in result.stdout
    assert await connector.count() == 0

    report = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line"]) for r in report] == [("history.jsonl", n) for n in (2, 3, 5)]
    for record, rejected in ((bad_status, report[0]), (no_id, report[2])):  # what the webhook answers for the line
        answer = connector.post(REGISTRATION_ID, record)
        assert answer.status == 400
        assert rejected["errors"] == answer.body["error"]["details"]
    assert path.with_name("history.jsonl.backfill-checkpoint.json").exists() is False


async def test_skip_rejected_enqueues_the_accepted_records(command, connector, tmp_path):
    path = write_lines(tmp_path / "history.jsonl", [assignment(10), {**assignment(10), "status": "x"}, assignment(30)])
    result = backfill(command, "history.jsonl", "--skip-rejected")
    assert result.returncode == 0, result.stderr
    assert "history.jsonl:2: Input field status is invalid" in result.stdout
    assert {m["eventId"] for m in await take(connector)} == ids_of(path, [1, 3])


async def test_a_dry_run_validates_says_what_it_would_enqueue_and_enqueues_nothing(command, connector, tmp_path):
    path = write_lines(tmp_path / "history.jsonl", [assignment(10), assignment(20), assignment(30)])
    result = backfill(command, "history.jsonl", "--dry-run", AzureWebJobsStorage=None)  # needs no storage
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"dry run: nothing enqueued; 3 message(s) would go on {QUEUE_NAME}"
    assert await connector.count() == 0
    assert not path.with_name("history.jsonl.backfill-checkpoint.json").exists()


@pytest.mark.parametrize(
    ("setup", "args", "code", "says"),
    [
        (None, ("--registration-id", "not-a-provider", "h.jsonl"), 2,
         "error: --registration-id: no provider not-a-provider is configured in CONNECTOR_PROVIDERS"),
        (None, ("--registration-id", REGISTRATION_ID, "missing.jsonl"), 1, "error: missing.jsonl: cannot read it"),
        ("learner,course,done\n", ("--registration-id", REGISTRATION_ID, "h.jsonl"), 1,
         "error: h.jsonl: its format is not one backfill reads"),
        ("@odata.type,externalcourseActivityId,Status\n", ("--registration-id", REGISTRATION_ID, "h.jsonl"), 1,
         "error: h.jsonl: column 'Status' of the header row is not a property of a course activity"),
        ("", ("--registration-id", REGISTRATION_ID, "h.jsonl", "--rate", "0"), 2, "'0' is not a positive number"),
    ],
)  # fmt: skip
def test_an_operator_mistake_is_one_line_and_a_non_zero_exit(command, tmp_path, setup, args, code, says):
    (tmp_path / "h.jsonl").write_text(setup if setup is not None else json.dumps(assignment(1)) + "\n")
    result = command("backfill", *args)
    assert (result.returncode, result.stdout) == (code, "")
    assert says in result.stderr.splitlines()[-1]


def test_without_storage_the_setting_is_named_before_the_files_are_read(command, tmp_path):
    write_lines(tmp_path / "h.jsonl", [assignment(1)])
    result = backfill(command, "h.jsonl", AzureWebJobsStorage=None)
    assert result.returncode == 2
    assert result.stderr.startswith("error: AzureWebJobsStorage: is not set")


# --- idempotent and resumable ---


async def test_running_the_same_file_again_enqueues_nothing_new(command, connector, graph, tmp_path):
    path = write_lines(tmp_path / "history.jsonl", [assignment(10), assignment(35)])
    assert backfill(command, "history.jsonl").returncode == 0
    await apply(connector, await take(connector))

    again = backfill(command, "history.jsonl")  # the checkpoint says it is all there
    assert again.returncode == 0, again.stderr
    assert "every message was enqueued by an earlier run" in again.stdout
    assert "2 message(s) enqueued on course-activity-updates now" not in again.stdout
    assert "0 message(s) enqueued on course-activity-updates now, 2 by an earlier run" in again.stdout
    assert await connector.count() == 0

    # Without the checkpoint (another folder, or --restart): the same ids again, which the worker skips.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert backfill(command, "history.jsonl", "--checkpoint-dir", "elsewhere").returncode == 0
    repeated = await take(connector)
    assert {m["eventId"] for m in repeated} == ids_of(path, [1, 2])
    graph.clear_requests()
    await apply(connector, repeated)
    assert graph.requests() == []  # duplicates: not even a read of Graph
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 35


async def test_a_backfill_killed_mid_file_goes_on_from_its_checkpoint(command, command_env, connector, tmp_path):
    path = write_lines(tmp_path / "history.jsonl", [assignment(n % 100, f"ext-{n}") for n in range(40)])
    checkpoint = tmp_path / "checkpoints" / "history.jsonl.backfill-checkpoint.json"
    checkpoint.parent.mkdir()
    args = ["backfill", "--registration-id", REGISTRATION_ID, "history.jsonl", "--checkpoint-dir", "checkpoints"]
    process = await start(command_env, tmp_path, *args, "--rate", "8")
    try:
        await wait_until(lambda: checkpoint.exists() and json.loads(checkpoint.read_text())["through"] >= 6, within=60)
    finally:
        process.kill()  # as a crash: no clean-up
        await process.wait()
    stopped = json.loads(checkpoint.read_text())
    assert stopped["complete"] is False
    on_queue = await connector.count()
    assert stopped["enqueued"] <= on_queue < 40

    again = command(*args)
    assert again.returncode == 0, again.stderr
    assert f"{40 - stopped['enqueued']} enqueued now, {stopped['enqueued']} by an earlier run" in again.stdout
    assert json.loads(checkpoint.read_text())["complete"] is True
    ids = [m["eventId"] for m in await take(connector)]
    assert set(ids) == ids_of(path, range(1, 41))
    assert len(ids) - 40 == on_queue - stopped["enqueued"]  # sent again: only what went after the last checkpoint


async def test_the_queue_never_holds_more_than_the_bound(command_env, connector, tmp_path):
    path = write_lines(tmp_path / "history.jsonl", [assignment(n, f"ext-{n}") for n in range(10)])
    process = await start(
        command_env, tmp_path, "backfill", "--registration-id", REGISTRATION_ID, "history.jsonl",
        "--max-queue-depth", "4", "--rate", "100", stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    said = asyncio.create_task(process.stderr.read())
    taken: list[list[dict[str, Any]]] = []
    try:
        while process.returncode is None or await connector.count():
            depth = await connector.count()
            assert depth <= 4
            if depth == 4 or (depth and process.returncode is not None):
                taken.append(await take(connector))  # the worker drains the queue
            else:
                await asyncio.sleep(0.05)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    stderr = (await said).decode().splitlines()
    assert process.returncode == 0, stderr
    assert sum(len(batch) for batch in taken) == 10
    assert len(taken) >= 3  # it waited for the queue to drain, twice at least
    assert {m["eventId"] for batch in taken for m in batch} == ids_of(path, range(1, 11))
    assert any(line.startswith(f"waiting: {QUEUE_NAME} holds 4 message(s), --max-queue-depth is 4") for line in stderr)


# --- history and live callbacks ---


async def test_history_ranks_by_its_own_time_and_without_one_below_every_live_callback(command, connector, graph,
                                                                                       tmp_path):  # fmt: skip
    now = datetime.now(UTC)
    live = assignment(30, notes="live", dueDateTime="2026-12-24T12:00:00Z")
    (run,) = await connector.deliver(REGISTRATION_ID, live, timestamp=(now - timedelta(minutes=2)).timestamp())
    assert (run.error, run.poison) == (None, None)

    untimed = assignment(50, notes="history without a time", dueDateTime="2027-01-31T12:00:00Z")
    older = assignment(40, notes="history before the live callback", eventTime=(now - timedelta(minutes=3)).isoformat())
    write_lines(tmp_path / "old.jsonl", [untimed, older])
    assert backfill(command, "old.jsonl").returncode == 0
    await apply(connector, await take(connector))
    activity = graph.activity(ASSIGNMENT_ID)
    assert activity["notes"]["content"] == "live"  # latest-wins fields: the live callback's
    assert activity["dueDateTime"]["dateTime"].startswith("2026-12-24T12:00:00")
    assert activity["completionPercentage"] == 50  # forward-only fields merge as always

    newer = assignment(45, notes="history after the live callback", eventTime=(now - timedelta(minutes=1)).isoformat())
    write_lines(tmp_path / "newer.jsonl", [newer])
    assert backfill(command, "newer.jsonl").returncode == 0
    await apply(connector, await take(connector))
    activity = graph.activity(ASSIGNMENT_ID)
    assert activity["notes"]["content"] == "history after the live callback"
    assert activity["completionPercentage"] == 50


# --- what the operator sees ---


def test_off_a_terminal_progress_is_plain_lines_and_a_summary(command, tmp_path):
    write_lines(tmp_path / "history.jsonl", [assignment(n % 100, f"ext-{n}") for n in range(1500)])
    result = backfill(command, "history.jsonl", "--progress-every", "0", "--rate", "2000", "--max-queue-depth", "2000")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    progress = result.stderr.splitlines()
    assert progress[0].startswith("hashing history.jsonl: ")
    validating = [line for line in progress if line.startswith("validating history.jsonl: ")]
    assert any("ETA" in line and "records 1,024, accepted 1,024, rejected 0" in line for line in validating)
    assert re.fullmatch(
        r"validating history.jsonl: ([\d.]+ kB) of \1 \(100%\), [\d.,]+ [kM]B/s, in [\d.]+ s, records 1,500, "
        r"accepted 1,500, rejected 0",
        validating[-1],
    ), validating
    enqueueing = [line for line in progress if line.startswith("enqueueing history.jsonl: ")]
    assert enqueueing[-1].startswith("enqueueing history.jsonl: 1,500 of 1,500 messages (100%), ")
    assert "enqueued 1,500, earlier 0" in enqueueing[-1]
    summary = result.stdout.splitlines()
    assert summary[0] == (
        "history.jsonl (native events, JSON Lines): 1,500 record(s), 1,500 accepted, 0 rejected; 1,500 enqueued now"
    )
    assert summary[1].startswith(f"backfill for provider {REGISTRATION_ID}: 1,500 record(s) in 1 file(s), 1,500 ")
    assert summary[2].startswith("1,500 message(s) enqueued on course-activity-updates now, 0 by an earlier run")


# --- status ---


async def test_status_lists_the_tracked_activities_as_csv_and_json(command, connector, graph):
    (applied,) = await connector.deliver(REGISTRATION_ID, assignment(25))
    assert (applied.error, applied.poison) == (None, None)
    graph.add_fault(method="PATCH", status=403, count=1)
    self_initiated = {"@odata.type": SELF_INITIATED, "externalcourseActivityId": SELF_INITIATED_EXTERNAL_ID,
                      "status": "inProgress", "completionPercentage": 5}  # fmt: skip
    (failed,) = await connector.deliver(REGISTRATION_ID, self_initiated)
    assert failed.poison is not None

    listed = command("status", "--registration-id", REGISTRATION_ID)
    assert listed.returncode == 0, listed.stderr
    rows = {row["externalcourseActivityId"]: row for row in csv.DictReader(io.StringIO(listed.stdout))}
    assert set(rows) == {ASSIGNMENT_EXTERNAL_ID, SELF_INITIATED_EXTERNAL_ID}
    done, refused = rows[ASSIGNMENT_EXTERNAL_ID], rows[SELF_INITIATED_EXTERNAL_ID]
    assert (done["learningCourseActivityId"], done["type"], done["state"]) == (ASSIGNMENT_ID, "learningAssignment",
                                                                               "applied")  # fmt: skip
    assert done["lastAppliedAt"].startswith("20")
    assert (done["lastErrorStatus"], done["lastErrorMessage"]) == ("", "")
    assert (refused["state"], refused["lastErrorStatus"]) == ("failed", "403")
    assert refused["lastErrorCode"]
    assert listed.stderr.strip() == f"2 activities of provider {REGISTRATION_ID}"

    failed_only = command("status", "--registration-id", REGISTRATION_ID, "--state", "failed", "--format", "json")
    (entry,) = json.loads(failed_only.stdout)
    assert (entry["externalcourseActivityId"], entry["state"]) == (SELF_INITIATED_EXTERNAL_ID, "failed")
    assert entry["lastError"]["status"] == 403
    assert entry["pending"] == {"status": "inProgress", "completionPercentage": 5}

    lines = command("status", "--registration-id", REGISTRATION_ID, "--format", "jsonl").stdout.splitlines()
    assert sorted(json.loads(line)["state"] for line in lines) == ["applied", "failed"]


def test_status_of_a_provider_with_nothing_tracked_is_an_empty_list(command, connector):
    result = command("status", "--registration-id", "someone-else", "--format", "json")
    assert (result.returncode, json.loads(result.stdout)) == (0, [])
    assert "0 activities of provider someone-else (a provider not in CONNECTOR_PROVIDERS)" in result.stderr

"""Soak: thousands of callbacks, each delivered one to three times in shuffled order, through the local runner and
Azurite to a Graph sandbox that fails ~20 % of requests (429 with and without Retry-After, 503, 500, dropped
connections) and whose managed-identity endpoint fails too. Then dead letters are replayed, as an operator would
once the cause is gone, and every activity in Graph is compared with the merge of its callbacks.

    .venv/bin/python -m bench.soak [--callbacks 2000] [--activities 300] [--fault-rate 0.2] [--json]

Shortened for a run of about a minute, and said so in the report: host.json's visibilityTimeout (30 s) becomes 1 s,
the first throttling back-off (30 s) 1 s, and Retry-After headers are 1 to 2 s. The rules are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from bench.common import count_outcomes, outcomes

ROOT = Path(__file__).resolve().parent.parent
REGISTRATION_ID = "5a0c1c5e-50a4-4d8e-9d3b-0b5f4a4c50a1"
SECRET = "whsec_" + base64.b64encode(b"soak-test-secret-0123456789abcdef").decode()
ASSIGNMENT = "#microsoft.graph.learningAssignment"
SELF_INITIATED = "#microsoft.graph.learningSelfInitiatedCourse"


@dataclass
class SoakConfig:
    callbacks: int = 2000
    activities: int = 300
    fault_rate: float = 0.2
    identity_fault_rate: float = 0.3
    seed: int = 7
    created_share: float = 0.2
    """Activities Graph does not have at the start: their events create them (createMissing)."""
    removed_share: float = 0.1
    """Activities withdrawn by a removal callback; half of them assigned again after it."""
    concurrency: int = 16
    timeout: float = 900.0


@dataclass
class SoakReport:
    callbacks: int = 0
    deliveries: int = 0
    activities: int = 0
    accepted: int = 0
    rejected: int = 0
    applied: int = 0
    duplicate: int = 0
    unchanged: int = 0
    throttled: int = 0
    retried: int = 0
    created: int = 0
    withdrawn: int = 0
    dead_lettered: int = 0
    replayed: int = 0
    lost: int = 0
    mismatched: int = 0
    graph_requests: int = 0
    graph_requests_per_callback: float = 0.0
    patches: int = 0
    faults_injected: int = 0
    fault_share: float = 0.0
    token_requests: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class Callback:
    webhook_id: str
    activity: int
    timestamp: int
    body: str


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


LEARNER_UPN = "ada.learner@contoso.example"
COURSE = "soak-course"


def _identity(odata_type: str) -> dict[str, Any]:
    """What creates an activity: the learner by UPN, the course by the provider's id, an assignment's type."""
    extra = {"assignmentType": "required"} if odata_type == ASSIGNMENT else {}
    return {"learnerUserId": LEARNER_UPN, "learningContentId": COURSE, **extra}


def make_callbacks(
    config: SoakConfig, rng: random.Random, types: list[str], created: set[int], removed: set[int]
) -> list[Callback]:
    """Progress reports of every shape the reference allows, with provider timestamps up to a minute old: the
    signature check allows five, which leaves the delivery phase four minutes even on a loaded machine. Events of the
    activities Graph lacks, or that are removed, carry what creates them; each removed activity gets a removal, and
    half of them an assignment again, a moment later."""
    now = int(time.time()) - 20
    callbacks = []
    for n in range(config.callbacks):
        activity = rng.randrange(config.activities)
        callbacks.append(_progress(f"soak-{n:05d}", activity, types[activity], now - rng.randrange(0, 60), rng))
        if activity in created or activity in removed:  # its events may (re)create it
            with_identity = {**json.loads(callbacks[-1].body), **_identity(types[activity])}
            callbacks[-1] = replace(callbacks[-1], body=json.dumps(with_identity))
    for activity in sorted(removed):
        removal = {"@odata.type": types[activity], "externalcourseActivityId": f"soak-ext-{activity}"}
        removal["@removed"] = {"reason": "deleted"}
        callbacks.append(Callback(f"soak-rm-{activity}", activity, now - rng.randrange(0, 30), json.dumps(removal)))
        if activity % 2:
            again = json.loads(_progress(f"soak-again-{activity}", activity, types[activity], now + 15, rng).body)
            body = json.dumps({**again, **_identity(types[activity])})
            callbacks.append(Callback(f"soak-again-{activity}", activity, now + 15, body))
    return callbacks


def _progress(webhook_id: str, activity: int, odata_type: str, timestamp: int, rng: random.Random) -> Callback:
    """One progress report of every shape the reference allows, for the activity."""
    status = rng.choice(
        ["notStarted", "inProgress", "inProgress", "completed"] if odata_type == ASSIGNMENT else
        ["inProgress", "inProgress", "completed"]
    )  # fmt: skip
    event: dict[str, Any] = {
        "@odata.type": odata_type,
        "externalcourseActivityId": f"soak-ext-{activity}",
        "status": status,
    }
    if rng.random() < 0.8:
        event["completionPercentage"] = 100 if status == "completed" else rng.randrange(0, 100)
    when = datetime(2026, 11, rng.randrange(1, 25), rng.randrange(24), tzinfo=UTC)
    if status == "completed":
        event["completedDateTime"] = _iso(when)
    if odata_type == ASSIGNMENT:
        if rng.random() < 0.3:
            event["notes"] = rng.choice(
                [None, f"note {rng.randrange(5)}", {"content": "<b>x</b>", "contentType": "html"}]
            )
        if rng.random() < 0.3:
            event["dueDateTime"] = _iso(when + timedelta(days=rng.randrange(1, 30)))
    elif rng.random() < 0.5:
        event["startedDateTime"] = _iso(when - timedelta(days=rng.randrange(1, 30)))
    return Callback(webhook_id, activity, timestamp, json.dumps(event))


def expected_states(callbacks: list[Callback]) -> dict[int, dict[str, Any] | None]:
    """The merge of each activity's callbacks, computed apart from the connector's own pipeline: its values, or
    None where the newest callback withdrew it."""
    from connector.domain.events import parse_event_json
    from connector.domain.merge import MergedState, Stamp, fold, remove

    states: dict[int, MergedState] = defaultdict(MergedState)
    for callback in callbacks:
        update = parse_event_json(callback.body, REGISTRATION_ID)
        stamp = Stamp(datetime.fromtimestamp(callback.timestamp, UTC), 0, callback.webhook_id)
        state = states[callback.activity]
        states[callback.activity] = remove(state, stamp) if update.removed else fold(state, update.changes, stamp)
    return {activity: dict(state.values) if state.exists else None for activity, state in states.items()}


#: Graph's own throttling in the soak: a budget per app and tenant, 429 + Retry-After beyond it, as Graph does.
RATE_LIMIT = 40


def fault_rules(config: SoakConfig) -> list[dict[str, Any]]:
    """About `fault_rate` of Graph requests fail, spread over the kinds that are not about the rate (an outage's 503
    holds the provider's every update for its wait, so it is rarer); identity fails more often. 429s come from the
    sandbox's rate limit (RATE_LIMIT per second), which is how Graph throttles: random 429s would tell the pace that
    any rate is too fast."""
    graph = [
        ({"status": 503, "retryAfter": 1, "message": "Service unavailable."}, 0.1),
        ({"status": 500}, 0.45),
        ({"drop": True}, 0.45),
    ]
    rules, taken = [], 0.0
    for index, (rule, part) in enumerate(graph):
        share = config.fault_rate * part
        # Rules are tried in order; each fires on its share of what the earlier ones let through.
        rules.append({"target": "graph", "probability": share / (1 - taken), "seed": config.seed + index, **rule})
        taken += share
    rules.append({"target": "identity", "status": 500, "probability": config.identity_fault_rate, "seed": config.seed})
    return rules


def _sign(callback: Callback) -> dict[str, str]:
    signature = Webhook(SECRET).sign(
        callback.webhook_id, datetime.fromtimestamp(callback.timestamp, UTC), callback.body
    )
    return {
        "content-type": "application/json",
        "webhook-id": callback.webhook_id,
        "webhook-timestamp": str(callback.timestamp),
        "webhook-signature": signature,
    }


async def run_soak(config: SoakConfig, connection_string: str, sandbox: Any) -> SoakReport:
    os.environ.update(
        {
            "CONNECTOR_PROVIDERS": json.dumps({REGISTRATION_ID: {"webhookSecrets": [SECRET], "createMissing": True}}),
            "AzureWebJobsStorage": connection_string,
            "GRAPH_BASE_URL": sandbox.graph_url,
            "CONNECTOR_THROTTLE_BACKOFF_SECONDS": "1",
            **sandbox.identity_env(),
        }
    )
    from connector import bootstrap
    from connector.adapters.activity_store import TABLE_NAME
    from connector.domain.envelope import POISON_QUEUE_NAME, QUEUE_NAME
    from connector.domain.merge import graph_agrees
    from connector.ops.replay import replay
    from devtools.runner import Runner, load_app

    count_outcomes()
    rng = random.Random(config.seed)
    types = [ASSIGNMENT if rng.random() < 0.67 else SELF_INITIATED for _ in range(config.activities)]
    created = {i for i in range(config.activities) if rng.random() < config.created_share}
    removed = {i for i in range(config.activities) if rng.random() < config.removed_share}
    admin = sandbox.admin
    admin.reset()
    admin.seed(
        providers=[{"id": REGISTRATION_ID, "displayName": "Soak", "isCourseActivitySyncEnabled": True}],
        users=[{"id": "7ba2228a-e020-11ec-9d64-0242ac120002", "userPrincipalName": LEARNER_UPN}],
        contents=[
            {"id": "57baf9dc-e020-11ec-9d64-0242ac120002", "externalId": COURSE, "learningProviderId": REGISTRATION_ID}
        ],
        activities=[
            {
                "@odata.type": odata_type,
                "id": f"soak-{i}",
                "externalcourseActivityId": f"soak-ext-{i}",
                "learningProviderId": REGISTRATION_ID,
                "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
                "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
                "status": "notStarted" if odata_type == ASSIGNMENT else "inProgress",
                **({"assignmentType": "required"} if odata_type == ASSIGNMENT else {}),
            }
            for i, odata_type in enumerate(types)
            if i not in created
        ],
    )
    admin.set_identity(token_lifetime_seconds=20)  # tokens expire during the run: the identity endpoint is exercised
    admin.set_faults(fault_rules(config))
    admin.set_rate_limit(RATE_LIMIT)

    callbacks = make_callbacks(config, rng, types, created, removed)
    deliveries = [c for c in callbacks for _ in range(rng.randint(1, 3))]
    rng.shuffle(deliveries)
    report = SoakReport(callbacks=len(callbacks), deliveries=len(deliveries), activities=config.activities)
    report.notes.append("host.json visibilityTimeout 30 s -> 1 s; first throttling back-off 30 s -> 1 s")

    host = json.loads((ROOT / "host.json").read_text())
    host["extensions"]["queues"]["visibilityTimeout"] = "00:00:01"
    runner = Runner(load_app("function_app:app", ROOT), app_dir=ROOT, port=0, host_config=host)
    started = time.monotonic()
    await runner.start()
    try:
        limit = asyncio.Semaphore(config.concurrency)
        async with httpx.AsyncClient(base_url=runner.http_url, timeout=60) as client:

            async def deliver(callback: Callback) -> None:
                async with limit:
                    url = f"/api/providers/{REGISTRATION_ID}/course-activities"
                    response = await client.post(url, content=callback.body, headers=_sign(callback))
                    if response.status_code == 202:
                        report.accepted += response.json()["accepted"]
                    else:
                        report.rejected += 1

            await asyncio.gather(*(deliver(c) for c in deliveries))
        async with asyncio.timeout(config.timeout):
            await runner.drain()
        settings = bootstrap.settings()
        from connector.adapters.storage import queue_client

        report.dead_lettered = await _count(queue_client(settings, POISON_QUEUE_NAME))
        counts = outcomes()
        admin.clear_faults()  # the cause is fixed: replay what was dead-lettered
        admin.clear_rate_limit()
        report.replayed = (await replay(settings)).moved
        async with asyncio.timeout(config.timeout):
            await runner.drain()
        report.seconds = round(time.monotonic() - started, 1)

        for name in ("applied", "duplicate", "unchanged", "throttled", "retried"):
            setattr(report, name, counts.get(name, 0))
        seen: set[str] = set()
        from connector.adapters.storage import table_client
        from connector.domain.activity import event_hash

        async with table_client(settings, TABLE_NAME) as table:
            async for row in table.list_entities():
                # hashes of the event ids folded in, each "<id hash>:<content hash>"
                seen.update(entry.partition(":")[0] for entry in json.loads(row.get("seen") or "[]"))
        if report.dead_lettered - report.replayed > 0:
            async with queue_client(settings, POISON_QUEUE_NAME) as poison:
                for message in await poison.peek_messages(max_messages=32):
                    seen.add(event_hash(json.loads(message.content).get("eventId", "")))
        left = await _count(queue_client(settings, QUEUE_NAME))
        report.lost = len({event_hash(c.webhook_id) for c in callbacks} - seen) + left
        expected = expected_states(callbacks)
        actual = {a["externalcourseActivityId"]: a for a in admin.activities(REGISTRATION_ID)}
        report.mismatched = sum(
            (f"soak-ext-{activity}" in actual) if values is None
            else not graph_agrees(values, actual.get(f"soak-ext-{activity}", {}))
            for activity, values in expected.items()
        )  # fmt: skip
        stats = admin.stats()
        report.graph_requests = stats["requests"]
        report.patches = stats["byMethod"].get("PATCH", 0)
        report.created = stats["byMethod"].get("POST", 0)
        report.withdrawn = stats["byMethod"].get("DELETE", 0)
        report.token_requests = stats["tokenRequests"]
        report.faults_injected = stats["faultsInjected"] + stats["rateLimit"]["throttled"]
        report.fault_share = round(report.faults_injected / max(1, report.graph_requests + report.token_requests), 3)
        report.graph_requests_per_callback = round(report.graph_requests / max(1, len(callbacks)), 2)
    finally:
        await runner.stop()
        await bootstrap.close()
    return report


async def _count(queue: Any) -> int:
    from azure.core.exceptions import ResourceNotFoundError

    async with queue:
        try:
            return (await queue.get_queue_properties()).approximate_message_count
        except ResourceNotFoundError:
            return 0


def format_report(report: SoakReport) -> str:
    rows = [
        ("callbacks (distinct)", report.callbacks),
        ("deliveries (1-3 each, shuffled)", report.deliveries),
        ("activities", report.activities),
        ("accepted (202)", report.accepted),
        ("applied (PATCH sent, or created)", report.applied),
        ("skipped: duplicate", report.duplicate),
        ("skipped: changes nothing", report.unchanged),
        ("throttled, re-queued with delay", report.throttled),
        ("retried by the host", report.retried),
        ("dead-lettered", report.dead_lettered),
        ("replayed after the faults stopped", report.replayed),
        ("lost", report.lost),
        ("activities differing from the merge", report.mismatched),
        ("Graph requests", report.graph_requests),
        ("Graph requests per callback", report.graph_requests_per_callback),
        ("PATCH requests", report.patches),
        ("activities created (POST) / withdrawn (DELETE)", f"{report.created} / {report.withdrawn}"),
        ("faults injected, rate-limit 429s included", f"{report.faults_injected} ({report.fault_share:.0%})"),
        ("managed-identity token requests", report.token_requests),
        ("wall time, s", report.seconds),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines + [f"note: {n}" for n in report.notes])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--callbacks", type=int, default=SoakConfig.callbacks)
    parser.add_argument("--activities", type=int, default=SoakConfig.activities)
    parser.add_argument("--fault-rate", type=float, default=SoakConfig.fault_rate)
    parser.add_argument("--seed", type=int, default=SoakConfig.seed)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    args = parser.parse_args(argv)
    config = SoakConfig(args.callbacks, args.activities, args.fault_rate, seed=args.seed)

    sys.path.insert(0, str(ROOT))
    import logging

    from devtools.azurite import start_azurite
    from sandbox.process import start_sandbox_process

    logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)  # expected failures would drown the report
    with start_azurite() as azurite, start_sandbox_process() as sandbox:
        report = asyncio.run(run_soak(config, azurite.connection_string, sandbox))
    print(json.dumps(asdict(report)) if args.json else format_report(report))
    return 0 if report.lost == 0 and report.mismatched == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

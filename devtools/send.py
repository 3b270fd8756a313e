"""``python -m devtools.send``: sign a callback as a provider would and post it to the local connector.

By default it sends the reference page's Example 1 (an assigned course) for the first provider in
local.settings.json, signed with that provider's first webhook secret.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent

EXAMPLES = {
    "1": {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "assignedDateTime": "2021-05-11T22:57:17+00:00",
        "assignmentType": "required",
        "assignerUserId": "cea1684d-57dc-438d-a9d1-e666ec1a7f3d",
        "completedDateTime": None,
        "completionPercentage": 20,
        "learningProviderId": "01e8f81b-3060-4dec-acf0-0389665a0a38",
        "dueDateTime": {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": "UTC"},
        "externalcourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
        "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
        "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
        "notes": {"contentType": "text", "content": "required assignment added for user"},
        "status": "inProgress",
    },
    # The reference's Example 2, pointed at the sandbox's self-initiated course: the page gives both examples the
    # same external id, and one id cannot name an assignment and a self-initiated course at once.
    "2": {
        "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
        "completedDateTime": None,
        "completionPercentage": 30,
        "externalcourseActivityId": "13a2228a-e020-11ec-9d64-0242ac120002",
        "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
        "learningProviderId": "01e8f81b-3060-4dec-acf0-0389665a0a38",
        "startedDateTime": "2021-05-11T22:57:17+00:00",
        "status": "inProgress",
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.send", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--example", choices=sorted(EXAMPLES), default="1", help="which reference example to send")
    source.add_argument("--file", type=Path, help="send this JSON file (one event or an array) instead")
    parser.add_argument("--url", default="http://127.0.0.1:7071", help="the connector's base URL")
    parser.add_argument("--settings", type=Path, default=ROOT / "local.settings.json")
    parser.add_argument("--registration-id", help="default: the first provider in CONNECTOR_PROVIDERS")
    parser.add_argument("--secret", help="default: that provider's first webhook secret")
    parser.add_argument("--function-key", help="sent as x-functions-key (needed in Azure, not locally)")
    args = parser.parse_args(argv)

    providers = json.loads(json.loads(args.settings.read_text())["Values"]["CONNECTOR_PROVIDERS"])
    registration_id = args.registration_id or next(iter(providers))
    secret = args.secret or providers[registration_id]["webhookSecrets"][0]
    body = args.file.read_text() if args.file else json.dumps(EXAMPLES[args.example], indent=2)
    webhook_id = f"msg_{uuid.uuid4().hex}"
    now = time.time()
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": Webhook(secret).sign(webhook_id, datetime.fromtimestamp(now, UTC), body),
    }
    if args.function_key:
        headers["x-functions-key"] = args.function_key
    url = f"{args.url.rstrip('/')}/api/providers/{registration_id}/course-activities"
    response = httpx.post(url, content=body.encode(), headers=headers, timeout=30)
    print(f"POST {url} -> {response.status_code}")
    print(response.text)
    return 0 if response.status_code == 202 else 1


if __name__ == "__main__":
    sys.exit(main())

"""``python -m devtools.send``: sign a callback as a provider would and post it to the local connector.

By default it sends the reference page's Example 1 (an assigned course) for the first provider in
local.settings.json, signed with that provider's first webhook secret. With --xapi-example or --xapi-file it posts
xAPI statements to the provider's LRS endpoint instead, with its first xAPI credential (HTTP Basic). The platforms'
own formats, each as the platform sends it: --caliper-example (an envelope, the first caliperKeys entry as a Bearer
token), --scorm-example (a registration postback, auth type `form` with the first scormCloudCredentials entry),
--canvas-example (a Live Event, signed by the Graph sandbox's stand-in for Instructure's keys when canvasJwksUrl is
the sandbox's, else unsigned).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from standardwebhooks.webhooks import Webhook

from devtools.examples import example_1, example_2
from devtools.platform_examples import local_caliper_example, local_canvas_example, local_scorm_example

ROOT = Path(__file__).resolve().parent.parent

EXAMPLES = {"1": example_1(), "2": example_2()}


def xapi_example() -> dict[str, Any]:
    """A cmi5 "progressed" statement at 60 % for the sandbox's assignment: `context.registration` is the activity's
    externalcourseActivityId. A new statement id and timestamp each time, so that sending it again is a new
    statement rather than a conflicting repeat."""
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "mbox": "mailto:ada.learner@contoso.example"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/progressed", "display": {"en-US": "progressed"}},
        "object": {"objectType": "Activity", "id": "https://learning.contoso.example/courses/101"},
        "result": {"extensions": {"https://w3id.org/xapi/cmi5/result/extensions/progress": 60}},
        "context": {"registration": "12a2228a-e020-11ec-9d64-0242ac120002"},
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.send", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--example", choices=sorted(EXAMPLES), default="1", help="which reference example to send")
    source.add_argument("--file", type=Path, help="send this JSON file (one event or an array) instead")
    source.add_argument("--xapi-example", action="store_true", help="post an example xAPI statement to the LRS")
    source.add_argument("--xapi-file", type=Path, help="post this JSON file (a statement or an array) to the LRS")
    source.add_argument("--caliper-example", action="store_true", help="post an IMS Caliper envelope")
    source.add_argument("--scorm-example", action="store_true", help="post a SCORM Cloud registration postback")
    source.add_argument("--canvas-example", action="store_true", help="post a Canvas Live Event (course_progress)")
    parser.add_argument("--url", default="http://127.0.0.1:7071", help="the connector's base URL")
    parser.add_argument("--settings", type=Path, default=ROOT / "local.settings.json")
    parser.add_argument("--registration-id", help="default: the first provider in CONNECTOR_PROVIDERS")
    parser.add_argument("--secret", help="default: that provider's first webhook secret")
    parser.add_argument("--function-key", help="sent as x-functions-key (needed in Azure, not locally)")
    args = parser.parse_args(argv)

    try:
        providers = json.loads(json.loads(args.settings.read_text())["Values"]["CONNECTOR_PROVIDERS"])
    except FileNotFoundError:
        return _fail(f"{args.settings} does not exist: run scripts/dev once (it creates it), or pass --settings")
    except (KeyError, TypeError, ValueError):
        return _fail(f"{args.settings} has no Values.CONNECTOR_PROVIDERS holding a JSON object, as local settings do")
    registration_id = args.registration_id or next(iter(providers), None)
    if registration_id is None:
        return _fail(f"CONNECTOR_PROVIDERS in {args.settings} has no provider; pass --registration-id and --secret")
    provider = providers.get(registration_id, {})
    url = f"{args.url.rstrip('/')}/api/providers/{registration_id}"
    if args.caliper_example or args.scorm_example or args.canvas_example:
        return _platform_example(args, registration_id, provider, url)
    if args.xapi_example or args.xapi_file:
        credentials = provider.get("xapiCredentials") or []
        if not credentials:
            return _fail(f"provider {registration_id} has no xapiCredentials in {args.settings}: {_AS_IN_EXAMPLE}")
        body = args.xapi_file.read_text() if args.xapi_file else json.dumps(xapi_example(), indent=2)
        basic = base64.b64encode(f"{credentials[0]['key']}:{credentials[0]['secret']}".encode()).decode()
        headers = {"authorization": f"Basic {basic}", "x-experience-api-version": "1.0.3"}
        return _post(f"{url}/xapi/statements", body, headers, ok=200)
    secret = args.secret or next(iter(provider.get("webhookSecrets") or []), None)
    if secret is None:
        return _fail(f"provider {registration_id} has no webhookSecrets in {args.settings}: {_AS_IN_EXAMPLE}")
    body = args.file.read_text() if args.file else json.dumps(EXAMPLES[args.example], indent=2)
    webhook_id = f"msg_{uuid.uuid4().hex}"
    now = time.time()
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": Webhook(secret).sign(webhook_id, datetime.fromtimestamp(now, UTC), body),
    }
    if args.function_key:
        headers["x-functions-key"] = args.function_key
    return _post(f"{url}/course-activities", body, headers, ok=202)


_AS_IN_EXAMPLE = "add some as local.settings.example.json has them, or pass --registration-id"


def _platform_example(args: argparse.Namespace, registration_id: str, provider: dict[str, Any], url: str) -> int:
    """A platform's own format, authenticated as that platform sends it."""
    if args.caliper_example:
        keys = provider.get("caliperKeys") or []
        if not keys:
            return _missing("caliperKeys", registration_id, args.settings)
        body = json.dumps(local_caliper_example(), indent=2)
        return _post(f"{url}/caliper", body, {"authorization": f"Bearer {keys[0]}"}, ok=200)
    if args.scorm_example:
        credentials = provider.get("scormCloudCredentials") or []
        if not credentials:
            return _missing("scormCloudCredentials", registration_id, args.settings)
        form = {"data": json.dumps(local_scorm_example()), **credentials[0]}  # SCORM Cloud's default auth type
        headers = {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"}
        return _post(f"{url}/scorm-cloud", urlencode(form), headers, ok=200)
    event, jwks_url = local_canvas_example(), provider.get("canvasJwksUrl")
    if jwks_url and jwks_url.endswith("/_sandbox/canvas/jwks"):
        token = _signed_by_sandbox(jwks_url.removesuffix("/jwks") + "/sign", event)
        if token is None:
            return _fail(f"the Graph sandbox at {jwks_url} did not sign the event: is scripts/dev running?")
        return _post(f"{url}/canvas", token, {"content-type": "text/plain"}, ok=200)
    if provider.get("canvasAllowUnsigned") is True:
        return _post(f"{url}/canvas", json.dumps(event, indent=2), {}, ok=200)
    return _fail(
        f"provider {registration_id} takes no Canvas event this tool can make: its canvasJwksUrl is not the Graph "
        f"sandbox's and it does not set canvasAllowUnsigned ({_AS_IN_EXAMPLE})"
    )


def _missing(key: str, registration_id: str, settings: Path) -> int:
    return _fail(f"provider {registration_id} has no {key} in {settings}: {_AS_IN_EXAMPLE}")


def _signed_by_sandbox(sign_url: str, event: dict[str, Any]) -> str | None:
    """The event as a JWT signed by the sandbox's stand-in for Instructure's keys (sandbox/instructure.py)."""
    try:
        response = httpx.post(sign_url, json=event, timeout=30)
    except httpx.TransportError:
        return None
    return str(response.json()["token"]) if response.status_code == 200 else None


def _post(url: str, body: str, headers: dict[str, str], *, ok: int) -> int:
    try:
        response = httpx.post(
            url, content=body.encode(), headers={"content-type": "application/json", **headers}, timeout=30
        )
    except httpx.TransportError as exc:
        return _fail(f"cannot reach {url} ({exc}): is scripts/dev running?")
    print(f"POST {url} -> {response.status_code}")
    print(response.text)
    return 0 if response.status_code == ok else 1


def _fail(problem: str) -> int:
    print(f"error: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

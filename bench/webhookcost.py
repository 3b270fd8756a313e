"""Webhook cost: CPU per event to check the signature, validate and build the queue messages, for one event and
for a batch of 100, against the bare HMAC-SHA256 of the signed content plus ``json.loads`` of the same bytes.

Measured in one process with ``time.process_time()``, no I/O (the queue write is the host's output binding):

- ``receive``: ``connector.app.webhook.receive(settings, registrationId, headers, body)``;
- ``function``: the indexed HTTP function as the worker calls it (a prepared ``func.HttpRequest`` and an output
  collector, answer serialised), which adds the header copy and the JSON answer;
- ``bare``: ``hmac.new(key, "{id}.{timestamp}.{body}", sha256)``, the constant-time compare of its base64, and
  ``json.loads(body)``.

Each run times a loop over the same signed request (signatures stay within the 5-minute tolerance); the
figure is the median over runs, per event (a batch's time is divided by its 100 events).

The platforms' formats, each through its intake use case (``connector.app.*_intake``: authenticate, parse, map,
build the queue messages) with in-memory queues, beside the same baseline over the request's bytes (HMAC-SHA256
and its compare, ``json.loads`` of the JSON it carries): a Caliper envelope of 100 events and of one (Bearer key),
a SCORM Cloud postback (HTTP Basic, the registration as JSON), a signed Canvas Live Event (RS256 JWT verified
against a key set held in memory). SCORM Cloud and Canvas post one event per request: no batch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from bench.common import (
    REGISTRATION_ID,
    SECRET_BYTES,
    Infra,
    Out,
    Profile,
    app_functions,
    child_main,
    event,
    http_request,
    median,
    signed_headers,
)


def _bare(headers: dict[str, str], body: bytes, carried: bytes | None = None) -> Any:
    """HMAC-SHA256 of the signed content and its compare, and json.loads of the JSON the request carries (the body,
    or for a signed Canvas event the claims inside its JWT)."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET_BYTES, signed, hashlib.sha256).digest()).decode()
    if not any(hmac.compare_digest(s.partition(",")[2], expected) for s in headers["webhook-signature"].split()):
        raise RuntimeError("bad signature")
    return json.loads(body if carried is None else carried)


def _time_loop(call: Any, loops: int) -> float:
    started = time.process_time()
    for _ in range(loops):
        call()
    return (time.process_time() - started) / loops


def run(_infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    import function_app
    from connector import bootstrap
    from connector.app import webhook

    runs = int(params.get("runs", 9))
    settings = bootstrap.settings()
    function = app_functions(function_app.app)["course_activity_webhook"]
    cases: dict[str, tuple[bytes, int]] = {
        "single": (json.dumps(event("webhook-cost-0", 42)).encode(), 1),
        "batch100": (json.dumps([event(f"webhook-cost-{i}", i) for i in range(100)]).encode(), 100),
    }
    loops = {"single": int(params.get("singleLoops", 2000)), "batch100": int(params.get("batchLoops", 40))}
    figures: dict[str, Any] = {}
    for case, (body, events) in cases.items():
        headers = signed_headers(body, f"wh-cost-{case}")
        request = http_request(body, headers)

        def receive(body: bytes = body, headers: dict[str, str] = headers, events: int = events) -> None:
            reply = webhook.receive(settings, REGISTRATION_ID, headers, body)
            assert reply.status == 202, reply.body
            assert len(reply.messages) == events

        def through_function(request: Any = request) -> None:
            response = function(request, Out())
            assert response.status_code == 202

        def bare(body: bytes = body, headers: dict[str, str] = headers) -> None:
            _bare(headers, body)

        for call in (receive, through_function, bare):  # warm-up: first-use costs are cold start's business
            _time_loop(call, 3)
        samples: dict[str, list[float]] = {"receive": [], "function": [], "bare": []}
        for _ in range(runs):  # interleaved, so that drift hits all three alike
            samples["receive"].append(_time_loop(receive, loops[case]) / events)
            samples["function"].append(_time_loop(through_function, loops[case]) / events)
            samples["bare"].append(_time_loop(bare, loops[case]) / events)
        figures[case] = {
            "bodyBytes": len(body),
            "loops": loops[case],
            **{
                name: {"median": median(v) * 1e6, "min": min(v) * 1e6, "max": max(v) * 1e6}
                for name, v in samples.items()
            },
        }
    if params.get("profile"):
        figures["profile"] = _profile(webhook, settings, cases["batch100"][0])
    platforms = _platform_cases(runs, loops["single"], loops["batch100"])
    return {"runs": runs, "unit": "microseconds per event", "cases": figures, "platforms": platforms}


# --- the platforms' formats ---

_PLATFORM_KEY = "bench-platform-key-0123456789abcdefghijklmnopqrstuv"


def _platform_cases(runs: int, single_loops: int, batch_loops: int) -> dict[str, Any]:
    """CPU per event of each platform intake and of the bare baseline over the same request, medians of `runs`."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        cases = _platform_requests()
        figures: dict[str, Any] = {}
        for name, (call, bare, events) in cases.items():
            loops = batch_loops if events > 1 else single_loops

            def app(call: Any = call, loops: int = loops) -> None:
                loop.run_until_complete(_repeat(call, loops))

            loop.run_until_complete(_repeat(call, 3))  # warm-up
            samples: dict[str, list[float]] = {"receive": [], "bare": []}
            for _ in range(runs):
                samples["receive"].append(_time_loop(app, 1) / loops / events)
                samples["bare"].append(_time_loop(bare, loops) / events)
            figures[name] = {"events": events, "loops": loops}
            for kind, values in samples.items():
                figures[name][kind] = {f"{stat.__name__}": stat(values) * 1e6 for stat in (median, min, max)}
        return figures
    finally:
        loop.close()


async def _repeat(call: Any, loops: int) -> None:
    for _ in range(loops):
        await call()


def _platform_requests() -> dict[str, tuple[Any, Any, int]]:
    """Per case: the intake call (checking its answer), the bare baseline over the same bytes, events per request."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    from connector.app import caliper_intake, canvas_intake, scorm_cloud_intake
    from connector.app.platform_intake import PlatformRequest, Queues
    from connector.settings import load_settings
    from devtools import platform_examples as examples

    sent: list[str] = []

    async def collect(message: str) -> None:
        sent.append(message)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_set = {"keys": [{**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "bench", "alg": "RS256"}]}

    class InMemoryKeySets:
        async def key_set(self, url: str, *, refresh: bool = False) -> Any:
            return key_set

    provider = {
        "caliperKeys": [_PLATFORM_KEY],
        "scormCloudCredentials": [{"userName": "bench", "password": _PLATFORM_KEY}],
        "canvasJwksUrl": "https://keys.example/jwks",
        "createMissing": True,
    }
    settings = load_settings({"CONNECTOR_PROVIDERS": json.dumps({REGISTRATION_ID: provider})})
    queues = Queues(collect, collect)
    bearer = {"authorization": f"Bearer {_PLATFORM_KEY}", "content-type": "application/json"}
    basic = "Basic " + base64.b64encode(f"bench:{_PLATFORM_KEY}".encode()).decode()

    def caliper_body(count: int) -> bytes:
        events = [
            examples.caliper_event(
                "AssignableEvent",
                "Completed",
                "2025-03-05T09:40:58.000Z",
                0,
                id=f"urn:uuid:00000000-0000-4000-8000-{index:012d}",
                actor=examples.person(f"https://lms.example/users/{index}", f"learner{index}@contoso.example"),
                generated=examples.attempt("2025-03-05T09:02:15.000Z", "2025-03-05T09:40:58.000Z"),
            )
            for index in range(count)
        ]
        return json.dumps(examples.envelope(*events)).encode()

    def intake(receive: Any, body: bytes, headers: dict[str, str], *extra: Any) -> Any:
        request = PlatformRequest(REGISTRATION_ID, headers, body)

        async def call() -> None:
            sent.clear()
            reply = await receive(settings, queues, *extra, request)
            assert reply.status == 200, reply.body
            assert sent, "the request queued nothing"

        return call

    def bare(body: bytes, carried: bytes | None = None) -> Any:
        headers = signed_headers(body, "platform-bare")
        return lambda: _bare(headers, body, carried)

    scorm = json.dumps(examples.registration()).encode()
    canvas_event = examples.course_progress(3, 6, "2025-03-11T10:30:00Z")
    canvas = jwt.encode(canvas_event, key, algorithm="RS256", headers={"kid": "bench"}).encode()
    cases: dict[str, tuple[Any, Any, int]] = {}
    for count in (100, 1):
        body = caliper_body(count)
        call = intake(caliper_intake.receive_envelope, body, bearer, InMemoryKeySets())
        cases[f"caliper {count}"] = (call, bare(body), count)
    scorm_headers = {"authorization": basic, "content-type": "application/json"}
    cases["scorm-cloud 1"] = (intake(scorm_cloud_intake.receive_postback, scorm, scorm_headers), bare(scorm), 1)
    canvas_call = intake(canvas_intake.receive_event, canvas, {"content-type": "text/plain"}, InMemoryKeySets())
    cases["canvas 1"] = (canvas_call, bare(canvas, json.dumps(canvas_event).encode()), 1)
    return cases


def _profile(webhook: Any, settings: Any, body: bytes) -> str:
    headers = signed_headers(body, "wh-cost-profile")
    profile = Profile()
    profile.start()
    for _ in range(100):
        webhook.receive(settings, REGISTRATION_ID, headers, body)
    profile.stop()
    return "100 requests of a 100-event batch through connector.app.webhook.receive\n" + profile.text()


if __name__ == "__main__":
    child_main(run)

"""The platforms' endpoints in tests: the providers' credentials, calls through the app's HTTP functions, and a
loopback key set server standing in for Instructure's published keys."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.functions import HttpCall, call_http_async

# As `python -m connector new-secret --caliper` / `--scorm-cloud` print them (43 URL-safe characters).
CALIPER_KEY = "9N2m1jMY1GPvkNjIbhrzW-3y9sDL7V5Tw2ZQ4VTz3oM"
ROTATED_CALIPER_KEY = "FQ6en4v5l-lMr9MlXCqLmHv5-EMKWpumgarPWMKPIMo"
SCORM_USER = "viva-learning"
SCORM_PASSWORD = "I2LpU2kQzZtWU4OHGFU5MelsnV4x1HGqamp5Dw5hX6s"
#: A provider that creates missing activities, its contents named by a Caliper resource's `.../courses/sec-101`, a
#: SCORM course id, or Canvas's `urn:instructure:canvas:course:565` (a video in a course is no content).
PLATFORM_PROVIDER = "053737f5-fbee-4958-8177-efbe019da192"
PLATFORM_SETTINGS: dict[str, Any] = {
    "caliperKeys": [CALIPER_KEY, ROTATED_CALIPER_KEY],
    "scormCloudCredentials": [{"userName": SCORM_USER, "password": SCORM_PASSWORD}],
    "createMissing": True,
    "contentIdPattern": "(?:^|/courses/|:course:)(?P<id>[^/:]+)$",
}
#: What the example provider (no createMissing) takes besides its webhook and xAPI credentials.
EXAMPLE_PLATFORM_SETTINGS: dict[str, Any] = {
    "caliperKeys": [CALIPER_KEY],
    "scormCloudCredentials": [{"userName": SCORM_USER, "password": SCORM_PASSWORD}],
}


def with_platform_provider(**settings: Any) -> str:
    """CONNECTOR_PROVIDERS with the tests' providers and the platform provider (its settings updated by `settings`)."""
    from tests.conftest import BASE_ENV  # imports this module: read when called

    providers = json.loads(BASE_ENV["CONNECTOR_PROVIDERS"])
    return json.dumps({**providers, PLATFORM_PROVIDER: {**PLATFORM_SETTINGS, **settings}})


def seed_platform_provider(graph: Any, *content_ids: str, users: list[dict[str, Any]] | None = None) -> None:
    """The platform provider in Graph with its contents (external id = id), and the given learners."""
    graph.seed(
        providers=[{"id": PLATFORM_PROVIDER, "displayName": "Platforms", "isCourseActivitySyncEnabled": True}],
        contents=[
            {"id": f"content-{external_id}", "externalId": external_id, "learningProviderId": PLATFORM_PROVIDER}
            for external_id in content_ids
        ],
        users=users or [],
    )


async def post(function: str, registration_id: str, body: Any, headers: dict[str, str]) -> HttpCall:
    """A platform's POST through the app's HTTP function; a body that is not text or bytes is sent as JSON."""
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return await call_http_async(function, "POST", {"registrationId": registration_id}, body=data, headers=headers)


def basic(user: str = SCORM_USER, password: str = SCORM_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class KeySetServer:
    """Serves a JWK set on loopback, as Instructure publishes its keys; the test changes what it serves."""

    url: str
    keys: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    requests: int = 0


@contextmanager
def key_set_server() -> Iterator[KeySetServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    served = KeySetServer(f"http://127.0.0.1:{server.server_address[1]}/jwks")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests += 1
            body = json.dumps(served.keys).encode()
            self.send_response(served.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()

"""``python -m devtools.dev`` (scripts/dev): the connector on the embedded default, until Ctrl-C.

Starts Azurite on its standard ports (or reuses one already listening there), the Graph sandbox on port 8765 seeded
with the reference page's example tenant and answering as the managed identity, and the app on port 7071 through
``func start`` when Azure Functions Core Tools are installed, else the project's runner.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from contextlib import ExitStack, suppress
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "local.settings.json"
EXAMPLE_SETTINGS = ROOT / "local.settings.example.json"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.dev", description=__doc__)
    parser.add_argument("--port", type=int, default=7071, help="the app's HTTP port")
    parser.add_argument("--runner", action="store_true", help="use the project's runner even if `func` is installed")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwind (and stop the children) on SIGTERM too
    if not SETTINGS.exists():
        shutil.copyfile(EXAMPLE_SETTINGS, SETTINGS)
        print(f"created {SETTINGS.name} from {EXAMPLE_SETTINGS.name}", file=sys.stderr)
    values = json.loads(SETTINGS.read_text())["Values"]
    graph = urlsplit(values["GRAPH_BASE_URL"])

    from devtools.azurite import DEFAULT_PORTS, connection_string, start_azurite
    from sandbox.process import start_sandbox_process

    with ExitStack() as stack:
        if all(_listening(port) for port in DEFAULT_PORTS):
            print("Azurite is already listening on 10000-10002: using it", file=sys.stderr)
        else:
            stack.enter_context(start_azurite(ports=DEFAULT_PORTS))
        create_queues_and_tables(connection_string())
        sandbox = stack.enter_context(
            start_sandbox_process(
                seed_example=True,
                port=graph.port or 80,
                identity_header=values.get("IDENTITY_HEADER"),
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        )
        command = [sys.executable, "-m", "devtools.runner", "--port", str(args.port)]
        if args.runner:
            command.append("--runner")
        app = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
        stack.callback(_stop, app)
        ready = app.stdout.readline() if app.stdout else ""
        if not ready:
            print("the app did not start; see the messages above", file=sys.stderr)
            return 1
        threading.Thread(target=app.stdout.read, daemon=True).start()  # type: ignore[union-attr]  # keep the pipe drained
        http = json.loads(ready)["http"]
        registration_id = next(iter(json.loads(values["CONNECTOR_PROVIDERS"])))
        print(
            f"""
The connector is running (the local runner needs no function key).
  webhook:       POST {http}/api/providers/{registration_id}/course-activities
  xAPI (LRS):    {http}/api/providers/{registration_id}/xapi/
  platforms:     POST {http}/api/providers/{registration_id}/caliper, .../scorm-cloud, .../canvas
  Graph sandbox: {sandbox.graph_url}  (state: {sandbox.admin_url}/activities, requests: {sandbox.admin_url}/requests)
  storage:       Azurite on 127.0.0.1:10000-10002 (UseDevelopmentStorage=true)
  credentials:   local.settings.json (development only)

From another terminal, send the reference page's signed examples, or an xAPI statement:
  .venv/bin/python -m devtools.send --example 1
  .venv/bin/python -m devtools.send --example 2
  .venv/bin/python -m devtools.send --xapi-example
  .venv/bin/python -m devtools.send --caliper-example    # also --scorm-example, --canvas-example
then, a moment later, see the activities they updated (and those the platform examples created):
  curl -s {sandbox.admin_url}/activities/8ba2228a-e020-11ec-9d64-0242ac120003
  curl -s {sandbox.admin_url}/activities/9ca2228a-e020-11ec-9d64-0242ac120004
  curl -s '{sandbox.admin_url}/activities?providerId={registration_id}'
The README's "Local development" has more (your own files, making Graph fail).

Ctrl-C stops everything.""",
            flush=True,
        )
        with suppress(KeyboardInterrupt):
            app.wait()
    return 0


def create_queues_and_tables(connection_string: str) -> None:
    """What the host and the Bicep template create in Azure, so that a system can put a bare event on the queue
    (and an LRS client post a statement) before the first webhook call."""
    from azure.core.exceptions import ResourceExistsError
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    from connector.adapters.activity_store import TABLE_NAME
    from connector.domain.envelope import POISON_QUEUE_NAME, QUEUE_NAME

    queues = QueueServiceClient.from_connection_string(connection_string)
    for name in (QUEUE_NAME, POISON_QUEUE_NAME):
        with suppress(ResourceExistsError):
            queues.create_queue(name)
    with suppress(ResourceExistsError):
        TableServiceClient.from_connection_string(connection_string).create_table(TABLE_NAME)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    sys.exit(main())

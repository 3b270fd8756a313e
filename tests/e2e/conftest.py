"""The app run the way the host runs it: the project's runner in its own process, serving HTTP on a port and
feeding queue messages from Azurite with host.json's rules, updating the Graph sandbox over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from connector.adapters.activity_store import TABLE_NAME
from connector.domain.envelope import POISON_QUEUE_NAME, QUEUE_NAME
from tests.conftest import BASE_ENV

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_KEY = "e2e-function-key"


class RunningApp:
    def __init__(self, process: subprocess.Popen[str], url: str, azurite: Any) -> None:
        self.process = process
        self.url = url
        self.azurite = azurite
        self.output: list[str] = []
        self.reader: threading.Thread | None = None
        """Reads the app's log (stderr) into `output` until the process ends."""

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.azurite.connection_string, name)

    def queue_count(self, name: str) -> int:
        try:
            return self.queue(name).get_queue_properties().approximate_message_count
        except ResourceNotFoundError:
            return 0

    def peek(self, name: str) -> list[str]:
        try:
            return [m.content for m in self.queue(name).peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Polls until the condition returns something truthy; fails with the condition's name otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {getattr(condition, '__name__', condition)}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def app(azurite, sandbox, tmp_path_factory) -> Iterator[RunningApp]:
    _clear_storage(azurite.connection_string)  # what earlier tests left must not reach this app
    settings = tmp_path_factory.mktemp("e2e") / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {}}))
    env = {
        **os.environ,
        **BASE_ENV,
        "AzureWebJobsStorage": azurite.connection_string,
        "GRAPH_BASE_URL": sandbox.graph_url,
        **sandbox.identity_env(),
        "CONNECTOR_RUNNER_FUNCTION_KEY": FUNCTION_KEY,
    }
    command = [sys.executable, "-m", "devtools.runner", "--runner", "--port", "0", "--settings", str(settings)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = process.stdout.readline() if process.stdout else ""
    if not ready:
        raise RuntimeError(f"runner did not start: {process.stderr.read() if process.stderr else ''}")
    running = RunningApp(process, json.loads(ready)["http"], azurite)
    running.reader = threading.Thread(target=lambda: running.output.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    running.reader.start()
    yield running
    process.terminate()
    process.wait(30)


@pytest.fixture
def fresh(app, sandbox):
    """A clean tenant, queues and state for each test (the app keeps running)."""
    sandbox.admin.reset(seed_example=True)
    _clear_storage(app.azurite.connection_string)
    return app


def _clear_storage(connection_string: str) -> None:
    for name in (QUEUE_NAME, POISON_QUEUE_NAME):
        queue = QueueClient.from_connection_string(connection_string, name)
        try:
            queue.clear_messages()
        except ResourceNotFoundError:
            queue.create_queue()
    tables = TableServiceClient.from_connection_string(connection_string)
    if any(t.name == TABLE_NAME for t in tables.list_tables()):
        table = tables.get_table_client(TABLE_NAME)
        for entity in table.list_entities():
            table.delete_entity(entity["PartitionKey"], entity["RowKey"])

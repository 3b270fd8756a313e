"""The app's real functions against real parts: Azurite for queues and tables, the Graph sandbox over loopback
HTTP, and azure.identity's ManagedIdentityCredential against the sandbox's App Service identity endpoint."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableServiceClient
from azure.functions.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from connector import bootstrap
from connector.adapters.activity_store import TABLE_NAME
from connector.domain.envelope import POISON_QUEUE_NAME, QUEUE_NAME
from tests.conftest import BASE_ENV
from tests.support.functions import OutBinding, call_webhook, indexed
from tests.support.signing import signed_headers

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class QueueRun:
    """One invocation of the queue function: what it left in the poison binding, or what it raised."""

    poison: Any
    error: BaseException | None


class Connector:
    """The app wired to this test's Azurite and sandbox, with helpers that act as the host and as a provider."""

    def __init__(self, azurite: Any, sandbox: Any) -> None:
        self.azurite = azurite
        self.sandbox = sandbox
        self.graph = sandbox.admin

    def queue(self, name: str = QUEUE_NAME) -> QueueClient:
        return QueueClient.from_connection_string(self.azurite.connection_string, name)

    def post(self, registration_id: str, body: Any, **sign: Any):
        text = body if isinstance(body, str) else json.dumps(body)
        return call_webhook(registration_id, text, signed_headers(text, **sign))

    async def run(
        self, body: str | bytes, *, dequeue_count: int = 1, message_id: str = "m-1", inserted: datetime | None = None
    ) -> QueueRun:
        """Invokes the queue function the way the Python worker does."""
        message = QueueMessage(
            id=message_id,
            body=body.encode() if isinstance(body, str) else body,
            dequeue_count=dequeue_count,
            insertion_time=inserted or datetime.now(UTC),
            pop_receipt="receipt",
        )
        poison = OutBinding()
        try:
            await indexed()["apply_course_activity_update"].get_user_function()(message, poison)
        except Exception as exc:
            return QueueRun(poison.get(), exc)
        return QueueRun(poison.get(), None)

    async def deliver(self, registration_id: str, body: Any, **sign: Any) -> list[QueueRun]:
        """A provider's callback through the webhook function, then each message through the queue function."""
        reply = self.post(registration_id, body, **sign)
        assert reply.status == 202, reply.body
        return [await self.run(m, message_id=i) for m, i in zip(reply.messages, reply.body["ids"], strict=True)]

    async def messages(self, name: str = QUEUE_NAME) -> list[str]:
        async with self.queue(name) as queue:
            return [m.content async for m in queue.receive_messages(visibility_timeout=1)]

    async def drain(self) -> list[QueueRun]:
        """Runs every queued message through the queue function, as the host would, until the queue is empty."""
        runs = []
        while True:
            async with self.queue() as queue:
                batch = [m async for m in queue.receive_messages(max_messages=32, visibility_timeout=60)]
                for message in batch:
                    runs.append(await self.run(message.content, message_id=message.id))
                    await queue.delete_message(message)
            if not batch:
                return runs

    async def peek(self, name: str = QUEUE_NAME) -> list[str]:
        """The visible messages, left visible (up to 32)."""
        async with self.queue(name) as queue:
            return [m.content for m in await queue.peek_messages(max_messages=32)]

    async def count(self, name: str = QUEUE_NAME) -> int:
        async with self.queue(name) as queue:
            try:
                return (await queue.get_queue_properties()).approximate_message_count
            except ResourceNotFoundError:
                return 0

    async def status(self, registration_id: str, activity_id: str) -> dict[str, Any]:
        """What the status endpoint's use case answers for the activity (its auth is tested in test_status.py)."""
        from connector.app.status import activity_status

        reply = await activity_status(bootstrap.settings(), bootstrap.state_store(), registration_id, activity_id)
        assert reply.status == 200, reply.body
        return dict(reply.body)

    def patches(self) -> list[dict[str, Any]]:
        return self.graph.requests(method="PATCH")


@pytest_asyncio.fixture
async def connector(azurite, sandbox, monkeypatch) -> AsyncIterator[Connector]:
    """A clean tenant, empty queues and state, and the app's settings pointed at the real local parts."""
    env = {
        **BASE_ENV,
        "AzureWebJobsStorage": azurite.connection_string,
        "GRAPH_BASE_URL": sandbox.graph_url,
        **sandbox.identity_env(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sandbox.admin.reset(seed_example=True)
    await empty_storage(azurite)
    yield Connector(azurite, sandbox)
    await bootstrap.close()


async def empty_storage(azurite: Any) -> None:
    """Empty queues, and no state table (the first update creates it)."""
    for name in (QUEUE_NAME, POISON_QUEUE_NAME):
        async with QueueClient.from_connection_string(azurite.connection_string, name) as queue:
            with contextlib.suppress(ResourceExistsError):
                await queue.create_queue()
            await queue.clear_messages()
    async with TableServiceClient.from_connection_string(azurite.connection_string) as tables:
        with contextlib.suppress(ResourceNotFoundError):
            await tables.delete_table(TABLE_NAME)


@pytest.fixture
def graph(connector):
    return connector.graph


@pytest.fixture
def command_env(connector) -> dict[str, str]:
    """The environment an operator runs `python -m connector` with: the app's settings, pointed at the local parts."""
    return {
        **os.environ,
        **BASE_ENV,
        "PYTHONPATH": str(ROOT),
        "AzureWebJobsStorage": connector.azurite.connection_string,
        "GRAPH_BASE_URL": connector.sandbox.graph_url,
        **connector.sandbox.identity_env(),
    }


@pytest.fixture
def command(command_env, tmp_path):
    """Runs `python -m connector` in a clean directory with the app's settings, as `azd` hooks and admins do."""

    def run(*args: str, **overrides: str | None) -> subprocess.CompletedProcess[str]:
        """Runs the command; an override of None removes that variable."""
        changed = {**command_env, **overrides}
        return subprocess.run(
            [sys.executable, "-m", "connector", *args],
            cwd=tmp_path,
            env={name: value for name, value in changed.items() if value is not None},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run

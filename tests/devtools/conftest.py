"""Fixtures for the dev tooling tests: a real Azurite per test and the toy app run by devtools.runner."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue.aio import QueueServiceClient

from devtools.azurite import Azurite, start_azurite
from devtools.runner import Runner
from tests.support.waiting import wait_until as _wait_until

TOYAPP_DIR = Path(__file__).resolve().parent / "toyapp"


@pytest.fixture(scope="session")
def toy() -> ModuleType:
    """The toy app, imported under a unique name so it never collides with the project's function_app."""
    spec = importlib.util.spec_from_file_location("devtools_toyapp_function_app", TOYAPP_DIR / "function_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def azurite() -> Iterator[Azurite]:
    """A fresh in-memory Azurite on free ports, so tests never see each other's queues."""
    with start_azurite() as instance:
        yield instance


@pytest.fixture
async def queues(azurite: Azurite) -> AsyncIterator[QueueServiceClient]:
    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    yield service
    await service.close()


@pytest.fixture
async def make_runner(toy: ModuleType, azurite: Azurite) -> AsyncIterator[Callable[..., Awaitable[Runner]]]:
    """Start the toy app in-process: ``await make_runner(function_key=..., host_config=...)``."""
    toy.calls.clear()
    toy.concurrency.update(current=0, max=0)
    toy.gate = asyncio.Semaphore(0)
    runners: list[Runner] = []

    async def make(**kwargs: Any) -> Runner:
        kwargs.setdefault("settings", {"AzureWebJobsStorage": azurite.connection_string})
        kwargs.setdefault("port", 0)
        runner = Runner(toy.app, app_dir=TOYAPP_DIR, **kwargs)
        await runner.start()
        runners.append(runner)
        return runner

    yield make
    for _ in range(1000):  # let any gated invocation finish
        toy.gate.release()
    for runner in runners:
        await runner.stop(grace=10)


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[Any]]:
    """Poll a (sync or async) condition until it is truthy, failing after a deadline."""
    return _wait_until


class QueueProbe:
    """Read queues the way a test wants: raw texts, counts, existence."""

    def __init__(self, service: QueueServiceClient) -> None:
        self.service = service

    async def send(self, queue: str, body: bytes | str, *, encoding: str = "base64") -> str:
        """Send a message; returns its raw (encoded) text."""
        text, _ = await self.send_for_id(queue, body, encoding=encoding)
        return text

    async def send_for_id(self, queue: str, body: bytes | str, *, encoding: str = "base64") -> tuple[str, str]:
        """Send a message; returns its raw text and the message id storage gave it."""
        data = body.encode() if isinstance(body, str) else body
        text = base64.b64encode(data).decode() if encoding == "base64" else data.decode()
        client = self.service.get_queue_client(queue)
        with contextlib.suppress(ResourceExistsError):
            await client.create_queue()
        sent = await client.send_message(text)
        return text, sent.id

    async def peek(self, queue: str) -> list[str]:
        """Raw texts of the visible messages (nothing decoded); [] if the queue does not exist."""
        try:
            messages = await self.service.get_queue_client(queue).peek_messages(max_messages=32)
        except ResourceNotFoundError:
            return []
        return [m.content for m in messages]

    async def count(self, queue: str) -> int:
        """Approximate message count, visible or not (0 if the queue does not exist)."""
        try:
            props = await self.service.get_queue_client(queue).get_queue_properties()
        except ResourceNotFoundError:
            return 0
        return props.approximate_message_count

    async def count_is(self, queue: str, expected: int) -> bool:
        return await self.count(queue) == expected

    async def exists(self, queue: str) -> bool:
        try:
            await self.service.get_queue_client(queue).get_queue_properties()
        except ResourceNotFoundError:
            return False
        return True


@pytest.fixture
def probe(queues: QueueServiceClient) -> QueueProbe:
    return QueueProbe(queues)

"""Queue triggers and queue outputs on Azure Storage (Azurite locally), with the host's queue rules.

Reproduced from the host's queue listener and processor: ``batchSize`` messages per request, a new batch only when
at most ``newBatchThreshold`` are still in flight, an idle back-off from 100 ms doubling up to
``maxPollingInterval``; each received message hidden for 10 minutes, the lease renewed while the invocation runs;
the message deleted when the function succeeded; when it failed, visible again after ``visibilityTimeout``, or
moved to ``<queue>-poison`` (its body as stored) once storage's dequeue count reached ``maxDequeueCount``; a
message that cannot be decoded goes there at once. Outputs are sent after the function returned, creating a missing
queue as the host's output binding does. On shutdown, an invocation cancelled mid-way gives its message back at
once rather than when its lease runs out. How message texts become arguments and outputs: see
:mod:`devtools.runner.messages`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devtools.runner.config import QueueOptions, resolve_connection_string
from devtools.runner.indexing import FunctionSpec
from devtools.runner.invocation import Invoker, OutBinding
from devtools.runner.messages import bind_queue_trigger, decode_queue_body, encode_queue_values

log = logging.getLogger("devtools.runner")

LEASE_SECONDS = 600.0  # the host hides a message for 10 minutes while it is processed, renewing it


class QueueStorage:
    """Async queue clients shared by listeners and outputs (one service client per account), and the wake-up events
    of the runner's own listeners: a message the runner sends wakes the listeners of its queue at once, as the host's
    shared queue watcher does."""

    def __init__(self) -> None:
        self._services: dict[str, QueueServiceClient] = {}
        self._queues: dict[tuple[str, str], QueueClient] = {}
        self._existing: set[str] = set()
        self._session: aiohttp.ClientSession | None = None
        self._wake_ups: dict[str, list[asyncio.Event]] = collections.defaultdict(list)

    def _transport(self) -> Any:
        """One aiohttp session for every queue client, without `trust_env` (which reads ~/.netrc on every request,
        about a millisecond of CPU each): the host's own polling costs the app's process nothing in Azure, so the
        runner keeps its share small."""
        from azure.core.pipeline.transport import AioHttpTransport

        if self._session is None:
            self._session = aiohttp.ClientSession(
                trust_env=False, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
            )
        return AioHttpTransport(session=self._session, session_owner=False)

    def queue(self, connection_string: str, queue_name: str) -> QueueClient:
        key = (connection_string, queue_name)
        client = self._queues.get(key)
        if client is None:
            service = self._services.get(connection_string)
            if service is None:
                service = QueueServiceClient.from_connection_string(connection_string, transport=self._transport())
                self._services[connection_string] = service
            client = service.get_queue_client(queue_name)
            self._queues[key] = client
        return client

    @staticmethod
    def key(client: QueueClient) -> str:
        return client.url.rstrip("/").lower()

    def listen(self, client: QueueClient) -> asyncio.Event:
        """An event set whenever the runner has sent messages to ``client``'s queue."""
        wake_up = asyncio.Event()
        self._wake_ups[self.key(client)].append(wake_up)
        return wake_up

    def wake(self, client: QueueClient) -> None:
        for wake_up in self._wake_ups.get(self.key(client), ()):
            wake_up.set()

    async def send(self, client: QueueClient, text: str) -> None:
        """Send one message, creating the queue when it does not exist (as the host's output binding does)."""
        try:
            await client.send_message(text)
        except ResourceNotFoundError:
            await self.ensure_queue(client)
            await client.send_message(text)
        self._existing.add(self.key(client))

    async def ensure_queue(self, client: QueueClient) -> None:
        if self.key(client) in self._existing:
            return
        with contextlib.suppress(ResourceExistsError):
            await client.create_queue()
        self._existing.add(self.key(client))

    async def close(self) -> None:
        for service in self._services.values():
            with contextlib.suppress(Exception):
                await service.close()
        self._services.clear()
        self._queues.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


class QueueOutputs:
    """Sends a function's queue outputs once it returned (``settings`` resolve their connections)."""

    def __init__(self, storage: QueueStorage, settings: Mapping[str, str], encoding: str) -> None:
        self._storage = storage
        self._settings = settings
        self._encoding = encoding

    async def send(self, spec: FunctionSpec, outs: Mapping[str, OutBinding], result: Any) -> None:
        pending: list[tuple[QueueClient, list[str]]] = []
        # Convert everything first, so a bad value sends nothing rather than part of the output.
        for output in spec.queue_outputs:
            value = result if output.name == "$return" else outs[output.name].get()
            texts = encode_queue_values(value, self._encoding)
            if texts:
                connection = resolve_connection_string(output.connection, self._settings)
                pending.append((self._storage.queue(connection, output.queue_name), texts))
        for client, texts in pending:
            for text in texts:
                await self._storage.send(client, text)
            self._storage.wake(client)  # a local listener polls at once


class _Lease:
    """A received message's current pop receipt, renewed while the invocation runs."""

    def __init__(self, pop_receipt: str) -> None:
        self.pop_receipt = pop_receipt
        self.lock = asyncio.Lock()
        self.closed = False


class QueueListener:
    """Polls the queue of one queue-triggered function and settles each message as the host does."""

    def __init__(
        self,
        spec: FunctionSpec,
        connection_string: str,
        *,
        storage: QueueStorage,
        invoker: Invoker,
        options: QueueOptions,
        lease_seconds: float,
        min_polling_interval: float,
    ) -> None:
        self.spec = spec
        self.client = storage.queue(connection_string, spec.queue_name)
        self.in_flight: set[asyncio.Task[None]] = set()
        self._poison = storage.queue(connection_string, f"{spec.queue_name}-poison")
        self._storage = storage
        self._invoker = invoker
        self._stats = invoker.stats
        self._options = options
        self._lease_seconds = lease_seconds
        self._first_delay = min(min_polling_interval, options.max_polling_interval)
        self._wake_up = storage.listen(self.client)
        self._stopping = asyncio.Event()
        self._poll_errors = 0

    def stop(self) -> None:
        """No new polls; :meth:`run` returns once the messages in flight are settled."""
        self._stopping.set()
        self._wake_up.set()

    async def run(self) -> None:
        delay = self._first_delay
        try:
            while not self._stopping.is_set():
                await self._wait_for_room()
                if self._stopping.is_set():
                    break
                self._wake_up.clear()
                messages = await self._receive(self._options.batch_size)
                if messages:
                    delay = self._first_delay
                    for message in messages:
                        self._start(message)
                    continue
                self._stats[(self.spec.name, "empty_polls")] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_up.wait(), delay)
                delay = min(delay * 2, self._options.max_polling_interval)
        finally:
            if self.in_flight:
                await asyncio.gather(*self.in_flight, return_exceptions=True)

    async def has_messages(self) -> bool:
        """Whether the queue holds messages, visible or not (a queue that does not exist holds none)."""
        try:
            properties = await self.client.get_queue_properties()
        except ResourceNotFoundError:
            return False
        return bool(properties.approximate_message_count)

    async def _wait_for_room(self) -> None:
        """Fetch a new batch only when at most newBatchThreshold messages are still in flight."""
        while len(self.in_flight) > self._options.new_batch_threshold and not self._stopping.is_set():
            self._wake_up.clear()
            waiter = asyncio.create_task(self._wake_up.wait())
            try:
                await asyncio.wait([*self.in_flight, waiter], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    def _start(self, message: Any) -> None:
        task = asyncio.create_task(self._process(message), name=f"{self.spec.name}:{message.id}")
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _receive(self, count: int) -> list[Any]:
        try:
            pages = self.client.receive_messages(
                messages_per_page=count, visibility_timeout=int(self._lease_seconds)
            ).by_page()
            try:
                page = await pages.__anext__()
            except StopAsyncIteration:
                return []
            messages = [m async for m in page]
        except ResourceNotFoundError:
            self._note_poll_error(f"queue {self.spec.queue_name!r} does not exist (yet)", logging.INFO)
            return []
        except Exception as exc:
            self._note_poll_error(f"polling {self.spec.queue_name!r} failed: {exc}", logging.WARNING)
            return []
        self._poll_errors = 0
        return messages

    def _note_poll_error(self, message: str, level: int) -> None:
        if self._poll_errors == 0:  # once per streak, not on every back-off tick
            log.log(level, "%s: %s", self.spec.name, message)
        self._poll_errors += 1

    async def _process(self, message: Any) -> None:
        lease = _Lease(message.pop_receipt)
        renewer = asyncio.create_task(self._renew(message.id, lease))
        try:
            succeeded = await self._run_function(message)
            await self._close_lease(lease, renewer)
            await self._settle(message, lease, succeeded)
        except asyncio.CancelledError:
            # Shutting down mid-invocation: give the message back rather than waiting for the lease.
            await self._close_lease(lease, renewer)
            with contextlib.suppress(Exception):
                await asyncio.shield(self.client.update_message(message.id, lease.pop_receipt, visibility_timeout=0))
            raise
        except Exception:
            log.exception("Functions.%s: completing message %s failed", self.spec.name, message.id)
        finally:
            renewer.cancel()

    async def _run_function(self, message: Any) -> bool | None:
        """Whether the function succeeded on the message; None when the message cannot be decoded."""
        encoding = self._options.message_encoding
        try:
            body = decode_queue_body(message.content, encoding)
        except ValueError as exc:
            log.error(
                "Functions.%s: message %s cannot be decoded as %s (%s): moving it to '%s-poison'",
                self.spec.name, message.id, encoding, exc, self.spec.queue_name,
            )  # fmt: skip
            return None
        try:
            trigger = bind_queue_trigger(self.spec, message, body)
        except Exception as exc:
            log.error(
                "Executed 'Functions.%s' (Failed): binding message %s failed: %r", self.spec.name, message.id, exc
            )
            self._stats[(self.spec.name, "failed")] += 1
            return False
        succeeded, _ = await self._invoker.invoke(self.spec, trigger, reason="New queue message")
        return succeeded

    async def _settle(self, message: Any, lease: _Lease, succeeded: bool | None) -> None:
        """Deletes the message, makes it visible again after visibilityTimeout, or moves it to the poison queue."""
        if succeeded:
            await self.client.delete_message(message.id, lease.pop_receipt)
        elif succeeded is None or self._last_attempt(message):
            await self._to_poison(message, lease)
        else:
            await self.client.update_message(
                message.id, lease.pop_receipt, visibility_timeout=int(self._options.visibility_timeout)
            )

    def _last_attempt(self, message: Any) -> bool:
        """Whether storage's dequeue count reached maxDequeueCount (logged as the host logs it)."""
        if (message.dequeue_count or 0) < self._options.max_dequeue_count:
            return False
        log.warning(
            "Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s-poison'.",
            message.id, self._options.max_dequeue_count, self.spec.queue_name,
        )  # fmt: skip
        return True

    async def _to_poison(self, message: Any, lease: _Lease) -> None:
        await self._storage.send(self._poison, message.content or "")  # the same body, as stored
        await self.client.delete_message(message.id, lease.pop_receipt)
        self._storage.wake(self._poison)

    async def _renew(self, message_id: str, lease: _Lease) -> None:
        interval = max(self._lease_seconds / 2, 0.5)
        while True:
            await asyncio.sleep(interval)
            async with lease.lock:
                if lease.closed:
                    return
                try:
                    receipt = await self.client.update_message(
                        message_id, lease.pop_receipt, visibility_timeout=int(self._lease_seconds)
                    )
                    lease.pop_receipt = receipt.pop_receipt or lease.pop_receipt
                    self._stats[(self.spec.name, "lease_renewed")] += 1
                except Exception as exc:
                    log.warning("renewing the lease of message %s failed: %s", message_id, exc)

    @staticmethod
    async def _close_lease(lease: _Lease, renewer: asyncio.Task[None]) -> None:
        async with lease.lock:
            lease.closed = True
        renewer.cancel()

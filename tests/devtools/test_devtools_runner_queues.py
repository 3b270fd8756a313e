"""devtools.runner queue triggers on a real Azurite: flush, retries, poison, encoding, concurrency, timeout."""

from __future__ import annotations

import asyncio
import base64

import httpx


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_sync_queue_trigger_processes_and_flushes_its_output(make_runner, probe, toy, wait_until):
    await make_runner()
    await probe.send("work-in", "job-1")
    assert await wait_until(lambda: probe.peek("work-out"), what="work-out message") == [b64("sync:job-1")]
    await wait_until(lambda: probe.count_is("work-in", 0), what="work-in message deleted")
    [call] = [c for c in toy.calls if c["function"] == "work_sync"]
    assert call["body"] == "job-1"
    assert call["dequeue_count"] == 1
    assert call["type"] == "azure.functions.queue.QueueMessage"  # what the real worker passes
    assert call["thread"].startswith("func-worker")


async def test_async_queue_trigger_runs_on_the_loop(make_runner, probe, toy, wait_until):
    await make_runner()
    await probe.send("work-async-in", "job-2")
    assert await wait_until(lambda: probe.peek("work-out"), what="work-out message") == [b64("async:job-2")]
    await wait_until(lambda: probe.count_is("work-async-in", 0), what="work-async-in message deleted")
    [call] = [c for c in toy.calls if c["function"] == "work_async"]
    assert call["body"] == "job-2"
    assert not call["thread"].startswith("func-worker")


async def test_message_encoding_none_reads_and_writes_raw_text(make_runner, probe, toy, wait_until):
    await make_runner(
        host_config={"extensions": {"queues": {"messageEncoding": "none", "maxPollingInterval": "00:00:00.200"}}}
    )
    await probe.send("work-in", "raw body", encoding="none")
    assert await wait_until(lambda: probe.peek("work-out"), what="work-out message") == ["sync:raw body"]
    assert [c["body"] for c in toy.calls] == ["raw body"]


async def test_failing_message_is_retried_then_poisoned_with_the_same_body(make_runner, probe, toy, wait_until):
    runner = await make_runner()  # toy host.json: maxDequeueCount 2, visibilityTimeout 0
    sent = await probe.send("fail-in", "payload-1")
    poisoned = await wait_until(lambda: probe.peek("fail-in-poison"), what="poison message")
    assert poisoned == [sent]  # the same raw (base64) text, not re-encoded
    await wait_until(lambda: probe.count_is("fail-in", 0), what="fail-in message deleted")
    attempts = [c for c in toy.calls if c["function"] == "always_fails"]
    assert [c["dequeue_count"] for c in attempts] == [1, 2]
    assert {c["id"] for c in attempts} == {attempts[0]["id"]}
    assert {c["body"] for c in attempts} == {"payload-1"}
    # The function set its output before raising: nothing was sent, on either attempt.
    assert await probe.peek("fail-out") == []
    assert runner.stats[("always_fails", "failed")] == 2


async def test_visibility_timeout_delays_the_retry(make_runner, probe, toy, wait_until):
    await make_runner(
        host_config={
            "extensions": {
                "queues": {"maxDequeueCount": 2, "visibilityTimeout": "00:00:02", "maxPollingInterval": "00:00:00.200"}
            }
        }
    )
    await probe.send("fail-in", "later")
    await wait_until(lambda: len(toy.calls) == 1, what="first attempt")
    # After the failure the message exists but is invisible for ~2 s (peek sees only visible ones).
    await wait_until(lambda: probe.count_is("fail-in", 1), what="message kept")
    assert await probe.peek("fail-in") == []
    assert len(toy.calls) == 1
    await wait_until(lambda: probe.peek("fail-in-poison"), what="poison after the delayed retry")
    assert [c["dequeue_count"] for c in toy.calls] == [1, 2]


async def test_undecodable_base64_goes_straight_to_poison(make_runner, probe, toy, wait_until):
    await make_runner()
    await probe.send("work-in", "not base64 !!", encoding="none")
    assert await wait_until(lambda: probe.peek("work-in-poison"), what="poison") == ["not base64 !!"]
    await wait_until(lambda: probe.count_is("work-in", 0), what="work-in message deleted")
    assert toy.calls == []
    assert await probe.peek("work-out") == []


async def test_batch_size_plus_threshold_bounds_concurrency(make_runner, probe, toy, wait_until):
    await make_runner(
        host_config={
            "extensions": {"queues": {"batchSize": 2, "newBatchThreshold": 1, "maxPollingInterval": "00:00:00.100"}}
        }
    )
    for i in range(8):
        await probe.send("slow-in", f"m{i}")
    # First batch: 2 in flight (> threshold 1), so no new fetch until one finishes.
    await wait_until(lambda: toy.concurrency["current"] == 2, what="first batch in flight")
    assert len(toy.calls) == 2
    toy.gate.release()
    # One done -> 1 in flight (<= threshold) -> a new batch of 2 -> 3 in flight = batchSize + threshold.
    await wait_until(lambda: toy.concurrency["current"] == 3, what="second batch in flight")
    for _ in range(8):
        toy.gate.release()
    await wait_until(lambda: len(toy.calls) == 8, what="all 8 messages invoked")
    await wait_until(lambda: probe.count_is("slow-in", 0), what="all 8 messages deleted")
    assert toy.concurrency["max"] == 3
    assert sorted(c["body"] for c in toy.calls) == [f"m{i}" for i in range(8)]


async def test_function_timeout_fails_the_invocation(make_runner, probe, toy, wait_until):
    runner = await make_runner(
        host_config={
            "functionTimeout": "00:00:00.300",
            "extensions": {"queues": {"maxDequeueCount": 2, "maxPollingInterval": "00:00:00.100"}},
        }
    )
    sent = await probe.send("slow-in", "never released")
    assert await wait_until(lambda: probe.peek("slow-in-poison"), what="poison after timeouts") == [sent]
    assert [c["dequeue_count"] for c in toy.calls] == [1, 2]
    assert runner.stats[("slow", "failed")] == 2
    assert toy.concurrency["current"] == 0  # the async invocations were cancelled


async def test_lease_is_renewed_while_a_long_invocation_runs(make_runner, probe, toy, wait_until):
    runner = await make_runner(lease_seconds=1)
    await probe.send("slow-in", "long")
    await wait_until(lambda: len(toy.calls) == 1, what="invocation started")
    # Without renewal the 1 s lease would lapse and the message be delivered again.
    await wait_until(lambda: runner.stats[("slow", "lease_renewed")] >= 4, within=30, what="renewals")
    assert len(toy.calls) == 1
    assert await probe.peek("slow-in") == []
    toy.gate.release()
    await wait_until(lambda: probe.count_is("slow-in", 0), what="message deleted with the renewed receipt")
    assert runner.stats[("slow", "succeeded")] == 1
    assert [c["dequeue_count"] for c in toy.calls] == [1]


async def test_output_to_a_watched_queue_wakes_its_poller(make_runner, probe, toy, wait_until):
    # The first idle back-off step is 10 s: only the local wake-up can make the trigger fire sooner.
    runner = await make_runner(
        min_polling_interval=10.0,
        host_config={"extensions": {"queues": {"maxPollingInterval": "00:01:00"}}},
    )
    await wait_until(lambda: runner.stats[("work_sync", "empty_polls")] >= 1, what="work_sync idle")
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        assert (await client.post("/api/enqueue-work", content="woken")).status_code == 202
    assert await wait_until(lambda: probe.peek("work-out"), within=5, what="processed") == [b64("sync:woken")]


async def test_drain_waits_for_retries_and_poison(make_runner, probe, toy):
    runner = await make_runner()
    await probe.send("work-in", "a")
    await probe.send("fail-in", "b")
    async with asyncio.timeout(30):
        await runner.drain()
    assert await probe.count("work-in") == 0
    assert await probe.count("fail-in") == 0
    assert await probe.peek("fail-in-poison") == [b64("b")]
    assert await probe.peek("work-out") == [b64("sync:a")]


async def test_stop_waits_for_in_flight_invocations(make_runner, probe, toy, wait_until):
    runner = await make_runner()
    port = runner.http_port
    await probe.send("slow-in", "in flight")
    await wait_until(lambda: toy.concurrency["current"] == 1, what="invocation started")
    stopping = asyncio.create_task(runner.stop())

    async def refused() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return True
        writer.close()
        return False

    await wait_until(refused, what="HTTP listener closed")  # stop() is under way...
    assert not stopping.done()  # ...but waits for the running invocation
    toy.gate.release()
    await asyncio.wait_for(stopping, 20)
    assert runner.stats[("slow", "succeeded")] == 1
    assert await probe.count("slow-in") == 0


async def test_stop_grace_exceeded_gives_the_message_back(make_runner, probe, toy, wait_until):
    runner = await make_runner()
    await probe.send("slow-in", "interrupted")
    await wait_until(lambda: toy.concurrency["current"] == 1, what="invocation started")
    await runner.stop(grace=0.2)
    # Released at once (not after the 10-minute lease), without counting as a processed message.
    assert await wait_until(lambda: probe.peek("slow-in"), within=5, what="message visible again") == [
        b64("interrupted")
    ]
    assert runner.stats[("slow", "succeeded")] == 0

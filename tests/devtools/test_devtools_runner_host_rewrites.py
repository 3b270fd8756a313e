"""What the real Functions host does to queue messages and requests, reproduced by devtools.runner.

The .NET host cannot run here: the expected values follow its source (WebJobs.Script, the queue extension and
Json.NET), the Python worker's issues #1373 and #1492 and the host's #4926. Everything else is real: the toy app
run by the runner, Azurite and HTTP over loopback.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
import pytest


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def decoded(texts: list[str]) -> list[str]:
    return [base64.b64decode(text).decode() for text in texts]


# ---------------------------------------------------------------------------------------- trigger metadata
async def test_a_json_message_s_top_level_id_replaces_the_message_id_ignoring_case(make_runner, probe, toy, wait_until):
    await make_runner()
    bodies = ['{"id": "event-1"}', '{"ID": "event-2", "Id": "event-3"}', '[{"id": "in an array"}]', '{"id": 1']
    sent = {body: await probe.send_for_id("work-in", body) for body in bodies}
    await wait_until(lambda: len(toy.calls) == 4, what="4 invocations")
    seen = {call["body"]: call["id"] for call in toy.calls}
    assert seen['{"id": "event-1"}'] == "event-1"
    assert seen['{"ID": "event-2", "Id": "event-3"}'] == "event-3"  # the last one of the names that match
    # Not a JSON object: the id is storage's.
    assert seen['[{"id": "in an array"}]'] == sent['[{"id": "in an array"}]'][1]
    assert seen['{"id": 1'] == sent['{"id": 1'][1]
    assert {call["dequeue_count"] for call in toy.calls} == {1}


async def test_message_properties_reach_the_metadata_as_the_host_converts_them(make_runner, probe, toy, wait_until):
    await make_runner()
    body = json.dumps(
        {
            "id": "2024-01-02T03:04:05.5Z",  # a date to Json.NET, cast back to text in the invariant culture
            "popReceipt": {"at": "2024-01-02T03:04:05.000Z"},  # an object: JSON to the worker, str() of a dict
            "dequeueCount": 7,  # text "7", which the worker turns into an int
            "nextVisibleTime": None,  # null: ignored
            "insertionTime": ["ignored"],  # arrays are ignored
        }
    )
    before = datetime.now(UTC).replace(microsecond=0)
    await probe.send("work-in", body)
    (call,) = await wait_until(lambda: toy.calls, what="invocation")
    assert call["id"] == "01/02/2024 03:04:05"
    assert call["pop_receipt"] == "{'at': '2024-01-02T03:04:05Z'}"
    assert call["dequeue_count"] == 7
    assert call["insertion_time"] >= before  # storage's, as an aware UTC datetime
    assert call["insertion_time"].tzinfo is UTC
    assert call["time_next_visible"] > call["insertion_time"]
    assert call["expiration_time"] > call["time_next_visible"]
    await wait_until(lambda: probe.count_is("work-in", 0), what="message deleted")


async def test_the_poison_decision_uses_storage_s_dequeue_count_not_the_message_s(make_runner, probe, toy, wait_until):
    await make_runner()  # toy host.json: maxDequeueCount 2
    sent = await probe.send("fail-in", '{"dequeueCount": 1}')
    assert await wait_until(lambda: probe.peek("fail-in-poison"), what="poison") == [sent]
    assert [call["dequeue_count"] for call in toy.calls] == [1, 1]


@pytest.mark.parametrize(
    "body",
    [
        b'{"dequeueCount": "x"}',  # the worker: int("x") fails
        b'{"DEQUEUECOUNT": 2.5}',
        b'{"insertionTime": "2024-01-02T03:04:05Z"}',  # reaches the worker as "01/02/2024 03:04:05": no format fits
        b'{"expirationTime": {"a": 1}}',
        b'\xff{"id": "x"}',  # not UTF-8: the host's string binding fails
    ],
)
async def test_a_message_the_host_or_worker_cannot_bind_fails_without_invoking(
    make_runner, probe, toy, wait_until, body
):
    runner = await make_runner()
    sent = await probe.send("work-in", body)
    assert await wait_until(lambda: probe.peek("work-in-poison"), what="poison after 2 attempts") == [sent]
    await wait_until(lambda: probe.count_is("work-in", 0), what="work-in message deleted")
    assert toy.calls == []
    assert runner.stats[("work_sync", "failed")] == 2
    assert await probe.peek("work-out") == []


async def test_a_binary_trigger_gets_any_bytes_and_storage_s_metadata(make_runner, probe, toy, wait_until):
    await make_runner()  # dataType "binary": the host binds bytes and reads no properties from them
    _, json_id = await probe.send_for_id("binary-in", '{"id": "event-1", "dequeueCount": "x"}')
    _, bytes_id = await probe.send_for_id("binary-in", b'\xff{"id": "x"}')
    await wait_until(lambda: len(toy.calls) == 2, what="2 invocations")
    assert {call["id"] for call in toy.calls} == {json_id, bytes_id}
    assert {call["dequeue_count"] for call in toy.calls} == {1}
    await wait_until(lambda: probe.count_is("binary-in", 0), what="messages deleted")


# ------------------------------------------------------------------------------------------ string outputs
async def test_a_json_string_output_is_written_back_as_json_net_writes_it(make_runner, probe):
    runner = await make_runner()
    text = (
        '{"id":"e1","at":"2024-05-08T10:00:31.000000Z","seven":"2024-05-08T10:00:31.1234567Z",'
        '"offset":"2024-05-08T12:00:31.1200000+02:00","local":"2024-05-08T10:00:31","n":1.0,"big":1e15,'
        '"text":"caf\u00e9\u2028","nested":{"list":[1,true,null],"empty":{}}}'
    )
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        assert (await client.post("/api/enqueue", content=text.encode())).status_code == 202
    assert decoded(await probe.peek("http-out")) == [
        "{\n"
        '  "id": "e1",\n'
        '  "at": "2024-05-08T10:00:31Z",\n'
        '  "seven": "2024-05-08T10:00:31.1234567Z",\n'
        '  "offset": "2024-05-08T10:00:31.12+00:00",\n'
        '  "local": "2024-05-08T10:00:31",\n'
        '  "n": 1.0,\n'
        '  "big": 1E+15,\n'
        '  "text": "caf\u00e9\\u2028",\n'
        '  "nested": {\n'
        '    "list": [\n'
        "      1,\n"
        "      true,\n"
        "      null\n"
        "    ],\n"
        '    "empty": {}\n'
        "  }\n"
        "}"
    ]


async def test_a_json_array_string_output_becomes_one_message_per_element(make_runner, probe):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.post("/api/enqueue", content=b'[{"a": 1}, "text", 2.50, null, "2024-05-08T10:00:31Z"]')
    assert response.status_code == 202
    assert decoded(await probe.peek("http-out")) == ['{\n  "a": 1\n}', "text", "2.5", "", "05/08/2024 10:00:31"]


async def test_the_strings_of_a_list_output_are_written_as_they_are(make_runner, probe):
    runner = await make_runner()
    messages = ['{"at": "2024-05-08T10:00:31.000000Z"}', "[1, 2]", "plain"]
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.post("/api/enqueue", params={"many": "1"}, content=json.dumps(messages))
    assert response.status_code == 202
    assert decoded(await probe.peek("http-out")) == messages


async def test_a_string_output_that_looks_like_json_but_is_not_fails_the_invocation(make_runner, probe):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.post("/api/enqueue", content=b"{not json}")
    assert response.status_code == 500
    assert runner.stats[("enqueue", "failed")] == 1
    assert not await probe.exists("http-out")


# ----------------------------------------------------------------------------------------------- HTTP body
async def test_a_body_without_content_length_does_not_reach_the_function(make_runner):
    runner = await make_runner()

    async def chunks():
        yield b'{"signed": '
        yield b"true}"

    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        chunked = await client.post("/api/echo", content=chunks())
        empty = await client.post("/api/echo", content=b"")
        with_length = await client.post("/api/echo", content=b'{"signed": true}')
    assert chunked.status_code == 200
    assert chunked.json()["body"] == ""
    assert chunked.json()["headers"]["transfer-encoding"] == "chunked"  # the headers still pass
    assert "content-length" not in chunked.json()["headers"]
    assert empty.json()["body"] == ""
    assert with_length.json()["body"] == '{"signed": true}'

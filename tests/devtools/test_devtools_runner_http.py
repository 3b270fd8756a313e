"""devtools.runner HTTP triggers against the toy app, with a real Azurite for the queue outputs."""

from __future__ import annotations

import base64
import json
import threading

import httpx


async def test_route_parameter_and_query_reach_the_async_function(make_runner):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.get("/api/hello/Ada%20L?x=1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-toy"] == "async"
    payload = response.json()
    assert payload["route_params"] == {"name": "Ada L"}
    assert payload["params"] == {"x": "1"}
    # async def functions run on the runner's event loop (this test's loop, in this thread).
    assert payload["thread"] == threading.current_thread().name


async def test_sync_function_runs_in_the_worker_thread_pool(make_runner):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.post("/api/sync/hello/bob", content=b"ignored")
    assert response.status_code == 200
    payload = response.json()
    assert payload == {
        "kind": "sync",
        "route_params": {"name": "bob"},
        "params": {},
        "method": "POST",
        "thread": payload["thread"],
    }
    assert payload["thread"].startswith("func-worker")


async def test_string_return_and_context_parameter(make_runner):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        public = await client.get("/api/public")
        ctx = await client.get("/api/ctx")
    assert (public.status_code, public.text) == (200, "public")
    assert public.headers["content-type"].startswith("text/plain")
    assert ctx.status_code == 200
    assert ctx.json()["function_name"] == "with_context"
    assert len(ctx.json()["id"]) == 36


async def test_route_constraints_and_optional_segment(make_runner):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        without = await client.get("/api/items/12")
        with_label = await client.get("/api/items/12/red/")
        not_an_int = await client.get("/api/items/abc")
    assert without.status_code == 200
    assert without.json()["route_params"] == {"id": "12"}
    assert with_label.json()["route_params"] == {"id": "12", "label": "red"}
    assert not_an_int.status_code == 404


async def test_unknown_route_404_wrong_method_405_exception_500(make_runner):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        unknown = await client.get("/api/nope")
        outside_prefix = await client.get("/hello/bob")
        wrong_method = await client.delete("/api/hello/bob")
        failing = await client.get("/api/boom")
    assert unknown.status_code == 404
    assert outside_prefix.status_code == 404
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET"
    assert failing.status_code == 500
    assert runner.stats[("boom", "failed")] == 1


async def test_function_key_enforced_when_configured(make_runner):
    runner = await make_runner(function_key="s3cret")
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        missing = await client.get("/api/hello/bob")
        wrong = await client.get("/api/hello/bob", params={"code": "nope"})
        by_query = await client.get("/api/hello/bob", params={"code": "s3cret"})
        by_header = await client.get("/api/hello/bob", headers={"x-functions-key": "s3cret"})
        anonymous = await client.get("/api/public")
    assert (missing.status_code, missing.content) == (401, b"")
    assert (wrong.status_code, wrong.content) == (401, b"")
    assert by_query.status_code == 200
    assert by_header.status_code == 200
    assert anonymous.status_code == 200


async def test_no_key_configured_means_no_check(make_runner):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.get("/api/hello/bob")
    assert response.status_code == 200


async def test_route_prefix_from_host_json(make_runner):
    runner = await make_runner(host_config={"extensions": {"http": {"routePrefix": ""}}})
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        bare = await client.get("/hello/bob")
        prefixed = await client.get("/api/hello/bob")
    assert bare.status_code == 200
    assert prefixed.status_code == 404


async def test_queue_output_is_base64_encoded_by_default(make_runner, probe):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.post("/api/enqueue", content="héllo wörld".encode())
    assert response.status_code == 202
    # The flush happens before the response: the message is already there.
    assert await probe.peek("http-out") == [base64.b64encode("héllo wörld".encode()).decode()]


async def test_queue_output_list_sends_one_message_each(make_runner, probe):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.post("/api/enqueue", params={"many": "1"}, content=json.dumps(["a", "b", "c"]))
    assert response.status_code == 202
    assert [base64.b64decode(t).decode() for t in await probe.peek("http-out")] == ["a", "b", "c"]


async def test_queue_output_with_message_encoding_none(make_runner, probe):
    runner = await make_runner(host_config={"extensions": {"queues": {"messageEncoding": "none"}}})
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.post("/api/enqueue", content="plain text")
    assert response.status_code == 202
    assert await probe.peek("http-out") == ["plain text"]


async def test_nothing_is_output_when_the_function_raises(make_runner, probe):
    runner = await make_runner()
    async with httpx.AsyncClient(base_url=runner.http_url) as client:
        response = await client.post("/api/enqueue-then-fail", content="x")
    assert response.status_code == 500
    # A flush would have happened before the 500 was sent; the queue was never even created.
    assert not await probe.exists("http-fail-out")
    assert await probe.peek("http-fail-out") == []

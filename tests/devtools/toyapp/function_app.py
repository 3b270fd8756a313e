"""A toy v2-model function app that exercises the local runner (devtools.runner) in tests.

The tests load it in-process and inspect ``calls``; ``gate`` (an asyncio.Semaphore set by the tests)
holds ``slow`` invocations until released.
"""

import asyncio
import json
import threading

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

STORAGE = "AzureWebJobsStorage"

# What the queue functions saw, in order: dicts with function, body, the message's metadata, type, thread.
calls: list[dict] = []
# Concurrency of `slow`, and the gate it waits on (replaced by the tests).
concurrency = {"current": 0, "max": 0}
gate: asyncio.Semaphore | None = None


def _record(function: str, msg: func.QueueMessage) -> None:
    calls.append(
        {
            "function": function,
            "id": msg.id,
            "body": msg.get_body().decode("utf-8", "replace"),
            "dequeue_count": msg.dequeue_count,
            "pop_receipt": msg.pop_receipt,
            "insertion_time": msg.insertion_time,
            "expiration_time": msg.expiration_time,
            "time_next_visible": msg.time_next_visible,
            "type": f"{type(msg).__module__}.{type(msg).__qualname__}",
            "thread": threading.current_thread().name,
        }
    )


def _describe(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    payload = {
        "kind": kind,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "method": req.method,
        "thread": threading.current_thread().name,
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json", headers={"X-Toy": kind})


# ---------------------------------------------------------------------------------------------- HTTP
@app.route(route="hello/{name}", methods=["GET"])
async def hello_async(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return _describe(req, "async")


@app.route(route="sync/hello/{name}", methods=["GET", "POST"])
def hello_sync(req: func.HttpRequest) -> func.HttpResponse:
    return _describe(req, "sync")


@app.route(route="public", auth_level=func.AuthLevel.ANONYMOUS)
def public(req: func.HttpRequest) -> str:
    return "public"


@app.route(route="items/{id:int}/{label?}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def items(req: func.HttpRequest) -> func.HttpResponse:
    return _describe(req, "items")


@app.route(route="echo", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"body": req.get_body().decode("utf-8"), "headers": dict(req.headers)}))


@app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom (expected by the test)")


@app.route(route="ctx", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"function_name": context.function_name, "id": context.invocation_id}))


@app.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="out", queue_name="http-out", connection=STORAGE)
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    text = req.get_body().decode("utf-8")
    out.set(json.loads(text) if req.params.get("many") else text)
    return func.HttpResponse(status_code=202)


@app.route(route="enqueue-then-fail", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="out", queue_name="http-fail-out", connection=STORAGE)
async def enqueue_then_fail(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set("must not be sent")
    raise RuntimeError("failed after setting the output (expected by the test)")


@app.route(route="enqueue-work", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="out", queue_name="work-in", connection=STORAGE)
def enqueue_work(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(req.get_body().decode("utf-8"))
    return func.HttpResponse(status_code=202)


# --------------------------------------------------------------------------------------------- queues
@app.queue_trigger(arg_name="msg", queue_name="work-in", connection=STORAGE)
@app.queue_output(arg_name="out", queue_name="work-out", connection=STORAGE)
def work_sync(msg: func.QueueMessage, out: func.Out[str]) -> None:
    _record("work_sync", msg)
    out.set(f"sync:{msg.get_body().decode('utf-8')}")


@app.queue_trigger(arg_name="msg", queue_name="work-async-in", connection=STORAGE)
@app.queue_output(arg_name="out", queue_name="work-out", connection=STORAGE)
async def work_async(msg: func.QueueMessage, out: func.Out[str]) -> None:
    await asyncio.sleep(0)
    _record("work_async", msg)
    out.set(f"async:{msg.get_body().decode('utf-8')}")


@app.queue_trigger(arg_name="msg", queue_name="binary-in", connection=STORAGE, data_type=func.DataType.BINARY)
def work_binary(msg: func.QueueMessage) -> None:
    _record("work_binary", msg)


@app.queue_trigger(arg_name="msg", queue_name="fail-in", connection=STORAGE)
@app.queue_output(arg_name="out", queue_name="fail-out", connection=STORAGE)
def always_fails(msg: func.QueueMessage, out: func.Out[str]) -> None:
    _record("always_fails", msg)
    out.set("must not be sent")
    raise RuntimeError("always fails (expected by the test)")


@app.queue_trigger(arg_name="msg", queue_name="slow-in", connection=STORAGE)
async def slow(msg: func.QueueMessage) -> None:
    _record("slow", msg)
    concurrency["current"] += 1
    concurrency["max"] = max(concurrency["max"], concurrency["current"])
    try:
        assert gate is not None, "the test must set function_app.gate"
        await gate.acquire()
    finally:
        concurrency["current"] -= 1

"""``python -m devtools.runner`` as a subprocess: ready line, graceful stop, --once, and the `func` switch."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from devtools.azurite import REPO_ROOT

TOYAPP_DIR = Path(__file__).resolve().parent / "toyapp"


def _env(azurite, path_prefix: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "AzureWebJobsStorage": azurite.connection_string,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return env


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


async def _spawn(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devtools.runner",
            *args,
            cwd=TOYAPP_DIR,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )


async def _ready(process: asyncio.subprocess.Process, log: Path) -> dict:
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
    except TimeoutError:
        pytest.fail(f"no ready line within 60 s; stderr:\n{_text(log)}")
    assert line, f"runner exited without a ready line; stderr:\n{_text(log)}"
    return json.loads(line)


async def _stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


async def test_cli_serves_http_and_stops_gracefully(azurite, tmp_path):
    log = tmp_path / "runner.log"
    process = await _spawn(["--runner", "--port", "0", "--function-key", "k1"], _env(azurite), log)
    try:
        ready = await _ready(process, log)
        assert ready["http"].startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=ready["http"]) as client:
            denied = await client.get("/api/hello/cli")
            allowed = await client.get("/api/hello/cli", params={"code": "k1"})
        assert denied.status_code == 401
        assert allowed.status_code == 200
        assert allowed.json()["route_params"] == {"name": "cli"}
    finally:
        code = await _stop(process)
    assert code == 0, _text(log)
    assert "Functions:" in _text(log)


async def test_cli_function_key_from_environment(azurite, tmp_path):
    log = tmp_path / "runner.log"
    env = _env(azurite, CONNECTOR_RUNNER_FUNCTION_KEY="from-env")
    process = await _spawn(["--runner", "--port", "0"], env, log)
    try:
        ready = await _ready(process, log)
        async with httpx.AsyncClient(base_url=ready["http"]) as client:
            denied = await client.get("/api/hello/x")
            allowed = await client.get("/api/hello/x", headers={"x-functions-key": "from-env"})
        assert (denied.status_code, allowed.status_code) == (401, 200)
    finally:
        await _stop(process)


async def test_cli_once_drains_the_queues_and_exits(azurite, probe, tmp_path):
    await probe.send("work-in", "one")
    await probe.send("work-in", "two")
    await probe.send("fail-in", "bad")
    log = tmp_path / "runner.log"
    process = await _spawn(["--runner", "--once", "--no-http", "--timeout", "60"], _env(azurite), log)
    try:
        assert await _ready(process, log) == {"http": None}
        code = await asyncio.wait_for(process.wait(), 90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, _text(log)
    assert sorted(await probe.peek("work-out")) == sorted(
        base64.b64encode(b).decode() for b in (b"sync:one", b"sync:two")
    )
    assert await probe.count("work-in") == 0
    assert len(await probe.peek("fail-in-poison")) == 1


FAKE_FUNC = """\
#!{python}
# A stand-in for Azure Functions Core Tools: `func start --port N` serving one marker page.
import http.server, json, signal, sys
args = sys.argv[1:]
assert args[0] == "start", args
port = int(args[args.index("--port") + 1])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"fake_func": args}}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Handler)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
server.serve_forever()
"""


@pytest.fixture
def fake_func(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "func"
    script.write_text(FAKE_FUNC.format(python=sys.executable))
    script.chmod(0o755)
    return bin_dir


async def test_cli_runs_func_start_when_core_tools_are_installed(azurite, fake_func, tmp_path):
    log = tmp_path / "runner.log"
    process = await _spawn(["--port", "0"], _env(azurite, fake_func), log)
    try:
        ready = await _ready(process, log)
        async with httpx.AsyncClient(base_url=ready["http"]) as client:
            page = await client.get("/api/anything")
        assert page.json()["fake_func"][:2] == ["start", "--port"]
    finally:
        code = await _stop(process)
    assert code == 0, _text(log)


async def test_cli_runner_flag_ignores_installed_func(azurite, fake_func, tmp_path):
    log = tmp_path / "runner.log"
    process = await _spawn(["--runner", "--port", "0"], _env(azurite, fake_func), log)
    try:
        ready = await _ready(process, log)
        async with httpx.AsyncClient(base_url=ready["http"]) as client:
            response = await client.get("/api/public")
        assert response.text == "public"
    finally:
        await _stop(process)


async def test_cli_use_func_without_core_tools_fails_clearly(azurite, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    log = tmp_path / "runner.log"
    env = _env(azurite)
    env["PATH"] = str(empty)
    process = await _spawn(["--use-func"], env, log)
    code = await asyncio.wait_for(process.wait(), 60)
    assert code == 2
    assert "func" in _text(log)

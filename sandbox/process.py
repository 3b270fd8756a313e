"""Start the sandbox as a real subprocess, for pytest fixtures and benchmark drivers.

A subprocess rather than an in-process server: the code under test then meets the sandbox exactly as it
would meet Graph (its own process, its own event loop, real sockets), and a benchmark's client and server
do not share a core's event loop.
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from .client import SandboxClient

_REPO_ROOT = Path(__file__).resolve().parents[2]


class SandboxProcess:
    """A running sandbox: its URLs, its identity secret, an admin client, and ``stop()``.

    Started with ``https=True`` it also serves every route over TLS: ``authority_url`` (``https://127.0.0.1:PORT``,
    for azure-identity's ``authority=`` or ``AZURE_AUTHORITY_HOST``) with a certificate of a throwaway CA whose
    PEM is at ``ca_path`` (trust it with ``connection_verify=ca_path``, httpx's ``verify=``, or SSL_CERT_FILE).
    """

    def __init__(self, process: subprocess.Popen[bytes], ready: dict[str, str], stderr_tail: collections.deque[str]):
        self.process = process
        self.graph_url: str = ready["graph"]
        self.identity_endpoint: str = ready["identityEndpoint"]
        self.identity_header: str = ready["identityHeader"]
        self.admin_url: str = ready["admin"]
        self.authority_url: str | None = ready.get("authority")
        self.ca_path: str | None = ready.get("caPath")
        self.admin = SandboxClient(self.admin_url)
        self._stderr_tail = stderr_tail

    @property
    def pid(self) -> int:
        return self.process.pid

    def token_url(self, tenant_id: str) -> str:
        """Entra's token endpoint of a tenant, over TLS when the sandbox has it."""
        base = self.authority_url or self.graph_url.removesuffix("/v1.0")
        return f"{base}/{tenant_id}/oauth2/v2.0/token"

    def identity_env(self, client_id: str | None = None) -> dict[str, str]:
        """Environment that points ``azure.identity``'s ManagedIdentityCredential at this sandbox."""
        env = {"IDENTITY_ENDPOINT": self.identity_endpoint, "IDENTITY_HEADER": self.identity_header}
        if client_id is not None:
            env["AZURE_CLIENT_ID"] = client_id
        return env

    def stderr_tail(self) -> str:
        """The sandbox's last stderr lines (tracebacks of sandbox bugs land here)."""
        return "".join(self._stderr_tail)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit code (0 for a clean shutdown)."""
        self.admin.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pump(stream: IO[bytes], sink: collections.deque[str] | None) -> None:
    for line in iter(stream.readline, b""):
        if sink is not None:
            sink.append(line.decode("utf-8", "replace"))
    stream.close()


def _read_ready_line(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"sandbox did not print its ready line within {timeout}s")
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
    return buffer.partition(b"\n")[0]


def start_sandbox_process(
    *,
    seed_example: bool = False,
    seed_files: list[str | os.PathLike[str]] | None = None,
    identity_header: str | None = None,
    latency_ms: float | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    log_limit: int | None = None,
    extra_args: list[str] | None = None,
    python: str = sys.executable,
    ready_timeout: float = 20.0,
    env: dict[str, str] | None = None,
    https: bool = False,
) -> SandboxProcess:
    """Run ``python -m sandbox`` and wait for its ready line; use as a context manager.

    ``https``: also listen with TLS (see :class:`SandboxProcess`); plain HTTP stays the default."""
    args = [python, "-m", "sandbox", "--host", host, "--port", str(port)]
    if https:
        args.append("--https")
    if seed_example:
        args.append("--seed-example")
    for path in seed_files or []:
        args += ["--seed", os.fspath(path)]
    if identity_header is not None:
        args += ["--identity-header", identity_header]
    if latency_ms is not None:
        args += ["--latency-ms", str(latency_ms)]
    if log_limit is not None:
        args += ["--log-limit", str(log_limit)]
    args += extra_args or []
    child_env: dict[str, Any] = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), child_env.get("PYTHONPATH")]))
    child_env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(  # noqa: S603 - argv built here from typed options, no shell
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=child_env
    )
    stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
    assert process.stderr is not None
    stderr_pump = threading.Thread(target=_pump, args=(process.stderr, stderr_tail), daemon=True)
    stderr_pump.start()
    try:
        line = _read_ready_line(process, ready_timeout)
        ready = json.loads(line) if line else None
    except (TimeoutError, ValueError) as exc:
        process.kill()
        process.wait()
        stderr_pump.join(2)
        raise RuntimeError(f"sandbox failed to start: {exc}; stderr:\n{''.join(stderr_tail)}") from exc
    if not isinstance(ready, dict):
        process.wait(5)
        stderr_pump.join(2)
        raise RuntimeError(f"sandbox exited ({process.returncode}) before ready; stderr:\n{''.join(stderr_tail)}")
    assert process.stdout is not None
    threading.Thread(target=_pump, args=(process.stdout, None), daemon=True).start()
    return SandboxProcess(process, ready, stderr_tail)

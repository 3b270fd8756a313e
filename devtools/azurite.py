"""Start Azurite (the local Azure Storage emulator: blob, queue and table) for tests and local runs.

Azurite comes from the repo's package.json (``npm ci`` installs ``node_modules/.bin/azurite``).
By default every service listens on a free loopback port: Azurite is asked for port 0 and the real
ports are read from its "successfully listening at" lines, so there is no pick-then-bind race.

    with start_azurite() as azurite:
        QueueServiceClient.from_connection_string(azurite.connection_string)

``python -m devtools.azurite`` runs one in the foreground on the standard ports (10000-10002, what
``UseDevelopmentStorage=true`` points at) and prints its connection string on stdout.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TextIO

REPO_ROOT = Path(__file__).resolve().parent.parent

ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development account key (public, documented; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_PORTS = (10000, 10001, 10002)  # blob, queue, table
SERVICES = ("blob", "queue", "table")

BASE_FLAGS = ("--skipApiVersionCheck", "--disableTelemetry", "--loose")

_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at https?://\S+?:(\d+)")


class AzuriteError(RuntimeError):
    """Azurite is missing or did not come up."""


def connection_string(
    blob_port: int = DEFAULT_PORTS[0],
    queue_port: int = DEFAULT_PORTS[1],
    table_port: int = DEFAULT_PORTS[2],
    host: str = "127.0.0.1",
) -> str:
    """The full devstoreaccount1 connection string for Azurite on the given ports."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint=http://{host}:{table_port}/{ACCOUNT_NAME};"
    )


def azurite_executable(root: Path | None = None) -> Path:
    """``node_modules/.bin/azurite`` under the repo root, or a clear error telling how to install it."""
    root = REPO_ROOT if root is None else Path(root)
    name = "azurite.cmd" if os.name == "nt" else "azurite"
    exe = root / "node_modules" / ".bin" / name
    if not exe.exists():
        raise AzuriteError(
            f"Azurite is not installed: {exe} is missing. Run `npm ci` in {root} "
            "(package.json pins azurite 3.35.0, the last release that runs on Node 20)."
        )
    return exe


def _terminate(proc: subprocess.Popen[str], timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


class Azurite:
    """A running Azurite process. Use as a context manager or call :meth:`stop`."""

    def __init__(
        self,
        process: subprocess.Popen[str],
        *,
        host: str,
        echo: TextIO | None = None,
    ) -> None:
        self.process = process
        self.host = host
        self._echo = echo
        self._ports: dict[str, int] = {}
        self._output: collections.deque[str] = collections.deque(maxlen=200)
        self._ready = threading.Event()  # all three ports known, or the output ended
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_output, name="azurite-output", daemon=True)
        self._reader.start()
        # Never leave an orphaned node process behind, even if a test forgets to stop it.
        self._finalizer = weakref.finalize(self, _terminate, process, 5.0)

    # -- output -----------------------------------------------------------------------------------
    def _read_output(self) -> None:
        # Keep reading until Azurite exits: a full or closed pipe would block or crash it (EPIPE).
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self._output.append(line)
            if self._echo is not None:
                with contextlib.suppress(OSError, ValueError):
                    print(line, file=self._echo, flush=True)
            match = _LISTENING.search(line)
            if match:
                with self._lock:
                    self._ports[match.group(1).lower()] = int(match.group(2))
                    if len(self._ports) == len(SERVICES):
                        self._ready.set()
        self._ready.set()

    @property
    def output(self) -> str:
        """The last lines Azurite printed (for error messages)."""
        with self._lock:
            return "\n".join(self._output)

    # -- startup ----------------------------------------------------------------------------------
    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if not self._ready.wait(timeout):
            self.stop()
            raise AzuriteError(f"Azurite did not report its ports within {timeout:.0f}s:\n{self.output}")
        with self._lock:
            missing = [s for s in SERVICES if s not in self._ports]
        if missing:
            code = self.process.wait(5)
            raise AzuriteError(f"Azurite exited (code {code}) before {', '.join(missing)} listened:\n{self.output}")
        for service in SERVICES:
            port = self._ports[service]
            while True:
                try:
                    with socket.create_connection((self.host, port), timeout=1.0):
                        break
                except OSError as exc:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise AzuriteError(
                            f"Azurite {service} service does not accept connections on {port}: {exc}\n{self.output}"
                        ) from exc
                    time.sleep(0.05)

    # -- public -----------------------------------------------------------------------------------
    @property
    def blob_port(self) -> int:
        return self._ports["blob"]

    @property
    def queue_port(self) -> int:
        return self._ports["queue"]

    @property
    def table_port(self) -> int:
        return self._ports["table"]

    @property
    def ports(self) -> tuple[int, int, int]:
        """(blob, queue, table)."""
        return (self.blob_port, self.queue_port, self.table_port)

    @property
    def connection_string(self) -> str:
        return connection_string(*self.ports, host=self.host)

    def endpoint(self, service: str) -> str:
        return f"http://{self.host}:{self._ports[service]}/{ACCOUNT_NAME}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate Azurite (SIGTERM, then SIGKILL after ``timeout``) and wait for it."""
        _terminate(self.process, timeout)
        self._reader.join(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._finalizer.detach()

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Azurite {state} pid={self.process.pid} ports={self._ports}>"


def start_azurite(
    *,
    location: Path | None = None,
    in_memory: bool = True,
    ports: tuple[int, int, int] | None = None,
    host: str = "127.0.0.1",
    silent: bool = True,
    root: Path | None = None,
    startup_timeout: float = 60.0,
    echo: TextIO | None = None,
) -> Azurite:
    """Start Azurite and return once blob, queue and table all accept connections.

    ``ports`` is (blob, queue, table); ``None`` means free ports chosen by the OS (Azurite is given
    port 0 and reports the real ones). With a ``location`` data is persisted there and in-memory
    persistence is dropped; without one and ``in_memory=False`` Azurite writes to the current
    directory. ``silent`` suppresses Azurite's per-request access log; ``echo`` receives its output.
    """
    exe = azurite_executable(root)
    blob, queue, table = ports if ports is not None else (0, 0, 0)
    args = [
        str(exe),
        *BASE_FLAGS,
        "--blobHost", host, "--queueHost", host, "--tableHost", host,
        "--blobPort", str(blob), "--queuePort", str(queue), "--tablePort", str(table),
    ]  # fmt: skip
    if location is not None:
        location = Path(location)
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    elif in_memory:
        args.append("--inMemoryPersistence")
    if silent:
        args.append("--silent")
    process = subprocess.Popen(  # noqa: S603 - fixed executable from node_modules, no shell
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop Azurite ourselves
    )
    azurite = Azurite(process, host=host, echo=echo)
    azurite._wait_ready(startup_timeout)
    return azurite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.azurite",
        description="Run Azurite in the foreground and print its connection string on stdout.",
    )
    parser.add_argument("--location", type=Path, help="persist data in this folder (default: in memory)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--ports",
        nargs=3,
        type=int,
        metavar=("BLOB", "QUEUE", "TABLE"),
        default=DEFAULT_PORTS,
        help="ports (default: 10000 10001 10002, what UseDevelopmentStorage=true uses)",
    )
    group.add_argument("--free-ports", action="store_true", help="let the OS pick free ports")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true", help="show Azurite's output and access log")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        azurite = start_azurite(
            location=args.location,
            ports=None if args.free_ports else tuple(args.ports),
            host=args.host,
            silent=not args.verbose,
            echo=sys.stderr if args.verbose else None,
        )
    except AzuriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with azurite:
        print(azurite.connection_string, flush=True)
        blob, queue, table = azurite.ports
        print(
            f"Azurite running (pid {azurite.process.pid}): blob {blob}, queue {queue}, table {table}. Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        while not stop.is_set() and azurite.running:
            stop.wait(0.5)
        if not azurite.running:
            print(f"Azurite exited (code {azurite.process.returncode}):\n{azurite.output}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

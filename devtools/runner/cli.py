"""``python -m devtools.runner``: the command line of the local host, a stand-in for ``func start``.

When Azure Functions Core Tools (``func``) are on PATH it runs ``func start`` (``--runner`` forces this runner,
``--use-func`` requires Core Tools), so that a machine that has the real host uses it. Otherwise, like ``func start``,
it reads ``local.settings.json`` (its ``Values`` into the environment, ``Host.LocalHttpPort``), serves until SIGINT or
SIGTERM and stops gracefully. Both print one ready line on stdout, ``{"http": URL}`` (``null`` with ``--no-http``),
once the port listens, for scripts and tests to wait on. ``--once`` processes the trigger queues until they are
empty and exits, 1 when they do not empty within ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from devtools.runner.config import RunnerError, load_local_settings
from devtools.runner.host import DEFAULT_HTTP_PORT, Runner
from devtools.runner.indexing import DEFAULT_APP, load_app

log = logging.getLogger("devtools.runner")

FUNCTION_KEY_ENV = "CONNECTOR_RUNNER_FUNCTION_KEY"


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Azure SDK HTTP logging is one INFO line per request: too much next to a polling loop.
    logging.getLogger("azure").setLevel(logging.WARNING)


def _print_ready(http_url: str | None) -> None:
    sys.stdout.write(json.dumps({"http": http_url}) + "\n")
    sys.stdout.flush()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def run_func(func_path: str, *, app_dir: Path, host: str, port: int, extra: list[str]) -> int:
    """Run Azure Functions Core Tools' ``func start`` and print the ready line once it listens."""
    if port == 0:
        port = _free_port(host)
    command = [func_path, "start", "--port", str(port), *extra]
    log.info("Azure Functions Core Tools found: running %s (use --runner to force the local runner)", command)
    process = subprocess.Popen(command, cwd=app_dir)  # noqa: S603 - the user's func, no shell
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    for sig in previous:
        signal.signal(sig, forward)
    try:
        url_host = f"[{host}]" if ":" in host else host
        while process.poll() is None:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    _print_ready(f"http://{url_host}:{port}")
                    break
            except OSError:
                time.sleep(0.2)
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _drain_with_timeout(runner: Runner, seconds: float | None) -> None:
    async with asyncio.timeout(seconds):
        await runner.drain()


async def _serve(runner: Runner, *, once: bool, once_timeout: float | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await runner.start()
    _print_ready(runner.http_url if runner.enable_http else None)
    code = 0
    try:
        if once:
            code = await _serve_once(runner, stop, once_timeout)
        else:
            await stop.wait()
            log.info("stopping (waiting for in-flight invocations)")
    finally:
        await runner.stop()
    failed = sum(v for (_, outcome), v in runner.stats.items() if outcome == "failed")
    if once and failed:
        log.info("--once: %d failed invocation(s)", failed)
    return code


async def _serve_once(runner: Runner, stop: asyncio.Event, within: float | None) -> int:
    """``--once``: 0 when the queues drained, 1 when they did not ``within`` seconds, 130 when stopped first."""
    drain = asyncio.create_task(_drain_with_timeout(runner, within))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([drain, stopper], return_when="FIRST_COMPLETED")
    stopper.cancel()
    if not drain.done():
        drain.cancel()
        return 130
    try:
        drain.result()
    except TimeoutError:
        log.error("--once: queues not drained within %ss", within)
        return 1
    log.info("--once: queues drained")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.runner",
        description="Run the Functions app locally (HTTP + queue triggers on Azurite), like `func start`.",
    )
    parser.add_argument("--app", default=DEFAULT_APP, help="module:attribute of the FunctionApp (default %(default)s)")
    parser.add_argument("--app-dir", type=Path, default=None, help="folder of the app, host.json (default: cwd)")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address (default %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port; 0 = free port (default: local.settings.json Host.LocalHttpPort or 7071)",
    )
    parser.add_argument(
        "--settings", type=Path, default=None, help="local.settings.json path (default: APP_DIR/local.settings.json)"
    )
    parser.add_argument(
        "--function-key",
        default=None,
        help=f"require this key for FUNCTION/ADMIN-level routes (default: ${FUNCTION_KEY_ENV}; none = no check)",
    )
    parser.add_argument("--no-http", action="store_true", help="do not serve HTTP triggers")
    parser.add_argument("--no-queues", action="store_true", help="do not poll queue triggers")
    parser.add_argument(
        "--once", action="store_true", help="process the trigger queues until they are empty, then exit"
    )
    parser.add_argument("--timeout", type=float, default=None, help="with --once: give up after this many seconds")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--use-func", dest="mode", action="store_const", const="func", help="require Core Tools' `func start`"
    )
    mode.add_argument(
        "--runner",
        "--no-func",
        dest="mode",
        action="store_const",
        const="runner",
        help="use this runner even if `func` is installed",
    )
    parser.set_defaults(mode="auto")
    parser.add_argument("--log-level", default=os.environ.get("RUNNER_LOG_LEVEL", "INFO"), help="default %(default)s")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    app_dir = (args.app_dir or Path.cwd()).resolve()
    func_path = shutil.which("func")
    if args.mode == "func" and not func_path:
        log.error("--use-func: Azure Functions Core Tools (`func`) is not on PATH")
        return 2
    use_func = func_path is not None and _use_func(args)
    try:
        local = load_local_settings(args.settings or app_dir / "local.settings.json")
        port = args.port
        if port is None:
            port = int((local.get("Host") or {}).get("LocalHttpPort") or DEFAULT_HTTP_PORT)
        if use_func:
            if args.function_key:
                log.warning("--function-key is ignored by `func start` (it does not check keys locally)")
            assert func_path is not None
            return run_func(func_path, app_dir=app_dir, host=args.host, port=port, extra=[])
        runner = _runner(args, app_dir, port)
        return asyncio.run(_serve(runner, once=args.once, once_timeout=args.timeout))
    except RunnerError as exc:
        log.error("%s", exc)
        return 2


def _use_func(args: argparse.Namespace) -> bool:
    """Whether to run an installed ``func start``: unless --runner, or options only this runner has."""
    if args.mode == "runner":
        return False
    if args.mode == "auto" and (args.once or args.app != DEFAULT_APP or args.no_http or args.no_queues):
        log.info("options for the local runner given: not using `func start`")
        return False
    return True


def _runner(args: argparse.Namespace, app_dir: Path, port: int) -> Runner:
    return Runner(
        load_app(args.app, app_dir),
        app_dir=app_dir,
        host=args.host,
        port=port,
        function_key=args.function_key or os.environ.get(FUNCTION_KEY_ENV) or None,
        http=not args.no_http,
        queues=not args.no_queues,
    )

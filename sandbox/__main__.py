"""``python -m sandbox``: serve the Graph sandbox until SIGTERM/SIGINT.

Prints exactly one JSON line on stdout once listening (the launcher waits for it); everything else goes to
stderr. ``--https`` adds a second, TLS listener serving the same routes, with a certificate from a throwaway CA
made at start-up: azure-identity accepts only an https authority for Entra's token endpoint. The ready line then
also names ``authority`` (its base URL) and ``caPath`` (the CA's PEM, for the client to trust; removed at exit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import ssl
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from .identity import Identity
from .requestlog import DEFAULT_LOG_LIMIT, RequestLog
from .server import GRAPH_PREFIX, create_app
from .state import SandboxState
from .store import SeedError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port, see the ready line)")
    parser.add_argument("--identity-header", default=None, help="IDENTITY_HEADER secret (default: random)")
    parser.add_argument("--seed-example", action="store_true", help="seed the reference page's example tenant")
    parser.add_argument("--seed", type=Path, action="append", default=[], help="seed from a JSON file (repeatable)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every Graph request")
    parser.add_argument(
        "--log-limit", type=int, default=DEFAULT_LOG_LIMIT, help="request log entries kept (0 turns the log off)"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr (slow)")
    parser.add_argument("--https", action="store_true", help="also listen with TLS (a throwaway CA; see caPath)")
    return parser.parse_args(argv)


def build_state(args: argparse.Namespace) -> SandboxState:
    state = SandboxState(
        identity=Identity(args.identity_header),
        log=RequestLog(args.log_limit),
        startup_latency_ms=args.latency_ms,
    )
    if args.seed_example:
        state.reset(seed_example=True)
    for path in args.seed:
        state.store.seed(json.loads(path.read_text(encoding="utf-8")))
    return state


def _url(runner: web.AppRunner, scheme: str, index: int) -> str:
    host, port = runner.addresses[index][:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _tls_context(host: str, directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for loopback names from a new CA; returns it and the CA's PEM path."""
    import trustme  # dev dependency, needed only here

    ca = trustme.CA(organization_name="Graph sandbox (throwaway)")
    names = dict.fromkeys([host, "127.0.0.1", "localhost", "::1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    ca_path = directory / "sandbox-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return context, ca_path


async def serve(args: argparse.Namespace) -> None:
    state = build_state(args)
    app = create_app(state)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access") if args.access_log else None,
        handle_signals=False,
    )
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024)
    await site.start()
    base = _url(runner, "http", 0)
    state.graph_url = base + GRAPH_PREFIX
    tls: dict[str, str] = {}
    tls_dir = None
    if args.https:
        tls_dir = tempfile.TemporaryDirectory(prefix="graph-sandbox-tls-")
        context, ca_path = _tls_context(args.host, Path(tls_dir.name))
        await web.TCPSite(runner, args.host, 0, ssl_context=context, backlog=1024).start()
        tls = {"authority": _url(runner, "https", 1), "caPath": str(ca_path)}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C still raises KeyboardInterrupt
            loop.add_signal_handler(sig, stop.set)
    ready = {
        "graph": state.graph_url,
        "identityEndpoint": f"{base}/msi/token",
        "identityHeader": state.identity.header_secret,
        "admin": f"{base}/_sandbox",
        **tls,
    }
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if tls_dir is not None:
            tls_dir.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.access_log:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        asyncio.run(serve(args))
    except (SeedError, OSError, ValueError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

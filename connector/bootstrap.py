"""Wires the real parts together, once per worker process: settings, credential, Graph client, worker.

Clients are created lazily on first use (never at import, which must stay fast and must not need a network) and
reused by every invocation on the same event loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from connector.settings import Settings, get_settings

if TYPE_CHECKING:
    from connector.graph import GraphGateway
    from connector.worker import Worker

_gateways: dict[int, GraphGateway] = {}
_workers: dict[int, Worker] = {}


def settings() -> Settings:
    """The checked settings; raises SettingsError naming a bad setting (called at start-up by function_app)."""
    return get_settings()


async def graph_gateway() -> GraphGateway:
    loop = id(asyncio.get_running_loop())
    gateway = _gateways.get(loop)
    if gateway is None:
        from connector.graph import GraphGateway
        from connector.identity import create_credential

        current = settings()
        gateway = _gateways[loop] = GraphGateway(current, create_credential(current))
    return gateway


def worker() -> Worker:
    loop = id(asyncio.get_running_loop())
    found = _workers.get(loop)
    if found is None:
        from connector.worker import Worker

        found = _workers[loop] = Worker(settings(), graph_gateway)
    return found


async def close() -> None:
    """Closes this loop's clients (tests and the local runner call it on shutdown)."""
    loop = id(asyncio.get_running_loop())
    _workers.pop(loop, None)
    gateway = _gateways.pop(loop, None)
    if gateway is not None:
        await gateway.close()


def reset() -> None:
    """Forgets settings and clients, so that tests can start over with other settings."""
    get_settings.cache_clear()
    _gateways.clear()
    _workers.clear()

"""Waiting on a condition, never on a fixed sleep: poll it until it holds, fail with what was awaited after a
deadline."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def wait_until(
    predicate: Callable[[], Any], *, within: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or predicate}")
        await asyncio.sleep(interval)

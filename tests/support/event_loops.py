"""Event loops for tests that drive their own: every run bounded in time."""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_bounded(coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    """Run `coroutine` on a fresh event loop, failing if it takes longer than `timeout` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())

"""Writing a body after the headers: a file through sendfile (or its fallback), or a chunk stream."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import BinaryIO

from aiohttp import web

log = logging.getLogger(__name__)
FALLBACK_CHUNK = 256 * 1024


async def send_file(request: web.Request, response: web.StreamResponse, file: BinaryIO, start: int,
                    end: int, use_sendfile: bool) -> None:
    """Send bytes [start, end) of an open file on a prepared response.

    sendfile(2) when the event loop offers it; otherwise (uvloop has no loop.sendfile) chunks read
    off the loop, as aiohttp's own FileResponse falls back.
    """
    count = end - start
    if count <= 0:
        return
    transport = request.transport
    if use_sendfile and transport is not None:
        try:
            await asyncio.get_running_loop().sendfile(transport, file, start, count)
            return
        except NotImplementedError:
            pass
    position = start
    while position < end:
        chunk = await asyncio.to_thread(os.pread, file.fileno(), min(FALLBACK_CHUNK, end - position), position)
        if not chunk:
            raise ConnectionAbortedError("file shrank while it was being sent")
        position += len(chunk)
        await response.write(chunk)


async def send_chunks(response: web.StreamResponse, chunks: AsyncIterator[bytes], expected: int) -> None:
    """Send a chunk stream on a prepared response; fewer bytes than `expected` is a failure."""
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        await response.write(chunk)
    if sent != expected:
        raise ConnectionAbortedError(f"origin sent {sent} of {expected} bytes")


def abort(request: web.Request, reason: BaseException) -> None:
    """Cut the connection of a response whose headers are gone but whose body can't be finished.

    The client sees a body shorter than its Content-Length, never a short 200 it could mistake for
    the whole object.
    """
    log.warning("%s %s: aborted mid-body: %s", request.method, request.path, reason or type(reason).__name__)
    if request.transport is not None:
        request.transport.abort()

"""Writing a body after the headers: a file by sendfile(2) (or chunks read off the loop), or a stream."""

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
    """Send bytes [start, end) of an open file on a prepared response."""
    if end <= start:
        return
    transport = request.transport
    # Raw sendfile may only start once everything aiohttp wrote (the headers) has left the transport,
    # or the bytes would overtake them. That is the usual case right after prepare().
    if use_sendfile and transport is not None and transport.get_write_buffer_size() == 0:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            await _sendfile(sock.fileno(), file, start, end - start)
            # aiohttp didn't see these bytes; count them so the access log shows the real size.
            writer = await response.prepare(request)  # already prepared: just returns its writer
            if writer is not None:
                writer.output_size += end - start
            return
    position = start
    while position < end:
        chunk = await asyncio.to_thread(os.pread, file.fileno(), min(FALLBACK_CHUNK, end - position), position)
        if not chunk:
            raise ConnectionAbortedError("file shrank while it was being sent")
        position += len(chunk)
        await response.write(chunk)


async def _sendfile(socket_fd: int, file: BinaryIO, offset: int, count: int) -> None:
    """Zero-copy file-to-socket copy that works on uvloop, which has no loop.sendfile().

    uvloop refuses a writability watcher on a descriptor its transport owns, so we watch a dup() of
    the socket instead; both name the same non-blocking socket, so sendfile(2) on the dup writes to
    the connection and EAGAIN means "wait until it drains".
    """
    loop = asyncio.get_running_loop()
    fd = os.dup(socket_fd)
    try:
        while count > 0:
            try:
                sent = os.sendfile(fd, file.fileno(), offset, count)
            except BlockingIOError:
                writable = loop.create_future()
                loop.add_writer(fd, _resolve, writable)
                try:
                    await writable
                finally:
                    loop.remove_writer(fd)
                continue
            if sent == 0:
                raise ConnectionAbortedError("file shrank while it was being sent")
            offset += sent
            count -= sent
    finally:
        os.close(fd)


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


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

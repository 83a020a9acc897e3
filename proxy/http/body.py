"""Writing a body after the headers: file spans by sendfile(2) (or read off the loop), or a stream."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO

from aiohttp import web

log = logging.getLogger(__name__)
FALLBACK_CHUNK = 256 * 1024


@dataclass
class FileSpans:
    """A body read from a file descriptor, span by span: each (offset, stop) is readable once yielded.

    For a file still being written (a fill), the spans arrive as the writer gets ahead; `spans` must
    keep whatever owns `fd` alive until it is exhausted.
    """

    fd: int
    spans: AsyncIterator[tuple[int, int]]


async def send_file(request: web.Request, response: web.StreamResponse, file: BinaryIO, start: int,
                    end: int, use_sendfile: bool) -> None:
    """Send bytes [start, end) of an open file on a prepared response."""
    if end > start:
        await send_spans(request, response, FileSpans(file.fileno(), _one_span(start, end)), end - start, use_sendfile)


async def send_spans(request: web.Request, response: web.StreamResponse, body: FileSpans, expected: int,
                     use_sendfile: bool) -> None:
    """Send a file's spans on a prepared response; spans that add up to other than `expected` are a failure."""
    socket_fd = _raw_socket(request) if use_sendfile else None
    if socket_fd is None:
        sent = 0
        async for offset, stop in body.spans:
            await _send_read(response, body.fd, offset, stop)
            sent += stop - offset
        _check_length(sent, expected)
        return
    # One dup for the whole body: a fill's body comes in many spans (see _sendfile for why a dup).
    fd = os.dup(socket_fd)
    try:
        sent = 0
        async for offset, stop in body.spans:
            await _sendfile(fd, body.fd, offset, stop - offset)
            sent += stop - offset
    finally:
        os.close(fd)
    _check_length(sent, expected)
    # aiohttp didn't see these bytes; count them so the access log shows the real size.
    writer = await response.prepare(request)  # already prepared: just returns its writer
    if writer is not None:
        writer.output_size += sent


def _raw_socket(request: web.Request) -> int | None:
    """The connection's socket descriptor if raw sendfile may write to it now, else None.

    Raw sendfile may only start once everything aiohttp wrote (the headers) has left the transport,
    or the bytes would overtake them. That is the usual case right after prepare().
    """
    transport = request.transport
    if transport is None or transport.get_write_buffer_size() != 0:
        return None
    sock = transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


async def _one_span(start: int, end: int) -> AsyncIterator[tuple[int, int]]:
    yield start, end


async def _send_read(response: web.StreamResponse, fd: int, offset: int, stop: int) -> None:
    """The fallback without sendfile: read [offset, stop) off the loop and write it through aiohttp."""
    while offset < stop:
        chunk = await asyncio.to_thread(os.pread, fd, min(FALLBACK_CHUNK, stop - offset), offset)
        if not chunk:
            raise ConnectionAbortedError("file shrank while it was being sent")
        offset += len(chunk)
        await response.write(chunk)


async def _sendfile(socket_fd: int, file_fd: int, offset: int, count: int) -> None:
    """Zero-copy file-to-socket copy that works on uvloop, which has no loop.sendfile().

    uvloop refuses a writability watcher on a descriptor its transport owns, so `socket_fd` must be a
    dup() of the socket; both name the same non-blocking socket, so sendfile(2) on the dup writes to
    the connection and EAGAIN means "wait until it drains".
    """
    loop = asyncio.get_running_loop()
    while count > 0:
        try:
            sent = os.sendfile(socket_fd, file_fd, offset, count)
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(socket_fd, _resolve, writable)
            try:
                await writable
            finally:
                loop.remove_writer(socket_fd)
            continue
        if sent == 0:
            raise ConnectionAbortedError("file shrank while it was being sent")
        offset += sent
        count -= sent


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


async def send_chunks(response: web.StreamResponse, chunks: AsyncIterator[bytes], expected: int) -> None:
    """Send a chunk stream on a prepared response; fewer bytes than `expected` is a failure."""
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        await response.write(chunk)
    _check_length(sent, expected)


def _check_length(sent: int, expected: int) -> None:
    if sent != expected:
        raise ConnectionAbortedError(f"the body source gave {sent} of {expected} bytes")


def abort(request: web.Request, reason: BaseException) -> None:
    """Cut the connection of a response whose headers are gone but whose body can't be finished.

    The client sees a body shorter than its Content-Length, never a short 200 it could mistake for
    the whole object.
    """
    log.warning("%s %s: aborted mid-body: %s", request.method, request.path, reason or type(reason).__name__)
    if request.transport is not None:
        request.transport.abort()

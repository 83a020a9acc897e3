"""A GET over plain HTTP whose body the kernel moves from the socket into a file, by splice(2).

obstore reads a body into buffers of its own, on threads of its own, and hands each chunk to
Python, which writes it into the storage tier's part file: every byte is copied from the socket
into memory and from memory into the file, and every chunk crosses the GIL. splice(2) moves the
bytes from the socket into a pipe and from the pipe into the file without their reaching user
space: about half the CPU per byte of obstore's stream (docs/s3-stream.md).

The socket must carry the body as it is, so only endpoints named http:// take this path (TLS bytes
are decrypted in user space). The request is the GET of a URL obstore presigns, so credentials and
signing stay obstore's; this module reads the answer's status and headers and maps them to the
errors obstore's calls give once translated (proxy.storage.cloud.obstore_calls): 404 is
FileNotFoundError, 401 and 403 PermissionError, any other status but 200 UpstreamStatus, an answer
without Content-Length or Last-Modified, or with a transfer coding, None (the caller asks obstore instead). The signed
query never reaches a log line: it is masked in every text quoted from the upstream.
"""

import asyncio
import fcntl
import os
import select
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit

from proxy.storage.errors import UpstreamStatus

HEAD_LIMIT = 64 * 1024  # S3's response headers are a few hundred bytes
ERROR_BODY_LIMIT = 64 * 1024  # an error's XML body, quoted whole in the log (it says why)
PIPE_SIZE = 1024 * 1024
READY_STEP = 1024 * 1024  # the unprivileged ceiling (/proc/sys/fs/pipe-max-size); 64 KiB if refused
MASKED_QUERY = "<signed query>"


@dataclass(frozen=True)
class Answer:
    """The headers of a 200 (names lower-cased) and the body that follows them."""

    headers: dict[str, str]
    body: "SplicedBody"


async def spliced_get(url: str, connect_timeout: float, read_timeout: float) -> Answer | None:
    """GET a presigned http:// URL up to its headers; None if its body can't be spliced (no length).

    Raises what the module docstring says for other statuses, TimeoutError past `connect_timeout`,
    and OSError for a connection that fails.
    """
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    port = parts.port or 80
    family, kind, protocol, _, address = (await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM))[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setblocking(False)
        async with asyncio.timeout(connect_timeout):
            await loop.sock_connect(sock, address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        await loop.sock_sendall(sock, (f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                                       "Accept-Encoding: identity\r\nConnection: close\r\n\r\n").encode("ascii"))
        status, reason, headers, rest = await _read_head(loop, sock)
        if status != 200:
            body = await _read_error_body(loop, sock, rest, headers)
            raise _status_error(status, reason, _masked(body, parts.query), parts.path)
        length = headers.get("content-length", "")
        if not length.isdigit() or "transfer-encoding" in headers or "last-modified" not in headers:
            sock.close()
            return None
        sock.setblocking(True)  # from here on the body is read in a worker thread, bounded by SO_RCVTIMEO
        seconds, fraction = divmod(read_timeout, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(seconds), int(fraction * 1e6)))
        return Answer(headers, SplicedBody(sock, bytes(rest), int(length)))
    except BaseException:
        sock.close()
        raise


def last_modified(headers: dict[str, str]) -> float:
    """The Last-Modified header as a POSIX time."""
    return parsedate_to_datetime(headers["last-modified"]).timestamp()


class SplicedBody:
    """The body of a 200 with a Content-Length: moved into a file by `write_into`, or read by `read`.

    Both block, so they run in worker threads; `close` may come from any thread at any time (a fill
    cancelled mid-read): it shuts the socket down, which ends a blocked read, and the descriptors
    are released once no read is running, so a number is never reused while a thread still uses it.
    """

    def __init__(self, sock: socket.socket, head: bytes, length: int) -> None:
        self._sock = sock
        self._head = memoryview(head)[:length]  # bytes of the body read with the headers
        self.remaining = length
        self._pipe: tuple[int, int] | None = None
        self._ready = select.poll()
        self._ready.register(sock, select.POLLIN)
        self._lock = threading.Lock()
        self._busy = False
        self._closing = False

    def write_into(self, fd: int, limit: int) -> int:
        """Move up to `limit` bytes of the body into `fd` at its position. 0: the body is over (whole or
        cut short: the caller checks the length). Blocks; raises TimeoutError if the socket stalls.

        Past READY_STEP bytes it returns as soon as the socket has nothing more ready: a fast origin
        gives large steps (less work per byte), a slow one still reaches readers every READY_STEP.
        """
        with self._running():
            moved = self._take_head(limit, lambda data: _write_all(fd, data))
            pipe_out, pipe_in = self._pipe_fds()
            while moved < limit and self.remaining > 0:
                if moved >= READY_STEP and not self._ready.poll(0):
                    break  # the readers hear of these bytes now rather than when more come
                with _read_timeout():
                    got = os.splice(self._sock.fileno(), pipe_in, min(limit - moved, self.remaining, PIPE_SIZE))
                if got == 0:
                    break  # the connection ended early
                self.remaining -= got
                while got > 0:
                    put = os.splice(pipe_out, fd, got)
                    got -= put
                    moved += put
            return moved

    def read(self, limit: int) -> bytes:
        """Up to `limit` bytes of the body (fewer only at its end); b"" once it is over. Blocks."""
        with self._running():
            chunk = bytearray()
            self._take_head(limit, chunk.extend)
            while len(chunk) < limit and self.remaining > 0:
                with _read_timeout():
                    data = self._sock.recv(min(limit - len(chunk), self.remaining))
                if not data:
                    break
                self.remaining -= len(data)
                chunk += data
            return bytes(chunk)

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        """The body in chunks of `size` bytes, each read in a worker thread; closes the body at its end."""
        try:
            while chunk := await asyncio.to_thread(self.read, size):
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection (now, or when the read running in another thread returns)."""
        with self._lock:
            self._closing = True
            busy = self._busy
        if busy:
            with suppress(OSError):  # already disconnected
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read; the descriptor stays ours
            return
        self._release()

    def _take_head(self, limit: int, put: Callable[[memoryview], object]) -> int:
        if not self._head:
            return 0
        taken, self._head = self._head[:limit], self._head[limit:]
        put(taken)
        self.remaining -= len(taken)
        return len(taken)

    def _pipe_fds(self) -> tuple[int, int]:
        if self._pipe is None:
            self._pipe = os.pipe()
            with suppress(OSError):  # a smaller pipe only means more splice calls
                fcntl.fcntl(self._pipe[1], fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        return self._pipe

    @contextmanager
    def _running(self) -> Iterator[None]:
        """Marks a blocking read in progress; a close asked for meanwhile is carried out at its end."""
        with self._lock:
            if self._closing:
                raise ConnectionAbortedError("the body was closed")
            self._busy = True
        try:
            yield
        finally:
            with self._lock:
                self._busy = False
                closing = self._closing
            if closing:
                self._release()

    def _release(self) -> None:
        self._sock.close()
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None


@contextmanager
def _read_timeout() -> Iterator[None]:
    """SO_RCVTIMEO's expiry (EAGAIN on a blocking socket) as TimeoutError."""
    try:
        yield
    except BlockingIOError:
        raise TimeoutError("no bytes from the storage provider within the read timeout") from None


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data):]


async def _read_head(loop: asyncio.AbstractEventLoop,
                     sock: socket.socket) -> tuple[int, str, dict[str, str], bytearray]:
    """The status, reason, headers (lower-cased names) and the bytes read past them."""
    received = bytearray()
    while (end := received.find(b"\r\n\r\n")) < 0:
        if len(received) > HEAD_LIMIT:
            raise UpstreamStatus("the storage provider's response headers are too large")
        data = await loop.sock_recv(sock, HEAD_LIMIT)
        if not data:
            raise ConnectionResetError("the storage provider closed the connection before its response headers")
        received += data
    status_line, *lines = received[:end].decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise UpstreamStatus(f"the storage provider answered something other than HTTP: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(code), reason, headers, received[end + 4:]


async def _read_error_body(loop: asyncio.AbstractEventLoop, sock: socket.socket, body: bytearray,
                           headers: dict[str, str]) -> str:
    """An error answer's body, up to its length (or the connection's end) and ERROR_BODY_LIMIT."""
    length = headers.get("content-length", "")
    wanted = min(int(length), ERROR_BODY_LIMIT) if length.isdigit() else ERROR_BODY_LIMIT
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    # A chunked body is quoted with its chunk sizes; its last chunk ends the wait rather than the timeout.
    while len(body) < wanted and not (chunked and body.endswith(b"0\r\n\r\n")):
        data = await loop.sock_recv(sock, wanted - len(body))
        if not data:
            break
        body += data
    return body[:wanted].decode("utf-8", "replace")


def _status_error(status: int, reason: str, body: str, path: str) -> OSError:
    text = f"GET {path}: {status} {reason}" + (f": {body}" if body else "")
    if status == 404:
        return FileNotFoundError(text)
    if status in (401, 403):
        return PermissionError(text)
    return UpstreamStatus(text)


def _masked(text: str, query: str) -> str:
    """`text` without the signed query string, as sent or percent-decoded (an upstream may quote either)."""
    if not query:
        return text
    return text.replace(query, MASKED_QUERY).replace(unquote(query), MASKED_QUERY)

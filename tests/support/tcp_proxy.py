"""A TCP proxy on loopback that sees HTTP requests go by and injects faults into responses.

It counts requests (parsing request heads on the client side), and on the way back it can add
latency, throttle, cut a connection with a reset after N bytes, or swallow everything (black hole).
It is a real peer on a real socket: the server under test can't tell it from the network.
"""

import contextlib
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field

BUFFER = 64 * 1024


@dataclass
class SeenRequest:
    """One request head that went through."""

    method: str
    target: str
    headers: dict[str, str]


@dataclass
class Faults:
    """What to do to responses; change any field while the proxy runs."""

    latency: float = 0.0  # seconds before the first response byte of each connection
    bytes_per_second: float = 0.0  # 0: unthrottled
    reset_after_bytes: int | None = None  # RST the connection once this many response bytes went out
    reset_connections: int = 0  # how many connections the reset applies to (then it stops)
    black_hole: bool = False  # accept, read, never answer
    stall_after_bytes: int | None = None  # pass this many response bytes, then hold the connection silent
    # Answer this many connections with `error_status` (and an S3-style XML error body) instead of
    # forwarding them: a provider's 5xx or 403, seen by the client as the provider's own answer.
    error_status: int | None = None
    error_connections: int = 0


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; use as a context manager."""

    upstream: tuple[str, int]
    faults: Faults = field(default_factory=Faults)
    requests: list[SeenRequest] = field(default_factory=list)
    bytes_down: int = 0
    tls: ssl.SSLContext | None = None  # terminate TLS on the listening side (an https endpoint)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def endpoint(self) -> str:
        """http(s)://127.0.0.1:<port>."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def gets(self, path_part: str = "") -> list[SeenRequest]:
        """GET requests whose target contains `path_part`."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and path_part in r.target]

    def close(self) -> None:
        """Stop accepting and cut every open connection."""
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                _close_quietly(sock)

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.tls is not None:
            try:
                client = self.tls.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError):
                _close_quietly(client)
                return
        if self.faults.black_hole:
            with self._lock:
                self._sockets.add(client)
            while not self._closed.is_set() and client.recv(BUFFER):
                pass
            return
        with self._lock:
            fail_this = self.faults.error_status is not None and self.faults.error_connections > 0
            if fail_this:
                self.faults.error_connections -= 1
        if fail_this:
            self._answer_with_error(client, self.faults.error_status or 500)
            return
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            _close_quietly(client)
            return
        with self._lock:
            self._sockets.update((client, upstream))
            reset_this = self.faults.reset_after_bytes is not None and self.faults.reset_connections > 0
            if reset_this:
                self.faults.reset_connections -= 1
        threading.Thread(target=self._pump_requests, args=(client, upstream), daemon=True).start()
        self._pump_responses(upstream, client, self.faults.reset_after_bytes if reset_this else None)

    def _answer_with_error(self, client: socket.socket, status: int) -> None:
        """Read one request head, record it, answer `status` and close."""
        parser = _RequestHeadParser(self._record)
        seen = len(self.requests)
        try:
            while len(self.requests) == seen and (data := client.recv(BUFFER)):
                parser.feed(data)
            code = {403: "AccessDenied", 500: "InternalError", 503: "SlowDown"}.get(status, "Error")
            body = f"<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            client.sendall(f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n"
                           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        except OSError:
            pass
        _close_quietly(client)

    def _pump_requests(self, client: socket.socket, upstream: socket.socket) -> None:
        parser = _RequestHeadParser(self._record)
        try:
            while data := client.recv(BUFFER):
                parser.feed(data)
                upstream.sendall(data)
        except OSError:
            pass
        _close_quietly(upstream)

    def _pump_responses(self, upstream: socket.socket, client: socket.socket, reset_after: int | None) -> None:
        sent = 0
        first = True
        try:
            while data := upstream.recv(BUFFER):
                if first and self.faults.latency:
                    time.sleep(self.faults.latency)
                first = False
                stall = self.faults.stall_after_bytes
                if stall is not None and sent + len(data) >= stall:
                    client.sendall(data[: max(0, stall - sent)])
                    self._count_down(max(0, stall - sent))
                    self._closed.wait()  # silent, connection open, until the proxy closes
                    break
                if reset_after is not None and sent + len(data) >= reset_after:
                    client.sendall(data[: max(0, reset_after - sent)])
                    self._count_down(max(0, reset_after - sent))
                    _reset(client)
                    _close_quietly(upstream)
                    return
                if self.faults.bytes_per_second:
                    time.sleep(len(data) / self.faults.bytes_per_second)
                client.sendall(data)
                sent += len(data)
                self._count_down(len(data))
        except OSError:
            pass
        _close_quietly(client)

    def _count_down(self, count: int) -> None:
        with self._lock:
            self.bytes_down += count

    def _record(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _RequestHeadParser:
    """Finds request heads in a client byte stream, skipping bodies by Content-Length."""

    def __init__(self, on_request) -> None:  # type: ignore[no-untyped-def]
        self._buffer = b""
        self._skip = 0
        self._on_request = on_request
        self._lost = False  # chunked upload: stop parsing this connection rather than guess

    def feed(self, data: bytes) -> None:
        if self._lost:
            return
        self._buffer += data
        while True:
            if self._skip:
                taken = min(self._skip, len(self._buffer))
                self._buffer = self._buffer[taken:]
                self._skip -= taken
                if self._skip:
                    return
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4:]
            lines = head.split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self._on_request(SeenRequest(method, target, headers))
            if "chunked" in headers.get("transfer-encoding", ""):
                self._lost = True
                return
            self._skip = int(headers.get("content-length", "0") or 0)


class UnansweredPort:
    """A loopback port whose connections never complete: the listener's accept queue is kept full.

    With the queue full, Linux drops further SYNs (tcp_abort_on_overflow is 0 by default), so a
    client's connect() hangs until its own connect timeout: the one way to see that timeout on
    loopback, with no other address involved.
    """

    def __init__(self, fill: int = 8) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(fill):  # more than the queue holds: the extra ones just time out here
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)

    @property
    def endpoint(self) -> str:
        """http://127.0.0.1:<port>."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Close the fillers and the listener."""
        for sock in (*self._fillers, self._listener):
            _close_quietly(sock)

    def __enter__(self) -> "UnansweredPort":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, so the peer gets a RST rather than a clean FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The request pump is blocked in recv() on this socket; until it returns, close() can't tear
        # the connection down (Linux keeps it alive for the in-flight call). SHUT_RD wakes it.
        sock.shutdown(socket.SHUT_RD)
    _close_quietly(sock)


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()

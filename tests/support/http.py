"""Small blocking HTTP helpers for tests (stdlib only), so each test reads as request -> assertions."""

import contextlib
import http.client
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit


@dataclass
class Reply:
    """A whole response."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 30) -> Reply:
    """Send one request with the path exactly as given (no client-side normalisation)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


class HasUrl(Protocol):
    """Anything that turns a path into an absolute URL (a ServerProcess)."""

    def url(self, path: str) -> str: ...


def fetch(server: HasUrl, path: str, headers: dict[str, str] | None = None,
          method: str = "GET") -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a fresh connection, the path sent verbatim: (status, headers, body)."""
    reply = request(server.url(path), method, headers, timeout=15)
    return reply.status, reply.headers, reply.body


def metric_value(exposition: str, series: str) -> float:
    """The value of one series (`name{labels}`) in a Prometheus text exposition."""
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in /metrics")


def send(method: str, url: str, body: bytes | Path = b"", headers: dict[str, str] | None = None) -> bytes:
    """One request with a body to a peer's admin API; a Path is streamed from disk. Raises on non-2xx."""
    all_headers = dict(headers or {})
    with contextlib.ExitStack() as stack:
        data: bytes | BinaryIO = body if isinstance(body, bytes) else stack.enter_context(body.open("rb"))
        if isinstance(body, Path):
            all_headers["Content-Length"] = str(body.stat().st_size)
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=all_headers),
                                    timeout=120) as response:
            return bytes(response.read())

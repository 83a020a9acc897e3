"""Small blocking HTTP helpers for tests (stdlib only), so each test reads as request -> assertions."""

import http.client
from dataclasses import dataclass
from typing import Protocol
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

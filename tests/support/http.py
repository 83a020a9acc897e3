"""Small blocking HTTP helpers for tests (stdlib only), so each test reads as request -> assertions."""

import http.client
from dataclasses import dataclass
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

"""A keep-alive HTTP/1.1 client that sends a request target as raw bytes, however malformed.

http.client refuses control characters and non-ASCII in a target, and aiohttp's client normalises
paths; an attacker does neither. This writes `METHOD <bytes> HTTP/1.1` on one socket, reads each
answer with http.client's response parser, and reconnects when the server closes the connection
(as it does after a request line it could not parse).
"""

import http.client
import socket
from dataclasses import dataclass


@dataclass
class RawAnswer:
    """What came back: the status, the headers (joined) and the body."""

    status: int
    headers: str
    body: bytes


class RawClient:
    """One connection to host:port, reopened when needed; use as a context manager."""

    def __init__(self, host: str, port: int, timeout: float = 20.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self.connections = 0

    def send(self, target: bytes, method: str = "GET") -> RawAnswer:
        """One request; a connection the server had closed meanwhile is reopened once, then it raises."""
        for attempt in range(2):
            reused = self._sock is not None
            sock = self._connected()
            try:
                sock.sendall(method.encode() + b" " + target + b" HTTP/1.1\r\nHost: fuzz.test\r\n\r\n")
                response = http.client.HTTPResponse(sock, method=method)
                response.begin()
                body = response.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self.close()
                if reused and attempt == 0:
                    continue  # a keep-alive connection the server closed between requests
                raise
            if response.will_close:
                self.close()
            return RawAnswer(response.status, "\n".join(f"{k}: {v}" for k, v in response.getheaders()), body)
        raise AssertionError("unreachable")

    def _connected(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.connections += 1
        return self._sock

    def close(self) -> None:
        """Close the connection (the next request opens another)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

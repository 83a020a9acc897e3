"""Malformed requests: one warning line each, rate-limited, no traceback; the server answers 400 and serves on.

A real server gets raw requests over sockets that aiohttp's parser refuses, as a URL fuzzer or a port
scanner sends them. Without the filter each one wrote an ERROR with a full traceback.
"""

import re
import socket
import time

import pytest

from proxy.runtime.log_floods import WARNINGS_PER_SECOND
from tests.conftest import StartServer
from tests.support.http import request

# Each refused by aiohttp's parser for a different reason (none is the first request's bad method,
# which aiohttp itself logs at DEBUG only).
MALFORMED = [
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",  # unknown version
    b"GET / HTTP/1.1\r\nHost x\r\n\r\n",  # a header line without a colon
    b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",  # a space in a header name
    b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",  # a length that is no number
    b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",  # two lengths
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # a request line past 8 KiB
    b"GET /x\x00y HTTP/1.1\r\nHost: x\r\n\r\n",  # a NUL in the target
]
COUNT = 49
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def send_raw(base_url: str, payload: bytes) -> bytes:
    """Send `payload` on a new connection and read the answer until the server closes it (bounded)."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(payload)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("access_log", ["true", "false"])  # false: the hot lane takes connections first
def test_malformed_requests_are_one_rate_limited_warning_line_each(start_server: StartServer, access_log: str) -> None:
    server = start_server(ACCESS_LOG=access_log)
    lines_before = len(server.log_lines)

    started = time.monotonic()
    answers = [send_raw(server.base_url, MALFORMED[number % len(MALFORMED)]) for number in range(COUNT)]
    elapsed = time.monotonic() - started

    assert [answer.split(b"\r\n", 1)[0][-15:] for answer in answers] == [b"400 Bad Request"] * COUNT
    assert request(server.url("/healthz")).status == 200
    warnings = [line for line in server.log_lines[lines_before:] if "malformed request from" in line]
    if len(warnings) < COUNT:  # some were suppressed: their count comes in one line when the second ends
        server.wait_for_log("suppressed")
    server.stop()
    log = server.log_lines[lines_before:]

    assert not [line for line in log if "Traceback" in line or " ERROR " in line], "\n".join(log[:40])
    # One line each: every line of the log is a whole record (no continuation of a multi-line message).
    assert all(TIMESTAMP.match(line) for line in log), [line for line in log if not TIMESTAMP.match(line)][:5]
    assert all(" WARNING " in line and "answered 400" in line for line in warnings), warnings[:3]
    assert 1 <= len(warnings) <= WARNINGS_PER_SECOND * (int(elapsed) + 1), (len(warnings), elapsed)
    suppressed = sum(int(match.group(1)) for line in log
                     if (match := re.search(r"suppressed (\d+) similar warnings", line)))
    assert len(warnings) + suppressed == COUNT, (len(warnings), suppressed)

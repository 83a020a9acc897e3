"""The hot lane through a real server, on raw sockets: what it answers is byte for byte what aiohttp
answers, and everything it must not answer reaches aiohttp unchanged, in order, on the same connection.

`preview_proxy_hot_answers_total{by="lane"}` tells which requests the lane answered.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.http import SERVER_SOFTWARE

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.previews_kit import metric, place, running_server, scrape, smallest_file, total
from tests.support.previews_site import BUCKET, KEY, Site, buster
from tests.support.server import ServerProcess

HOT = "preview_proxy_hot_answers_total"
Response = tuple[int, list[tuple[str, str]], bytes]


class Connection:
    """One keep-alive connection: raw bytes out, whole responses in (every read bounded in time)."""

    def __init__(self, server: ServerProcess) -> None:
        host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
        self._sock = socket.create_connection((host, int(port)), timeout=15)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        """Send `data` as it is."""
        self._sock.sendall(data)

    def response(self, method: str = "GET") -> Response:
        """The next final response (1xx skipped): status, headers in order, body."""
        while True:
            head = self._read_until(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ")[1])
            if status >= 200:
                break
        headers = [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]
        length = next((int(value) for name, value in headers if name.lower() == "content-length"), 0)
        if method == "HEAD" or status in (204, 304):
            length = 0
        return status, headers, self._read_exactly(length)

    def at_eof(self) -> bool:
        """True if the server closed the connection (after any buffered answers)."""
        return not self._buffer and self._sock.recv(1) == b""

    def close(self) -> None:
        """Close our end."""
        self._sock.close()

    def _read_until(self, marker: bytes) -> bytes:
        deadline = time.monotonic() + 15
        while marker not in self._buffer:
            assert time.monotonic() < deadline, "no complete response head in time"
            chunk = self._sock.recv(65536)
            assert chunk, f"connection closed with {self._buffer[:200]!r} unanswered"
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exactly(self, count: int) -> bytes:
        deadline = time.monotonic() + 15
        while len(self._buffer) < count:
            assert time.monotonic() < deadline, "body not complete in time"
            chunk = self._sock.recv(65536)
            assert chunk, "connection closed mid-body"
            self._buffer += chunk
        body, self._buffer = self._buffer[:count], self._buffer[count:]
        return body


def head(path: str, *lines: str, method: str = "GET", version: str = "HTTP/1.1") -> bytes:
    """A request head with a Host line and `lines`."""
    return "".join(f"{line}\r\n" for line in (f"{method} {path} {version}", "Host: test", *lines, "")).encode()


def lane_count(server: ServerProcess) -> float:
    """How many answers the lane gave so far."""
    return metric(server, HOT, by="lane")


def without_date(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers in order, Date and X-Request-ID (made anew for each request that sends none) left out."""
    return [(name, value) for name, value in headers if name.lower() not in ("date", "x-request-id")]


@pytest.fixture(scope="module")
def server(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the lane on (and the access log off: its lines are tested on a server of their own)."""
    with running_server(site.data_path, CACHE_PATH=str(tmp_path_factory.mktemp("lane-cache")), ACCESS_LOG="0",
                        CACHE_SOURCE_INFO_TTL="1h") as running:
        yield running


def make_hot(server: ServerProcess, path: str) -> bytes:
    """Ask for `path` until the lane answers it (the first answers store it and keep it hot); its body."""
    for _ in range(10):
        before = lane_count(server)
        status, _, body = fetch(server, path)
        assert status == 200
        if lane_count(server) == before + 1:
            return body
    raise AssertionError("the lane never answered the preview")


@pytest.fixture
def hot_path(server: ServerProcess) -> str:
    """A preview URL of this test's own, answered by the lane from now on."""
    path = f"/previews/q/{buster()}/rs:fit:150:150/plain/{BUCKET}/{KEY}"
    make_hot(server, path)
    return path


def test_the_lane_sends_what_aiohttp_sends(server: ServerProcess, hot_path: str) -> None:
    on_lane, handed_over = Connection(server), Connection(server)
    before = lane_count(server)
    sent_id = "X-Request-ID: compared.1"  # the same on both: a made one would differ
    on_lane.send(head(hot_path, sent_id))
    lane_answer = on_lane.response()
    assert lane_count(server) == before + 1
    # A read holding a request the lane does not read (/healthz) hands the connection to aiohttp for good.
    handed_over.send(head("/healthz") + head(hot_path, sent_id))
    assert handed_over.response()[2] == b"ok\n"
    aiohttp_answer = handed_over.response()
    assert lane_count(server) == before + 1

    assert lane_answer[0] == aiohttp_answer[0] == 200
    assert without_date(lane_answer[1]) == without_date(aiohttp_answer[1])
    assert lane_answer[2] == aiohttp_answer[2]
    assert lane_answer[1][-2:] == [("Server", SERVER_SOFTWARE), ("X-Request-ID", "compared.1")]


def test_pipelined_requests_are_answered_in_order_on_one_connection(server: ServerProcess, hot_path: str) -> None:
    connection = Connection(server)
    before = lane_count(server)
    connection.send(head(hot_path) + head(hot_path, method="HEAD") + head(hot_path))
    first, on_head, last = connection.response(), connection.response("HEAD"), connection.response()
    assert lane_count(server) == before + 3
    assert first[0] == on_head[0] == last[0] == 200
    assert first[2] == last[2] and len(first[2]) > 1000
    assert on_head[2] == b"" and without_date(on_head[1]) == without_date(first[1])

    connection.send(head(hot_path) + head("/healthz") + head(hot_path))
    answers = [connection.response() for _ in range(3)]
    assert [answer[2] for answer in answers] == [first[2], b"ok\n", first[2]]
    # None of them: a read that holds a request the lane does not read (/healthz) goes to aiohttp whole,
    # as the lane can't tell a request aiohttp answers from one it refuses (and then drops the whole read).
    assert lane_count(server) == before + 3


def test_hits_after_a_miss_on_the_same_connection_are_the_lanes(server: ServerProcess, hot_path: str) -> None:
    connection = Connection(server)
    before = lane_count(server)
    connection.send(head(f"/previews/q/{buster()}/rs:fit:120:120/plain/{BUCKET}/{KEY}"))
    status, headers, _ = connection.response()
    assert (status, dict(headers)["X-Cache"]) == (200, "MISS")  # rendered by aiohttp's handler
    for _ in range(3):
        connection.send(head(hot_path))
        assert connection.response()[0] == 200
    assert lane_count(server) == before + 3


def test_browser_headers_stay_on_the_lane(server: ServerProcess, hot_path: str) -> None:
    connection = Connection(server)
    before = lane_count(server)
    connection.send(head(hot_path, "User-Agent: Mozilla/5.0 (X11; Linux x86_64)", "Accept: image/avif,image/webp,*/*",
                         "Accept-Encoding: gzip, deflate, br", "Accept-Language: en", "Connection: keep-alive",
                         "Referer: http://test/gallery", "Cookie: session=abc", "Sec-Fetch-Dest: image"))
    status, _, body = connection.response()
    assert (status, lane_count(server)) == (200, before + 1)
    assert body[:2] == b"\xff\xd8"  # still the JPEG: negotiation is off on this server


RequestBytes = Callable[[str, str], bytes]
HAND_OVER_CASES: dict[str, tuple[RequestBytes, int, bool]] = {
    # name: (the request for a hot path and its ETag, aiohttp's status, whether the connection stays open)
    "if-none-match": (lambda path, etag: head(path, f"If-None-Match: {etag}"), 304, True),
    "range": (lambda path, etag: head(path, "Range: bytes=0-9"), 206, True),
    "if-range": (lambda path, etag: head(path, 'If-Range: "x"', "Range: bytes=0-9"), 200, True),
    "http-1.0": (lambda path, etag: head(path, version="HTTP/1.0"), 200, False),
    "connection-close": (lambda path, etag: head(path, "Connection: close"), 200, False),
    "content-length": (lambda path, etag: head(path, "Content-Length: 5") + b"hello", 200, True),
    "chunked": (lambda path, etag: head(path, "Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n", 200, True),
    "expect": (lambda path, etag: head(path, "Expect: 100-continue"), 200, True),
    "bad-name": (lambda path, etag: head(path, "Bad Name: x"), 400, False),
    "obs-fold": (lambda path, etag: head(path, "X-Folded: a", " b"), 400, False),
    "lowercase-method": (lambda path, etag: head(path, method="get"), 400, False),
}


@pytest.mark.parametrize("case", list(HAND_OVER_CASES))
def test_requests_the_lane_must_not_answer_reach_aiohttp(server: ServerProcess, hot_path: str, case: str) -> None:
    request_bytes, status, stays_open = HAND_OVER_CASES[case]
    etag = fetch(server, hot_path)[1]["ETag"]
    connection = Connection(server)
    before = lane_count(server)

    # After a request that closes the connection, aiohttp refuses anything pipelined behind it.
    connection.send(request_bytes(hot_path, etag) + (head("/healthz") if stays_open else b""))

    assert connection.response()[0] == status
    assert lane_count(server) == before
    if stays_open:
        # The next request is read where the first one really ended: a body is never taken for one.
        next_status, _, next_body = connection.response()
        assert (next_status, next_body) == (200, b"ok\n")
    else:
        assert connection.at_eof()


def test_a_client_that_reads_late_gets_every_answer_in_order(server: ServerProcess, hot_path: str) -> None:
    count = 1500  # some 9 MB of answers: far more than the socket buffers hold
    body = fetch(server, hot_path)[2]
    connection = Connection(server)
    sender = threading.Thread(target=connection.send, args=(head(hot_path) * count,), daemon=True)
    sender.start()

    # Meanwhile the server keeps answering others.
    assert fetch(server, "/healthz")[0] == 200
    answers = [connection.response() for _ in range(count)]

    sender.join(15)
    assert not sender.is_alive()
    assert all(answer[0] == 200 and answer[2] == body for answer in answers)


def test_shutdown_closes_connections_the_lane_holds(start_server: StartServer, data_path: Path,
                                                    photos: list[Path]) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos))
    running = start_server(ACCESS_LOG="0")
    path = f"/previews/q/rs:fit:90:90/plain/{BUCKET}/{KEY}"
    for _ in range(3):
        fetch(running, path)
    connection = Connection(running)
    connection.send(head(path))
    assert connection.response()[0] == 200
    assert lane_count(running) >= 1

    running.stop()

    assert running.process.returncode == 0
    assert connection.at_eof()


def test_without_the_lane_every_request_goes_through_aiohttp(start_server: StartServer, data_path: Path,
                                                            photos: list[Path]) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos))
    running = start_server(HOT_LANE="0")
    path = f"/previews/q/rs:fit:80:80/plain/{BUCKET}/{KEY}?lane-check"
    for _ in range(6):
        assert fetch(running, path)[0] == 200

    assert lane_count(running) == 0
    assert metric(running, HOT, by="handler") == 4  # the first two took the full path
    marker = "/healthz?after-the-previews"
    fetch(running, marker)
    running.wait_for_log(marker)  # aiohttp's lines arrive in order: the previews' lines are in
    assert sum(path in line for line in running.log_lines) == 6


def test_a_url_asked_without_pause_stays_on_the_lane_past_its_sources_trust(
        start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos))
    running = start_server(ACCESS_LOG="0", CACHE_SOURCE_INFO_TTL="1s")
    path = f"/previews/q/rs:fit:70:70/plain/{BUCKET}/{KEY}"
    make_hot(running, path)
    connection = Connection(running)
    before, by_handler = lane_count(running), metric(running, HOT, by="handler")
    answered = 0
    ends = time.monotonic() + 3.5  # three times the trust: the entry is checked again each time
    while time.monotonic() < ends:
        connection.send(head(path))
        assert connection.response()[0] == 200
        answered += 1

    # Had one request come between the end of the trust and the full path's new answer, it would have
    # gone to aiohttp's handler, with the connection until the handler was idle again.
    assert lane_count(running) == before + answered
    assert metric(running, HOT, by="handler") == by_handler


@pytest.mark.parametrize("workers", [1, 2])
def test_a_scrape_right_after_lane_answers_counts_every_one(start_server: StartServer, data_path: Path,
                                                           photos: list[Path], workers: int) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos))
    running = start_server(workers=workers, ACCESS_LOG="0", CACHE_SOURCE_INFO_TTL="1h")
    path = f"/previews/q/rs:fit:60:60/plain/{BUCKET}/{KEY}"
    body = b""
    for _ in range(20):  # new connections, spread over the workers: the preview gets hot in each
        status, _, body = fetch(running, path)
        assert status == 200
    before = scrape(running)
    connections = [Connection(running) for _ in range(4)]
    for _ in range(25):
        for connection in connections:
            connection.send(head(path))
            assert connection.response()[2] == body

    after, answered = scrape(running), 100

    def added(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert added(HOT, by="lane") > 0  # the lane's counts among them (the rest, if any, the handler's)
    assert added(HOT) == answered
    assert added("preview_proxy_requests_total", route="preview", status="200") == answered
    assert added("preview_proxy_request_duration_seconds_count", route="preview") == answered
    assert added("preview_proxy_request_duration_seconds_bucket", route="preview", le="+Inf") == answered
    assert added("preview_proxy_cache_requests_total", tier="previews", result="hit") == answered
    assert added("preview_proxy_served_bytes_total", tier="previews", result="hit") == answered * len(body)


def test_after_a_pause_past_the_sources_trust_the_lane_waits_for_the_check(
        start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos))
    running = start_server(ACCESS_LOG="0", CACHE_SOURCE_INFO_TTL="1s")
    path = f"/previews/q/rs:fit:50:50/plain/{BUCKET}/{KEY}"
    body = make_hot(running, path)
    connection = Connection(running)
    connection.send(head(path))
    assert connection.response()[2] == body
    before, by_handler = lane_count(running), metric(running, HOT, by="handler")

    time.sleep(1.5)  # no request while the source's trust of 1 s runs out: the passing time is what is tested
    for _ in range(3):
        connection.send(head(path))
        assert connection.response()[2] == body

    # The first waited for the source's check instead of handing the connection to aiohttp.
    assert lane_count(running) == before + 3
    assert metric(running, HOT, by="handler") == by_handler

"""The hot lane against aiohttp, differentially: the same raw bytes sent to a server with the lane and to
one without it get the same answers, byte for byte (aside from the values of Date and Age, which tick
with the clock, and the request ids the servers made), and leave the connection in the same state
(closed by the server, or still answering).

Both servers share one cache folder, so the stored preview (ETag, Last-Modified, X-Cache) is the same
on both, and each is warmed until it answers the preview from memory: the lane on one, the handler on
the other. What is left to differ is parsing and connection handling, which is what the cases poke at:
pipelining, CL/TE, Host missing or twice, duplicate singleton headers, obs-fold, bare LF, HTTP/1.0,
absolute-form targets, long heads, lowercase methods, Proxy-Connection, garbage after a request,
heads arriving in pieces, and Origin (CORS is on, for a list of origins: the answers' CORS lines depend
on it, and every answer varies on it). Everything runs twice: with aiohttp's C parser (llhttp) and its
Python one. A shorter set of cases runs with CORS off and with CORS for any origin.

How a case is read: everything the server sends until it closes or sends nothing for QUIET_SECONDS;
then, if it is still open, one more request (a probe for /healthz) and the same again. The probe is
part of the bytes compared, so a request left half-read must be completed the same way by both.
"""

import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.support.hot_lane_cases import (
    ALLOWED,
    ALLOWED_WITH_PORT,
    CASES,
    SHORT_CASES,
    WEBP,
    head,
    pieces,
    request_bytes,
)
from tests.support.http import fetch
from tests.support.previews_kit import metric, running_server
from tests.support.previews_site import BUCKET, KEY, Site, buster
from tests.support.server import ServerProcess

HOT = "preview_proxy_hot_answers_total"
QUIET_SECONDS = 1.0  # far above a loopback answer's few milliseconds, even on a busy machine
CASE_SECONDS = 15.0
PROBE = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
CORS_LIST = f"{ALLOWED},{ALLOWED_WITH_PORT}"
_DATE = re.compile(rb"\r\nDate: [^\r\n]*\r\n")
# A request id made by the server (for a request that sent none, or one that is not sane) is random.
_MADE_REQUEST_ID = re.compile(rb"\r\nX-Request-ID: [0-9a-f]{32}\r\n")
_AGE = re.compile(rb"\r\nAge: \d+\r\n")


@dataclass(frozen=True)
class Pair:
    """The same data and cache behind two servers: aiohttp alone, and the lane in front of aiohttp."""

    without_lane: ServerProcess
    with_lane: ServerProcess
    path: str  # a preview both answer from memory, for the Accept class of no format and for webp
    parser: str  # aiohttp's: "llhttp" or "python"
    cors: str  # CORS_ALLOW_ORIGINS ("": off)


@pytest.fixture(scope="module", params=["llhttp", "python"], ids=["c-parser", "python-parser"])
def pair(site: Site, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Pair]:
    """Two servers on one cache folder, the preview warmed on both (first where the lane is off, so
    the other finds the very same stored answer). aiohttp parses with llhttp (its C extension, the
    default) or, with AIOHTTP_NO_EXTENSIONS, with http_parser.py: the lane must match either."""
    yield from warmed_pair(site, tmp_path_factory, request.param, CORS_LIST)


def warmed_pair(site: Site, tmp_path_factory: pytest.TempPathFactory, parser: str, cors: str) -> Iterator[Pair]:
    """The two servers, with `parser` and CORS_ALLOW_ORIGINS=`cors` (empty: off), the preview warmed."""
    cache = str(tmp_path_factory.mktemp("differential-cache"))
    settings = {"CACHE_PATH": cache, "ACCESS_LOG": "0", "CACHE_SOURCE_INFO_TTL": "1h", "IMGPROXY_AUTO_WEBP": "1",
                "AIOHTTP_NO_EXTENSIONS": "1" if parser == "python" else "", "CORS_ALLOW_ORIGINS": cors}
    path = f"/previews/q/{buster()}/rs:fit:120:120/plain/{BUCKET}/{KEY}"
    with running_server(site.data_path, HOT_LANE="0", **settings) as without_lane, \
            running_server(site.data_path, HOT_LANE="1", **settings) as with_lane:
        for server, by in ((without_lane, "handler"), (with_lane, "lane")):
            for accept in ("image/jpeg", WEBP):
                warm(server, path, accept, by)
        yield Pair(without_lane, with_lane, path, parser, cors)


def warm(server: ServerProcess, path: str, accept: str, by: str) -> None:
    """Ask for `path` until the hot map answers it (`by` the lane or the handler), bounded."""
    for _ in range(10):
        before = metric(server, HOT, by=by)
        assert fetch(server, path, {"Accept": accept})[0] == 200
        if metric(server, HOT, by=by) == before + 1:
            return
    raise AssertionError(f"{path} never answered from memory by the {by}")


def read_until_quiet(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything received until the peer closes (True) or sends nothing for QUIET_SECONDS (False)."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(QUIET_SECONDS)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return received, False
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    raise AssertionError(f"still receiving after {CASE_SECONDS}s: {received[:200]!r}")


def exchange(server: ServerProcess, data: list[bytes]) -> tuple[bytes, bool]:
    """Send the pieces of `data` on a new connection: what came back (Date and Age values blanked) and
    whether the server closed."""
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    deadline = time.monotonic() + CASE_SECONDS
    received, closed = b"", False
    with socket.create_connection((host, int(port)), timeout=CASE_SECONDS) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in data:
            if closed:
                break
            sock.sendall(piece)
            more, closed = read_until_quiet(sock, deadline)
            received += more
        if not closed:
            try:
                sock.sendall(PROBE)
            except OSError:
                closed = True
            else:
                more, closed = read_until_quiet(sock, deadline)
                received += more
    blanked = _AGE.sub(b"\r\nAge: -\r\n", _DATE.sub(b"\r\nDate: -\r\n", received))
    return _MADE_REQUEST_ID.sub(b"\r\nX-Request-ID: made\r\n", blanked), closed


def compare(pair: Pair, name: str) -> str | None:
    """None if both servers answer the case alike, else what differs."""
    data = pieces(CASES[name], pair.path)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two servers: no reason to wait for one, then the other
        without_lane, with_lane = pool.map(lambda server: exchange(server, data), (pair.without_lane, pair.with_lane))
    if without_lane == with_lane:
        return None
    return (f"{name}: aiohttp closed={without_lane[1]} {without_lane[0][:300]!r}\n"
            f"{' ' * len(name)}  lane    closed={with_lane[1]} {with_lane[0][:300]!r}")


def test_the_lane_answers_every_case_as_aiohttp_does(pair: Pair) -> None:
    assert len(CASES) >= 70
    lane_before = metric(pair.with_lane, HOT, by="lane")
    # Most of a case is waiting QUIET_SECONDS for nothing more to come: many at once cost little CPU.
    with ThreadPoolExecutor(max_workers=32) as pool:
        differences = [found for found in pool.map(lambda name: compare(pair, name), CASES) if found]

    assert not differences, "\n".join(differences)
    # The lane answered a good share of them itself, or the comparison proved little.
    assert metric(pair.with_lane, HOT, by="lane") - lane_before >= 20


@pytest.mark.parametrize("name", ["plain", "pipelined", "webp", "proxy-connection-keep-alive",
                                  "duplicate-plain-header", "split-request-line", "split-three-hot",
                                  "origin-pipelined", "request-id-pipelined", "request-id-129", "request-id-twice"])
def test_plain_cases_are_answered_by_the_lane_itself(pair: Pair, name: str) -> None:
    """The comparison above would pass with a lane that answers nothing: these must reach it."""
    data = pieces(CASES[name], pair.path)
    hot_requests = b"".join(data).count(pair.path.encode())
    before = metric(pair.with_lane, HOT, by="lane")
    answers, closed = exchange(pair.with_lane, data)
    assert not closed and answers.count(b"HTTP/1.1 200 OK\r\n") == hot_requests + 1  # and the probe's
    assert metric(pair.with_lane, HOT, by="lane") == before + hot_requests
    # Each lane answer says how the cache answered, as the handler's do (compared above, Age's value aside).
    assert answers.count(b"\r\nCache-Status: preview-proxy; hit\r\n") == hot_requests
    assert answers.count(b"\r\nAge: -\r\n") == hot_requests


@pytest.mark.parametrize("name", ["duplicate-host", "missing-host", "duplicate-user-agent", "bare-lf-everywhere",
                                  "proxy-connection-close", "hot-then-garbage", "absolute-form", "obs-fold"])
def test_what_the_lane_must_not_answer_reaches_aiohttp(pair: Pair, name: str) -> None:
    before = metric(pair.with_lane, HOT, by="lane")
    exchange(pair.with_lane, pieces(CASES[name], pair.path))
    assert metric(pair.with_lane, HOT, by="lane") == before


def test_a_head_split_across_segments_is_answered_once_complete(pair: Pair) -> None:
    """A head may arrive in pieces (a large Cookie spans TCP segments): the lane waits for the rest."""
    data = request_bytes(head("", "Cookie: " + "c" * 3000), pair.path)
    host, port = pair.with_lane.base_url.removeprefix("http://").rsplit(":", 1)
    before = metric(pair.with_lane, HOT, by="lane")
    with socket.create_connection((host, int(port)), timeout=CASE_SECONDS) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(data), 1000):
            sock.sendall(data[start:start + 1000])
        received, closed = read_until_quiet(sock, time.monotonic() + CASE_SECONDS)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and not closed
    assert metric(pair.with_lane, HOT, by="lane") == before + 1


def test_each_run_uses_the_parser_it_names(pair: Pair) -> None:
    """llhttp closes after `Proxy-Connection: close` (it reads it as Connection); http_parser.py ignores
    it. Without the lane either way, and the lane hands it over, so it matches either parser."""
    data = pieces(CASES["proxy-connection-close"], pair.path)
    closed = exchange(pair.without_lane, data)[1]
    assert closed == (pair.parser == "llhttp")
    assert exchange(pair.with_lane, data)[1] == closed


def test_the_lane_sends_cors_lines_for_the_request_origin(pair: Pair) -> None:
    """The comparison above would pass if neither sent them: the lane's answers carry them, per Origin."""
    before = metric(pair.with_lane, HOT, by="lane")
    with ThreadPoolExecutor(max_workers=2) as pool:
        (allowed, _), (other, _) = pool.map(lambda name: exchange(pair.with_lane, pieces(CASES[name], pair.path)),
                                            ("origin-allowed", "origin-other"))
    assert (f"\r\nServer: {{server}}\r\nX-Request-ID: made\r\nAccess-Control-Allow-Origin: {ALLOWED}\r\n"
            "Access-Control-Expose-Headers: ").encode() in re.sub(rb"\r\nServer: [^\r]*", b"\r\nServer: {server}",
                                                                 allowed)
    # One Vary line: the format is negotiated (IMGPROXY_AUTO_WEBP), and a list of origins varies on Origin.
    assert b"\r\nVary: Accept, Origin\r\n" in allowed.split(b"\r\n\r\n")[0]
    assert b"Access-Control-" not in other and b"\r\nVary: Accept, Origin\r\n" in other
    assert metric(pair.with_lane, HOT, by="lane") == before + 2  # the lane's answers, not aiohttp's


@pytest.fixture(scope="module", params=["", "*"], ids=["cors-off", "cors-any"])
def other_pair(site: Site, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Pair]:
    """The two servers with CORS off, or for any origin (llhttp only: the Origin cases' parsing is the
    list's, above)."""
    yield from warmed_pair(site, tmp_path_factory, "llhttp", request.param)


def test_the_lane_answers_as_aiohttp_with_cors_off_or_for_anyone(other_pair: Pair) -> None:
    lane_before = metric(other_pair.with_lane, HOT, by="lane")
    with ThreadPoolExecutor(max_workers=len(SHORT_CASES)) as pool:
        differences = [found for found in pool.map(lambda name: compare(other_pair, name), SHORT_CASES) if found]

    assert not differences, "\n".join(differences)
    assert metric(other_pair.with_lane, HOT, by="lane") - lane_before >= 10
    answer, _ = exchange(other_pair.with_lane, pieces(CASES["origin-other"], other_pair.path))
    assert (b"\r\nAccess-Control-Allow-Origin: *\r\n" in answer) == (other_pair.cors == "*")
    assert (b"Access-Control-" in answer) == (other_pair.cors == "*")
    assert b"Origin" not in answer.split(b"\r\nDate: ")[0]  # no Vary: Origin, off or for anyone


def test_under_a_path_prefix_both_answer_alike(site: Site, tmp_path_factory: pytest.TempPathFactory) -> None:
    """IMGPROXY_PATH_PREFIX: the lane knows no prefix, so it answers neither the prefixed path (aiohttp
    does, from the hot map) nor the bare one (a 404 from aiohttp), and both servers say the same."""
    # The source trusted for an hour: a hot entry outlives every case (as in warmed_pair).
    settings = {"CACHE_PATH": str(tmp_path_factory.mktemp("prefixed-cache")), "ACCESS_LOG": "0",
                "CACHE_SOURCE_INFO_TTL": "1h", "IMGPROXY_PATH_PREFIX": "/img"}
    path = f"/img/previews/q/{buster()}/rs:fit:120:120/plain/{BUCKET}/{KEY}"
    with running_server(site.data_path, HOT_LANE="0", **settings) as without_lane, \
            running_server(site.data_path, HOT_LANE="1", **settings) as with_lane:
        for server in (without_lane, with_lane):
            warm(server, path, "image/jpeg", "handler")
        for target in (path, path.removeprefix("/img")):
            pair = Pair(without_lane, with_lane, target, "llhttp", "")
            differences = [found for name in ("plain", "pipelined", "absolute-form", "split-three-hot")
                           if (found := compare(pair, name))]
            assert not differences, "\n".join(differences)
        assert metric(with_lane, HOT, by="lane") == 0

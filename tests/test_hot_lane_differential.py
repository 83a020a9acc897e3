"""The hot lane against aiohttp, differentially: the same raw bytes sent to a server with the lane and to
one without it get the same answers, byte for byte (the Date header's value aside), and leave the
connection in the same state (closed by the server, or still answering).

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

from tests.support.http import fetch
from tests.support.previews_kit import metric, running_server
from tests.support.previews_site import BUCKET, KEY, Site, buster
from tests.support.server import ServerProcess

HOT = "preview_proxy_hot_answers_total"
QUIET_SECONDS = 1.0  # far above a loopback answer's few milliseconds, even on a busy machine
CASE_SECONDS = 15.0
PROBE = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
WEBP = "image/webp,*/*"
ALLOWED = "http://allowed.test"
ALLOWED_WITH_PORT = "http://127.0.0.1:9"
CORS_LIST = f"{ALLOWED},{ALLOWED_WITH_PORT}"
_DATE = re.compile(rb"\r\nDate: [^\r\n]*\r\n")


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


def head(target: str = "", *lines: str, method: str = "GET", version: str = "HTTP/1.1", eol: str = "\r\n",
         host: bool = True) -> str:
    """A request head: the request line, a Host line unless `host` is False, `lines`, an empty line.
    An empty `target` stands for the warmed preview (filled in per run)."""
    fields = (["Host: t"] if host else []) + list(lines)
    return "".join(line + eol for line in (f"{method} {target or '{hot}'} {version}", *fields, ""))


# A case is the bytes sent at once, or pieces sent one at a time, each after the answers to the last
# (so the server reads them apart: a head arriving in pieces, as over a real network).
Case = str | bytes | tuple[str, ...]
CASES: dict[str, Case] = {
    # What the lane answers (each must still match aiohttp).
    "plain": head(),
    "head": head(method="HEAD"),
    "browser": head("", "User-Agent: Mozilla/5.0", "Accept: image/avif,image/webp,*/*", "Accept-Language: en",
                    "Accept-Encoding: gzip, br", "Referer: http://t/", "Cookie: a=b", "Sec-Fetch-Dest: image"),
    "webp": head("", f"Accept: {WEBP}"),
    "two-accepts": head("", "Accept: image/jpeg", f"Accept: {WEBP}"),
    "keep-alive": head("", "Connection: keep-alive"),
    "keep-alive-mixed-case": head("", "connection: Keep-Alive"),
    "proxy-connection-keep-alive": head("", "Proxy-Connection: keep-alive"),
    "lowercase-host": head("", "host: t", host=False),
    "duplicate-plain-header": head("", "X-Tag: a", "X-Tag: b", "Cookie: a", "Cookie: b"),
    "tab-in-value": head("", "X-Tab:\tvalue\t"),
    "empty-value": head("", "X-Empty:"),
    "token-name": head("", "X-!#$%&'*+.^_`|~: v"),
    "100-headers": head("", *(f"X-{i}: {i}" for i in range(98))),
    "pipelined": head() * 3,
    "pipelined-get-head": head() + head(method="HEAD") + head(),
    "hot-then-healthz": head() + head("/healthz") + head(),
    "healthz-then-hot": head("/healthz") + head(),
    "hot-then-not-found": head() + head("/previews/q/plain/photos/none.jpg") + head(),
    # Pipelined with something aiohttp refuses, in the same segment.
    "hot-then-garbage": head() + "XYZ\r\n\r\n",
    "hot-then-partial-garbage": head() + "GGG",
    "hot-then-bare-lf": head() + head(eol="\n"),
    "hot-then-missing-host": head() + head(host=False),
    "hot-then-duplicate-host": head() + head("", "Host: t"),
    "empty-line-between": head() + "\r\n" + head(),
    "leading-empty-line": "\r\n" + head(),
    "hot-then-partial-head": head() + head()[:-2],
    "partial-request-line": "GET {hot}",
    # Bodies: Content-Length and Transfer-Encoding.
    "content-length-0": head("", "Content-Length: 0"),
    "content-length-body": head("", "Content-Length: 5") + "hello" + head(),
    "content-length-short": head("", "Content-Length: 50") + "hello",
    "content-length-negative": head("", "Content-Length: -1"),
    "content-length-letters": head("", "Content-Length: x"),
    "content-length-twice-same": head("", "Content-Length: 0", "Content-Length: 0"),
    "content-length-twice-different": head("", "Content-Length: 0", "Content-Length: 5") + "hello",
    "chunked": head("", "Transfer-Encoding: chunked") + "5\r\nhello\r\n0\r\n\r\n" + head(),
    "chunked-and-length": head("", "Transfer-Encoding: chunked", "Content-Length: 5") + "5\r\nhello\r\n0\r\n\r\n",
    "transfer-encoding-identity": head("", "Transfer-Encoding: identity"),
    "transfer-encoding-gzip-chunked": head("", "Transfer-Encoding: gzip, chunked") + "0\r\n\r\n",
    "chunk-size-garbage": head("", "Transfer-Encoding: chunked") + "zz\r\nhello\r\n0\r\n\r\n",
    # Host.
    "missing-host": head(host=False),
    "missing-host-head": head(method="HEAD", host=False),
    "duplicate-host": head("", "Host: t"),
    "duplicate-host-different": head("", "Host: other"),
    "duplicate-host-case": head("", "HOST: t"),
    "duplicate-host-apart": head("", "Accept: */*", "host: t"),
    "empty-host": head("", "Host:", host=False),
    # Singleton headers aiohttp refuses twice.
    **{f"duplicate-{name.lower()}": head("", f"{name}: a", f"{name}: b")
       for name in ("User-Agent", "Content-Type", "Max-Forwards", "Content-Location", "Content-Range", "ETag",
                    "Server")},
    "single-content-type": head("", "Content-Type: image/jpeg"),
    "single-max-forwards": head("", "Max-Forwards: 3"),
    # Line syntax.
    "obs-fold": head("", "X-Folded: a", " b"),
    "obs-fold-tab": head("", "X-Folded: a", "\tb"),
    "obs-fold-host": head("", "Host: t", " t2", host=False),
    "bare-lf-everywhere": head(eol="\n"),
    "bare-lf-request-line": head().replace(" HTTP/1.1\r\n", " HTTP/1.1\n", 1),
    "bare-lf-header-line": head("", "X-A: 1").replace("X-A: 1\r\n", "X-A: 1\n"),
    "bare-lf-last-line": head()[:-2] + "\n",
    "bare-cr-in-value": head("", "X-A: 1\r2"),
    "double-cr": head("", "X-A: 1\r"),
    "space-before-colon": head("", "X-A : 1"),
    "no-colon": head("", "X-A 1"),
    "empty-name": head("", ": 1"),
    "space-in-name": head("", "Bad Name: x"),
    "leading-space-first-header": head("", " Host: t", host=False),
    "nul-in-value": head("", "X-A: a\x00b"),
    "del-in-value": head("", "X-A: a\x7fb"),
    "obs-text-in-value": head("", "X-A: caf\xe9"),
    "high-byte-in-name": head("", "X-\xe9: 1"),
    "long-value": head("", "X-Long: " + "a" * 8100),
    "too-long-value": head("", "X-Long: " + "a" * 8200),
    "too-long-target": head("/previews/" + "a" * 8200),
    "many-headers": head("", *(f"X-{i}: {i}" for i in range(130))),
    # Versions, methods and targets.
    "http-1.0": head(version="HTTP/1.0"),
    "http-1.0-keep-alive": head("", "Connection: keep-alive", version="HTTP/1.0"),
    "http-1.0-no-host": head(version="HTTP/1.0", host=False),
    "http-1.2": head(version="HTTP/1.2"),
    "http-2.0": head(version="HTTP/2.0"),
    "http-lowercase": head(version="http/1.1"),
    "http-0.9": "GET {hot}\r\n",
    "lowercase-get": head(method="get"),
    "lowercase-head": head(method="head"),
    "mixed-case-get": head(method="Get"),
    "post": head("", "Content-Length: 0", method="POST"),
    "options": head(method="OPTIONS"),
    "delete": head(method="DELETE"),
    "double-space": head().replace(" ", "  ", 1),
    "tab-separator": head().replace(" ", "\t", 1),
    "trailing-space": head().replace(" HTTP/1.1", " HTTP/1.1 ", 1),
    "fragment": head("{hot}#part"),
    "query": head("{hot}?"),
    "control-in-target": head("/previews/q/\x01"),
    "high-byte-in-target": head("/previews/q/\xe9"),
    "asterisk": head("*", method="OPTIONS"),
    "absolute-form": head("http://preview.test{hot}"),
    "absolute-form-head": head("http://preview.test:8080{hot}", method="HEAD"),
    "absolute-form-https": head("https://preview.test{hot}"),
    "absolute-form-pipelined": head("http://preview.test{hot}") + head() + head("http://preview.test{hot}"),
    "absolute-form-no-authority": head("http:{hot}"),
    "absolute-form-no-path": head("http://preview.test"),
    "absolute-form-webp": head("http://preview.test{hot}", f"Accept: {WEBP}"),
    # Headers that change what the answer depends on, or the connection.
    "connection-close": head("", "Connection: close"),
    "connection-close-pipelined": head("", "Connection: close") + head(),
    "connection-keep-alive-then-close": head("", "Connection: keep-alive", "Connection: close"),
    "connection-upgrade": head("", "Connection: upgrade", "Upgrade: websocket"),
    "upgrade-alone": head("", "Upgrade: h2c"),
    "proxy-connection-close": head("", "Proxy-Connection: close"),
    "proxy-connection-close-pipelined": head("", "Proxy-Connection: close") + head(),
    "expect-continue": head("", "Expect: 100-continue"),
    "expect-other": head("", "Expect: something"),
    "if-none-match-any": head("", "If-None-Match: *"),
    "if-modified-since": head("", "If-Modified-Since: Sat, 01 Jan 2101 00:00:00 GMT"),
    "range": head("", "Range: bytes=0-9"),
    "sec-websocket-key1": head("", "Sec-WebSocket-Key1: x"),
    "content-encoding": head("", "Content-Encoding: gzip"),
    "tls-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(20),
    "empty-line-only": "\r\n",
    # Heads in pieces.
    "split-request-line": ("GET {hot} HT", "TP/1.1\r\nHost: t\r\n\r\n"),
    "split-in-final-crlf": (head()[:-1], "\n"),
    "split-then-bare-lf": ("GET {hot} HTTP/1.1\r\nHost: t\r\n", "X-A: 1\n\r\n"),
    "split-then-duplicate-host": ("GET {hot} HTTP/1.1\r\nHost: t\r\n", "Host: t\r\n\r\n"),
    "split-then-obs-fold": ("GET {hot} HTTP/1.1\r\nHost: t\r\nX-A: a\r\n", " b\r\n\r\n"),
    "split-content-length-name": ("GET {hot} HTTP/1.1\r\nHost: t\r\nContent-Len", "gth: x\r\n\r\n"),
    "split-hot-then-garbage": (head(), "XYZ\r\n\r\n"),
    "split-hot-and-part-then-no-host": (head() + "GET {hot} HTTP/1.1\r\n", "X-A: 1\r\n\r\n"),
    "split-three-hot": (head() + head()[:20], head()[20:] + head()[:-3], head()[-3:]),
    # Origin: the CORS lines follow Date and Server, per request.
    "origin-allowed": head("", f"Origin: {ALLOWED}"),
    "origin-allowed-head": head("", f"Origin: {ALLOWED}", method="HEAD"),
    "origin-allowed-with-port": head("", f"Origin: {ALLOWED_WITH_PORT}"),
    "origin-other": head("", "Origin: http://other.test"),
    "origin-null": head("", "Origin: null"),
    "origin-empty": head("", "Origin:"),
    "origin-name-case": head("", f"oRIGIN: {ALLOWED}"),
    "origin-value-case": head("", f"Origin: {ALLOWED.upper()}"),
    "origin-no-space": head("", f"Origin:{ALLOWED}"),
    "origin-spaces-around": head("", f"Origin:   {ALLOWED}   "),
    "origin-tabs-around": head("", f"Origin:\t{ALLOWED}\t"),
    "origin-trailing-slash": head("", f"Origin: {ALLOWED}/"),
    "origin-prefix-of-allowed": head("", "Origin: http://allowed.tes"),
    "origin-twice-allowed-first": head("", f"Origin: {ALLOWED}", "Origin: http://other.test"),
    "origin-twice-other-first": head("", "Origin: http://other.test", f"Origin: {ALLOWED}"),
    "origin-apart": head("", f"Origin: {ALLOWED}", "Accept: */*", "Origin: http://other.test"),
    "origin-like-names": head("", f"X-Origin: {ALLOWED}", f"Origin-X: {ALLOWED}"),
    "origin-first-line": head("", f"Origin: {ALLOWED}", "Host: t", host=False),
    "origin-webp": head("", f"Accept: {WEBP}", f"Origin: {ALLOWED}"),
    "origin-browser": head("", "User-Agent: Mozilla/5.0", "Accept: image/avif,image/webp,*/*",
                           "Sec-Fetch-Mode: cors", "Sec-Fetch-Site: same-site", f"Origin: {ALLOWED}",
                           f"Referer: {ALLOWED}/page"),
    "origin-pipelined": head("", f"Origin: {ALLOWED}") + head("", "Origin: http://other.test") + head()
    + head("", f"Origin: {ALLOWED_WITH_PORT}"),
    "origin-if-none-match": head("", f"Origin: {ALLOWED}", "If-None-Match: *"),
    "origin-range": head("", f"Origin: {ALLOWED}", "Range: bytes=0-9"),
    "origin-absolute-form": head("http://preview.test{hot}", f"Origin: {ALLOWED}"),
    "origin-split-value": (f"GET {{hot}} HTTP/1.1\r\nHost: t\r\nOrigin: {ALLOWED[:9]}", f"{ALLOWED[9:]}\r\n\r\n"),
    "preflight": head("", f"Origin: {ALLOWED}", "Access-Control-Request-Method: GET",
                      "Access-Control-Request-Headers: range", method="OPTIONS"),
    "preflight-other": head("", "Origin: http://other.test", "Access-Control-Request-Method: GET",
                            method="OPTIONS"),
    "hot-then-preflight-then-hot": head("", f"Origin: {ALLOWED}")
    + head("", f"Origin: {ALLOWED}", "Access-Control-Request-Method: GET", method="OPTIONS")
    + head("", f"Origin: {ALLOWED}"),
}
# What the pairs with CORS off and for any origin run: the lane's own answers, with and without Origin.
SHORT_CASES = ("plain", "head", "webp", "browser", "pipelined", "origin-allowed", "origin-other", "origin-webp",
               "origin-pipelined", "preflight", "hot-then-preflight-then-hot")


def request_bytes(case: str | bytes, path: str) -> bytes:
    """The case's bytes, the warmed preview's path filled in."""
    hot = path.encode()
    return case.replace(b"{hot}", hot) if isinstance(case, bytes) else case.replace("{hot}", path).encode("latin-1")


def pieces(case: Case, path: str) -> list[bytes]:
    """The case as the pieces to send, the warmed preview's path filled in."""
    return [request_bytes(piece, path) for piece in (case if isinstance(case, tuple) else (case,))]


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
    """Send the pieces of `data` on a new connection: what came back (Date values blanked) and whether
    the server closed."""
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
    return _DATE.sub(b"\r\nDate: -\r\n", received), closed


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
                                  "origin-pipelined"])
def test_plain_cases_are_answered_by_the_lane_itself(pair: Pair, name: str) -> None:
    """The comparison above would pass with a lane that answers nothing: these must reach it."""
    data = pieces(CASES[name], pair.path)
    hot_requests = b"".join(data).count(pair.path.encode())
    before = metric(pair.with_lane, HOT, by="lane")
    answers, closed = exchange(pair.with_lane, data)
    assert not closed and answers.count(b"HTTP/1.1 200 OK\r\n") == hot_requests + 1  # and the probe's
    assert metric(pair.with_lane, HOT, by="lane") == before + hot_requests


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
    assert (f"\r\nServer: {{server}}\r\nAccess-Control-Allow-Origin: {ALLOWED}\r\n"
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

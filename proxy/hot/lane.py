"""The hot lane: the answer to a plain request for a hot preview, decided from its request head alone.

Why: a hot answer is a few KB already in memory, yet aiohttp's Python around each request (Request,
routing, middleware, Response, writer) is most of its cost. W1 (one hot preview hammered over 64
connections) measured about 70 us of CPU per answer through aiohttp and 20 us through the lane, most
of it now the socket calls (nginx, serving the same from its proxy_cache: about 14 us).

The lane reads a strict subset of what aiohttp's parser (llhttp, in strict mode for requests) accepts,
and answers only what aiohttp would answer with the same bytes; when in doubt it hands over:
- `GET` or `HEAD`, `HTTP/1.1`, a printable-ASCII origin-form target under /previews/ (no fragment)
  that is a key of the hot-previews map (previews.py says when an entry still holds). Absolute-form
  targets are aiohttp's, which serves them as their path and query (request_target.py);
- every line ending in CRLF: header lines of a token, a colon and printable ASCII (no obs-fold, no bare
  LF or CR, no NUL, DEL or bytes above 0x7E);
- `Host` exactly once, and no second copy of a header aiohttp refuses twice (its SINGLETON_HEADERS);
- none of the headers that make the answer depend on more than the URL, announce a body, change the
  protocol or that aiohttp refuses: Content-Length, Transfer-Encoding, Content-Encoding, Upgrade,
  Expect, If-*, Range, Sec-WebSocket-Key1, or a Connection or Proxy-Connection (llhttp reads both
  alike) other than keep-alive.
A buffer is answered only if all of it reads so, the head still arriving included: aiohttp drops the
requests it parsed from a read when a later one in that read is bad, and answers a head it can tell is
bad before it is complete (bare LF, a duplicate Host, ...), so anything else goes to aiohttp whole and
at once (lane_server.py). The bytes sent are those aiohttp would send: the entry's headers in
order (X-Cache and Cache-Status among them), its Age, then Date and Server, then the CORS headers for
the request's Origin (the first Origin line, its value without the spaces and tabs around it, as both
of aiohttp's parsers read it), the same lines aiohttp's response hook adds (http/cors.py), after the
request's `X-Request-ID` line (its own when it is sane, else a new one, as proxy/logs/request_ids.py
decides). OPTIONS, a preflight, is never the lane's. With the access log on, each answer's line is kept
and written in batches (proxy/logs/buffered_access.py), in the form of aiohttp's lines. Its metrics
are counted as plain numbers and added to the Prometheus families once per loop turn
(proxy/metrics/answer_tally.py), which with several workers spares each answer five writes to the
shared metrics files.
"""

import asyncio
import re
import time
from email.utils import formatdate

from aiohttp.http import SERVER_SOFTWARE

from proxy.hot.previews import HotPreviews, hot_key
from proxy.http.cache_status import age_seconds
from proxy.logs.buffered_access import BufferedAccessLog
from proxy.logs.request_ids import SANE_ID_BYTES, new_request_id
from proxy.metrics.answer_tally import AnswerTally
from proxy.metrics.registry import LATENCY_BUCKETS, Metrics
from proxy.routes.previews import PREFIX, PREVIEW_ROUTE, negotiated_format
from proxy.settings.previews import PreviewsConfig
from proxy.tiers.linked_originals import LinkedOriginals

# Request line and header lines (RFC 9112 sections 3 and 5; token characters from RFC 9110 section
# 5.6.2), each ending in CRLF. No obs-fold, no bytes outside printable ASCII, no fragment in the target.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_METHOD = rb"(GET|HEAD) "
_TARGET = rb"(" + re.escape(PREFIX.encode()) + rb"/[!$-~]*)"
_VERSION = rb" HTTP/1\.1\r\n"
# Well inside aiohttp's limits (8190 bytes a line, 128 header lines), so the lane never answers a
# request aiohttp would refuse for its size.
MAX_HEAD_BYTES = 8190
MAX_HEADER_LINES = 100
_HEAD = re.compile(_METHOD + _TARGET + _VERSION
                   + rb"((?:" + _TOKEN + rb"+:[\t -~]*\r\n){0,%d})" % MAX_HEADER_LINES)


def _prefixes(literal: bytes) -> bytes:
    """A pattern for every prefix of `literal`, the empty one included."""
    pattern = b""
    for byte in reversed(literal):
        pattern = b"(?:" + re.escape(bytes([byte])) + pattern + b")?"
    return pattern


# What a head still arriving may end in: a prefix of the request line, or after its last CRLF part of a
# header line or of the empty line. Anything else may already be an error to aiohttp.
_PARTIAL_REQUEST_LINE = re.compile(_prefixes(b"GET") + b"|" + _prefixes(b"HEAD") + b"|(?:GET|HEAD)"
                                   + _prefixes(b" " + PREFIX.encode() + b"/")
                                   + b"|" + _METHOD + _TARGET + _prefixes(b" HTTP/1.1\r"))
_PARTIAL_LINE = re.compile(rb"(?:" + _TOKEN + rb"+(?::[\t -~]*\r?)?)?|\r")
# The header names the lane checks, searched in the lowercased header lines with a CRLF in front (so
# each name starts after one). A match of the group is one of aiohttp's SINGLETON_HEADERS (http_parser.py,
# _http_parser.pyx; a second one is a 400 there) that the lane does not hand over anyway; any other match
# is a header that hands the request over.
_CHECKED_FIELDS = re.compile(
    rb"\r\n(?:(host|user-agent|content-type|content-location|content-range|max-forwards|etag|server):"
    rb"|(?:content-length|transfer-encoding|content-encoding|upgrade|expect|if-[a-z-]*|range|sec-websocket-key1):"
    rb"|(?:proxy-)?connection:(?![ \t]*keep-alive[ \t]*\r\n))")
_ACCEPT = re.compile(rb"\r\naccept:([\t -~]*)\r\n")  # the first one, as aiohttp's headers.get() gives
# The first Origin line, in the head as received (its value's case matters): its name in any case.
_ORIGIN = re.compile(rb"(?:^|\r\n)origin:[ \t]*([\t -~]*?)[ \t]*\r\n", re.IGNORECASE)
# The first line of these headers, as aiohttp's headers.get() gives it: the value without the spaces and
# tabs around it. Only searched for when the lowercased lines hold the name.
_REQUEST_ID = re.compile(rb"(?:^|\r\n)x-request-id:[ \t]*([\t -~]*?)[ \t]*\r\n", re.IGNORECASE)
_USER_AGENT = re.compile(rb"(?:^|\r\n)user-agent:[ \t]*([\t -~]*?)[ \t]*\r\n", re.IGNORECASE)
_SERVER_LINE = f"Server: {SERVER_SOFTWARE}\r\n".encode()
LANE = "lane"
# One request the lane may answer: where its head ends in the buffer (after the empty line), its hot
# key, whether it is a GET (a HEAD gets no body), its CORS header lines, the request id it sent ("" for
# none: one is made for each answer), and for its access line its target and User-Agent ("" with the
# access log off).
Planned = tuple[int, str, bool, bytes, str, str, str]
# Plans kept by the bytes they were read from: buffers up to PLANNED_BYTES_MAX (a head with a browser's
# usual headers), up to PLANS_KEPT of them (so at most some 4 MiB).
PLANNED_BYTES_MAX = 2048
PLANS_KEPT = 2048


class HotLane:
    """Reads request heads as aiohttp would and turns hot ones into the bytes of their answers."""

    def __init__(self, hot: HotPreviews, links: LinkedOriginals, settings: PreviewsConfig, metrics: Metrics,
                 access_log: BufferedAccessLog | None = None) -> None:
        self._hot = hot
        self._access_log = access_log
        self._links = links
        self._settings = settings
        self._negotiates = settings.auto_webp or settings.auto_avif
        self._cors = hot.cors
        # Counted as plain numbers, added to the metrics once per loop turn and before a scrape.
        self._tally = AnswerTally(LATENCY_BUCKETS, lambda answers, body_bytes, buckets, seconds: metrics.hot_answers(
            PREVIEW_ROUTE, hot.tier, LANE, answers, body_bytes, buckets, seconds))
        metrics.before_scrape(self._tally.flush)
        self._plans: dict[bytes, list[Planned] | None] = {}
        self._date_second = -1
        self._date_line = b""

    def plan(self, buffer: bytes) -> list[Planned] | None:
        """The requests of `buffer` in order, or None if any part of it (the head still arriving
        included) is not one the lane reads exactly as aiohttp does: then aiohttp must read all of it.

        A plan depends on the bytes alone (and the settings), and a client on a keep-alive connection
        sends the same head again and again: plans of small buffers are kept (PLANS_KEPT of them, all
        dropped when full), which spares the reading of a head most of the time."""
        if len(buffer) > PLANNED_BYTES_MAX:
            return self._plan(buffer)
        plans = self._plans
        if buffer in plans:
            return plans[buffer]
        if len(plans) >= PLANS_KEPT:
            plans.clear()
        planned = plans[buffer] = self._plan(buffer)
        return planned

    def _plan(self, buffer: bytes) -> list[Planned] | None:
        planned: list[Planned] = []
        start = 0
        while (end := buffer.find(b"\r\n\r\n", start)) >= 0:
            request = self._read(buffer, start, end + 2)
            if request is None:
                return None
            planned.append(request)
            start = end + 4
        if start < len(buffer) and not self._may_become_head(buffer, start):
            return None
        return planned

    def answer(self, request: Planned, peer: str = "-") -> bytes | asyncio.Future[None] | None:
        """The whole response to a planned request from `peer` (its address, for the access line); None
        if its key is not hot (aiohttp answers it); or the check of its hot entry's source, to wait for
        before asking again (hot/previews.py: find_or_check)."""
        started = time.monotonic()
        _, key, is_get, cors, request_id, target, user_agent = request
        request_id = request_id or new_request_id()
        entry = self._hot.find_or_check(key, self._links.config)
        if isinstance(entry, asyncio.Future):
            return entry
        if entry is None or entry.wire_head is None:
            return None
        # Age follows the kept headers, as the handler's answer adds it (hot/previews.py).
        age = b"Age: " + age_seconds(entry.stored_at).encode() + b"\r\n"
        parts = [entry.wire_head, age, self._date(), _SERVER_LINE, b"X-Request-ID: ", request_id.encode(), b"\r\n",
                 cors, b"\r\n"]
        if is_get:
            parts.append(entry.body)
        taken = time.monotonic() - started
        body_bytes = len(entry.body) if is_get else 0
        self._tally.add(body_bytes, taken)
        if self._access_log is not None:
            self._access_log.add((time.time(), peer, "GET" if is_get else "HEAD", target, 200, body_bytes, taken,
                                  entry.headers.get("X-Cache", ""), user_agent, request_id))
        return b"".join(parts)

    def flush(self) -> None:
        """Write the access lines kept so far and count the answers not yet counted (at shutdown: none
        is lost at a clean stop)."""
        self._tally.flush()
        if self._access_log is not None:
            self._access_log.flush()

    def _read(self, buffer: bytes, start: int, end: int) -> Planned | None:
        """The request whose head is buffer[start:end] (its lines with their CRLFs; the empty line
        follows), or None."""
        if end - start > MAX_HEAD_BYTES:
            return None
        match = _HEAD.fullmatch(buffer, start, end)
        if match is None:
            return None
        fields = b"\r\n" + match[3].lower()
        checked = _CHECKED_FIELDS.findall(fields)  # one pass for every check: most heads hold few of them
        if b"" in checked or checked.count(b"host") != 1 or len(set(checked)) < len(checked):
            return None
        accept = ""
        if self._negotiates:
            found = _ACCEPT.search(fields)
            accept = found[1].decode("ascii") if found else ""
        target = match[2].decode("ascii")
        key = hot_key(target, negotiated_format(accept, self._settings) or "")
        request_id = ""
        if b"\r\nx-request-id:" in fields:
            sent = _REQUEST_ID.search(match[3])
            if sent is not None and SANE_ID_BYTES.fullmatch(sent[1]):
                request_id = sent[1].decode("ascii")
        user_agent = ""
        if self._access_log is not None and b"user-agent" in checked:
            found_agent = _USER_AGENT.search(match[3])
            user_agent = found_agent[1].decode("ascii") if found_agent else ""
        return end + 2, key, match[1] == b"GET", self._cors_lines(match[3]), request_id, target, user_agent

    def _cors_lines(self, lines: bytes) -> bytes:
        """The CORS header lines of the answer to a request with these header `lines`."""
        if self._cors is None:
            return b""
        if not self._cors.varies:
            return self._cors.wire_lines(None)  # the same for every request
        found = _ORIGIN.search(lines)
        return self._cors.wire_lines(found[1].decode("ascii") if found else None)

    @staticmethod
    def _may_become_head(buffer: bytes, start: int) -> bool:
        """Whether buffer[start:], a head with no empty line yet, may still become one the lane answers."""
        if len(buffer) - start > MAX_HEAD_BYTES:
            return False
        lines_end = buffer.rfind(b"\r\n", start) + 2
        if lines_end < start + 2:
            return _PARTIAL_REQUEST_LINE.fullmatch(buffer, start) is not None
        match = _HEAD.fullmatch(buffer, start, lines_end)
        if match is None or _PARTIAL_LINE.fullmatch(buffer, lines_end) is None:
            return False
        # The line still arriving counts too: a name that must be handed over, or a second Host, may
        # already be an error to aiohttp.
        checked = _CHECKED_FIELDS.findall(b"\r\n" + match[3].lower() + buffer[lines_end:].lower())
        return b"" not in checked and len(set(checked)) == len(checked)

    def _date(self) -> bytes:
        """The Date line, made once a second (aiohttp does the same)."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date_line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        return self._date_line

"""The hot lane: the answer to a plain request for a hot preview, decided from its request head alone.

Why: a hot answer is a few KB already in memory, yet aiohttp's Python around each request (Request,
routing, middleware, Response, writer) is most of its cost. W1 (one hot preview hammered over 64
connections) measured about 70 us of CPU per answer through aiohttp and 20 us through the lane, most
of it now the socket calls (nginx, serving the same from its proxy_cache: about 14 us).

It answers only requests whose answer is already decided, and only when it is sure it reads them as
aiohttp would: `GET` or `HEAD`, `HTTP/1.1`, a printable-ASCII origin-form target under /previews/ that
is a key of the hot-previews map (hot_previews.py says when an entry still holds), header lines of a
token, a colon and printable ASCII, and none of the headers that make the answer depend on more than
the URL or announce a body or a change of protocol: Content-Length, Transfer-Encoding, Upgrade,
Expect, If-*, Range, or a Connection other than keep-alive. Anything else is handed to aiohttp
unchanged (hot_lane_server.py), which answers it as it always has. The bytes sent are those aiohttp
would send: the entry's headers in order, then Date and Server.
"""

import re
import time
from email.utils import formatdate

from aiohttp.http import SERVER_SOFTWARE

from proxy.hot_previews import HotPreviews, hot_key
from proxy.linked_originals import LinkedOriginals
from proxy.metrics import Metrics
from proxy.previews_config import PreviewsConfig
from proxy.previews_handler import PREFIX, PREVIEW_ROUTE, negotiated_format

# Request line and header lines (RFC 9112 sections 3 and 5; token characters from RFC 9110 section
# 5.6.2), each ending in CRLF. No obs-fold, no bytes outside printable ASCII, no fragment in the target.
_HEAD = re.compile(rb"(GET|HEAD) (" + re.escape(PREFIX.encode()) + rb"/[!$-~]*) HTTP/1\.1\r\n"
                   rb"((?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t -~]*\r\n)*)")
# Searched in the lowercased header lines, with a CRLF in front so each name starts after one.
_HAND_OVER = re.compile(rb"\r\n(?:(?:content-length|transfer-encoding|upgrade|expect|if-[a-z-]*|range):"
                        rb"|connection:(?![ \t]*keep-alive[ \t]*\r\n))")
_ACCEPT = re.compile(rb"\r\naccept:([\t -~]*)\r\n")  # the first one, as aiohttp's headers.get() gives
_SERVER_LINE = f"Server: {SERVER_SOFTWARE}\r\n".encode()
LANE = "lane"
# Well inside aiohttp's limits (8190 bytes a line, 128 header lines), so the lane never answers a
# request aiohttp would refuse.
MAX_HEAD_BYTES = 8190
MAX_HEADER_LINES = 100


class HotLane:
    """Turns a request head into the bytes of its answer, or None when aiohttp must answer it."""

    def __init__(self, hot: HotPreviews, links: LinkedOriginals, settings: PreviewsConfig, metrics: Metrics) -> None:
        self._hot = hot
        self._links = links
        self._settings = settings
        self._negotiates = settings.auto_webp or settings.auto_avif
        self._metrics = metrics
        self._date_second = -1
        self._date_line = b""

    def answer(self, head: bytes) -> bytes | None:
        """The whole response to `head` (the request line and header lines, each with its CRLF)."""
        started = time.monotonic()
        if len(head) > MAX_HEAD_BYTES or head.count(b"\n") > MAX_HEADER_LINES:
            return None
        match = _HEAD.fullmatch(head)
        if match is None:
            return None
        fields = b"\r\n" + match[3].lower()
        if _HAND_OVER.search(fields):
            return None
        accept = ""
        if self._negotiates:
            found = _ACCEPT.search(fields)
            accept = found[1].decode("ascii") if found else ""
        key = hot_key(match[2].decode("ascii"), negotiated_format(accept, self._settings) or "")
        entry = self._hot.find(key, self._links.config)
        if entry is None or entry.wire_head is None:
            return None
        self._hot.answered(LANE)
        parts = [entry.wire_head, self._date(), _SERVER_LINE, b"\r\n"]
        if match[1] == b"GET":
            parts.append(entry.body)
        self._metrics.request_done(PREVIEW_ROUTE, 200, time.monotonic() - started)
        return b"".join(parts)

    def _date(self) -> bytes:
        """The Date line, made once a second (aiohttp does the same)."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date_line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        return self._date_line

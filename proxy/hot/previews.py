"""Hot previews: finished answers to preview URLs that are asked again and again, keyed by the raw URL.

A gallery reloads the same thumbnails by the same URLs. On the full path every such hit parses the
URL, checks its signature, applies the options, resolves the source and builds the cache key before
the memory lookup finds the bytes: most of the handler's time for a 5 KB answer. The raw path and
query name that answer exactly (the signature is part of them, so an identical raw URL has already
passed its check), together with the Accept class when format negotiation is on. An answer kept here
is reused only while what the full path would decide still holds:

- the URL's expiry (`exp:`), checked on every use;
- the source version the answer was found under: it is trusted only as long as the source-info cache
  (CACHE_SOURCE_INFO_TTL) would trust it; after that the full path runs, sees a changed original,
  and keeps the new answer. An entry still asked for in its last REFRESH_AHEAD_SECONDS is checked
  again ahead of that moment, in the background (the source described afresh, the store looked up,
  nothing rendered), and kept again with the new trust if the store still holds it. So a hot URL
  under steady load stays hot: without this, every request between the end of its trust and the
  full path's new answer would go to aiohttp's full path, taking its connection with it until
  aiohttp is idle again (proxy/hot/lane_server.py);
- the links file it was resolved under: a reload (SIGHUP) may have dropped the source's bucket, so
  an answer kept under another links file is not given again.
- purges: when a purge has happened in any process since the last lookup (`watch_purges`), the
  whole map is dropped, so no worker answers with what a purge removed.

Only answers whose bytes came from the previews store (an X-Cache HIT) and are small enough for its
memory are kept, and the body is the store's own bytes object: an entry costs its headers and key on
top of what the store already holds. The map has its own LRU bound (CACHE_PREVIEWS_MEMORY's budget):
when the store evicts a body first, the map may keep it a little longer, never past that bound.
CORS headers depend on the request's Origin, so they are not kept: aiohttp's response hook adds them to
the handler's answers and the lane appends the same lines to its own (`cors`). Only their constant
part, `Vary: Origin` with a list of origins, is in the kept headers.
Use from the event loop only.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import hdrs, web
from cachetools import LRUCache
from multidict import CIMultiDict

from proxy.http.cache_status import CacheAnswer, age_seconds
from proxy.http.cors import CorsPolicy, add_vary_origin
from proxy.http.respond import respond
from proxy.metrics.registry import Metrics
from proxy.routes.preview_headers import PreviewHeaders
from proxy.storage.links.config import LinksConfig

log = logging.getLogger(__name__)
# What an entry weighs beyond its body and key: its headers and the objects around them.
ENTRY_OVERHEAD_BYTES = 1024
# How long before the end of its source's trust an entry still asked for is checked again (at most half
# of that trust): a describe and a store lookup, done well before a busy URL's next request comes.
REFRESH_AHEAD_SECONDS = 1.0
# Checks the source and the store again and keeps the answer anew (HotPreviews.keep), or leaves it.
Refresh = Callable[[], Awaitable[None]]
# Request headers that make the answer depend on more than the URL. Requests with any of them go
# through `respond`, which evaluates them in RFC 9110's order (section 13.2.2) as the full path does.
HANDLER = "handler"  # the `by` label of answers the handler gives from the map
HIT = "HIT"  # every kept answer is a previews-store hit
CONDITIONAL_HEADERS = (hdrs.IF_MATCH, hdrs.IF_NONE_MATCH, hdrs.IF_MODIFIED_SINCE, hdrs.IF_UNMODIFIED_SINCE,
                       hdrs.RANGE, hdrs.IF_RANGE)


@dataclass(frozen=True, slots=True)
class HotPreview:
    """One finished 200 answer to a preview URL, and how long it may be given again."""

    preview: PreviewHeaders  # what the handler built: conditional requests and ranges go through `respond` with it
    headers: CIMultiDict[str]  # preview.whole(): every header of the 200 but Date and Server, in order
    body: bytes
    expires: int  # the URL's `exp:` in epoch seconds; 0 for never
    fresh_until: float  # time.monotonic() after which the source's version must be checked again
    links: LinksConfig  # the links file in force when the source was resolved
    wire_head: bytes | None  # the status line and `headers` as aiohttp writes them, for the hot lane
    stored_at: float  # epoch seconds the store kept the preview: each answer's Age counts from it
    refresh_at: float  # time.monotonic() from which a lookup starts `refresh`
    refresh: Refresh | None  # None: the entry simply ends at fresh_until


class HotPreviews:
    """Raw URL (and Accept class) -> HotPreview, bounded by bytes. Disabled with a budget of 0."""

    def __init__(self, budget_bytes: int, entry_max: int, metrics: Metrics, tier: str,
                 cors: CorsPolicy | None = None) -> None:
        self.cors = cors  # what completes each answer per request (None: CORS is off)
        self._entry_max = entry_max
        self.metrics = metrics
        self.tier = tier  # the previews tier, whose hits these answers are
        # Values are (entry, weight): the weight counts the key too, which may be kilobytes long.
        self._entries: LRUCache[str, tuple[HotPreview, int]] | None = (
            LRUCache(maxsize=budget_bytes, getsizeof=lambda item: item[1]) if budget_bytes else None)
        self._check_purges: Callable[[], object] = lambda: None
        self._refreshing: dict[str, asyncio.Task[None]] = {}  # key -> its refresh in flight

    def watch_purges(self, check: Callable[[], object]) -> None:
        """Call `check` before each lookup: it clears this map (`clear`) when a purge happened in any
        process since (proxy.tiers.purge_guard reads a shared counter: a memory load)."""
        self._check_purges = check

    def clear(self) -> None:
        """Forget every kept answer (a purge may have removed what they show)."""
        if self._entries is not None:
            self._entries.clear()

    @property
    def enabled(self) -> bool:
        """False when CACHE_PREVIEWS_MEMORY is 0: nothing is kept and every request takes the full path."""
        return self._entries is not None

    def find(self, key: str, links: LinksConfig) -> HotPreview | None:
        """The answer kept for `key`, unless its URL expired, its source must be checked again, or
        `links` (the links file in force) is not the one it was resolved under."""
        found = self.find_or_check(key, links, wait=False)
        return found if isinstance(found, HotPreview) else None

    def find_or_check(self, key: str, links: LinksConfig,
                      wait: bool = True) -> HotPreview | asyncio.Future[None] | None:
        """As find; but with `wait`, for an entry whose only fault is that its source's trust ran out
        (no request came in its last moments to check it ahead), the check of its source and store:
        once it is done, the entry is fresh again or gone. The hot lane waits for it rather than hand
        the request (and its connection) to aiohttp's full path."""
        if self._entries is None:
            return None
        self._check_purges()
        found = self._entries.get(key)
        if found is None:
            return None
        entry = found[0]
        now = time.monotonic()
        if entry.links is not links or (entry.expires and entry.expires < time.time()):
            # The full path decides now: a 403 for an expired URL, or a source resolved again under
            # the new links file.
            del self._entries[key]
            return None
        if now >= entry.fresh_until:
            checking = self._refreshing.get(key)
            if wait and entry.refresh is not None:
                return checking or self._start_refresh(key, entry)
            if checking is None:
                del self._entries[key]  # the full path looks at the source afresh
            return None
        if now >= entry.refresh_at and entry.refresh is not None and key not in self._refreshing:
            self._start_refresh(key, entry)
        return entry

    def _start_refresh(self, key: str, entry: HotPreview) -> asyncio.Task[None]:
        """Run the entry's refresh in the background, once at a time per key. An entry it did not
        replace is dropped once its trust has run out: the next request takes the full path."""
        refresh = entry.refresh
        assert refresh is not None

        async def run() -> None:
            try:
                await refresh()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the entry then ends at its time and the full path answers
                log.debug("refresh of a hot preview failed: %s", error)
            finally:
                del self._refreshing[key]
                entries = self._entries
                kept = entries.get(key) if entries is not None else None
                if entries is not None and kept is not None and kept[0] is entry:
                    if time.monotonic() >= entry.fresh_until:
                        del entries[key]

        task = self._refreshing[key] = asyncio.get_running_loop().create_task(run())
        return task

    async def close(self) -> None:
        """Cancel the refreshes in flight (at shutdown)."""
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def answered(self, by: str, body_bytes: int) -> None:
        """Count an answer given from the map (`by` the handler or the hot lane) with `body_bytes` of
        body: it is a previews-tier hit as far as the tier's metrics go, answered the short way."""
        self.metrics.cache_result(self.tier, "hit")
        self.metrics.hot_answer(by)
        if body_bytes:
            self.metrics.bytes_served(self.tier, "hit", body_bytes)

    def keep(self, key: str, preview: PreviewHeaders, body: bytes, expires: int, fresh_until: float,
             links: LinksConfig, stored_at: float, refresh: Refresh | None = None) -> None:
        """Remember the 200 of `body` with the handler's `preview` headers for `key`, if it is small
        enough and still worth keeping; its headers are serialised here, once, for the hot lane. The
        store kept it at `stored_at` (epoch seconds), which each answer's Age counts from. `refresh`
        checks it again shortly before `fresh_until` if it is still asked for then."""
        now = time.monotonic()
        if (self._entries is None or len(body) > self._entry_max or len(body) != preview.info.size
                or now >= fresh_until):
            return
        headers = preview.whole()
        if self.cors is not None and self.cors.varies:
            add_vary_origin(headers)  # as the response hook would, so the lane's bytes have it too
        refresh_at = fresh_until - min(REFRESH_AHEAD_SECONDS, (fresh_until - now) / 2)
        entry = HotPreview(preview, headers, body, expires, fresh_until, links, _wire_head(headers), stored_at,
                           refresh_at, refresh)
        self._entries[key] = (entry, len(body) + 2 * len(key) + ENTRY_OVERHEAD_BYTES)


def _wire_head(headers: CIMultiDict[str]) -> bytes | None:
    """`HTTP/1.1 200 OK` and the headers, one `name: value` line each, as aiohttp serialises them
    (Date and Server follow, per request). None if a value could split a line: never sent raw."""
    lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
    if any("\r" in line[:-2] or "\n" in line[:-2] for line in lines):
        return None
    return ("HTTP/1.1 200 OK\r\n" + "".join(lines)).encode("utf-8")


def hot_key(raw_path: str, accept_class: str) -> str:
    """The key of a request: its raw path and query, and the format its Accept header negotiates."""
    return f"{raw_path}\n{accept_class}" if accept_class else raw_path


async def answer(request: web.Request, entry: HotPreview, hot: HotPreviews) -> web.StreamResponse:
    """Send a kept answer: prebuilt for a plain GET or HEAD, through `respond` for conditional requests."""
    request_headers = request.headers
    for name in CONDITIONAL_HEADERS:
        if name in request_headers:
            hot.answered(HANDLER, 0)  # respond counts the bytes of what it sends (a range, or none for a 304)
            cache = CacheAnswer(hot.tier, HIT, entry.stored_at)
            return await respond(request, entry.preview.info, entry.preview.route, data=entry.body,
                                 cache=cache, metrics=hot.metrics)
    hot.answered(HANDLER, len(entry.body) if request.method == hdrs.METH_GET else 0)
    # A Response with its whole body goes out in one write, headers and body together; for HEAD,
    # aiohttp keeps the Content-Length and leaves the body out. Age goes last, after the kept headers,
    # where the hot lane writes it too.
    response = web.Response(body=entry.body, headers=entry.headers)
    response.headers[hdrs.AGE] = age_seconds(entry.stored_at)
    return response

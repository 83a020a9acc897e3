"""Request ids: each request's `X-Request-ID`, taken from the request when it is sane and made otherwise,
echoed in its answer and carried by every log line written while it is handled.

A client or a front proxy may send its own id to follow a request through several services; one that
is too long or holds characters a log reader would have to escape is replaced, never trusted. The id
lives in a context variable the middleware sets, so tasks started by the handler carry it too, and the
log formatters (proxy.logs.formats) read it. The hot lane reads and makes ids the same way
(proxy/hot/lane.py).
"""

import random
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from aiohttp import web

HEADER = "X-Request-ID"
# What an id sent by the client may be: short, and nothing a log line or a header would need to escape.
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SANE_ID_BYTES = re.compile(SANE_ID.pattern.encode())
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_KEY = web.RequestKey("request_id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_request_id() -> str:
    """128 random bits in hex. Not secret (the client sees it), only unique: each process seeds its
    generator from the system's randomness, and this is cheaper than asking it every time."""
    return f"{random.getrandbits(128):032x}"


def request_id_for(sent: str | None) -> str:
    """The id of a request that sent `sent` as its X-Request-ID (None: none sent)."""
    return sent if sent is not None and SANE_ID.fullmatch(sent) else new_request_id()


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request its id for as long as it is handled (the outermost middleware)."""
    request[_KEY] = request_id = request_id_for(request.headers.get(HEADER))
    token = REQUEST_ID.set(request_id)
    try:
        return await handler(request)
    finally:
        REQUEST_ID.reset(token)


def install_request_ids(app: web.Application) -> None:
    """Put the id in every answer's headers, errors included (call before the other response hooks:
    the hot lane writes the lines in the same order)."""

    async def add_header(request: web.Request, response: web.StreamResponse) -> None:
        request_id = request.get(_KEY) or REQUEST_ID.get()
        if request_id is not None:
            response.headers[HEADER] = request_id

    app.on_response_prepare.append(add_header)


def answered_request_id(response: web.StreamResponse) -> str | None:
    """The id an answer carries (for its access line, written after the middleware is done)."""
    return response.headers.get(HEADER)

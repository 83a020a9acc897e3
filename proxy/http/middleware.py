"""The only place errors become responses, and where every request is counted and timed."""

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from previews.errors import PublicError
from proxy.app_keys import METRICS
from proxy.errors import AdminUnauthorized, RangeNotSatisfiable
from proxy.secrets.registry import SECRETS

log = logging.getLogger(__name__)
# nginx's code for "the client closed the connection before the answer was sent".
CLIENT_CLOSED_REQUEST = 499
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every PublicError and aiohttp's HTTP errors as one-line text; never let a traceback out."""
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except PublicError as error:
        status = error.status
        return error_response(error.status, error.reason, _error_headers(error))
    except web.HTTPException as error:
        # aiohttp's own: no route (404), wrong method (405), body too large (413) ...
        status = error.status
        if error.status < 400:
            raise
        return error_response(error.status, error.reason, {"Allow": error.headers["Allow"]}
                              if "Allow" in error.headers else {})
    except Exception as error:
        if isinstance(error, ConnectionResetError) and _client_gone(request):
            # The client left before its answer could be written (wrk and browsers do this when they
            # stop): nothing is wrong here and nobody is left to answer. aiohttp's finish_response
            # meets the closed transport again with this response and ignores it quietly.
            status = CLIENT_CLOSED_REQUEST
            return web.Response(status=CLIENT_CLOSED_REQUEST)
        log.exception("unexpected error on %s %s", request.method, request.path)
        # A bug, not a typed error: answered as the root error itself, 500 "internal error".
        return error_response(PublicError.status, PublicError.default_reason, {})
    finally:
        route = request.match_info.route.name or "unmatched"
        request.app[METRICS].request_done(route, status, time.monotonic() - started)


def error_response(status: int, reason: str, headers: dict[str, str]) -> web.Response:
    """A plain-text, one-line error body, with every known secret masked (a reason may quote input)."""
    response = web.Response(status=status, text=SECRETS.redact(reason) + "\n", headers=headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _error_headers(error: PublicError) -> dict[str, str]:
    if isinstance(error, RangeNotSatisfiable):
        return {"Content-Range": f"bytes */{error.size}"}
    if isinstance(error, AdminUnauthorized):
        return {"WWW-Authenticate": 'Bearer realm="preview-proxy"'}  # RFC 6750 section 3
    return {}

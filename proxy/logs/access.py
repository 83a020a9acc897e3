"""The access line: one per answered request, the same from aiohttp's handler and from the hot lane.

`<peer> "<method> <target> HTTP/<version>" <status> <bytes> <seconds>s "<X-Cache>" "<User-Agent>"`,
logged at INFO by the `aiohttp.access` logger with the request's id and the same values as fields
(`access`), which the JSON format writes as they are. The target is the one the client sent, before
any decoding. ACCESS_LOG=false turns both writers off.
"""

import logging
import os
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from proxy.logs.request_ids import answered_request_id

ACCESS_LOGGER = logging.getLogger("aiohttp.access")


def access_fields(peer: str, method: str, target: str, version: str, status: int, size: int, seconds: float,
                  cache: str, user_agent: str) -> dict[str, Any]:
    """The values of one access line, by the names the JSON format gives them."""
    return {"remote": peer, "method": method, "target": target, "version": version, "status": status,
            "bytes": size, "seconds": round(seconds, 6), "cache": cache, "user_agent": user_agent}


def access_text(fields: dict[str, Any]) -> str:
    """The line's message, from its fields."""
    return access_message(fields["remote"], fields["method"], fields["target"], fields["version"], fields["status"],
                          fields["bytes"], fields["seconds"], fields["cache"], fields["user_agent"])


def access_message(peer: str, method: str, target: str, version: str, status: int, size: int, seconds: float,
                   cache: str, user_agent: str) -> str:
    """The line's message from its values (`seconds` as access_fields rounds it)."""
    return (f'{peer} "{method} {target} HTTP/{version}" {status} {size} {seconds:.6f}s "{cache or "-"}" '
            f'"{user_agent or "-"}"')


def access_record(fields: dict[str, Any], request_id: str | None, created: float) -> logging.LogRecord:
    """The record of an access line, as if logged at `created` (the hot lane writes its lines later).

    Made from a prototype record of this process: LogRecord's constructor (the caller's file name
    split, the thread and process looked up) costs as much as writing the line, for values that are
    the same on every access line.
    """
    record = logging.LogRecord.__new__(logging.LogRecord)
    record.__dict__ = {**_prototype(), "msg": access_text(fields), "created": created,
                       "msecs": (created - int(created)) * 1000, "relativeCreated": (created - _started) * 1000,
                       "access": fields, "request_id": request_id}
    return record


_prototype_pid = 0
_prototype_fields: dict[str, Any] = {}
_started = time.time()


def access_prototype() -> dict[str, Any]:
    """The values every access record of this process shares (its logger's name, level, pid, ...): what
    a formatter's access_line puts around each line's own values."""
    return _prototype()


def _prototype() -> dict[str, Any]:
    """What every access record of this process shares (made again in a new process)."""
    global _prototype_pid, _prototype_fields, _started
    if _prototype_pid != os.getpid():
        record = ACCESS_LOGGER.makeRecord(ACCESS_LOGGER.name, logging.INFO, __file__, 0, "", (), None)
        _prototype_pid, _prototype_fields = os.getpid(), dict(record.__dict__)
        _started = record.created - record.relativeCreated / 1000
    return _prototype_fields


def _body_bytes(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """The body's length as sent: its Content-Length when there is one (aiohttp's body_length counts
    what its writer buffered, which leaves out part of a body written with its head or by sendfile)."""
    if request.method == "HEAD" or response.status in (204, 304):
        return 0
    length = response.content_length
    return length if length is not None else response.body_length


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access logger (AppRunner's access_log_class), writing the line above."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float) -> None:
        """One line for an answered request."""
        version = request.version
        fields = access_fields(request.remote or "-", request.method, request.raw_path,
                               f"{version.major}.{version.minor}", response.status, _body_bytes(request, response),
                               time_taken, response.headers.get("X-Cache", ""), request.headers.get("User-Agent", ""))
        record = access_record(fields, answered_request_id(response), time.time())
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.handle(record)

    @property
    def enabled(self) -> bool:
        """Whether a line would be written (aiohttp skips the call otherwise)."""
        return self.logger.isEnabledFor(logging.INFO)

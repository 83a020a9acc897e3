"""The hot lane's listener at shutdown, as aiohttp's own site would be: it stops accepting, closes the
connections the lane still holds, and leaves aiohttp to finish the requests in flight on the others.

In-process, on uvloop as served, with a lane that hands every connection over (what the lane answers
is tests/test_hot_lane.py's matter).
"""

import asyncio
import socket
from typing import cast

import uvloop
from aiohttp import web

from proxy.hot.lane import HotLane
from proxy.hot.lane_server import HotLaneListener

REQUEST_SECONDS = 0.5


class HandsEverythingOver:
    """A lane that reads no head as its own: aiohttp answers every connection."""

    def plan(self, buffer: bytes) -> None:
        return None

    def flush(self) -> None:
        """It answers nothing, so it has no access lines to write nor answers to count."""


async def shut_down_while_a_request_runs() -> tuple[bytes, bytes, bool]:
    """The in-flight request's whole answer, what an idle connection held by the lane reads, and
    whether a new connection was refused after the listener stopped."""
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(REQUEST_SECONDS)
        return web.Response(text="finished")

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    listener = HotLaneListener(runner, sock, cast(HotLane, HandsEverythingOver()))
    await listener.start()
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
    await asyncio.wait_for(started.wait(), 5)
    await listener.stop()
    await runner.cleanup()
    answer = await asyncio.wait_for(reader.read(), 5)
    idle = await asyncio.wait_for(idle_reader.read(), 5)
    try:
        await asyncio.open_connection("127.0.0.1", port)
        refused = False
    except OSError:
        refused = True
    for stream in (writer, idle_writer):
        stream.close()
    return answer, idle, refused


def test_stopping_finishes_requests_in_flight_and_closes_what_the_lane_holds() -> None:
    answer, idle, refused = uvloop.run(shut_down_while_a_request_runs())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nfinished")
    assert idle == b""  # closed, with nothing written
    assert refused

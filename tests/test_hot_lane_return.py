"""aiohttp gives a connection back to the hot lane when it is idle at a head's end.

In-process, on uvloop as served, with real aiohttp behind the listener and a lane that reads plain GET
heads and answers /hot itself (what the real lane answers is tests/test_hot_lane.py's matter). The
aiohttp handler for /hot answers differently, so each test sees who answered.
"""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import cast

import uvloop
from aiohttp import web

from proxy.hot.lane import HotLane, Planned
from proxy.hot.lane_server import HotLaneListener, aiohttp_is_idle

FROM_LANE = b"lane"
FROM_AIOHTTP = b"aiohttp"
KEEPALIVE_SECONDS = 0.4
READ_SECONDS = 5.0


class LaneForHot:
    """Plans whole GET heads with no body (None for a head with one, as the real lane hands those over) and
    answers /hot; counts its answers, and keeps what it was asked to read."""

    def __init__(self) -> None:
        self.answered = 0
        self.read: list[bytes] = []
        self._read_more = asyncio.Event()

    async def has_read(self, data: bytes) -> None:
        """Return once `data` was among what it was asked to read (at most READ_SECONDS from now)."""
        async with asyncio.timeout(READ_SECONDS):
            while data not in self.read:
                self._read_more.clear()
                await self._read_more.wait()

    def plan(self, buffer: bytes) -> list[Planned] | None:
        self.read.append(buffer)
        self._read_more.set()
        plans: list[Planned] = []
        end = 0
        while (found := buffer.find(b"\r\n\r\n", end)) >= 0:
            head = buffer[end:found].decode("latin-1")
            if not head.startswith("GET ") or "content-length" in head.lower():
                return None
            end = found + 4
            plans.append((end, head.split(" ")[1], True, b"", "", "", ""))
        return plans

    def answer(self, request: Planned, peer: str = "-") -> bytes | None:
        if request[1] != "/hot":
            return None
        self.answered += 1
        return b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n" + FROM_LANE

    def flush(self) -> None:
        """Nothing is logged or counted."""


class Client:
    """One raw keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def body(self) -> bytes:
        """The next response's body (every answer here has a Content-Length)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), READ_SECONDS)
        lines = head.lower().split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
        return await asyncio.wait_for(self.reader.readexactly(length), READ_SECONDS)

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), READ_SECONDS) == b""


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


@asynccontextmanager
async def serving(slow_started: asyncio.Event | None = None,
                  slow_release: asyncio.Event | None = None) -> AsyncIterator[tuple[LaneForHot, Client]]:
    """The listener with LaneForHot in front of aiohttp (keep-alive KEEPALIVE_SECONDS), and one client."""

    def answering(body: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body)

        return handler

    async def slow(request: web.Request) -> web.Response:
        assert slow_started is not None and slow_release is not None
        slow_started.set()
        await asyncio.wait_for(slow_release.wait(), READ_SECONDS)
        return web.Response(body=b"slow")

    app = web.Application()
    app.router.add_get("/hot", answering(FROM_AIOHTTP))
    app.router.add_get("/cold", answering(b"cold"))
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, keepalive_timeout=KEEPALIVE_SECONDS)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    lane = LaneForHot()
    listener = HotLaneListener(runner, sock, cast(HotLane, lane))
    await listener.start()
    client = Client(*await asyncio.open_connection("127.0.0.1", sock.getsockname()[1]))
    try:
        yield lane, client
    finally:
        client.writer.close()
        await listener.stop()
        await runner.cleanup()


async def send_while_aiohttp_is_busy(lane: LaneForHot, client: Client, started: asyncio.Event,
                                     release: asyncio.Event, data: bytes) -> bytes:
    """Ask for /slow, send `data` while aiohttp runs it, and let /slow finish once the lane has been asked
    to read `data` (as aiohttp's, not its own); /slow's answer."""
    client.send(get("/slow"))
    await asyncio.wait_for(started.wait(), READ_SECONDS)
    client.send(data)
    await lane.has_read(data)
    release.set()
    return await client.body()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(asyncio.wait_for(scenario(), 30))


def test_after_aiohttp_answers_a_cold_request_the_next_hot_one_is_the_lanes() -> None:
    async def scenario() -> None:
        async with serving() as (lane, client):
            client.send(get("/hot"))
            assert await client.body() == FROM_LANE
            client.send(get("/cold"))
            assert await client.body() == b"cold"
            for _ in range(3):
                client.send(get("/hot"))
                assert await client.body() == FROM_LANE
            assert lane.answered == 4

    run(scenario)


def test_requests_behind_a_cold_one_in_the_same_read_are_aiohttps_then_the_lane_takes_over() -> None:
    async def scenario() -> None:
        async with serving() as (lane, client):
            client.send(get("/cold") + get("/hot") + get("/hot"))
            assert [await client.body() for _ in range(3)] == [b"cold", FROM_AIOHTTP, FROM_AIOHTTP]
            client.send(get("/hot"))
            assert await client.body() == FROM_LANE
            assert lane.answered == 1

    run(scenario)


def test_a_hot_request_sent_while_aiohttp_is_busy_waits_its_turn_there() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def scenario() -> None:
        async with serving(started, release) as (lane, client):
            assert await send_while_aiohttp_is_busy(lane, client, started, release, get("/hot")) == b"slow"
            assert await client.body() == FROM_AIOHTTP
            # What aiohttp got ended a head: once idle, it gives the connection back.
            client.send(get("/hot"))
            assert await client.body() == FROM_LANE
            assert lane.answered == 1

    run(scenario)


def test_bytes_the_lane_cannot_read_keep_the_connection_aiohttps() -> None:
    async def scenario() -> None:
        async with serving() as (lane, client):
            client.send(b"GET /cold HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello")
            assert await client.body() == b"cold"
            client.send(get("/hot"))
            assert await client.body() == FROM_AIOHTTP
            assert lane.answered == 0

    run(scenario)


def test_a_head_cut_after_a_cold_one_keeps_the_connection_aiohttps() -> None:
    async def scenario() -> None:
        async with serving() as (lane, client):
            whole = get("/hot")
            # All but the blank line that ends the second head: aiohttp's parser keeps it after answering
            # the first, and the lane, given the blank line alone, would wait for the rest of a head.
            client.send(get("/cold") + whole[:-2])
            assert await client.body() == b"cold"
            client.send(whole[-2:])
            assert await client.body() == FROM_AIOHTTP
            client.send(get("/hot"))
            assert await client.body() == FROM_AIOHTTP
            assert lane.answered == 0

    run(scenario)


def test_lane_answers_keep_aiohttps_keepalive_from_closing_the_connection() -> None:
    async def scenario() -> None:
        async with serving() as (lane, client):
            client.send(get("/cold"))
            assert await client.body() == b"cold"
            loop = asyncio.get_running_loop()
            ends, asked = loop.time() + 3 * KEEPALIVE_SECONDS, 0
            while loop.time() < ends:
                client.send(get("/hot"))
                assert await client.body() == FROM_LANE
                asked += 1
                await asyncio.sleep(KEEPALIVE_SECONDS / 4)  # requests spaced in time: the time is what is tested
            assert lane.answered == asked >= 6
            # Idle past aiohttp's keep-alive, the connection closes as aiohttp's own would.
            assert await client.closed()

    run(scenario)


def test_a_handler_without_the_attributes_read_is_never_idle() -> None:
    assert not aiohttp_is_idle(asyncio.Protocol())


def test_a_head_begun_while_aiohttp_is_busy_is_finished_there() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def scenario() -> None:
        async with serving(started, release) as (lane, client):
            cold = get("/cold")
            # All but the blank line that ends the head: aiohttp's parser keeps it.
            assert await send_while_aiohttp_is_busy(lane, client, started, release, cold[:-2]) == b"slow"
            client.send(cold[-2:])
            assert await client.body() == b"cold"
            assert lane.answered == 0

    run(scenario)

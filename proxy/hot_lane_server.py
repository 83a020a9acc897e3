"""The hot lane on a socket: a connection is answered by the lane while every request on it is hot,
and belongs to aiohttp from its first other request on.

Handing over is one-way: aiohttp's handler then owns the parser, the pipeline order and keep-alive,
and nothing here may answer ahead of it. Until then, this protocol does what aiohttp's would for an
idle keep-alive connection: TCP_NODELAY and SO_KEEPALIVE, an idle timeout, back-pressure (no more
answers while the socket's write buffer is over its mark), and closing at shutdown.
"""

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import cast

from aiohttp import web

from proxy.hot_lane import MAX_HEAD_BYTES, HotLane

log = logging.getLogger(__name__)
# aiohttp's RequestHandler default (keepalive_timeout) for a connection with no request in progress.
IDLE_SECONDS = 3630.0
ProtocolFactory = Callable[[], asyncio.Protocol]


class HotLaneConnection(asyncio.Protocol):
    """One client connection: hot answers first, aiohttp's handler (made on demand) afterwards."""

    def __init__(self, lane: HotLane, make_handler: ProtocolFactory, open_connections: set["HotLaneConnection"]):
        self._lane = lane
        self._make_handler = make_handler
        self._open = open_connections
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._handler: asyncio.Protocol | None = None
        self._buffer = b""
        self._writing_paused = False
        self._reading_paused_here = False
        self._last_seen = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # As aiohttp does: an answer is one small write that must not wait for an ACK (Nagle).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._open.add(self)
        self._last_seen = self._loop.time()
        self._idle_timer = self._loop.call_at(self._last_seen + IDLE_SECONDS, self._close_if_idle)

    def data_received(self, data: bytes) -> None:
        if self._handler is not None:
            self._handler.data_received(data)
            return
        assert self._transport is not None
        self._last_seen = self._loop.time()
        buffer = self._buffer + data if self._buffer else data
        while not self._writing_paused:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            try:
                answer = self._lane.answer(buffer[:end + 2])
            except Exception:  # a bug in the lane must cost speed, not the request
                log.exception("hot lane failed on a request; aiohttp answers this connection")
                answer = None
            if answer is None:
                self._hand_over(buffer)
                return
            self._transport.write(answer)
            buffer = buffer[end + 4:]
        if len(buffer) > MAX_HEAD_BYTES and b"\r\n\r\n" not in buffer:
            self._hand_over(buffer)  # a head the lane would not answer anyway: aiohttp reads on
            return
        self._buffer = buffer

    def _hand_over(self, unanswered: bytes) -> None:
        """From now on aiohttp answers this connection, starting with `unanswered`."""
        assert self._transport is not None
        self._buffer = b""
        self._open.discard(self)  # aiohttp's server tracks (and shuts down) its handlers itself
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        handler = self._handler = self._make_handler()
        handler.connection_made(self._transport)
        if self._writing_paused:
            handler.pause_writing()
        if self._reading_paused_here:
            # aiohttp waits for the socket to drain when it writes; it does not expect reading paused.
            self._reading_paused_here = False
            self._transport.resume_reading()
        handler.data_received(unanswered)

    def eof_received(self) -> bool | None:
        if self._handler is not None:
            return self._handler.eof_received()
        return None  # the transport closes once what was written is sent

    def connection_lost(self, exc: Exception | None) -> None:
        self._open.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._handler is not None:
            self._handler.connection_lost(exc)
        self._transport = None

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._handler is not None:
            self._handler.pause_writing()
        elif self._transport is not None:
            # A client that sends requests but reads no answers: stop reading until it does.
            self._reading_paused_here = True
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._handler is not None:
            self._handler.resume_writing()
            return
        if self._reading_paused_here and self._transport is not None:
            self._reading_paused_here = False
            self._transport.resume_reading()
        self.data_received(b"")  # answer what arrived while paused

    def close(self) -> None:
        """Close a connection the lane still owns (at shutdown; it has no answer half-written)."""
        if self._handler is None and self._transport is not None:
            self._transport.close()

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        if self._handler is not None or self._transport is None:
            return
        due = self._last_seen + IDLE_SECONDS
        if self._loop.time() >= due:
            self._transport.close()
        else:
            self._idle_timer = self._loop.call_at(due, self._close_if_idle)


class HotLaneSite(web.SockSite):
    """A SockSite whose connections go through the hot lane before aiohttp's handler."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, lane: HotLane, shutdown_timeout: float) -> None:
        super().__init__(runner, sock, shutdown_timeout=shutdown_timeout)
        self._lane = lane
        self._lane_connections: set[HotLaneConnection] = set()

    async def start(self) -> None:
        # SockSite.start would hand the socket to aiohttp's protocol factory directly; this is the
        # same with the lane in front. BaseSite.start registers the site with its runner.
        await web.BaseSite.start(self)
        make_handler = self._runner.server
        assert make_handler is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: HotLaneConnection(self._lane, make_handler, self._lane_connections),
            sock=self._sock, backlog=self._backlog)

    async def stop(self) -> None:
        await super().stop()
        for connection in list(self._lane_connections):
            connection.close()

"""The hot lane on a socket: a connection is answered by the lane while its requests are hot, and by
aiohttp from its first other request on, until aiohttp is idle again. A request for a hot entry whose
source must be checked again (its trust ran out while no one asked) waits for that check, the requests
behind it too, and is then answered by the lane or handed over.

What arrives is planned as a whole (HotLane.plan): the lane answers the requests received so far only
if it reads all of them, and what follows them, as aiohttp would; otherwise aiohttp gets all of it,
as aiohttp alone would have (it drops the requests of a read whose end it refuses, and refuses some
heads before they are complete). The lane answers the planned requests in order until one is not hot,
and hands that one and the rest over. Bytes are handed over in the pieces they arrived in, since
aiohttp's error messages quote the read they were found in; a client's EOF hands over what is pending.
One difference is left on purpose: a client that half-closes (shutdown(SHUT_WR)) right after sending
hot requests gets the lane's answers, which are written before the EOF is read, while aiohttp alone
closes on that EOF before its handler writes and sends nothing; mimicking that would mean delaying
every answer to drop it.

Once handed over, aiohttp's handler owns the parser, the pipeline order and keep-alive, and nothing
here may answer ahead of it. It gives the connection back when the next bytes arrive while it waits for
a request with nothing read and nothing in progress (its own test for an idle connection), if every
byte it was given ended a head the lane read (GET and HEAD heads have no body, so its parser holds
nothing): a browser's connection whose first request was a miss then has its later hits answered by
the lane. Bytes the lane cannot read, or a handler that closes, keep the connection aiohttp's for good.
While the lane owns a connection, this protocol does what aiohttp's would for an idle keep-alive
connection: TCP_NODELAY and SO_KEEPALIVE, an idle timeout, back-pressure (no more answers while the
socket's write buffer is over its mark), and closing at shutdown; and on one aiohttp has had, each
answer moves aiohttp's keep-alive deadline as an answer of its own would.

aiohttp is driven through `runner.server` (BaseRunner's property: the low-level `web.Server`,
documented as the protocol factory one hands to `loop.create_server`) and asyncio's Protocol methods,
on a server this module creates from the socket (`create_server(sock=...)`), not a subclass of
SockSite. What no interface exposes is the behaviour the lane imitates: which heads aiohttp's parser
accepts (its SINGLETON_HEADERS among them) and how its writer lays out a 200's head (hot/lane.py), and
the handler's idle state and keep-alive deadline (`aiohttp_is_idle`, `move_aiohttp_keepalive`), read
from RequestHandler's attributes. Should those attributes go, the handler never counts as idle and a
connection stays aiohttp's once handed over. tests/test_hot_lane_differential.py checks the imitation
byte for byte against the installed aiohttp, and tests/test_hot_lane_return.py the giving back;
pyproject.toml pins aiohttp to the minor versions they were run on, and tests/test_aiohttp_pin.py fails
when the installed one is outside them.
"""

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import cast

from aiohttp import web

from proxy.hot.lane import HotLane, Planned

log = logging.getLogger(__name__)
# aiohttp's RequestHandler default (keepalive_timeout) for a connection with no request in progress.
IDLE_SECONDS = 3630.0
BACKLOG = 128  # aiohttp's SockSite default
ProtocolFactory = Callable[[], asyncio.Protocol]


class HotLaneConnection(asyncio.Protocol):
    """One client connection: hot answers by the lane, the others by aiohttp's handler (made on demand),
    which gives the connection back to the lane whenever it is idle at a head's end."""

    def __init__(self, lane: HotLane, make_handler: ProtocolFactory, open_connections: set["HotLaneConnection"]):
        self._lane = lane
        self._make_handler = make_handler
        self._open = open_connections
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._handler: asyncio.Protocol | None = None
        self._with_aiohttp = False  # aiohttp's handler owns the connection now
        self._at_head_end = False  # every byte aiohttp was given ended a head the lane read
        self._pending: list[bytes] = []  # received and not answered, in the pieces it arrived in
        self._plan: list[Planned] | None = None  # what the lane may answer of the pending bytes
        self._planned = 0  # how many requests of the plan are answered
        self._answered_to = 0  # where the last answered one ends, in the bytes planned
        self._writing_paused = False
        self._reading_paused_here = False
        self._last_seen = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._peer = "-"  # the client's address, for the access lines of the lane's answers
        self._waiting: asyncio.Future[None] | None = None  # a hot entry's check the next answer waits for

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._peer = str(peer[0])
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # As aiohttp does: an answer is one small write that must not wait for an ACK (Nagle).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._own()

    def data_received(self, data: bytes) -> None:
        if self._with_aiohttp:
            assert self._handler is not None
            if not (self._at_head_end and not self._writing_paused and aiohttp_is_idle(self._handler)):
                self._at_head_end = self._at_head_end and self._ends_a_head(data)
                self._handler.data_received(data)
                return
            self._own()  # aiohttp is done with all it was given: the lane reads what comes next
        self._last_seen = self._loop.time()
        self._pending.append(data)
        self._plan = None  # what arrived changes what the lane may answer: read it all again
        self._answer_pending()

    def _own(self) -> None:
        """The lane answers this connection (from its start, or given back by an idle aiohttp)."""
        self._with_aiohttp = False
        self._open.add(self)
        self._last_seen = self._loop.time()
        if self._idle_timer is None:
            self._idle_timer = self._loop.call_at(self._last_seen + IDLE_SECONDS, self._close_if_idle)

    def _ends_a_head(self, data: bytes) -> bool:
        """Whether `data`, given to aiohttp on its own, is whole heads the lane reads (a GET or HEAD head
        has no body): then aiohttp's parser holds nothing once it has answered them."""
        try:
            plan = self._lane.plan(data)
        except Exception:  # a bug in the lane must cost speed, not the request
            log.exception("hot lane failed on a request; aiohttp keeps this connection")
            return False
        return plan is not None and _ends_at(plan, len(data))

    def _answer_pending(self) -> None:
        """Answer the complete heads received, in order, while the socket takes more; hand the
        connection over as soon as the lane may not answer what comes next."""
        assert self._transport is not None
        if self._writing_paused or self._waiting is not None or not any(self._pending):
            return
        if self._plan is None:
            buffer = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            try:
                plan = self._lane.plan(buffer)
            except Exception:  # a bug in the lane must cost speed, not the request
                log.exception("hot lane failed on a request; aiohttp answers this connection")
                plan = None
            if plan is None:
                self._hand_over(at_head_end=False)
                return
            self._plan, self._planned, self._answered_to = plan, 0, 0
        plan, index, answered_to = self._plan, self._planned, self._answered_to
        while index < len(plan) and not self._writing_paused:
            try:
                answer = self._lane.answer(plan[index], self._peer)
            except Exception:
                log.exception("hot lane failed on a request; aiohttp answers this connection")
                answer = None
            if isinstance(answer, asyncio.Future):
                # Its entry's source is being checked: answered (or handed over) once that is done.
                self._waiting = answer
                answer.add_done_callback(self._checked)
                break
            if answer is None:
                break
            self._transport.write(answer)
            answered_to = plan[index][0]
            index += 1
        if index > self._planned and self._handler is not None:
            move_aiohttp_keepalive(self._handler, self._loop.time())
        _drop_prefix(self._pending, answered_to - self._answered_to)
        self._planned, self._answered_to = index, answered_to
        if index == len(plan):
            self._plan = None  # what is left is part of a head: planned again with the rest of it
        elif not self._writing_paused and self._waiting is None:
            # A head that is not hot; the pending bytes are what the plan holds past `answered_to`.
            self._hand_over(at_head_end=_ends_at(plan, answered_to + sum(map(len, self._pending))))

    def _checked(self, _: asyncio.Future[None]) -> None:
        """The check the next answer waited for is done: answer on, unless the connection went meanwhile."""
        self._waiting = None
        if not self._with_aiohttp and self._transport is not None and not self._transport.is_closing():
            self._answer_pending()

    def _hand_over(self, at_head_end: bool) -> None:
        """aiohttp answers this connection from now on, starting with what the lane has not answered;
        `at_head_end`: those bytes end a head the lane read, so aiohttp may give the connection back."""
        assert self._transport is not None
        unanswered, self._pending, self._plan = self._pending, [], None
        self._with_aiohttp, self._at_head_end = True, at_head_end
        self._open.discard(self)  # aiohttp's server tracks (and shuts down) its handlers itself
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        handler = self._handler
        if handler is None:
            handler = self._handler = self._make_handler()
            handler.connection_made(self._transport)
        if self._writing_paused:
            handler.pause_writing()
        if self._reading_paused_here:
            # aiohttp waits for the socket to drain when it writes; it does not expect reading paused.
            self._reading_paused_here = False
            self._transport.resume_reading()
        # In the pieces they arrived in, as aiohttp would have read them: its error messages quote
        # the read they were found in.
        for data in unanswered:
            if data:
                handler.data_received(data)

    def eof_received(self) -> bool | None:
        if not self._with_aiohttp and any(self._pending):
            self._hand_over(at_head_end=False)  # aiohttp decides what a request cut short gets
        if self._with_aiohttp:
            assert self._handler is not None
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
        if self._with_aiohttp:
            assert self._handler is not None
            self._handler.pause_writing()
        elif self._transport is not None:
            # A client that sends requests but reads no answers: stop reading until it does.
            self._reading_paused_here = True
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._with_aiohttp:
            assert self._handler is not None
            self._handler.resume_writing()
            return
        if self._reading_paused_here and self._transport is not None:
            self._reading_paused_here = False
            self._transport.resume_reading()
        self._answer_pending()  # answer what arrived while paused

    def close(self) -> None:
        """Close a connection the lane owns (at shutdown; it has no answer half-written)."""
        if not self._with_aiohttp and self._transport is not None:
            self._transport.close()

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        if self._with_aiohttp or self._transport is None:
            return
        due = self._last_seen + IDLE_SECONDS
        if self._loop.time() >= due:
            self._transport.close()
        else:
            self._idle_timer = self._loop.call_at(due, self._close_if_idle)


def aiohttp_is_idle(handler: asyncio.Protocol) -> bool:
    """Whether aiohttp's RequestHandler waits for the next request, with none read or in progress and
    keep-alive on: the test its own keep-alive timer makes before closing an idle connection
    (RequestHandler._process_keepalive). False if the handler lacks those attributes."""
    waiter = getattr(handler, "_waiter", None)
    return (isinstance(waiter, asyncio.Future) and not waiter.done() and not getattr(handler, "_messages", True)
            and getattr(handler, "_keepalive", False) is True and getattr(handler, "_force_close", True) is False
            and getattr(handler, "_request_in_progress", True) is False)


def move_aiohttp_keepalive(handler: asyncio.Protocol, now: float) -> None:
    """Move aiohttp's keep-alive deadline on, as its handler does after each answer of its own: its timer
    must not close a connection the lane is answering. Nothing if the handler lacks those attributes."""
    timeout = getattr(handler, "keepalive_timeout", None)
    if isinstance(timeout, (int, float)) and hasattr(handler, "_next_keepalive_close_time"):
        handler._next_keepalive_close_time = now + timeout


class HotLaneListener:
    """The listening socket, with the lane in front of aiohttp's handler on every connection.

    Started and stopped like an aiohttp site, but not one: it is not registered with the runner, so
    it is stopped before `runner.cleanup()`, which then shuts down the handlers as it would after
    stopping its own sites (proxy.runtime.server).
    """

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, lane: HotLane) -> None:
        self._runner = runner
        self._sock = sock
        self._lane = lane
        self._listening: asyncio.AbstractServer | None = None
        self._connections: set[HotLaneConnection] = set()

    async def start(self) -> None:
        """Listen on the socket, as SockSite.start does, with the lane as the protocol."""
        make_handler = self._runner.server  # aiohttp's protocol factory, made by runner.setup()
        if make_handler is None:
            raise RuntimeError("runner.setup() must run before the listener starts")
        self._listening = await asyncio.get_running_loop().create_server(
            lambda: HotLaneConnection(self._lane, make_handler, self._connections), sock=self._sock,
            backlog=BACKLOG)

    async def stop(self) -> None:
        """Stop accepting, and close the connections the lane still owns (they have no answer half-written;
        those handed over are aiohttp's, which runner.cleanup() shuts down gracefully)."""
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        for connection in list(self._connections):
            connection.close()
        self._lane.flush()


def _ends_at(plan: list[Planned], size: int) -> bool:
    """Whether the last head of `plan` ends at `size` bytes: nothing of a head that follows is among them."""
    return bool(plan) and plan[-1][0] == size


def _drop_prefix(chunks: list[bytes], count: int) -> None:
    """Remove the first `count` bytes of `chunks` (in place)."""
    while count and chunks:
        if len(chunks[0]) <= count:
            count -= len(chunks.pop(0))
        else:
            chunks[0] = chunks[0][count:]
            count = 0

"""cache/fill.py (one writer, readers tailing the part file) and cache/singleflight.py, on real files.

Each test drives its own event loop with asyncio.run and bounds every wait with asyncio.wait_for.
"""

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

import cache.fill
from cache.entry import EntryMeta, ObjectInfo
from cache.errors import FillFailed
from cache.fill import Fill
from cache.singleflight import DetachedFlights, SingleFlight

TIMEOUT = 10.0
# Readers take what is written span by span, in reads of READ_CHUNK bytes, as proxy.http.body does.
READ_CHUNK = 256 * 1024
# Several read chunks and a ragged tail, so readers cross chunk boundaries while the writer works.
DATA = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range((3 * READ_CHUNK + 777) // 32 + 1))
DATA = DATA[: 3 * READ_CHUNK + 777]


class SourceBroke(Exception):
    """The origin failed mid-way."""


def meta_for(data: bytes, size: int | None = None) -> EntryMeta:
    return EntryMeta(ObjectInfo(len(data) if size is None else size, '"v1"', 1_700_000_000.0, "image/png"))


async def source(data: bytes, chunk: int = 100_000, fail_after: int | None = None) -> AsyncIterator[bytes]:
    """Yield `data` in chunks, letting other tasks run in between; raise after `fail_after` bytes."""
    for offset in range(0, len(data), chunk):
        if fail_after is not None and offset >= fail_after:
            raise SourceBroke(f"connection reset after {offset} bytes")
        yield data[offset : offset + chunk]
        await asyncio.sleep(0)  # a scheduling point, as a network read would be; not synchronisation
    if fail_after is not None:
        raise SourceBroke("connection reset at the end")


def renaming_commit(part: Path, final: Path, calls: list[Path]) -> Callable[[], Awaitable[bool]]:
    """A commit that adopts the part file by rename, as a disk tier does."""

    async def commit() -> bool:
        calls.append(part)
        await asyncio.to_thread(os.rename, part, final)
        return True

    return commit


async def read(fill: Fill, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes [start, end) of the fill, read span by span from its shared descriptor."""
    async for offset, stop in fill.spans(start, end):
        assert start <= offset < stop <= end
        while offset < stop:
            chunk = await asyncio.to_thread(os.pread, fill.reader_fd, min(READ_CHUNK, stop - offset), offset)
            assert chunk, "a span the fill reported written must be readable"
            offset += len(chunk)
            yield chunk


async def collect(fill: Fill, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in read(fill, start, end)])


async def collect_until_error(fill: Fill, got: list[bytes]) -> None:
    async for chunk in read(fill, 0, fill.meta.info.size):
        got.append(chunk)


T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on a fresh event loop, failing if it takes longer than TIMEOUT."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, TIMEOUT)

    return asyncio.run(bounded())


def test_writer_and_two_tailing_readers(tmp_path: Path) -> None:
    part, final = tmp_path / "e.part", tmp_path / "e.val"
    commits: list[Path] = []

    async def scenario() -> tuple[bool, bytes, bytes]:
        fill = await Fill.open(part, meta_for(DATA))
        # Readers start first, so they must wait for bytes the writer has not produced yet.
        readers = [asyncio.create_task(collect(fill, 0, len(DATA))) for _ in range(2)]
        await asyncio.sleep(0)
        assert not any(reader.done() for reader in readers)
        committed = await fill.run(source(DATA), renaming_commit(part, final, commits))
        first, second = await asyncio.gather(*readers)
        return committed, first, second

    committed, first, second = run(scenario())
    assert committed is True
    assert first == DATA
    assert second == DATA
    assert commits == [part]
    assert final.read_bytes() == DATA


def test_reader_after_commit_reads_all(tmp_path: Path) -> None:
    part, final = tmp_path / "e.part", tmp_path / "e.val"

    async def scenario() -> tuple[bool, bool, bytes]:
        fill = await Fill.open(part, meta_for(DATA))
        await fill.run(source(DATA), renaming_commit(part, final, []))
        part_left = part.exists()
        return fill.done, part_left, await collect(fill, 0, len(DATA))

    done, part_left, late = run(scenario())
    assert done is True
    assert part_left is False
    assert late == DATA


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 1), (1000, READ_CHUNK + 5000), (READ_CHUNK, 2 * READ_CHUNK), (len(DATA) - 10, len(DATA))],
)
def test_reader_of_sub_range(tmp_path: Path, start: int, end: int) -> None:
    part = tmp_path / "e.part"

    async def scenario() -> bytes:
        fill = await Fill.open(part, meta_for(DATA))
        reader = asyncio.create_task(collect(fill, start, end))
        await fill.run(source(DATA), renaming_commit(part, tmp_path / "e.val", []))
        return await reader

    assert run(scenario()) == DATA[start:end]


def test_source_error_fails_readers(tmp_path: Path) -> None:
    part = tmp_path / "e.part"
    fail_after = READ_CHUNK + 1
    commits: list[Path] = []

    async def scenario() -> list[object]:
        fill = await Fill.open(part, meta_for(DATA))
        got: list[list[bytes]] = [[], []]
        readers = [asyncio.create_task(collect_until_error(fill, chunks)) for chunks in got]
        writer = fill.run(source(DATA, fail_after=fail_after), renaming_commit(part, tmp_path / "e.val", commits))
        assert not fill.failed
        outcomes = await asyncio.gather(writer, *readers, return_exceptions=True)
        # What a request joining now must see, to go to the provider itself (proxy.tiers.originals).
        assert fill.failed and fill.done
        late = await asyncio.gather(collect(fill, 0, 10), return_exceptions=True)
        return [*outcomes, *late, *(b"".join(chunks) for chunks in got)]

    writer, first, second, late, got_first, got_second = run(scenario())
    assert isinstance(writer, SourceBroke)  # the writer sees the origin's own error
    assert isinstance(first, FillFailed) and isinstance(second, FillFailed)
    assert isinstance(late, FillFailed)  # joining after the failure fails too, at once
    for got in (got_first, got_second):
        assert isinstance(got, bytes) and DATA.startswith(got) and len(got) < len(DATA)
    assert commits == []
    assert not part.exists()
    assert list(tmp_path.iterdir()) == []


def test_short_source_fails_without_commit(tmp_path: Path) -> None:
    part = tmp_path / "e.part"
    commits: list[Path] = []
    short = DATA[: len(DATA) // 2]

    async def scenario() -> list[object]:
        fill = await Fill.open(part, meta_for(DATA))
        reader = asyncio.create_task(collect(fill, 0, len(DATA)))
        writer = fill.run(source(short), renaming_commit(part, tmp_path / "e.val", commits))
        return list(await asyncio.gather(writer, reader, return_exceptions=True))

    writer, reader = run(scenario())
    assert isinstance(writer, FillFailed)
    assert str(len(short)) in str(writer) and str(len(DATA)) in str(writer)
    assert isinstance(reader, FillFailed)
    assert commits == []
    assert not part.exists()


def test_long_source_fails_without_commit(tmp_path: Path) -> None:
    part = tmp_path / "e.part"
    commits: list[Path] = []

    async def scenario() -> object:
        fill = await Fill.open(part, meta_for(DATA, size=len(DATA) - 1))
        writer = fill.run(source(DATA), renaming_commit(part, tmp_path / "e.val", commits))
        return (await asyncio.gather(writer, return_exceptions=True))[0]

    assert isinstance(run(scenario()), FillFailed)
    assert commits == []
    assert not part.exists()


def test_a_cancelled_run_closes_its_descriptor_only_after_the_write_in_flight(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    part = tmp_path / "e.part"
    started, release = threading.Event(), threading.Event()
    write_errors: list[OSError] = []
    real_write_all = cache.fill._write_all

    def slow_write_all(fd: int, data: bytes) -> None:
        """The fault: a write that stalls (a disk under pressure) until the test lets it go."""
        started.set()
        release.wait(TIMEOUT)
        try:
            real_write_all(fd, data)
        except OSError as error:
            write_errors.append(error)

    monkeypatch.setattr(cache.fill, "_write_all", slow_write_all)

    async def scenario() -> tuple[bool, bool]:
        fill = await Fill.open(part, meta_for(DATA))
        runner = asyncio.create_task(fill.run(source(DATA), renaming_commit(part, tmp_path / "e.val", [])))
        await asyncio.to_thread(started.wait, TIMEOUT)
        runner.cancel()
        # The cancelled run must wait for the stalled write instead of closing the descriptor under it:
        # a window to see it not finish (the old code finished at once), then the write goes on.
        done, _ = await asyncio.wait([runner], timeout=0.2)
        finished_before_release = bool(done)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await runner
        return finished_before_release, runner.cancelled()

    finished_before_release, cancelled = run(scenario())
    assert finished_before_release is False
    assert cancelled is True
    assert write_errors == []
    assert not part.exists()


def test_open_refuses_existing_part(tmp_path: Path) -> None:
    part = tmp_path / "e.part"
    part.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        run(Fill.open(part, meta_for(DATA)))
    assert part.read_bytes() == b"someone else's"


# --- SingleFlight ------------------------------------------------------------------------------


def test_singleflight_claim_get_release() -> None:
    joins: list[None] = []
    flights: SingleFlight[str, object] = SingleFlight(on_join=lambda: joins.append(None))
    work = object()
    assert flights.get("k") is None
    flights.claim("k", work)
    assert flights.get("k") is work
    assert flights.get("k") is work
    assert flights.get("other") is None
    assert len(joins) == 2  # only lookups that found work count as joins
    flights.release("k")
    assert flights.get("k") is None
    assert len(joins) == 2


def test_singleflight_claim_twice_raises() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    first = object()
    flights.claim("k", first)
    with pytest.raises(RuntimeError, match="k"):
        flights.claim("k", object())
    assert flights.get("k") is first


def test_singleflight_reclaim_after_release() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    flights.claim("k", object())
    flights.release("k")
    flights.release("k")  # releasing twice is harmless
    second = object()
    flights.claim("k", second)
    assert flights.get("k") is second


# --- DetachedFlights ---------------------------------------------------------------------------


def test_detached_flights_run_once_per_key_and_free_the_key_after() -> None:
    async def scenario() -> None:
        joins: list[None] = []
        flights: DetachedFlights[str, int] = DetachedFlights(on_join=lambda: joins.append(None))
        gate = asyncio.Event()
        runs: list[str] = []

        async def work(future: asyncio.Future[int]) -> None:
            runs.append("ran")
            await gate.wait()
            future.set_result(len(runs))

        callers = [flights.join_or_start("k", work) for _ in range(5)]
        assert [started for _, started in callers] == [True, False, False, False, False]
        assert len({id(future) for future, _ in callers}) == 1
        gate.set()
        assert await callers[0][0] == 1
        assert len(joins) == 4
        await asyncio.gather(*flights._tasks)  # the work has ended: the key is free again
        again, started = flights.join_or_start("k", work)
        assert started and await again == 2

    run(scenario())


def test_detached_flights_pass_errors_to_waiters_and_survive_a_leaving_caller() -> None:
    async def scenario() -> None:
        flights: DetachedFlights[str, int] = DetachedFlights()
        gate = asyncio.Event()

        async def failing(future: asyncio.Future[int]) -> None:
            await gate.wait()
            raise ValueError("origin broke")

        first, _ = flights.join_or_start("k", failing)
        leaving = asyncio.ensure_future(asyncio.shield(first))
        leaving.cancel()  # a client that goes away doesn't cancel the work
        second, started = flights.join_or_start("k", failing)
        assert second is first and not started
        gate.set()
        with pytest.raises(ValueError, match="origin broke"):
            await second

    run(scenario())


def test_detached_flights_close_fails_waiters_instead_of_cancelling_them() -> None:
    async def scenario() -> None:
        flights: DetachedFlights[str, int] = DetachedFlights()

        async def endless(future: asyncio.Future[int]) -> None:
            await asyncio.Event().wait()

        pending, _ = flights.join_or_start("k", endless)
        await asyncio.sleep(0)  # let the task start (a scheduling step, not a wait for time)
        await flights.close()
        with pytest.raises(RuntimeError, match="stopped"):
            await pending

        # The owner names the error (the server passes its 503 ShuttingDown).
        draining: DetachedFlights[str, int] = DetachedFlights(stopped=lambda: LookupError("draining"))
        waiting, _ = draining.join_or_start("k", endless)
        await asyncio.sleep(0)
        await draining.close()
        with pytest.raises(LookupError, match="draining"):
            await waiting

    run(scenario())


def test_detached_flights_close_lets_answered_work_commit_and_bounds_the_wait() -> None:
    """At shutdown, work whose waiters already have their result (a render being stored) finishes its
    commit; work still making its result is cancelled at once; a commit that hangs is cut at the grace."""
    async def scenario() -> None:
        flights: DetachedFlights[str, int] = DetachedFlights()
        committed: list[str] = []
        commit_gate, making_started = asyncio.Event(), asyncio.Event()

        async def answers_then_commits(future: asyncio.Future[int]) -> None:
            future.set_result(1)
            await commit_gate.wait()
            committed.append("stored")

        async def still_making(future: asyncio.Future[int]) -> None:
            making_started.set()
            await asyncio.Event().wait()

        answered, _ = flights.join_or_start("a", answers_then_commits)
        making, _ = flights.join_or_start("b", still_making)
        assert await answered == 1
        await making_started.wait()
        closing = asyncio.ensure_future(flights.close(grace=30.0))
        await asyncio.sleep(0)  # one scheduling step: close has cancelled what was still making
        with pytest.raises(RuntimeError, match="stopped"):
            await making
        assert not closing.done() and committed == []  # the commit is still allowed to run
        commit_gate.set()
        await asyncio.wait_for(closing, 10)
        assert committed == ["stored"]

        hanging: DetachedFlights[str, int] = DetachedFlights()
        forever, _ = hanging.join_or_start("c", lambda future: _answer_then_hang(future))
        assert await forever == 2
        started = time.monotonic()
        await asyncio.wait_for(hanging.close(grace=0.2), 10)
        assert time.monotonic() - started < 5 and not hanging.busy

    run(scenario())


async def _answer_then_hang(future: asyncio.Future[int]) -> None:
    future.set_result(2)
    await asyncio.Event().wait()

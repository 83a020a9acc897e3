"""cache/fill.py: one writer, readers tailing the part file, on real files.

Each test drives its own event loop with asyncio.run and bounds every wait with asyncio.wait_for.
"""

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

import cache.fill
from cache.entry import EntryMeta, ObjectInfo
from cache.errors import FillFailed
from cache.fill import Fill
from tests.support.event_loops import run_bounded

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
    return run_bounded(coroutine, TIMEOUT)


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

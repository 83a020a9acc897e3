"""The multipart body handed to obstore is regrouped into blocks of the part size, whatever the pieces the
request body comes in: every block but the last at least one part (exactly one, unless a larger piece came
whole), the bytes unchanged and in order, so obstore is handed one block per part instead of every piece.
And it is read one block ahead of obstore: the next block while obstore holds the last, never two."""

import asyncio
import os
import random
from collections.abc import AsyncIterator

import pytest

from proxy.storage.cloud.part_blocks import ReadAhead, part_blocks

PART = 64 * 1024


async def _pieces(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for size in sizes:
        yield body[start:start + size]
        start += size


def _regrouped(body: bytes, sizes: list[int], part: int = PART) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [bytes(block) async for block in part_blocks(_pieces(body, sizes), part)]

    return asyncio.run(collect())


@pytest.mark.parametrize("seed", range(5))
def test_pieces_of_any_size_become_whole_parts_and_a_shorter_last_one(seed: int) -> None:
    chooser = random.Random(seed)
    body = os.urandom(PART * 7 + chooser.randrange(1, PART))
    sizes, left = [], len(body)
    while left:
        sizes.append(min(left, chooser.choice([1, 100, 4096, PART - 1, PART, PART + 1, 3 * PART + 5])))
        left -= sizes[-1]

    blocks = _regrouped(body, sizes)

    assert b"".join(blocks) == body
    assert all(len(block) >= PART for block in blocks[:-1])
    assert len(blocks) <= len(body) // PART + 1
    # Only a piece that came whole, at a block's start, can be larger than a part.
    assert all(len(block) == PART or len(block) in sizes for block in blocks[:-1])


def test_a_body_of_whole_parts_ends_without_an_empty_block_and_an_empty_body_gives_none() -> None:
    body = os.urandom(PART * 3)
    assert [len(block) for block in _regrouped(body, [PART // 2] * 6)] == [PART] * 3
    assert [len(block) for block in _regrouped(body, [1000] * (PART * 3 // 1000) + [PART * 3 % 1000])] == [PART] * 3
    assert _regrouped(b"", []) == []


class _CountedBlocks:
    """Blocks made on demand, counting the requests; `ask[n]` is set when block n (from 1) is asked for."""

    def __init__(self, count: int, fail_at: int | None = None, hold_at: int | None = None) -> None:
        self.count, self.fail_at, self.hold_at = count, fail_at, hold_at
        self.asked = 0
        self.ask = [asyncio.Event() for _ in range(count + 2)]
        self.stopped = asyncio.Event()  # set when a read in progress was cancelled

    async def blocks(self) -> AsyncIterator[bytes]:
        try:
            while self.asked < self.count:
                self.asked += 1
                self.ask[self.asked].set()
                if self.asked == self.fail_at:
                    raise OSError("the client went away")
                if self.asked == self.hold_at:
                    await asyncio.Event().wait()  # a body whose next bytes never arrive
                yield bytes([self.asked]) * 4
            self.asked += 1
            self.ask[self.asked].set()
        except asyncio.CancelledError:
            self.stopped.set()
            raise


async def _turns(count: int = 20) -> None:
    """Let every ready task run `count` times over (no time passes: only the loop's turns)."""
    for _ in range(count):
        await asyncio.sleep(0)


def test_the_next_block_is_read_while_the_consumer_holds_the_last_and_never_two_ahead() -> None:
    async def scenario() -> None:
        source = _CountedBlocks(4)
        ahead = ReadAhead(source.blocks())
        async with asyncio.timeout(10):
            await source.ask[1].wait()  # the first block is read before anyone asks
            assert await anext(ahead) == bytes([1]) * 4
            await source.ask[2].wait()  # held by the consumer: the next one is read meanwhile
            await _turns()
            assert source.asked == 2
            assert [block async for block in ahead] == [bytes([n]) * 4 for n in (2, 3, 4)]
        assert source.asked == 5  # the last ask found the end
        ahead.close()

    asyncio.run(scenario())


def test_a_failed_read_reaches_the_consumer_at_its_next_ask_and_every_later_one() -> None:
    async def scenario() -> None:
        ahead = ReadAhead(_CountedBlocks(4, fail_at=2).blocks())
        async with asyncio.timeout(10):
            assert await anext(ahead) == bytes([1]) * 4
            for _ in range(2):
                with pytest.raises(OSError, match="went away"):
                    await anext(ahead)
        ahead.close()

    asyncio.run(scenario())


def test_close_stops_the_read_in_progress_and_ends_the_iteration() -> None:
    async def scenario() -> None:
        source = _CountedBlocks(4, hold_at=2)
        ahead = ReadAhead(source.blocks())
        async with asyncio.timeout(10):
            assert await anext(ahead) == bytes([1]) * 4
            await source.ask[2].wait()
            ahead.close()
            await source.stopped.wait()
            assert [block async for block in ahead] == []

    asyncio.run(scenario())

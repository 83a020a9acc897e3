"""The multipart body handed to obstore is regrouped into blocks of the part size, whatever the pieces the
request body comes in: every block but the last at least one part (exactly one, unless a larger piece came
whole), the bytes unchanged and in order, so obstore is handed one block per part instead of every piece."""

import asyncio
import os
import random
from collections.abc import AsyncIterator

import pytest

from proxy.storage.cloud.obstore_write import _blocks

PART = 64 * 1024


async def _pieces(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for size in sizes:
        yield body[start:start + size]
        start += size


def _regrouped(body: bytes, sizes: list[int], part: int = PART) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [bytes(block) async for block in _blocks(_pieces(body, sizes), part)]

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

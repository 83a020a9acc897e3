"""A multipart body as obstore takes it best: regrouped into part-size blocks, and read one block ahead.

obstore pulls a body from its own runtime, one chunk per hop to the event loop and back, and pulls
the next chunk only after the last one found a free slot among the parts in flight. A request body
arrives in pieces of tens of KiB, so regrouping it into blocks makes one hop per part, and reading
the next block while obstore holds the last keeps the client's bytes flowing while obstore waits for
a slot: a slot that frees finds the next part ready instead of waiting for it to be read.
"""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import cast


async def part_blocks(chunks: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """`chunks` regrouped into blocks of `size` bytes (the last one shorter); a chunk of at least `size`
    that arrives while no block is being filled passes as it is (obstore cuts its parts from it).

    obstore takes each block as its part without copying it again. The block being filled is the
    part obstore would otherwise be filling itself, so memory stays where it was.
    """
    block, filled = bytearray(size), 0
    async for chunk in chunks:
        if not filled and len(chunk) >= size:
            yield chunk  # a part's worth or more (the gathered head): handed over as it is, uncopied
            continue
        view = memoryview(chunk)
        while view:
            taken = min(len(view), size - filled)
            block[filled:filled + taken] = view[:taken]  # the one copy: into a block allocated once
            filled, view = filled + taken, view[taken:]
            if filled == size:
                yield cast(bytes, block)  # obstore reads any byte buffer, and keeps this one: a new block
                block, filled = bytearray(size), 0
    if filled:
        yield cast(bytes, block[:filled])


class ReadAhead:
    """Re-yields `blocks`, reading the next one (in a task of its own) while the consumer holds the last.

    One block ahead, no more: while obstore keeps the block it pulled until a slot frees, the next one
    is read instead of the client's bytes waiting in socket buffers; that costs one block of memory
    at most. Reading starts when this is made, so the first block is read while the multipart upload
    is being created. `close()` stops a read in progress: call it once the consumer is done, whether
    or not it read to the end.
    """

    def __init__(self, blocks: AsyncIterable[bytes]) -> None:
        self._source = aiter(blocks)
        self._next: asyncio.Future[bytes | None] | None = self._read_next()

    def _read_next(self) -> asyncio.Future[bytes | None]:
        return asyncio.ensure_future(anext(self._source, None))

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        pending = self._next
        if pending is None:
            raise StopAsyncIteration
        # A failed read stays in place, so every later call fails the same way; cancelling this await
        # (an aborted write) cancels the read in progress with it.
        block = await pending
        if block is None:
            self._next = None
            raise StopAsyncIteration
        self._next = self._read_next()
        return block

    def close(self) -> None:
        """Stop the read in progress, if any; later calls end the iteration."""
        pending, self._next = self._next, None
        if pending is not None:
            pending.cancel()
            pending.add_done_callback(_retrieve_outcome)


def _retrieve_outcome(read: asyncio.Future[bytes | None]) -> None:
    """Mark a read nobody will await as seen, so that its failure is not reported as lost."""
    if not read.cancelled():
        read.exception()

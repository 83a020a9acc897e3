"""A provider's object as a read-only, seekable file, read by byte ranges: for FFmpeg in a worker thread.

A video's frame needs its header (an MP4's `moov`, often at the very end) and one GOP of packets,
not the whole file, so FFmpeg reads the object through this file instead of a downloaded copy. Reads
come from a worker thread; each missing range is fetched by a coroutine scheduled on the event loop
that owns the provider.

Sizes, and why:
- Blocks of 64 KiB. FFmpeg's I/O layer reads 32 KiB at a time (PyAV's default buffer), and the mov
  demuxer jumps about: a few bytes of each atom header, then the `moov` wherever it is, then sample
  data by offset. A smaller block would cost a round trip for nearly every refill; a larger one
  would fetch mostly unused bytes around each jump.
- Read-ahead doubles while misses are sequential (the `moov` table, a GOP's packets), from one block up
  to 16 (1 MiB per request), and falls back to one block after a jump.
- At most 64 blocks (4 MiB) are kept, least recently used first out: a seek back to a keyframe or to
  the sample tables is served from memory, and the memory of one open file stays bounded.

Every range must come from the version the file was opened with: a different ETag is OriginalChanged,
so bytes of two versions are never mixed.
"""

import asyncio
import io
from collections import OrderedDict
from typing import TYPE_CHECKING

from proxy.storage.errors import OriginalChanged, ProviderFailure, ProviderTimeout
from proxy.storage.provider import ByteSpan, ObjectInfo, ObjectRef, ObjectStream, StorageProvider

if TYPE_CHECKING:  # typeshed's name for what readinto fills; not importable at run time
    from _typeshed import WriteableBuffer

BLOCK_SIZE = 64 * 1024
CACHED_BLOCKS = 64
MAX_READ_AHEAD_BLOCKS = 16
FETCH_TIMEOUT = 30.0  # seconds for one range, headers and body


class ProviderRangeFile(io.RawIOBase):
    """One version of one object, read by block-aligned ranges with read-ahead and a small LRU of blocks.

    Used from one worker thread at a time, never from the event loop's own thread (it would wait on
    itself). `bytes_fetched` and `ranges_fetched` count what came from the provider.
    """

    def __init__(self, provider: StorageProvider, ref: ObjectRef, info: ObjectInfo, loop: asyncio.AbstractEventLoop,
                 *, block_size: int = BLOCK_SIZE, cached_blocks: int = CACHED_BLOCKS,
                 max_read_ahead: int = MAX_READ_AHEAD_BLOCKS, timeout: float = FETCH_TIMEOUT) -> None:
        super().__init__()
        if not 1 <= max_read_ahead <= cached_blocks:
            raise ValueError("read-ahead must fit in the block cache")
        self._provider, self._ref, self._loop = provider, ref, loop
        self.size, self.etag = info.size, info.etag
        self._block_size, self._cached_blocks, self._max_read_ahead = block_size, cached_blocks, max_read_ahead
        self._timeout = timeout
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._position = 0
        self._read_ahead = 1
        self._next_sequential_block = -1  # the block after the last fetched range
        self.bytes_fetched = 0
        self.ranges_fetched = 0

    def readable(self) -> bool:
        """Always."""
        return True

    def seekable(self) -> bool:
        """Always: the size is known."""
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (past the end is allowed; reads there return nothing)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        """The position."""
        return self._position

    def readinto(self, buffer: "WriteableBuffer") -> int:
        """Fill `buffer` from the position, fetching missing blocks; 0 at the end of the object."""
        if self.closed:
            raise ValueError("read from a closed ProviderRangeFile")
        view = memoryview(buffer).cast("B")
        end = min(self._position + len(view), self.size)
        done = 0
        while self._position < end:
            index, offset = divmod(self._position, self._block_size)
            piece = self._block(index, last_wanted=(end - 1) // self._block_size)[offset:offset + end - self._position]
            view[done:done + len(piece)] = piece
            done += len(piece)
            self._position += len(piece)
        return done

    def close(self) -> None:
        """Drop the cached blocks."""
        self._blocks.clear()
        super().close()

    @property
    def cached_bytes(self) -> int:
        """Bytes held in the block cache (at most cached_blocks * block_size)."""
        return sum(len(block) for block in self._blocks.values())

    def _block(self, index: int, last_wanted: int) -> bytes:
        block = self._blocks.get(index)
        if block is not None:
            self._blocks.move_to_end(index)
            return block
        sequential = index == self._next_sequential_block
        self._read_ahead = min(self._read_ahead * 2, self._max_read_ahead) if sequential else 1
        last_block = (self.size - 1) // self._block_size
        stop = min(index + max(self._read_ahead, last_wanted - index + 1), index + self._max_read_ahead,
                   last_block + 1)
        # Stop at a block already held, so no byte is fetched twice.
        stop = next((i for i in range(index + 1, stop) if i in self._blocks), stop)
        data = self._fetch(index * self._block_size, min(stop * self._block_size, self.size))
        for number, start in enumerate(range(0, len(data), self._block_size), start=index):
            self._blocks[number] = data[start:start + self._block_size]
        while len(self._blocks) > self._cached_blocks:
            self._blocks.popitem(last=False)
        self._next_sequential_block = stop
        return self._blocks[index]

    def _fetch(self, start: int, end: int) -> bytes:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("ProviderRangeFile is read from a worker thread, never from its event loop")
        future = asyncio.run_coroutine_threadsafe(self._get(start, end), self._loop)
        try:
            data = future.result(timeout=self._timeout)
        except TimeoutError:
            future.cancel()
            raise ProviderTimeout(f"a range of the original took over {self._timeout:g} s") from None
        self.bytes_fetched += len(data)
        self.ranges_fetched += 1
        return data

    async def _get(self, start: int, end: int) -> bytes:
        stream = await self._provider.get(self._ref, ByteSpan(start, end))
        if not isinstance(stream, ObjectStream):
            raise ProviderFailure("the provider answered a range read with 'not modified'")
        if stream.info.etag != self.etag:
            close = getattr(stream.chunks, "aclose", None)
            if close is not None:
                await close()
            raise OriginalChanged()
        data = b"".join([chunk async for chunk in stream.chunks])
        if stream.start != start or len(data) != end - start:
            raise ProviderFailure(f"a range read of bytes {start}-{end - 1} returned {len(data)} bytes")
        return data

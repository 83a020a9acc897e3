"""An entry being written: one writer appends to a part file while any number of readers tail it.

The writer (`run`) pulls chunks from the origin and writes them off the event loop, or lets a body
that can move itself into a file (a `FileBody`: splice(2) from a socket) do so in steps. Readers learn
which spans are written (`spans`) and send them from one shared read-only descriptor, by
sendfile(2) or pread (the descriptor survives the rename at commit), so memory stays constant
however big the object is and however many clients wait. The part file becomes an entry only through
`commit`, after its length checks out; a fill that fails wakes every reader with the error and
leaves nothing behind.
"""

import asyncio
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from cache.entry import EntryMeta
from cache.errors import FillFailed

# The most a FileBody moves per step: readers hear of the bytes after each step. Steps cost the
# event loop a hand-off and a wake-up of every reader each, which large steps make rare; a body may
# end a step early with what it has (a slow origin's bytes reach the readers without waiting).
FILE_BODY_STEP = 8 * 1024 * 1024


@runtime_checkable
class FileBody(Protocol):
    """A body that moves itself into a file descriptor (by splice(2), say) instead of passing through memory."""

    def write_into(self, fd: int, limit: int) -> int:
        """Move up to `limit` bytes into `fd` at its position (fewer if that is all it has for now); 0 once
        the body is over. Blocks."""
        ...

    def close(self) -> None:
        """Release the body's source, whether or not it was read to its end (any thread, any time)."""
        ...


class Fill:
    """A part file growing towards `meta.info.size` bytes."""

    def __init__(self, part: Path, meta: EntryMeta) -> None:
        """Create the part file. Blocks: use `Fill.open` from the event loop."""
        self.part = part
        self.meta = meta
        self.written = 0
        self._error: BaseException | None = None
        self._finished = False
        self._wake = asyncio.Event()
        self._writing: asyncio.Future[int] | None = None  # the write (or FileBody step) in its thread
        self._write_fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._reader = _SharedDescriptor(os.open(part, os.O_RDONLY))

    @classmethod
    async def open(cls, part: Path, meta: EntryMeta) -> "Fill":
        """Create the part file off the event loop."""
        return await asyncio.to_thread(cls, part, meta)

    async def run(self, body: AsyncIterator[bytes] | FileBody, commit: Callable[[], Awaitable[bool]]) -> bool:
        """Write the whole body, check the length, then commit. Returns whether the entry was committed.

        Chunks are written in a thread while the next one arrives from the origin (one write in
        flight, so at most two chunks are held); a FileBody moves itself in steps, in a thread.
        Readers hear of the bytes once they are written.
        """
        try:
            if isinstance(body, FileBody):
                await self._move(body)
            else:
                await self._copy(body)
            if self.written != self.meta.info.size:
                raise FillFailed(f"origin sent {self.written} of {self.meta.info.size} bytes")
        except BaseException as error:
            # Unlink before waking the readers, so a client that sees the failure never sees the part
            # file; readers holding the shared descriptor can still finish what was written.
            try:
                await asyncio.shield(asyncio.to_thread(self.part.unlink, missing_ok=True))
            finally:
                self._fail(error)
            raise
        finally:
            if isinstance(body, FileBody):
                body.close()  # first: a step blocked on its socket ends at once
            if self._writing is not None:
                # Failed or cancelled mid-write: close only once the thread is done with the
                # descriptor, or a file opened meanwhile could get its number and this chunk.
                await asyncio.wait([self._writing])
                if not self._writing.cancelled():
                    self._writing.exception()  # seen: the run's own error is the one that counts
            os.close(self._write_fd)
        committed = await commit()
        self._finished = True
        self._notify()
        return committed

    async def _copy(self, chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            await self._written()
            self._writing = asyncio.ensure_future(asyncio.to_thread(_write_all, self._write_fd, chunk))
        await self._written()

    async def _move(self, body: FileBody) -> None:
        while True:
            self._writing = asyncio.ensure_future(asyncio.to_thread(body.write_into, self._write_fd, FILE_BODY_STEP))
            if not await self._written():
                return

    async def _written(self) -> int:
        """Wait for the write in flight, if any, then tell the readers its bytes are there; returns their count."""
        if self._writing is None:
            return 0
        # Shielded: cancelling the run must not orphan the write, which goes on in its thread.
        size = await asyncio.shield(self._writing)
        self._writing = None
        self.written += size
        self._notify()
        return size

    async def spans(self, start: int, end: int) -> AsyncIterator[tuple[int, int]]:
        """Yield (offset, stop) spans covering [start, end) as soon as the writer has written them.

        Each span is all that is written past the previous one, so a reader that keeps up gets one per
        chunk of the origin and one that lags gets fewer, larger ones. Read each through `reader_fd`
        (sendfile(2) or pread) before asking for the next. Raises FillFailed if the writer dies first.
        """
        position = start
        while position < end:
            wake = self._wake
            if self._error is not None:
                raise FillFailed(str(self._error)) from self._error
            if self.written <= position:
                await wake.wait()
                continue
            stop = min(self.written, end)
            yield position, stop
            position = stop

    @property
    def reader_fd(self) -> int:
        """The shared read-only descriptor of the part file; it stays open as long as this Fill lives."""
        return self._reader.fd

    async def finished(self) -> None:
        """Wait until every byte is written; raise FillFailed if the writer died first."""
        while True:
            wake = self._wake
            if self._error is not None:
                raise FillFailed(str(self._error)) from self._error
            if self._finished:
                return
            await wake.wait()

    def open_reader(self) -> BinaryIO:
        """A file object of its own over the written bytes (its own position; the descriptor is shared).

        Blocking reads: use it from a worker thread, after `finished`.
        """
        return io.BufferedReader(_PositionedReader(self._reader, self.written))

    @property
    def done(self) -> bool:
        """True once the writer has stopped, committed or not."""
        return self._finished or self._error is not None

    @property
    def failed(self) -> bool:
        """True once the writer has died before its last byte: every reader gets FillFailed."""
        return self._error is not None

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._notify()


class _SharedDescriptor:
    """A read-only descriptor closed when the last holder of its Fill lets go.

    Readers may join a fill at any moment, even after it has committed and renamed its part file, so
    the descriptor must outlive the writer; reference counting decides when nobody needs it.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        os.close(self.fd)


class _PositionedReader(io.RawIOBase):
    """Reads a shared descriptor with pread at a position of its own, so readers never disturb each other."""

    def __init__(self, shared: _SharedDescriptor, size: int) -> None:
        super().__init__()
        self._shared = shared  # holds the descriptor open for as long as this reader lives
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        data = os.pread(self._shared.fd, min(len(buffer), max(0, self._size - self._position)), self._position)
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)

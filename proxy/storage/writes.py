"""What every provider's write shares: the plan (one request or parts, of what size, how many at once),
its result, and a body that can be cut off from outside so that a multipart upload is aborted, never left open.

The contract of `StorageProvider.write`: the object appears whole or not at all. If the chunks raise
(a client gone, a checksum that doesn't match, an abort), nothing becomes visible and no multipart
upload stays open on the provider. Uploads (proxy/routes/uploads.py) and copies between providers
use the same path.
"""

import asyncio
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from proxy.storage.errors import UploadTooLarge, WriteAborted

T = TypeVar("T")
MIB = 1024 * 1024
# S3's limits, the tightest of the providers: at most 10,000 parts, the largest object 5 TiB, and
# every part but the last at least 5 MiB. Azure allows 50,000 blocks; local disk has no parts at all.
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * 1024**4
MIN_PART_SIZE = 5 * MIB
# How long an aborted write may take to tell the provider (S3's AbortMultipartUpload) before giving up.
ABORT_TIMEOUT = 30.0


@dataclass(frozen=True)
class WritePlan:
    """How one object goes up: one request below `threshold` bytes, else parts of `part_size`, `concurrency` at once.

    `size` is the body's length when known (Content-Length); with it the part size grows so the body
    fits in MAX_PARTS parts. Without it the body may be at most `part_size` x MAX_PARTS bytes.
    """

    content_type: str
    size: int | None
    threshold: int
    part_size: int
    concurrency: int

    @property
    def effective_part_size(self) -> int:
        """The configured part size, grown (in whole MiB) so that `size` needs at most MAX_PARTS parts."""
        if self.size is None:
            return self.part_size
        needed = math.ceil(math.ceil(self.size / MAX_PARTS) / MIB) * MIB
        return max(self.part_size, needed, MIN_PART_SIZE)

    @property
    def max_size(self) -> int:
        """The most bytes this plan can carry: the given size, else what MAX_PARTS parts hold."""
        if self.size is not None:
            return self.size
        return min(MAX_OBJECT_SIZE, self.part_size * MAX_PARTS)

    def check_size(self) -> None:
        """UploadTooLarge for a declared size beyond the largest object a provider takes."""
        if self.size is not None and self.size > MAX_OBJECT_SIZE:
            raise UploadTooLarge(f"the body is larger than {MAX_OBJECT_SIZE} bytes, the largest object")


@dataclass(frozen=True)
class WriteResult:
    """What a completed write made: the new version's ETag (quoted), its size, and the parts it went up in
    (0 for a single request or a local file)."""

    etag: str
    size: int
    parts: int = 0


class AbortableChunks:
    """Re-yields a body; `abort()` makes the read in progress, and every later one, raise WriteAborted.

    A provider library that drives the body itself (obstore runs the iterator from its own task)
    aborts its multipart upload when the body raises, but not when its call is cancelled: a cancelled
    request therefore aborts the body, and waits for the provider to clean up (see `write_or_abort`).
    """

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._source = aiter(chunks)
        self._pending: asyncio.Future[bytes | None] | None = None
        self._aborted = False
        # What the body raised, if it did: the cause of the write's failure, whatever the provider says after.
        self.failure: BaseException | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._aborted:
            raise WriteAborted()
        self._pending = asyncio.ensure_future(anext(self._source, None))
        try:
            chunk = await self._pending
        except asyncio.CancelledError:
            if self._aborted:
                self.failure = WriteAborted()
                raise self.failure from None
            raise
        except Exception as error:
            self.failure = error
            raise
        finally:
            self._pending = None
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def abort(self) -> None:
        """Fail the read in progress and every later one."""
        self._aborted = True
        if self._pending is not None:
            self._pending.cancel()


async def write_or_abort(body: AbortableChunks, write: Awaitable[T]) -> T:
    """Await `write` (which reads `body`); if this task is cancelled, abort the body and let the write clean up.

    The write itself is shielded, so a cancellation (a shutdown) reaches it only through its body: it
    then fails as if the client had gone, and aborts what it started, within ABORT_TIMEOUT.
    """
    future = asyncio.ensure_future(write)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        body.abort()
        try:
            async with asyncio.timeout(ABORT_TIMEOUT):
                await asyncio.wait({future})
        finally:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: the abort's own error is expected, not worth a warning
        raise

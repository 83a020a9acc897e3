"""Writes through obstore: one PUT below the plan's threshold, else a multipart upload (S3 parts, Azure blocks).

obstore streams an async iterable in parts of `chunk_size`, at most `max_concurrency` in flight; the
body reaches it in part-size blocks, read one block ahead (proxy.storage.cloud.part_blocks), so
memory stays near part size x (concurrency + 2) whatever the body's size. When the body raises,
obstore aborts the upload (S3's AbortMultipartUpload; Azure's uncommitted blocks are never listed and
expire); when its call is cancelled it does not, so a cancellation goes through the body instead
(proxy.storage.writes.write_or_abort).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, cast

import obstore

from proxy.storage.cloud.obstore_calls import ObstoreCalls
from proxy.storage.cloud.part_blocks import ReadAhead, part_blocks
from proxy.storage.provider import ObjectRef, quote_etag
from proxy.storage.writes import AbortableChunks, WritePlan, WriteResult, write_or_abort

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # obstore's store type exists only in its stubs, not at run time
    from obstore import PutResult
    from obstore.store import ObjectStore


async def write_object(store: ObjectStore, calls: ObstoreCalls, ref: ObjectRef, chunks: AsyncIterable[bytes],
                       plan: WritePlan) -> WriteResult:
    """Write `chunks` as `ref`'s new version; see StorageProvider.write for the guarantees."""
    counter = _Counter()
    body = AbortableChunks(counter.count(chunks))
    attributes = {"Content-Type": plan.content_type}
    head = bytearray()
    if plan.size is None or plan.size <= plan.threshold:
        # Gather up to the threshold: a body that ends by then goes up in one request (obstore would
        # make even a small iterable a multipart upload: three requests).
        async for chunk in body:
            head += chunk
            if len(head) > plan.threshold:
                break
        else:
            result = await calls.call(ref, "put", obstore.put_async(
                store, ref.key, head, attributes=attributes, use_multipart=False))
            return _result(result, counter.bytes, parts=0)
    # The gathered head is handed over as it is (obstore takes any byte buffer): no copy of up to the threshold.
    blocks = ReadAhead(part_blocks(_prepend(head, body) if head else body, plan.effective_part_size))
    parts = AbortableChunks(blocks)
    del head
    # No overall timeout here, unlike calls.call: a multipart upload of terabytes takes as long as it takes.
    with calls.translated(ref, "multipart put"):
        try:
            result = await write_or_abort(parts, obstore.put_async(
                store, ref.key, parts, attributes=attributes, use_multipart=True,
                chunk_size=plan.effective_part_size, max_concurrency=plan.concurrency))
        except Exception as error:
            if parts.failure is None or error is parts.failure:
                raise
            # The body failed (a checksum, a client gone) and then so did obstore's abort: the client
            # is told about its body, and the operator that an upload may be left open on the provider.
            log.warning("%s/%s: the multipart upload was not aborted after %s: %s; it may stay open until "
                        "a lifecycle rule removes it", ref.bucket, ref.key, type(parts.failure).__name__,
                        " ".join(str(error).split())[:300])
            raise parts.failure from None
        finally:
            blocks.close()  # a block read ahead of a write that ended early is not read to its end
    # obstore cuts the body into parts of exactly chunk_size, the last one shorter.
    return _result(result, counter.bytes, parts=max(1, math.ceil(counter.bytes / plan.effective_part_size)))


def _result(result: PutResult, size: int, parts: int) -> WriteResult:
    etag = result.get("e_tag") or ""  # every backend here answers one; "" lets the caller HEAD instead
    return WriteResult(quote_etag(etag) if etag else "", size, parts)


class _Counter:
    """Counts the bytes that pass, for the result's size."""

    def __init__(self) -> None:
        self.bytes = 0

    async def count(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.bytes += len(chunk)
            yield chunk


async def _prepend(first: bytearray, rest: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    yield cast(bytes, first)  # obstore reads any byte buffer; a copy would double the head's memory
    async for chunk in rest:
        yield chunk

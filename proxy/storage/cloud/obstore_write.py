"""Writes through obstore: one PUT below the plan's threshold, else a multipart upload (S3 parts, Azure blocks).

obstore streams an async iterable in parts of `chunk_size`, at most `max_concurrency` in flight, so
memory stays near part size x (concurrency + 1) whatever the body's size. When the body raises,
obstore aborts the upload (S3's AbortMultipartUpload; Azure's uncommitted blocks are never listed and
expire); when its call is cancelled it does not, so a cancellation goes through the body instead
(proxy.storage.writes.write_or_abort).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING

import obstore

from proxy.storage.cloud.obstore_calls import ObstoreCalls
from proxy.storage.provider import ObjectRef, quote_etag
from proxy.storage.writes import AbortableChunks, WritePlan, WriteResult, write_or_abort

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
                store, ref.key, bytes(head), attributes=attributes, use_multipart=False))
            return _result(result, counter.bytes)
    parts = AbortableChunks(_prepend(bytes(head), body)) if head else body
    del head
    # No overall timeout here, unlike calls.call: a multipart upload of terabytes takes as long as it takes.
    with calls.translated(ref, "multipart put"):
        result = await write_or_abort(parts, obstore.put_async(
            store, ref.key, parts, attributes=attributes, use_multipart=True,
            chunk_size=plan.effective_part_size, max_concurrency=plan.concurrency))
    return _result(result, counter.bytes)


def _result(result: PutResult, size: int) -> WriteResult:
    etag = result.get("e_tag") or ""  # every backend here answers one; "" lets the caller HEAD instead
    return WriteResult(quote_etag(etag) if etag else "", size)


class _Counter:
    """Counts the bytes that pass, for the result's size."""

    def __init__(self) -> None:
        self.bytes = 0

    async def count(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.bytes += len(chunk)
            yield chunk


async def _prepend(first: bytes, rest: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk

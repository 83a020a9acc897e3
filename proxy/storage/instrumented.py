"""A provider wrapper that records upstream metrics, so no provider module knows about Prometheus."""

import asyncio
import time
from collections.abc import AsyncIterable
from typing import Any

from cache.fill import FileBody
from previews.errors import PublicError
from proxy.metrics.registry import Metrics
from proxy.storage.errors import CircuitOpen, ObjectNotFound, ProviderAccessDenied, ProviderTimeout, WriteAborted
from proxy.storage.provider import ByteSpan, NotModified, ObjectInfo, ObjectRef, ObjectStream, StorageProvider
from proxy.storage.writes import WritePlan, WriteResult


class InstrumentedProvider:
    """Counts calls by outcome, times them to the response headers, and counts body bytes."""

    def __init__(self, inner: StorageProvider, metrics: Metrics, label: str | None = None) -> None:
        self.inner = inner
        self.provider_id = inner.provider_id
        # The `provider` label: the provider's id, or a link entry's own (several links share an id).
        self.label = label or inner.provider_id
        self._metrics = metrics

    async def head(self, ref: ObjectRef) -> ObjectInfo:
        """See StorageProvider.head."""
        return await self._timed(self.inner.head(ref))

    async def get(
        self, ref: ObjectRef, span: ByteSpan | None = None, if_none_match: str | None = None
    ) -> ObjectStream | NotModified:
        """See StorageProvider.get."""
        result = await self._timed(self.inner.get(ref, span, if_none_match))
        if isinstance(result, ObjectStream):
            result.chunks = self._metrics.count_upstream_bytes(self.label, result.chunks)
            if result.file_body is not None:
                result.file_body = CountedFileBody(result.file_body, self._metrics, self.label)
        return result

    async def put(self, ref: ObjectRef, chunks: AsyncIterable[bytes], content_type: str) -> None:
        """See StorageProvider.put."""
        await self._timed(self.inner.put(ref, chunks, content_type))

    async def write(self, ref: ObjectRef, chunks: AsyncIterable[bytes], plan: WritePlan) -> WriteResult:
        """See StorageProvider.write; counted as an upload by how it ended, with its bytes and parts."""
        try:
            result: WriteResult = await self._timed(self.inner.write(ref, chunks, plan))
        except BaseException as error:
            self._metrics.upload_done(self.label, _write_outcome(error))
            raise
        self._metrics.upload_done(self.label, "stored", result.size, result.parts)
        return result

    async def check(self) -> None:
        """See StorageProvider.check."""
        await self.inner.check()

    async def close(self) -> None:
        """See StorageProvider.close."""
        await self.inner.close()

    async def _timed(self, call: Any) -> Any:
        started = time.monotonic()
        outcome = "ok"
        try:
            return await call
        except ObjectNotFound:
            outcome = "not_found"
            raise
        except CircuitOpen:
            outcome = "short_circuit"  # never reached the provider
            raise
        except ProviderTimeout:
            outcome = "timeout"
            raise
        except ProviderAccessDenied:
            outcome = "denied"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            self._metrics.upstream_call(self.label, outcome, started)


class CountedFileBody:
    """A FileBody whose moved bytes count as the provider's body bytes."""

    def __init__(self, inner: FileBody, metrics: Metrics, label: str) -> None:
        self._inner = inner
        self._metrics = metrics
        self._label = label

    def write_into(self, fd: int, limit: int) -> int:
        """See cache.fill.FileBody.write_into."""
        moved = self._inner.write_into(fd, limit)
        self._metrics.count_upstream_bytes_moved(self._label, moved)
        return moved

    def close(self) -> None:
        """See cache.fill.FileBody.close."""
        self._inner.close()


def _write_outcome(error: BaseException) -> str:
    """aborted: a shutdown; rejected: the body's fault (a checksum, its size, a client gone: a 4xx); failed: else."""
    if isinstance(error, WriteAborted | asyncio.CancelledError):
        return "aborted"
    if isinstance(error, PublicError) and error.status < 500:
        return "rejected"
    return "failed"

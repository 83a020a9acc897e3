"""The provider every obstore backend (S3, Azure, GCS) shares; a subclass only says how to build a store.

obstore stores are scoped to one bucket (or container), so each provider keeps one store per
bucket, made on first use. Errors go through ObstoreCalls and come out as proxy.storage.errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import obstore
import obstore.exceptions as obstore_errors

from proxy.storage.cloud.obstore_calls import (
    READINESS_PROBE_BUCKET,
    STREAM_CHUNK,
    ObstoreCalls,
    answers,
    info_from_obstore,
)
from proxy.storage.cloud.obstore_write import write_object
from proxy.storage.config import StorageConfig
from proxy.storage.errors import ObjectNotFound
from proxy.storage.provider import ByteSpan, NotModified, ObjectInfo, ObjectRef, ObjectStream
from proxy.storage.writes import WritePlan, WriteResult

if TYPE_CHECKING:  # obstore's option types exist only in its stubs, not at run time
    from obstore import GetOptions, GetResult
    from obstore.store import ClientConfig, ObjectStore, RetryConfig

T = TypeVar("T")
# Objects above this go up as a multipart upload (S3 parts, Azure blocks, GCS XML multipart).
MULTIPART_THRESHOLD = 8 * 1024 * 1024


class ObstoreProvider:
    """head/get/put/check/close over obstore; subclasses set `provider_id` and implement `new_store`."""

    provider_id = "obstore"

    def __init__(self, config: StorageConfig) -> None:
        self.config = config
        self._stores: dict[str, ObjectStore] = {}
        self._calls = ObstoreCalls(self.provider_id, config.read_timeout, config.secrets(), config.retries)
        # The last bucket the backend answered for with our credentials (an object, or "not found").
        # Readiness probes there: credentials scoped to some buckets are refused everywhere else.
        self.answered_bucket: str | None = None

    def new_store(self, bucket: str) -> ObjectStore:
        """A new obstore store for `bucket`. Building one does no I/O."""
        raise NotImplementedError

    def store(self, bucket: str) -> ObjectStore:
        """The store for `bucket`, made on first use."""
        store = self._stores.get(bucket)
        if store is None:
            store = self._stores[bucket] = self.new_store(bucket)
        return store

    async def head(self, ref: ObjectRef) -> ObjectInfo:
        """HEAD the object: a GET with no body, so the media type comes back too."""
        result = await self._get_result(ref, "head", {"head": True})
        return info_from_obstore(result.meta, result.attributes)

    async def get(
        self, ref: ObjectRef, span: ByteSpan | None = None, if_none_match: str | None = None
    ) -> ObjectStream | NotModified:
        """GET the object or a range of it; the body streams in chunks."""
        options: GetOptions = {}
        if span is not None:
            options["range"] = {"suffix": span.suffix} if span.suffix is not None else (
                (span.start, span.end) if span.end is not None else {"offset": span.start})
        if if_none_match is not None:
            options["if_none_match"] = if_none_match
        return await self.get_with(ref, options)

    async def get_with(self, ref: ObjectRef, options: GetOptions) -> ObjectStream | NotModified:
        """GET with obstore options already built (a subclass may add its own, such as if_match)."""
        if_none_match = options.get("if_none_match")
        try:
            result = await self._get_result(ref, "get", options)
        except obstore_errors.NotModifiedError:
            return NotModified(if_none_match or "")
        info = info_from_obstore(result.meta, result.attributes)
        if if_none_match is not None and info.etag == if_none_match:
            # The backend ignored If-None-Match (fake-gcs-server does) and sent the same version: the
            # unread body is dropped with its connection, and the caller still gets "not modified".
            return NotModified(info.etag)
        start, end = result.range
        chunks = self._calls.stream(ref, aiter(result.stream(min_chunk_size=STREAM_CHUNK)))
        return ObjectStream(info, start, end, chunks)

    async def _get_result(self, ref: ObjectRef, operation: str, options: GetOptions) -> GetResult:
        store = self.store(ref.bucket)  # outside the try: a name refused before any I/O answers nothing
        return await self.answered(ref, operation, lambda: obstore.get_async(store, ref.key, options=options))

    async def answered(self, ref: ObjectRef, operation: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """A read of `ref` up to its headers (ObstoreCalls.read), noting that the bucket answered."""
        try:
            result = await self._calls.read(ref, operation, attempt)
        except (ObjectNotFound, obstore_errors.NotModifiedError):
            self.answered_bucket = ref.bucket
            raise
        self.answered_bucket = ref.bucket
        return result

    async def put(self, ref: ObjectRef, chunks: AsyncIterable[bytes], content_type: str) -> None:
        """One request for up to MULTIPART_THRESHOLD bytes; anything larger goes up in parts of that size.

        obstore can't know an iterable's length, so it would make even a small object a multipart
        upload (three requests); the first part is gathered here to tell the two apart.
        """
        store, attributes = self.store(ref.bucket), {"Content-Type": content_type}
        iterator = aiter(chunks)
        head = bytearray()
        while len(head) <= MULTIPART_THRESHOLD:
            chunk = await anext(iterator, None)
            if chunk is None:
                await self._calls.call(ref, "put", obstore.put_async(
                    store, ref.key, bytes(head), attributes=attributes, use_multipart=False))
                return
            head += chunk
        await self._calls.call(ref, "put", obstore.put_async(
            store, ref.key, _prepend(bytes(head), iterator), attributes=attributes, chunk_size=MULTIPART_THRESHOLD))

    async def write(self, ref: ObjectRef, chunks: AsyncIterable[bytes], plan: WritePlan) -> WriteResult:
        """One PUT or a multipart upload as `plan` says (proxy.storage.cloud.obstore_write)."""
        result = await write_object(self.store(ref.bucket), self._calls, ref, chunks, plan)
        if not result.etag:
            result = WriteResult((await self.head(ref)).etag, result.size, result.parts)
        return result

    async def check(self) -> None:
        """Ready when the endpoint answers with our credentials, in the bucket that last answered if any."""
        await answers(self, self.answered_bucket or READINESS_PROBE_BUCKET)

    async def close(self) -> None:
        """obstore closes its connection pools when the stores are dropped."""
        self._stores.clear()


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def client_options(config: StorageConfig) -> ClientConfig:
    """HTTP client options shared by every obstore store of this configuration."""
    options: ClientConfig = {
        "allow_http": bool(config.endpoint and config.endpoint.startswith("http://")),
        "connect_timeout": timedelta(seconds=config.connect_timeout),
        # obstore's `timeout` covers a whole body; a 4 GB original must not hit it. Stalls are caught
        # by the per-chunk read timeout instead.
        "timeout": timedelta(hours=6),
        "read_timeout": timedelta(seconds=config.read_timeout),
    }
    if config.ca_file is not None:
        options["root_certificate"] = config.ca_file.read_text()
    return options


def retry_config(config: StorageConfig) -> RetryConfig:
    """No retries inside obstore: ObstoreCalls.read retries reads itself, and only before their headers.

    obstore would also retry a body that breaks off, by asking for the rest with a Range request and
    no If-Match (seen on the wire with obstore 0.12.1), which could splice two versions of an object
    into one response; and it would retry writes, which STORAGE_RETRIES does not cover.
    """
    return {"max_retries": 0, "retry_timeout": timedelta(seconds=config.read_timeout)}

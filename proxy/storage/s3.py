"""S3 and S3-compatible stores (MinIO) through obstore's S3Store: static keys or an IAM role."""

from __future__ import annotations

from collections.abc import AsyncIterable
from datetime import timedelta
from typing import TYPE_CHECKING

import obstore
import obstore.exceptions as obstore_errors
from obstore.store import S3Store

from proxy.storage.config import StorageConfig
from proxy.storage.obstore_calls import (
    READINESS_PROBE_BUCKET,
    STREAM_CHUNK,
    ObstoreCalls,
    answers,
    info_from_obstore,
)
from proxy.storage.provider import ByteSpan, NotModified, ObjectInfo, ObjectRef, ObjectStream

if TYPE_CHECKING:  # obstore's option types exist only in its stubs, not at run time
    from obstore import GetOptions
    from obstore.store import ClientConfig, S3Config

# Objects above this go up as a multipart upload.
MULTIPART_THRESHOLD = 8 * 1024 * 1024


class S3Provider:
    """One S3Store per bucket (obstore stores are bucket-scoped), made on first use."""

    provider_id = "s3"

    def __init__(self, config: StorageConfig) -> None:
        self._config = config
        self._stores: dict[str, S3Store] = {}
        self._calls = ObstoreCalls(self.provider_id, config.read_timeout, config.secrets())

    def store(self, bucket: str) -> S3Store:
        """The S3Store for `bucket`; building one does no I/O."""
        store = self._stores.get(bucket)
        if store is None:
            store = self._stores[bucket] = S3Store(
                bucket,
                config=s3_settings(self._config),
                client_options=client_options(self._config),
                retry_config={"max_retries": self._config.retries,
                              "retry_timeout": timedelta(seconds=self._config.read_timeout)},
            )
        return store

    async def head(self, ref: ObjectRef) -> ObjectInfo:
        """HEAD the object: a GET with no body, so the media type comes back too."""
        result = await self._calls.call(ref, "head", obstore.get_async(self.store(ref.bucket), ref.key,
                                                                      options={"head": True}))
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
        try:
            result = await self._calls.call(ref, "get", obstore.get_async(self.store(ref.bucket), ref.key,
                                                                         options=options))
        except obstore_errors.NotModifiedError:
            return NotModified(if_none_match or "")
        start, end = result.range
        chunks = self._calls.stream(ref, aiter(result.stream(min_chunk_size=STREAM_CHUNK)))
        return ObjectStream(info_from_obstore(result.meta, result.attributes), start, end, chunks)

    async def put(self, ref: ObjectRef, chunks: AsyncIterable[bytes], content_type: str) -> None:
        """Upload, in parts of MULTIPART_THRESHOLD bytes for anything larger than one part."""
        await self._calls.call(ref, "put", obstore.put_async(
            self.store(ref.bucket), ref.key, chunks, attributes={"Content-Type": content_type},
            chunk_size=MULTIPART_THRESHOLD))

    async def check(self) -> None:
        """Ready when the endpoint answers with our credentials, in a bucket we've used if any."""
        await answers(self, next(iter(self._stores), READINESS_PROBE_BUCKET))

    async def close(self) -> None:
        """obstore closes its connection pools when the stores are dropped."""
        self._stores.clear()


def s3_settings(config: StorageConfig) -> S3Config:
    """S3Config for obstore: region, endpoint with path-style addressing, and keys or IAM role."""
    settings: S3Config = {"region": config.region, "virtual_hosted_style_request": False}
    if config.endpoint:
        settings["endpoint"] = config.endpoint
    if config.access_key and config.secret_key:
        settings["access_key_id"] = config.access_key
        settings["secret_access_key"] = config.secret_key
    if config.metadata_endpoint:
        settings["metadata_endpoint"] = config.metadata_endpoint
    return settings


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

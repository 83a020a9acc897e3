"""S3 and S3-compatible stores (MinIO) through obstore's S3Store: static keys or an IAM role.

A whole object from an http:// endpoint is fetched with a presigned GET whose body the kernel
splices into the storage tier's part file (proxy.storage.cloud.spliced_get); everything else, and
every https:// endpoint, goes through obstore.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

import obstore
import obstore.exceptions as obstore_errors
from obstore.store import S3Store

from proxy.storage.cloud.obstore_calls import STREAM_CHUNK, ObstoreCalls, info_from_obstore
from proxy.storage.cloud.obstore_provider import ObstoreProvider, client_options, retry_config
from proxy.storage.cloud.spliced_get import SplicedBody, last_modified, spliced_get
from proxy.storage.config import StorageConfig
from proxy.storage.provider import ByteSpan, NotModified, ObjectRef, ObjectStream

if TYPE_CHECKING:  # obstore's option types exist only in its stubs, not at run time
    from obstore.store import S3Config

log = logging.getLogger(__name__)
# Buckets named by S3's rules take the spliced GET; other names (MinIO's and moto's routing of them
# differs with a presigned query) stay with obstore, whose answers for them the tests pin down.
PLAIN_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A presigned URL is used at once; this only has to outlast a slow connect and the retries.
SIGNED_FOR = timedelta(minutes=15)


class S3Provider(ObstoreProvider):
    """One S3Store per bucket, path-style, as MinIO needs."""

    provider_id = "s3"

    def new_store(self, bucket: str) -> S3Store:
        """The S3Store for `bucket`; building one does no I/O."""
        return S3Store(bucket, config=s3_settings(self.config), client_options=client_options(self.config),
                       retry_config=retry_config(self.config))

    async def get(
        self, ref: ObjectRef, span: ByteSpan | None = None, if_none_match: str | None = None
    ) -> ObjectStream | NotModified:
        """GET the object or a range of it; a whole object from an http:// endpoint comes by splice(2)."""
        if span is None and if_none_match is None and splices(self.config) and PLAIN_BUCKET.fullmatch(ref.bucket):
            stream = await self._spliced(ref)
            if stream is not None:
                return stream
        return await super().get(ref, span, if_none_match)

    async def _spliced(self, ref: ObjectRef) -> ObjectStream | None:
        """The whole object by a presigned GET (proxy.storage.cloud.spliced_get), or None: ask obstore."""
        store = cast(S3Store, self.store(ref.bucket))  # new_store makes nothing else
        try:
            url = await obstore.sign_async(store, "GET", ref.key, SIGNED_FOR)
        except obstore_errors.BaseError as error:  # credentials that can't sign: obstore's GET still works
            log.debug("s3: can't presign a GET of %s/%s, reading it through obstore: %s", ref.bucket, ref.key, error)
            return None
        answer = await self.answered(ref, "get", lambda: spliced_get(url, self.config.connect_timeout,
                                                                    self.config.read_timeout))
        if answer is None:  # an answer without a length: obstore's reader copes with it
            return None
        headers = answer.headers
        meta = {"size": int(headers["content-length"]), "e_tag": headers.get("etag"),
                "last_modified": datetime.fromtimestamp(last_modified(headers), UTC)}
        info = info_from_obstore(meta, {"Content-Type": headers.get("content-type")})
        chunks = self._calls.stream(ref, answer.body.chunks(STREAM_CHUNK))
        return ObjectStream(info, 0, info.size, chunks, file_body=TranslatedBody(answer.body, self._calls, ref))


class TranslatedBody:
    """A SplicedBody whose failures come out as provider errors, logged once, as obstore's bodies' do."""

    def __init__(self, body: SplicedBody, calls: ObstoreCalls, ref: ObjectRef) -> None:
        self._body = body
        self._calls = calls
        self._ref = ref

    def write_into(self, fd: int, limit: int) -> int:
        """See cache.fill.FileBody.write_into."""
        with self._calls.translated(self._ref, "read body"):
            return self._body.write_into(fd, limit)

    def close(self) -> None:
        """See cache.fill.FileBody.close."""
        self._body.close()


def splices(config: StorageConfig) -> bool:
    """Whether whole objects come by splice(2): STORAGE_SPLICE on, a plain-HTTP endpoint, a system that has it."""
    return (config.splice and bool(config.endpoint and config.endpoint.startswith("http://"))
            and hasattr(os, "splice"))


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

"""Every storage provider through the one interface, against its real backend: local disk and moto's S3.

The start of the shared contract suite: each case runs once per provider.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from proxy.storage.config import StorageConfig
from proxy.storage.errors import ObjectNotFound
from proxy.storage.local import LocalProvider
from proxy.storage.obstore_provider import MULTIPART_THRESHOLD
from proxy.storage.provider import ByteSpan, NotModified, ObjectRef, ObjectStream, StorageProvider
from proxy.storage.s3 import S3Provider
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3


@pytest.fixture(params=["local", "s3"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StorageProvider, str]]:
    """(provider, bucket) with an empty bucket on the real backend."""
    if request.param == "local":
        (tmp_path / "bucket").mkdir()
        yield LocalProvider(tmp_path), "bucket"
        return
    moto: MotoS3 = request.getfixturevalue("moto")
    bucket = moto.create_bucket(f"pp-contract-{uuid.uuid4().hex[:10]}")
    config = StorageConfig(provider="minio", root=tmp_path, endpoint=moto.endpoint, region=REGION,
                           access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    yield S3Provider(config), bucket


async def _chunks(data: bytes, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def _read(stream: ObjectStream) -> bytes:
    return b"".join([chunk async for chunk in stream.chunks])


def test_put_then_get_whole_and_ranges(provider: tuple[StorageProvider, str]) -> None:
    store, bucket = provider
    ref = ObjectRef(bucket, "dir/photo.jpg")
    data = os.urandom(300_000)

    async def scenario() -> None:
        await store.put(ref, _chunks(data, 64 * 1024), "image/jpeg")
        info = await store.head(ref)
        assert (info.size, info.etag.startswith('"')) == (len(data), True)
        whole = await store.get(ref)
        assert isinstance(whole, ObjectStream)
        assert (whole.start, whole.end, await _read(whole)) == (0, len(data), data)
        for span, expected_start in ((ByteSpan(10, 20), 10), (ByteSpan(299_000), 299_000),
                                     (ByteSpan(suffix=500), len(data) - 500)):
            part = await store.get(ref, span)
            assert isinstance(part, ObjectStream)
            body = await _read(part)
            assert part.start == expected_start
            assert body == data[part.start:part.end]
        assert isinstance(await store.get(ref, if_none_match=info.etag), NotModified)
        assert isinstance(await store.get(ref, if_none_match='"some-other-version"'), ObjectStream)

    asyncio.run(scenario())


def test_missing_object_is_object_not_found(provider: tuple[StorageProvider, str]) -> None:
    store, bucket = provider

    async def scenario() -> None:
        with pytest.raises(ObjectNotFound):
            await store.head(ObjectRef(bucket, "nope.jpg"))
        with pytest.raises(ObjectNotFound):
            await store.get(ObjectRef(bucket, "nope.jpg"))

    asyncio.run(scenario())


def test_large_put_goes_up_in_parts_and_reads_back(provider: tuple[StorageProvider, str]) -> None:
    store, bucket = provider
    ref = ObjectRef(bucket, "big.bin")
    data = os.urandom(MULTIPART_THRESHOLD * 2 + 12345)

    async def scenario() -> None:
        await store.put(ref, _chunks(data), "application/octet-stream")
        if isinstance(store, S3Provider):
            # S3 gives a multipart object an ETag ending in -<part count>.
            assert (await store.head(ref)).etag.rstrip('"').endswith("-3")
        stream = await store.get(ref)
        assert isinstance(stream, ObjectStream)
        assert await _read(stream) == data

    asyncio.run(scenario())

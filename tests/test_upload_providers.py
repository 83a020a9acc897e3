"""Writes through the provider interface, on every backend's real server: one request below the threshold,
parts above it (counted on the wire), and nothing visible nor left open after a bad checksum or a cancel.

fake-gcs-server can't take obstore's writes (tests/support/backends.py), so its cases skip, saying so.
"""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.storage.checksums import ExpectedDigests, verified
from proxy.storage.errors import ChecksumMismatch, ObjectNotFound
from proxy.storage.provider import ObjectRef, ObjectStream, StorageProvider
from proxy.storage.writes import MIB, WritePlan
from tests.support.backends import BACKENDS, Backend, make_backend
from tests.support.s3 import MotoS3
from tests.support.tcp_proxy import TcpProxy

# Query markers of one uploaded part: S3's UploadPart, Azure's Put Block.
PART_MARKERS = ("partNumber=", "comp=block&")
SMALL_PLAN = WritePlan("application/octet-stream", None, threshold=5 * MIB, part_size=5 * MIB, concurrency=2)
# moto (not S3) answers 500 to an AbortMultipartUpload that arrives while it still receives a part ("read of
# closed file"), and the upload stays open; one part at a time keeps these cases about our abort, not that race.
ABORT_PLAN = WritePlan("application/octet-stream", None, threshold=5 * MIB, part_size=5 * MIB, concurrency=1)
NO_GCS_WRITES = "fake-gcs-server has no XML API uploads, which obstore's GCSStore writes with"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh bucket on one backend's real server (local disk's bucket folder made: writes need it)."""
    found = make_backend(request.param, request, tmp_path)
    if not found.writes:
        pytest.skip(NO_GCS_WRITES)
    if found.name == "local":
        (found.config.root / found.bucket).mkdir(parents=True, exist_ok=True)
    return found


async def _chunks(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def _read_all(provider: StorageProvider, ref: ObjectRef) -> bytes:
    stream = await provider.get(ref)
    assert isinstance(stream, ObjectStream)
    return b"".join([chunk async for chunk in stream.chunks])


def _parts(proxy: TcpProxy) -> int:
    return sum(1 for seen in proxy.requests if seen.method == "PUT" and any(m in seen.target for m in PART_MARKERS))


def _writer(backend: Backend, proxy: TcpProxy | None) -> StorageProvider:
    return backend.provider(endpoint=backend.endpoint_via(proxy.endpoint)) if proxy else backend.provider()


def _nothing_left(backend: Backend, request: pytest.FixtureRequest, key: str) -> None:
    """The key is absent, and no part file (local) or open multipart upload (S3) remains."""
    async def absent() -> None:
        with pytest.raises(ObjectNotFound):
            await backend.provider().head(ObjectRef(backend.bucket, key))

    asyncio.run(absent())
    if backend.name == "local":
        assert list((backend.config.root / backend.bucket).rglob("*")) == []
    if backend.name == "s3":
        moto: MotoS3 = request.getfixturevalue("moto")
        assert moto.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", []) == []


@pytest.mark.parametrize(("size", "parts"), [(300_000, 0), (11 * MIB + 12345, 3)], ids=["one-request", "multipart"])
def test_write_goes_up_in_one_request_or_in_parts_and_reads_back(backend: Backend, size: int, parts: int) -> None:
    data = os.urandom(size)
    ref = ObjectRef(backend.bucket, "up/loaded.bin")

    async def scenario(writer: StorageProvider) -> None:
        result = await writer.write(ref, _chunks(data), SMALL_PLAN)
        reader = backend.provider()
        info = await reader.head(ref)
        assert (result.size, result.etag) == (size, info.etag)
        assert hashlib.sha256(await _read_all(reader, ref)).digest() == hashlib.sha256(data).digest()

    if backend.name == "local":
        asyncio.run(scenario(backend.provider()))
        assert [p.name for p in (backend.config.root / backend.bucket / "up").iterdir()] == ["loaded.bin"]
        return
    with TcpProxy(backend.upstream) as proxy:  # each request seen: the parts are on the wire, not just promised
        asyncio.run(scenario(_writer(backend, proxy)))
        assert _parts(proxy) == parts


def test_a_checksum_mismatch_stores_nothing_and_leaves_no_upload_open(backend: Backend,
                                                                      request: pytest.FixtureRequest) -> None:
    data = os.urandom(11 * MIB)
    wrong = ExpectedDigests(sha256=hashlib.sha256(data + b"!").digest())

    async def scenario() -> None:
        with pytest.raises(ChecksumMismatch):
            await backend.provider().write(ObjectRef(backend.bucket, "bad.bin"),
                                           verified(_chunks(data), wrong, len(data), len(data)), ABORT_PLAN)

    asyncio.run(scenario())
    _nothing_left(backend, request, "bad.bin")


def test_a_cancelled_write_aborts_its_parts(backend: Backend, request: pytest.FixtureRequest) -> None:
    async def scenario() -> None:
        started = asyncio.Event()  # set once the body has given more than the threshold: parts are under way

        async def endless() -> AsyncIterator[bytes]:
            for _ in range(12):  # two parts' worth and more, then a client that never sends the rest
                yield os.urandom(MIB)
            started.set()
            await asyncio.Event().wait()
            yield b""  # not reached

        task = asyncio.ensure_future(backend.provider().write(ObjectRef(backend.bucket, "cut.bin"), endless(),
                                                              ABORT_PLAN))
        await asyncio.wait_for(started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 40)

    asyncio.run(scenario())
    _nothing_left(backend, request, "cut.bin")

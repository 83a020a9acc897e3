"""The shared contract suite: every storage provider, through the one interface, against its real server.

Each case runs once per backend: local disk, S3 on moto, Azure on Azurite with an account key and
with a SAS token, and GCS on fake-gcs-server. Objects are seeded through each server's own API, so
reads are tested independently of the provider's writes. fake-gcs-server can't take obstore's
writes (see tests/support/backends.py), so the write cases skip it, saying so.
"""

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.storage.cloud.obstore_provider import MULTIPART_THRESHOLD
from proxy.storage.errors import ObjectNotFound, ProviderAccessDenied
from proxy.storage.provider import ByteSpan, NotModified, ObjectRef, ObjectStream, StorageProvider
from tests.conftest import REPO
from tests.support.backends import BACKENDS, Backend, make_backend
from tests.support.tcp_proxy import TcpProxy

SIZE = 300_000
BIG_SIZE = 256 * 1024 * 1024
# The provider may hold a few chunks and obstore its buffers; 256 MiB must never be held whole.
BIG_GROWTH_LIMIT = 48 * 1024 * 1024
# Query markers of one uploaded part: S3's UploadPart, Azure's Put Block.
PART_MARKERS = ("partNumber=", "comp=block&")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh bucket on one backend's real server."""
    return make_backend(request.param, request, tmp_path)


@dataclass(frozen=True)
class BigFile:
    """A file of BIG_SIZE random bytes, and their SHA-256."""

    path: Path
    sha256: str


@pytest.fixture(scope="session")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigFile]:
    """Written once per session, in 1 MiB blocks."""
    path = tmp_path_factory.mktemp("big") / "big.bin"
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(BIG_SIZE // (1024 * 1024)):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            file.write(block)
    yield BigFile(path, digest.hexdigest())
    path.unlink()


async def _chunks(data: bytes, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def _read(stream: ObjectStream) -> bytes:
    return b"".join([chunk async for chunk in stream.chunks])


async def _get(provider: StorageProvider, ref: ObjectRef, span: ByteSpan | None = None) -> ObjectStream:
    stream = await provider.get(ref, span)
    assert isinstance(stream, ObjectStream)
    return stream


def test_get_streams_the_whole_object_with_its_info(backend: Backend) -> None:
    data = os.urandom(SIZE)
    backend.seed("dir/photo.jpg", data, "image/jpeg")

    async def scenario() -> None:
        stream = await _get(backend.provider(), ObjectRef(backend.bucket, "dir/photo.jpg"))
        assert (stream.start, stream.end, stream.info.size, stream.info.content_type) == (0, SIZE, SIZE, "image/jpeg")
        assert await _read(stream) == data

    asyncio.run(scenario())


def test_body_arrives_as_a_stream_of_bounded_chunks(backend: Backend) -> None:
    data = os.urandom(6 * 1024 * 1024)
    backend.seed("six.bin", data, "application/octet-stream")

    async def scenario() -> None:
        stream = await _get(backend.provider(), ObjectRef(backend.bucket, "six.bin"))
        sizes = []
        body = bytearray()
        async for chunk in stream.chunks:
            sizes.append(len(chunk))
            body += chunk
        assert bytes(body) == data
        # Several chunks, none near the whole: the body was never buffered in one piece.
        assert len(sizes) >= 3 and max(sizes) <= 2 * 1024 * 1024, sizes

    asyncio.run(scenario())


@pytest.mark.parametrize(("span", "expected"), [
    (ByteSpan(10, 20), (10, 20)),
    (ByteSpan(SIZE - 1000), (SIZE - 1000, SIZE)),
    (ByteSpan(suffix=500), (SIZE - 500, SIZE)),
    (ByteSpan(suffix=SIZE * 2), (0, SIZE)),
], ids=["closed", "open-ended", "suffix", "suffix-longer-than-object"])
def test_ranges(backend: Backend, span: ByteSpan, expected: tuple[int, int]) -> None:
    data = os.urandom(SIZE)
    backend.seed("ranged.bin", data, "application/octet-stream")

    async def scenario() -> None:
        part = await _get(backend.provider(), ObjectRef(backend.bucket, "ranged.bin"), span)
        assert (part.start, part.end, part.info.size) == (*expected, SIZE)
        assert await _read(part) == data[expected[0]:expected[1]]

    asyncio.run(scenario())


def test_head_describes_the_object_as_get_does(backend: Backend) -> None:
    backend.seed("head.png", b"\x89PNG" + os.urandom(1000), "image/png")

    async def scenario() -> None:
        provider = backend.provider()
        info = await provider.head(ObjectRef(backend.bucket, "head.png"))
        assert (info.size, info.content_type) == (1004, "image/png")
        assert info.etag.startswith('"') and info.etag.endswith('"') and len(info.etag) > 2
        assert abs(info.last_modified - time.time()) < 600
        stream = await _get(provider, ObjectRef(backend.bucket, "head.png"))
        assert stream.info == info
        await _read(stream)

    asyncio.run(scenario())


def test_etag_changes_when_the_object_does(backend: Backend) -> None:
    ref = ObjectRef(backend.bucket, "changing.bin")

    async def scenario() -> None:
        provider = backend.provider()
        backend.seed(ref.key, b"first version", "application/octet-stream")
        first = (await provider.head(ref)).etag
        assert (await provider.head(ref)).etag == first
        backend.seed(ref.key, b"the second, longer version", "application/octet-stream")
        assert (await provider.head(ref)).etag != first

    asyncio.run(scenario())


def test_if_none_match_gives_not_modified_only_for_the_current_etag(backend: Backend) -> None:
    data = os.urandom(SIZE)
    backend.seed("cached.jpg", data, "image/jpeg")
    ref = ObjectRef(backend.bucket, "cached.jpg")

    async def scenario() -> None:
        provider = backend.provider()
        etag = (await provider.head(ref)).etag
        assert await provider.get(ref, if_none_match=etag) == NotModified(etag)
        # A suffix range with the current ETag is not modified either (Azure resolves it via HEAD).
        assert await provider.get(ref, ByteSpan(suffix=10), if_none_match=etag) == NotModified(etag)
        fresh = await provider.get(ref, if_none_match='"some-other-version"')
        assert isinstance(fresh, ObjectStream)
        assert await _read(fresh) == data

    asyncio.run(scenario())


def test_missing_key_and_bucket_are_object_not_found(backend: Backend) -> None:
    # A container SAS is signed for one container: Azure refuses every other one (403), so through
    # it another container is "access denied" (502), never "not found". Every other backend says 404.
    other_bucket_error = ProviderAccessDenied if backend.name == "azure-sas" else ObjectNotFound

    async def scenario() -> None:
        provider = backend.provider()
        for ref, error in ((ObjectRef(backend.bucket, "nope.jpg"), ObjectNotFound),
                           (ObjectRef("pp-no-such-bucket-here", "x.jpg"), other_bucket_error),
                           (ObjectRef("Not_A.Valid..Name", "x.jpg"), ObjectNotFound)):
            with pytest.raises(error):
                await provider.head(ref)
            with pytest.raises(error):
                await provider.get(ref)

    asyncio.run(scenario())


@pytest.mark.parametrize(("size", "parts"), [(100_000, 0), (MULTIPART_THRESHOLD * 2 + 12345, 3)],
                         ids=["one-request", "multipart"])
def test_put_writes_in_parts_and_reads_back(backend: Backend, size: int, parts: int) -> None:
    if not backend.writes:
        pytest.skip("fake-gcs-server has no XML API uploads, which obstore's GCSStore writes with")
    data = os.urandom(size)
    ref = ObjectRef(backend.bucket, "up/loaded.bin")

    async def scenario(writer: StorageProvider) -> None:
        await writer.put(ref, _chunks(data), "application/octet-stream")
        reader = backend.provider()
        info = await reader.head(ref)
        assert (info.size, info.content_type) == (size, "application/octet-stream")
        assert await _read(await _get(reader, ref)) == data

    if backend.name == "local":
        asyncio.run(scenario(backend.provider()))
        assert sorted(p.name for p in (backend.config.root / backend.bucket / "up").iterdir()) == ["loaded.bin"]
        return
    # Through a proxy that sees each request: the parts are on the wire, not just promised.
    with TcpProxy(backend.upstream) as proxy:
        asyncio.run(scenario(backend.provider(endpoint=backend.endpoint_via(proxy.endpoint))))
        uploads = [r for r in proxy.requests if r.method in ("PUT", "POST")]
    assert len([r for r in uploads if any(m in r.target for m in PART_MARKERS)]) == parts, uploads
    if parts == 0:
        assert len(uploads) == 1, uploads


@pytest.mark.slow
def test_256_mib_object_streams_with_bounded_memory(backend: Backend, big_file: BigFile) -> None:
    backend.seed("big.bin", big_file.path, "application/octet-stream")
    result = subprocess.run([sys.executable, "-m", "tests.support.stream_probe", backend.bucket, "big.bin"],
                            cwd=REPO, env={**_clean_env(), **backend.env}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert (report["bytes"], report["sha256"]) == (BIG_SIZE, big_file.sha256)
    growth = report["peak_rss"] - report["baseline_rss"]
    assert growth < BIG_GROWTH_LIMIT, f"peak RSS grew by {growth / 2**20:.1f} MiB while streaming 256 MiB"


def _clean_env() -> dict[str, str]:
    """This process's environment without settings that would change the child's provider."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_", "GOOGLE_"))}

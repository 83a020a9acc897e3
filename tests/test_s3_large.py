"""A 1 GiB original through the storage cache: constant memory, and bytes flow before the fetch ends."""

import asyncio
import hashlib
import os

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.s3 import MotoS3, s3_env
from tests.support.tcp_proxy import TcpProxy

GIB = 1024**3
RSS_LIMIT = 150 * 1024 * 1024


@pytest.fixture(scope="module")
def big_object(moto: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """(bucket, key, sha256) of a 1 GiB random object on moto, written and uploaded in chunks."""
    path = tmp_path_factory.mktemp("big") / "one.gib"
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        for _ in range(GIB // (16 * 1024 * 1024)):
            chunk = os.urandom(16 * 1024 * 1024)
            digest.update(chunk)
            file.write(chunk)
    bucket = moto.create_bucket("pp-large")
    moto.put_file(bucket, "videos/one.gib", str(path))
    path.unlink()
    return bucket, "videos/one.gib", digest.hexdigest()


@pytest.mark.slow
def test_one_gib_streams_with_bounded_memory_and_early_first_bytes(
        moto: MotoS3, big_object, start_server: StartServer):
    bucket, key, sha256 = big_object
    with TcpProxy(("127.0.0.1", moto.port)) as proxy:
        server = start_server(**s3_env(proxy.endpoint))
        url = server.url(f"/{bucket}/{key}")

        cold = asyncio.run(_stream(url, lambda: proxy.bytes_down))
        warm = asyncio.run(_stream(url, lambda: proxy.bytes_down))

        assert (cold.status, cold.cache, cold.size, cold.sha256) == (200, "MISS", GIB, sha256)
        assert (warm.status, warm.cache, warm.size, warm.sha256) == (200, "HIT", GIB, sha256)
        assert cold.upstream_at_first_byte < GIB // 2, "the client must get bytes while the fetch runs"
        assert len(proxy.gets(f"/{key}")) == 1
        peak_rss = server.peak_rss_bytes()
        print(f"1 GiB: peak RSS {peak_rss / 2**20:.0f} MiB; upstream bytes at first client byte "
              f"{cold.upstream_at_first_byte / 2**20:.1f} MiB")
        assert peak_rss < RSS_LIMIT


class _Streamed:
    def __init__(self, status: int, cache: str, size: int, sha256: str, upstream_at_first_byte: int) -> None:
        self.status, self.cache, self.size = status, cache, size
        self.sha256, self.upstream_at_first_byte = sha256, upstream_at_first_byte


async def _stream(url: str, upstream_bytes) -> _Streamed:  # type: ignore[no-untyped-def]
    digest = hashlib.sha256()
    size = 0
    first = -1
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        async for chunk in response.content.iter_chunked(1024 * 1024):
            if first < 0:
                first = upstream_bytes()
            digest.update(chunk)
            size += len(chunk)
        return _Streamed(response.status, response.headers.get("X-Cache", ""), size, digest.hexdigest(), first)

"""Originals from S3 (moto) through the storage cache: hits, one fill per key, ranges, bounds, expiry.

Provider GETs are counted by a TCP proxy on loopback that sits between the server and moto.
"""

import asyncio
import os
import time

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.http import metric_value, request
from tests.support.previews_kit import metric, poll
from tests.support.s3 import s3_env

MIB = 1024 * 1024


@pytest.fixture(params=["true", "false"], ids=["sendfile", "no-sendfile"])
def sendfile(request: pytest.FixtureRequest) -> str:
    """SENDFILE on and off: a body tailing a fill goes out by sendfile(2), or is read and written."""
    return str(request.param)


def test_miss_then_hit_with_the_providers_validators(moto, bucket, s3_proxy, start_server: StartServer):
    body = os.urandom(200_000)
    etag = moto.put(bucket, "images/original/a.png", body, "image/png")
    server = start_server(**s3_env(s3_proxy.endpoint))
    url = server.url(f"/{bucket}/images/original/a.png")

    first, second = request(url), request(url)

    assert (first.status, first.headers["X-Cache"], first.body) == (200, "MISS", body)
    assert (second.status, second.headers["X-Cache"], second.body) == (200, "HIT", body)
    for reply in (first, second):
        assert reply.headers["ETag"] == etag
        assert reply.headers["Content-Type"] == "image/png"
        assert reply.headers["Content-Length"] == str(len(body))
        assert reply.headers["Accept-Ranges"] == "bytes"
        assert reply.headers["Last-Modified"].endswith("GMT")
    assert len(s3_proxy.gets(f"/{bucket}/images/original/a.png")) == 1
    assert request(url, headers={"If-None-Match": etag}).status == 304
    hit_range = request(url, headers={"Range": "bytes=-100"})
    assert (hit_range.status, hit_range.body) == (206, body[-100:])
    assert hit_range.headers["Content-Range"] == f"bytes {len(body) - 100}-{len(body) - 1}/{len(body)}"


def test_64_concurrent_cold_gets_make_one_provider_get(moto, bucket, s3_proxy, sendfile: str,
                                                      start_server: StartServer):
    body = os.urandom(3 * MIB)
    moto.put(bucket, "hot.jpg", body, "image/jpeg")
    server = start_server(**s3_env(s3_proxy.endpoint), SENDFILE=sendfile)

    async def fetch_all() -> list[tuple[int, bytes]]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            async def one() -> tuple[int, bytes]:
                async with session.get(server.url(f"/{bucket}/hot.jpg")) as response:
                    return response.status, await response.read()
            return await asyncio.gather(*(one() for _ in range(64)))

    results = asyncio.run(fetch_all())

    assert all(status == 200 and data == body for status, data in results)
    assert len(s3_proxy.gets(f"/{bucket}/hot.jpg")) == 1
    metrics = request(server.url("/metrics")).body.decode()
    assert 'preview_proxy_singleflight_waiters_total{tier="storage"}' in metrics


def test_head_on_a_miss_asks_for_headers_only(moto, bucket, s3_proxy, start_server: StartServer):
    moto.put(bucket, "head.bin", b"x" * 5000)
    server = start_server(**s3_env(s3_proxy.endpoint))

    reply = request(server.url(f"/{bucket}/head.bin"), method="HEAD")

    assert (reply.status, reply.body, reply.headers["Content-Length"]) == (200, b"", "5000")
    assert s3_proxy.gets("/head.bin") == []


def test_unknown_key_is_404_and_not_cached(moto, bucket, s3_proxy, start_server: StartServer):
    server = start_server(**s3_env(s3_proxy.endpoint))

    reply = request(server.url(f"/{bucket}/missing.jpg"))

    assert reply.status == 404
    assert reply.body.count(b"\n") == 1
    moto.put(bucket, "missing.jpg", b"now here")
    assert request(server.url(f"/{bucket}/missing.jpg")).body == b"now here"


def test_range_on_a_miss_does_not_wait_for_the_whole_object(moto, bucket, s3_proxy, start_server: StartServer):
    size = 48 * MIB
    body = os.urandom(size)
    moto.put(bucket, "video.mp4", body, "video/mp4")
    # 16 MiB/s: the full fill needs ~3 s, so an answer that waited for it would show in the byte count.
    s3_proxy.faults.bytes_per_second = 16 * MIB
    server = start_server(**s3_env(s3_proxy.endpoint))

    reply = request(server.url(f"/{bucket}/video.mp4"), headers={"Range": "bytes=-1000"})
    fetched_when_answered = s3_proxy.bytes_down

    assert (reply.status, reply.body) == (206, body[-1000:])
    assert reply.headers["Content-Range"] == f"bytes {size - 1000}-{size - 1}/{size}"
    assert fetched_when_answered < size // 2
    ranged = [r for r in s3_proxy.gets("/video.mp4") if "range" in r.headers]
    assert ranged, "the tail should come from a ranged provider GET"


def test_range_near_the_start_of_a_miss_tails_the_fill(moto, bucket, s3_proxy, sendfile: str,
                                                       start_server: StartServer):
    body = os.urandom(6 * MIB)
    moto.put(bucket, "clip.mp4", body, "video/mp4")
    server = start_server(**s3_env(s3_proxy.endpoint), SENDFILE=sendfile)

    reply = request(server.url(f"/{bucket}/clip.mp4"), headers={"Range": "bytes=0-"})

    assert (reply.status, reply.body) == (206, body)
    assert len(s3_proxy.gets("/clip.mp4")) == 1
    assert request(server.url(f"/{bucket}/clip.mp4")).headers["X-Cache"] == "HIT"


def test_a_cold_client_gets_bytes_while_the_fill_runs_and_all_of_them(moto, bucket, s3_proxy, sendfile: str,
                                                                      start_server: StartServer):
    size = 8 * MIB
    body = os.urandom(size)
    moto.put(bucket, "stream.bin", body)
    # 8 MiB/s: the fetch takes ~1 s, so bytes that waited for it would show in the count.
    s3_proxy.faults.bytes_per_second = 8 * MIB
    server = start_server(**s3_env(s3_proxy.endpoint), SENDFILE=sendfile)

    async def stream() -> tuple[int, bytes, int]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session, \
                session.get(server.url(f"/{bucket}/stream.bin")) as response:
            first = await response.content.readany()
            fetched_at_first_bytes = s3_proxy.bytes_down
            return response.status, first + await response.read(), fetched_at_first_bytes

    status, received, fetched_at_first_bytes = asyncio.run(stream())

    assert (status, len(received), received == body) == (200, size, True)
    assert fetched_at_first_bytes < size // 2, "the client must get bytes while the fetch runs"
    assert request(server.url(f"/{bucket}/stream.bin")).headers["X-Cache"] == "HIT"


def test_eviction_keeps_the_tier_under_its_size_bound(moto, bucket, s3_proxy, start_server: StartServer):
    bodies = {name: os.urandom(MIB) for name in "abcd"}
    for name, body in bodies.items():
        moto.put(bucket, f"{name}.bin", body)
    # 16 s idle: a hit refreshes an entry's LRU position once it is 1 s old (idle / 16).
    server = start_server(**s3_env(s3_proxy.endpoint, CACHE_STORAGE_SIZE="3400k", CACHE_STORAGE_EXPIRES="16s"))
    started = time.monotonic()
    for name in "abc":
        assert request(server.url(f"/{bucket}/{name}.bin")).headers["X-Cache"] == "MISS"
    _wait_until(started + 1.1)  # wall-clock time must pass for the touch below to count
    assert request(server.url(f"/{bucket}/a.bin")).headers["X-Cache"] == "HIT"

    assert request(server.url(f"/{bucket}/d.bin")).headers["X-Cache"] == "MISS"
    # The client may have all of d before its fill commits (and evicts): wait for the commit.
    poll(lambda: metric(server, "preview_proxy_cache_evictions_total", tier="storage") >= 1, "d's commit evicting")

    assert request(server.url(f"/{bucket}/a.bin")).headers["X-Cache"] == "HIT"
    evicted = request(server.url(f"/{bucket}/b.bin"))
    assert (evicted.headers["X-Cache"], evicted.body) == ("MISS", bodies["b"])
    metrics = request(server.url("/metrics")).body.decode()
    assert metric_value(metrics, 'preview_proxy_cache_evictions_total{tier="storage"}') >= 1
    assert metric_value(metrics, 'preview_proxy_cache_size_bytes{tier="storage"}') <= 3400 * 1024


def test_idle_entries_expire(moto, bucket, s3_proxy, start_server: StartServer):
    moto.put(bucket, "idle.bin", b"idle" * 1000)
    server = start_server(**s3_env(s3_proxy.endpoint, CACHE_STORAGE_EXPIRES="2s"))
    assert request(server.url(f"/{bucket}/idle.bin")).headers["X-Cache"] == "MISS"
    assert request(server.url(f"/{bucket}/idle.bin")).headers["X-Cache"] == "HIT"

    _wait_until(time.monotonic() + 2.3)  # nobody reads it for longer than CACHE_STORAGE_EXPIRES

    assert request(server.url(f"/{bucket}/idle.bin")).headers["X-Cache"] == "MISS"
    assert len(s3_proxy.gets("/idle.bin")) == 2


def _wait_until(deadline: float) -> None:
    """Let wall-clock time pass (expiry is about time, not about another thread's progress)."""
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(remaining, 0.05))


def test_an_empty_object_is_served_and_cached(moto, bucket, s3_proxy, start_server: StartServer):
    moto.put(bucket, "empty.txt", b"", "text/plain")
    server = start_server(**s3_env(s3_proxy.endpoint))

    first, second = (request(server.url(f"/{bucket}/empty.txt")) for _ in range(2))

    assert (first.status, first.body, first.headers["Content-Length"]) == (200, b"", "0")
    assert (second.status, second.headers["X-Cache"]) == (200, "HIT")
    assert request(server.url(f"/{bucket}/empty.txt"), headers={"Range": "bytes=0-"}).status == 416

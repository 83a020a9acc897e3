"""Revalidation on S3 (moto behind the counting TCP proxy): a linked object overwritten in its bucket is
served from the cache within its `revalidate:` period, served once more while a background conditional
GET runs after it, then served new, with new previews; an unchanged object costs one If-None-Match
request and no body; two workers send one conditional request per key per period.

Periods are short (REVALIDATE seconds); the tests wait for one to pass by polling the clock.
"""

import io
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import StartServer
from tests.support.http import Reply, request
from tests.support.previews_kit import metric, poll
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

REVALIDATE = 2.0  # seconds: long enough for two requests in a row on a loaded machine, short for the suite
KEY = "a/photo.jpg"
RED, BLUE = (220, 20, 20), (20, 20, 220)
REVALIDATIONS = "preview_proxy_revalidations_total"


def solid_jpeg(colour: tuple[int, int, int], size: int = 96) -> bytes:
    """A JPEG of one colour: its previews tell the versions apart by their pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def preview_colour(server: ServerProcess, source: str) -> tuple[int, int, int]:
    """The centre pixel of an 8x8 PNG preview of `source`."""
    reply = request(server.url(f"/previews/insecure/rs:fit:8:8/f:png/plain/{source}"))
    assert reply.status == 200, reply.body[:200]
    # Its URL doesn't carry the source's version, so a preview of a changing source is never immutable.
    assert reply.headers["Cache-Control"] == "public, max-age=60", reply.headers["Cache-Control"]
    image = Image.open(io.BytesIO(reply.body)).convert("RGB")
    pixel = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def is_colour(pixel: tuple[int, int, int], colour: tuple[int, int, int]) -> bool:
    """Within JPEG's error of `colour`."""
    return all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=True))


def wait_out_the_period(since: float) -> None:
    """Poll the clock until REVALIDATE seconds have passed since `since` (a clock condition, bounded)."""
    poll(lambda: time.monotonic() >= since + REVALIDATE + 0.05, "end of the revalidation period",
         timeout=REVALIDATE + 5)


def served_old_then_new(server: ServerProcess, path: str, old: bytes, new: bytes) -> tuple[Reply, Reply]:
    """After the period: the next answer (the old bytes, while the check runs), and the first new one."""
    during = request(server.url(path))
    assert during.status == 200
    after = poll(lambda: (lambda reply: reply if reply.body == new else None)(request(server.url(path))),
                 "the new version", timeout=15)
    return during, after


@dataclass
class Link:
    """A bucket on moto listed in a links file (through a counting proxy) with a short revalidate."""

    bucket: str
    proxy: TcpProxy
    links_file: Path

    @property
    def path(self) -> str:
        """The original's URL path."""
        return f"/links/s3/{self.bucket}/{KEY}"

    @property
    def source(self) -> str:
        """The original as a preview source."""
        return f"s3://{self.bucket}/{KEY}"

    def conditional_gets(self) -> list[str]:
        """The If-None-Match of every GET of the key that carried one."""
        return [seen.headers["if-none-match"] for seen in self.proxy.gets(KEY)
                if "if-none-match" in seen.headers]


@pytest.fixture
def link(moto: MotoS3, tmp_path: Path) -> Iterator[Link]:
    bucket = moto.create_bucket(f"reval-{uuid.uuid4().hex[:10]}")
    with TcpProxy(("127.0.0.1", moto.port)) as proxy:
        links_file = tmp_path / "remote_links.yml"
        links_file.write_text(
            f'cars: {{provider: minio, endpoint: "{proxy.endpoint}", access_key: {ACCESS_KEY}, '
            f"secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{bucket}], revalidate: {REVALIDATE:g}s}}\n")
        yield Link(bucket, proxy, links_file)


def start(start_server: StartServer, link: Link, workers: int = 1, **env: str) -> ServerProcess:
    # Source versions are not trusted in memory, so a preview follows its original at once.
    return start_server(workers=workers, REMOTE_LINKS_PATH=str(link.links_file), CACHE_SOURCE_INFO_TTL="0", **env)


def test_an_overwritten_object_is_served_old_within_the_period_then_new(
        moto: MotoS3, link: Link, start_server: StartServer) -> None:
    old, new = solid_jpeg(RED), solid_jpeg(BLUE)
    moto.put(link.bucket, KEY, old, "image/jpeg")
    server = start(start_server, link)

    first = request(server.url(link.path))
    filled_at = time.monotonic()
    assert is_colour(preview_colour(server, link.source), RED)
    moto.put(link.bucket, KEY, new, "image/jpeg")
    within = request(server.url(link.path))
    assert time.monotonic() < filled_at + REVALIDATE, "the machine is too slow for the period"
    wait_out_the_period(filled_at)
    during, after = served_old_then_new(server, link.path, old, new)

    assert (first.headers["X-Cache"], first.body) == ("MISS", old)
    assert (within.headers["X-Cache"], within.body) == ("HIT", old)
    assert (during.headers["X-Cache"], during.body) == ("HIT", old)  # stale-while-revalidate
    assert after.headers["X-Cache"] == "HIT" and after.headers["ETag"] != first.headers["ETag"]
    # Never immutable: the bucket's owner may overwrite it again.
    assert {first.headers["Cache-Control"], after.headers["Cache-Control"]} == {"public, max-age=60"}
    assert is_colour(preview_colour(server, link.source), BLUE)
    # One fill, one conditional GET that brought the new body; nothing more.
    assert len(link.proxy.gets(KEY)) == 2
    assert link.conditional_gets() == [first.headers["ETag"]]
    assert metric(server, REVALIDATIONS, tier="storage", provider="link:cars", outcome="changed") == 1, (
        after.headers["X-Cache"], server.log_lines[-20:])
    assert metric(server, REVALIDATIONS, outcome="not_modified") == 0


def test_an_unchanged_object_is_revalidated_without_its_body(
        moto: MotoS3, link: Link, start_server: StartServer) -> None:
    body = solid_jpeg(RED, size=512)
    moto.put(link.bucket, KEY, body, "image/jpeg")
    server = start(start_server, link)

    first = request(server.url(link.path))
    filled_at = time.monotonic()
    wait_out_the_period(filled_at)
    during = request(server.url(link.path))
    poll(lambda: metric(server, REVALIDATIONS, outcome="not_modified") >= 1, "a not_modified revalidation")
    refreshed_at = time.monotonic()
    # The check moved the entry's age to now: at once after it, a hit starts no other check.
    again = request(server.url(link.path))

    assert [reply.body for reply in (first, during, again)] == [body] * 3
    assert (during.headers["X-Cache"], again.headers["X-Cache"]) == ("HIT", "HIT")
    assert time.monotonic() < refreshed_at + REVALIDATE, "the machine is too slow for the period"
    assert link.conditional_gets() == [first.headers["ETag"]]
    # The body came up from the bucket once: the 304 carried none.
    assert metric(server, "preview_proxy_upstream_bytes_total", provider="link:cars") == len(body)
    assert metric(server, REVALIDATIONS, tier="storage", provider="link:cars", outcome="not_modified") == 1
    assert metric(server, REVALIDATIONS, outcome="changed") + metric(server, REVALIDATIONS, outcome="failed") == 0


def test_two_workers_send_one_conditional_request_per_key_per_period(
        moto: MotoS3, link: Link, start_server: StartServer) -> None:
    body = solid_jpeg(BLUE)
    moto.put(link.bucket, KEY, body, "image/jpeg")
    server = start(start_server, link, workers=2)
    first = request(server.url(link.path))
    filled_at = time.monotonic()
    wait_out_the_period(filled_at)

    # Sixteen requests at once on their own connections: SO_REUSEPORT spreads them over both workers.
    replies: list[Reply] = []
    threads = [threading.Thread(target=lambda: replies.append(request(server.url(link.path))), daemon=True)
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    poll(lambda: metric(server, REVALIDATIONS, outcome="not_modified") >= 1, "a not_modified revalidation")

    assert [reply.body for reply in replies] == [body] * 16
    assert link.conditional_gets() == [first.headers["ETag"]]
    assert metric(server, REVALIDATIONS, outcome="not_modified") == 1


def test_a_failed_revalidation_keeps_serving_the_cached_copy(
        moto: MotoS3, link: Link, start_server: StartServer) -> None:
    body = solid_jpeg(RED)
    moto.put(link.bucket, KEY, body, "image/jpeg")
    server = start(start_server, link, STORAGE_READ_TIMEOUT="1s", STORAGE_RETRIES="0")
    first = request(server.url(link.path))
    filled_at = time.monotonic()
    # From now on the bucket never answers, on new connections and on the one kept alive: a timeout.
    link.proxy.faults.stall_after_bytes = 0
    wait_out_the_period(filled_at)

    during = request(server.url(link.path))
    poll(lambda: metric(server, REVALIDATIONS, outcome="failed") >= 1, "a failed revalidation")
    after = request(server.url(link.path))

    assert [reply.body for reply in (first, during, after)] == [body] * 3
    assert (during.headers["X-Cache"], after.headers["X-Cache"]) == ("HIT", "HIT")
    line = server.wait_for_log("revalidation of")
    assert f"{link.bucket}/{KEY} failed, serving the cached copy" in line
    # Once per period and key in a process, however many hits follow.
    assert metric(server, REVALIDATIONS, tier="storage", provider="link:cars", outcome="failed") == 1


def test_the_main_storage_is_revalidated_when_cache_revalidate_is_set(
        moto: MotoS3, bucket: str, s3_proxy: TcpProxy, start_server: StartServer) -> None:
    old, new = solid_jpeg(RED), solid_jpeg(BLUE)
    moto.put(bucket, KEY, old, "image/jpeg")
    server = start_server(**s3_env(s3_proxy.endpoint, CACHE_REVALIDATE=f"{REVALIDATE:g}s"))
    path = f"/{bucket}/{KEY}"

    first = request(server.url(path))
    filled_at = time.monotonic()
    moto.put(bucket, KEY, new, "image/jpeg")
    wait_out_the_period(filled_at)
    during, after = served_old_then_new(server, path, old, new)

    assert (first.body, during.body) == (old, old)
    assert after.headers["Cache-Control"] == f"public, max-age={REVALIDATE:g}"
    assert metric(server, REVALIDATIONS, tier="storage", provider="s3", outcome="changed") == 1

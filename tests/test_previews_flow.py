"""How a preview miss flows: local-first, one render per key, the render pool's bounds, a free event loop.

S3 is moto's real server; a TCP proxy in front of it counts the provider's GETs and slows them down
where a test needs a miss to stay in flight.
"""

import http.client
import threading
import time
import uuid
from pathlib import Path

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.previews_kit import (
    Answer,
    assert_log_clean,
    assert_one_line,
    by_pixels,
    decoded,
    fetch_all,
    image_size,
    metric,
    place,
    poll,
    scrape,
    smallest_file,
    total,
)
from tests.support.s3 import MotoS3, s3_env
from tests.support.tcp_proxy import TcpProxy

RENDERS = "preview_proxy_render_duration_seconds_count"
KIB = 1024


def test_a_new_size_renders_from_the_storage_cache_after_s3_is_gone(
        start_server: StartServer, photos: list[Path]) -> None:
    photo = smallest_file(photos)
    width, height = image_size(photo)
    s3 = MotoS3()  # this test's own S3 server, since it stops it
    try:
        bucket = s3.create_bucket(f"pp-local-first-{uuid.uuid4().hex[:8]}")
        s3.put(bucket, "img/cat.jpg", photo.read_bytes(), "image/jpeg")
        s3.put(bucket, "img/never-fetched.jpg", photo.read_bytes(), "image/jpeg")
        server = start_server(**s3_env(s3.endpoint, STORAGE_RETRIES="0", STORAGE_CONNECT_TIMEOUT="1s"))
        status, headers, body = fetch(server, f"/{bucket}/img/cat.jpg")
        assert (status, headers["X-Cache"], body) == (200, "MISS", photo.read_bytes())
        poll(lambda: metric(server, "preview_proxy_cache_entries", tier="storage") == 1, "the original committed")
    finally:
        s3.stop()

    for box in (333, 120):
        status, headers, body = fetch(server, f"/previews/q/rs:fit:{box}:{box}/plain/{bucket}/img/cat.jpg")
        assert status == 200, body
        assert headers["X-Cache"] == "MISS"
        image = decoded(body)
        assert max(image.size) == box
        assert abs(image.width / image.height - width / height) < 0.02
    # S3 really is gone: an original that was never cached can't be had.
    status, _, body = fetch(server, f"/previews/q/rs:fit:120:120/plain/{bucket}/img/never-fetched.jpg")
    assert 500 < status < 600, (status, body)
    assert_one_line(body)
    assert_log_clean(server)


def test_concurrent_misses_for_one_preview_make_one_render_and_one_provider_get(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy, photos: list[Path]) -> None:
    photo = min((p for p in photos if p.stat().st_size > 400 * KIB), key=lambda p: p.stat().st_size)
    moto.put(bucket, "hot/photo.jpg", photo.read_bytes(), "image/jpeg")
    # ~0.5 s for the original's body: every request arrives while the one fill and render are in flight.
    s3_proxy.faults.bytes_per_second = photo.stat().st_size * 2
    server = start_server(**s3_env(s3_proxy.endpoint))
    before = scrape(server)
    path = f"/previews/q/ext:jpeg/rs:fit:256:256/plain/{bucket}/hot/photo.jpg"

    answers = fetch_all(server, [path] * 16)

    assert [a.status for a in answers] == [200] * 16
    assert len({a.body for a in answers}) == 1
    assert max(decoded(answers[0].body).size) == 256
    assert sorted(a.headers["X-Cache"] for a in answers) == ["HIT"] * 15 + ["MISS"]
    after = scrape(server)
    assert total(after, RENDERS) - total(before, RENDERS) == 1
    assert len(s3_proxy.gets("/hot/photo.jpg")) <= 1
    waiters = "preview_proxy_singleflight_waiters_total"
    assert total(after, waiters, tier="previews") - total(before, waiters, tier="previews") >= 1
    # Local-first: with the original in the storage tier, a new size asks the provider nothing at all.
    poll(lambda: metric(server, "preview_proxy_cache_entries", tier="storage") == 1, "the original committed")
    seen = len(s3_proxy.requests)
    status, _, body = fetch(server, f"/previews/q/ext:jpeg/rs:fit:128:128/plain/{bucket}/hot/photo.jpg")
    assert status == 200 and max(decoded(body).size) == 128
    assert s3_proxy.requests[seen:] == []


def test_a_missing_s3_source_is_404(start_server: StartServer, moto: MotoS3, bucket: str) -> None:
    server = start_server(**s3_env(moto.endpoint))

    status, headers, body = fetch(server, f"/previews/q/rs:fit:100:100/plain/{bucket}/no/such.jpg")

    assert status == 404, body
    assert headers["Content-Type"].startswith("text/plain")
    assert_one_line(body)
    assert_log_clean(server)


def test_a_full_render_queue_answers_429_never_500(start_server: StartServer, data_path: Path,
                                                   photos: list[Path]) -> None:
    place(data_path, "big", "photo.jpg", by_pixels(photos)[0])
    server = start_server(IMGPROXY_WORKERS="1", IMGPROXY_REQUESTS_QUEUE_SIZE="2")
    paths = [f"/previews/q/rs:fit:{2400 + index}:{2400 + index}/q:90/plain/big/photo.jpg" for index in range(12)]

    answers = fetch_all(server, paths)

    statuses = [a.status for a in answers]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) >= 1, statuses
    assert statuses.count(200) >= 3, statuses  # one running and two queued are always served
    for answer in answers:
        if answer.status == 429:
            assert_one_line(answer.body)
        else:
            assert decoded(answer.body).format == "JPEG"
    poll(lambda: metric(server, "preview_proxy_renders_in_progress") == 0, "the pool idle again")
    assert fetch(server, paths[-1])[0] == 200  # once drained, the queue takes work again
    assert_log_clean(server)


def test_a_render_past_imgproxy_timeout_is_504(start_server: StartServer, data_path: Path,
                                               photos: list[Path]) -> None:
    place(data_path, "big", "photo.jpg", by_pixels(photos)[0])
    server = start_server(IMGPROXY_TIMEOUT="0.2")
    # Full size (no enlarge), best quality: far longer than 0.2 s for a photo of this many pixels.
    path = "/previews/q/rs:fit:16000:16000/q:100/plain/big/photo.jpg"

    started = time.monotonic()
    status, headers, body = fetch(server, path)
    elapsed = time.monotonic() - started

    assert status == 504, body[:200]
    assert headers["Content-Type"].startswith("text/plain")
    assert_one_line(body)
    assert elapsed < 2.0
    assert fetch(server, "/healthz")[0] == 200
    assert_log_clean(server)


def test_healthz_stays_fast_while_32_renders_run(start_server: StartServer, data_path: Path,
                                                 photos: list[Path]) -> None:
    biggest = by_pixels(photos)[0]
    place(data_path, "big", "photo.jpg", biggest)
    # The timeout is raised so a loaded machine can't turn slow renders into 504s: this test is about the loop.
    server = start_server(IMGPROXY_TIMEOUT="120")
    # A third of the source: JPEG shrink-on-load decodes at half size, still megapixels per render.
    side = max(image_size(biggest)) // 3
    paths = [f"/previews/q/rs:fit:{side + index}:{side + index}/q:60/plain/big/photo.jpg" for index in range(32)]
    finished: list[Answer] = []
    results: list[list[Answer]] = []
    renders = threading.Thread(target=lambda: results.append(fetch_all(server, paths, on_answer=finished.append)))
    renders.start()
    try:
        poll(lambda: metric(server, "preview_proxy_renders_in_progress") >= 1, "renders in progress", timeout=20)
        latencies = [_probe_healthz(server.base_url) for _ in range(60)]
        done_during_probes = len(finished)
        running_after_probes = metric(server, "preview_proxy_renders_in_progress")
    finally:
        renders.join(120)
    assert not renders.is_alive()

    assert done_during_probes < len(paths), "the renders must outlast the measurement"
    assert running_after_probes >= 1
    ordered = sorted(latencies)
    p99 = ordered[max(0, round(0.99 * len(ordered)) - 1)]
    assert p99 < 0.050, f"p99 {p99 * 1000:.1f} ms; slowest {[round(x * 1000, 1) for x in ordered[-5:]]} ms"
    assert [a.status for a in results[0]] == [200] * len(paths)


def _probe_healthz(base_url: str) -> float:
    """One /healthz on a fresh connection, as a kubelet probes; returns its latency in seconds."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
    finally:
        connection.close()
    return time.monotonic() - started

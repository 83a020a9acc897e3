"""Single-flight across worker processes: one provider GET per cold original, one render per cold preview.

Two workers on one port, S3 on moto behind a counting, throttled TCP proxy: the one fetch stays in
flight while every request arrives, and the requests are spread over both workers by the kernel.
"""

import contextlib
import http.client
import os
import threading
from pathlib import Path

from tests.conftest import StartServer
from tests.support.http import request
from tests.support.previews_kit import decoded, fetch_all, metric, poll, scrape, total
from tests.support.s3 import MotoS3, s3_env
from tests.support.tcp_proxy import TcpProxy
from tests.support.workers import kill_worker, open_part_files, served_by, wait_for_workers

KIB = 1024
MIB = 1024 * KIB
RENDERS = "preview_proxy_render_duration_seconds_count"
CONCURRENT = 16


def test_a_cold_original_is_fetched_once_for_all_workers(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy) -> None:
    body = os.urandom(2 * MIB)
    moto.put(bucket, "cold/object.bin", body)
    s3_proxy.faults.bytes_per_second = 2 * MIB  # ~1 s of body: every request arrives while it is in flight
    server = start_server(workers=2, **s3_env(s3_proxy.endpoint))
    workers = wait_for_workers(server, 2)
    path = f"/{bucket}/cold/object.bin"

    answers = fetch_all(server, [path] * CONCURRENT)

    assert [(a.status, a.body == body) for a in answers] == [(200, True)] * CONCURRENT
    assert len(s3_proxy.gets("/cold/object.bin")) == 1
    # Only the request whose worker went to the provider is a miss; in the other worker the one
    # request that waited for the lock finds the entry committed (a hit), like all the joiners.
    assert sorted(a.headers["X-Cache"] for a in answers) == ["HIT"] * (CONCURRENT - 1) + ["MISS"]
    assert set(served_by(server, path, CONCURRENT)) == workers, "both workers must have served some"
    samples = scrape(server)
    assert total(samples, "preview_proxy_requests_total", route="original", status="200") == CONCURRENT
    assert total(samples, "preview_proxy_cache_requests_total", tier="storage", result="miss") == 1


def test_a_cold_preview_is_rendered_once_for_all_workers(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy, photos: list[Path]) -> None:
    photo = min((p for p in photos if p.stat().st_size > 400 * KIB), key=lambda p: p.stat().st_size)
    moto.put(bucket, "hot/photo.jpg", photo.read_bytes(), "image/jpeg")
    s3_proxy.faults.bytes_per_second = photo.stat().st_size * 2  # ~0.5 s for the original's body
    server = start_server(workers=2, **s3_env(s3_proxy.endpoint))
    workers = wait_for_workers(server, 2)
    assert total(scrape(server), RENDERS) == 0
    path = f"/previews/q/ext:jpeg/rs:fit:256:256/plain/{bucket}/hot/photo.jpg"

    answers = fetch_all(server, [path] * CONCURRENT)

    assert [a.status for a in answers] == [200] * CONCURRENT
    assert len({a.body for a in answers}) == 1
    assert max(decoded(answers[0].body).size) == 256
    assert set(served_by(server, path, CONCURRENT)) == workers, "both workers must have served some"
    samples = scrape(server)
    assert total(samples, RENDERS) == 1, "one render for the whole server"
    assert len(s3_proxy.gets("/hot/photo.jpg")) == 1
    assert sorted(a.headers["X-Cache"] for a in answers) == ["HIT"] * (CONCURRENT - 1) + ["MISS"]
    assert total(samples, "preview_proxy_cache_requests_total", tier="previews", result="miss") == 1


def test_a_restarted_worker_leaves_another_workers_fill_alone(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy, data_path: Path) -> None:
    body = os.urandom(24 * MIB)
    moto.put(bucket, "slow/video.bin", body)
    s3_proxy.faults.bytes_per_second = 2 * MIB  # ~12 s: long enough to restart a worker meanwhile
    server = start_server(workers=2, **s3_env(s3_proxy.endpoint))
    workers = wait_for_workers(server, 2)
    partial = data_path / "cache" / "storage" / "partial"
    results: list[bytes] = []
    reader = threading.Thread(target=lambda: results.append(request(server.url(f"/{bucket}/slow/video.bin"),
                                                                    timeout=120).body), daemon=True)
    reader.start()
    filler, part = poll(lambda: next(((pid, parts[0]) for pid in workers
                                      if (parts := open_part_files(pid, partial))), None), "a fill in a worker")
    (other,) = workers - {filler}

    kill_worker(server, other)
    restarted = wait_for_workers(server, 2)

    assert filler in restarted and other not in restarted
    assert s3_proxy.bytes_down < len(body), "the fill must still be in flight when the new worker has started"
    assert part.exists(), "a starting worker must not remove another worker's part file"
    reader.join(120)
    assert results == [body]
    poll(lambda: metric(server, "preview_proxy_cache_entries", tier="storage") == 1, "the original committed")
    again = request(server.url(f"/{bucket}/slow/video.bin"))
    assert (again.headers["X-Cache"], again.body == body) == ("HIT", True)
    assert len(s3_proxy.gets("/slow/video.bin")) == 1


def test_a_worker_killed_mid_fill_leaves_no_lock_and_no_part_file(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy, data_path: Path) -> None:
    body = os.urandom(16 * MIB)
    moto.put(bucket, "slow/crash.bin", body)
    s3_proxy.faults.bytes_per_second = 2 * MIB
    server = start_server(workers=2, **s3_env(s3_proxy.endpoint))
    workers = wait_for_workers(server, 2)
    partial = data_path / "cache" / "storage" / "partial"
    path = f"/{bucket}/slow/crash.bin"
    threading.Thread(target=_get_cut_short, args=(server.url(path),), daemon=True).start()
    filler, part = poll(lambda: next(((pid, parts[0]) for pid in workers
                                      if (parts := open_part_files(pid, partial))), None), "a fill in a worker")
    assert part.name.startswith(f"{filler}-")

    kill_worker(server, filler)

    poll(lambda: not part.exists(), "the dead worker's part file removed by the supervisor")
    s3_proxy.faults.bytes_per_second = 0
    # The kernel released the dead leader's lock: the next request fills the tier at once (a stuck
    # lock would make it wait, then stream from the provider without filling).
    again = request(server.url(path), timeout=60)
    assert (again.status, again.headers["X-Cache"], again.body == body) == (200, "MISS", True)
    poll(lambda: metric(server, "preview_proxy_cache_entries", tier="storage") == 1, "the original committed")
    assert len(s3_proxy.gets("/slow/crash.bin")) == 2


def _get_cut_short(url: str) -> None:
    """A GET whose worker is killed under it: the connection breaks, and that is expected."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        request(url, timeout=60)

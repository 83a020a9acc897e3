"""`serve --workers N`: one port, N worker processes under a supervisor, one /metrics for them all.

Real processes on loopback. Which worker answered a request is read from the access log, whose
lines carry the worker's pid.
"""

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from tests.conftest import REPO, StartServer
from tests.support.http import fetch
from tests.support.images import named_photo
from tests.support.previews_kit import poll, scrape, total
from tests.support.server import ServerProcess
from tests.support.workers import kill_worker, metrics_folder, scrape_path, served_by, wait_for_workers

REQUESTS = "preview_proxy_requests_total"


def test_two_workers_serve_one_port(start_server: StartServer) -> None:
    server = start_server(workers=2)
    workers = wait_for_workers(server, 2)
    assert server.pid not in workers
    token = uuid.uuid4().hex
    paths = [f"/healthz?who={token}-{index}" for index in range(40)]

    answers = [fetch(server, path) for path in paths]  # each on a connection of its own

    assert [(status, body) for status, _, body in answers] == [(200, b"ok\n")] * len(paths)
    answered_by = {pid for path in paths for pid in served_by(server, path, 1)}
    # The kernel spreads connections over the workers' sockets: both answer (all 40 on one: 2**-39).
    assert answered_by == workers


def test_metrics_are_the_sum_over_workers_whichever_answers(start_server: StartServer) -> None:
    server = start_server(workers=2)
    workers = wait_for_workers(server, 2)
    token = uuid.uuid4().hex
    count = 30
    for index in range(count):
        assert fetch(server, f"/healthz?{token}={index}")[0] == 200
    healthz = {"route": "healthz", "status": "200"}

    scrapers: set[int] = set()
    for index in range(60):  # bounded: stop once both workers have answered a scrape
        samples = scrape_path(server, f"/metrics?scrape={token}-{index}")
        assert total(samples, REQUESTS, **healthz) == count
        assert total(samples, "preview_proxy_request_duration_seconds_count", route="healthz") == count
        scrapers |= set(served_by(server, f"/metrics?scrape={token}-{index}", 1))
        if scrapers == workers:
            break
    assert scrapers == workers
    # Gauges that all workers measure alike are one series per tier, not one per worker.
    entries = [labels for name, labels, _ in samples if name == "preview_proxy_cache_entries"]
    assert sorted(labels["tier"] for labels in entries) == ["image-converter", "previews", "storage"]
    assert total(samples, "preview_proxy_renders_in_progress") == 0


def test_sigterm_stops_every_worker_with_status_0(start_server: StartServer) -> None:
    server = start_server(workers=2)
    workers = wait_for_workers(server, 2)
    folder = metrics_folder(server)
    assert fetch(server, "/healthz")[0] == 200
    assert any(folder.iterdir()), "workers write their metrics files there"

    server.stop()

    assert server.process.returncode == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    assert len([line for line in server.log_lines if "exited with status 0" in line]) == 2
    assert not folder.exists(), "the supervisor removes its metrics folder"


def test_a_metrics_folder_left_by_a_killed_supervisor_is_removed(start_server: StartServer) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True, timeout=30)
    dead_pid = int(gone.stdout)  # that process has exited: no supervisor runs under this pid
    left = Path(tempfile.gettempdir()) / f"preview-proxy-metrics-{dead_pid}-{uuid.uuid4().hex[:8]}"
    left.mkdir()
    (left / "counter_1.db").write_bytes(b"\0" * 64)

    server = start_server(workers=2)
    wait_for_workers(server, 2)

    assert not left.exists()
    assert metrics_folder(server).name.startswith(f"preview-proxy-metrics-{server.pid}-")


def test_a_killed_worker_is_replaced_and_the_port_keeps_serving(start_server: StartServer) -> None:
    server = start_server(workers=2)
    victim, survivor = sorted(wait_for_workers(server, 2))
    token = uuid.uuid4().hex
    before = [f"/healthz?before={token}-{index}" for index in range(10)]
    assert all(fetch(server, path)[0] == 200 for path in before)

    kill_worker(server, victim)
    during = [f"/healthz?during={token}-{index}" for index in range(10)]
    assert all(fetch(server, path)[0] == 200 for path in during)

    replaced = wait_for_workers(server, 2)
    assert survivor in replaced and victim not in replaced
    after = [f"/healthz?after={token}-{index}" for index in range(40)]
    assert all(fetch(server, path)[0] == 200 for path in after)
    assert {pid for path in after for pid in served_by(server, path, 1)} == replaced
    # A dead worker's counts stay in the sum: every request so far is there.
    samples = scrape(server)
    assert total(samples, REQUESTS, route="healthz", status="200") == len(before) + len(during) + len(after)


def test_sighup_reaches_every_worker(start_server: StartServer) -> None:
    server = start_server(workers=2)
    workers = wait_for_workers(server, 2)

    server.process.send_signal(signal.SIGHUP)

    reloaded = poll(lambda: (pids := {pid for pid in workers
                                      if any(f"[{pid}] proxy.tiers.linked_originals: links file" in line
                                             and "reloaded" in line for line in list(server.log_lines))})
                    == workers and pids, "a links reload in every worker")
    assert reloaded == workers
    assert server.process.poll() is None and server.live_worker_pids() == workers


def test_leftover_part_files_are_removed_once_before_the_workers_start(
        start_server: StartServer, data_path: Path) -> None:
    leftovers = [data_path / "cache" / tier / "partial" / f"{uuid.uuid4().hex}.part"
                 for tier in ("storage", "previews")]
    for part in leftovers:
        part.parent.mkdir(parents=True)
        part.write_bytes(b"the start of a fill whose process died")

    server = start_server(workers=2)
    wait_for_workers(server, 2)

    assert not any(part.exists() for part in leftovers)
    removals = [line for line in server.log_lines if "unfinished part file(s)" in line]
    assert len(removals) == 2, removals  # once per tier, not once per worker
    assert all(f"[{server.pid}] " in line for line in removals), "the supervisor removes them"


def test_bad_worker_counts_stop_serve_with_one_line(tmp_path: Path) -> None:
    for args, extra in ((["--workers", "0"], {}), (["--workers", "two"], {}), ([], {"SERVER_WORKERS": "-1"})):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "SERVER_"))}
        env.update(DATA_PATH=str(tmp_path), **extra)
        result = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "serve", "--port", "0", *args], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 2, (args, extra, result.stderr)
        assert result.stderr.count("\n") == 1 and "expected auto or a whole number, 1 or more" in result.stderr
        assert ("--workers" if args else "SERVER_WORKERS") in result.stderr


def test_the_workers_flag_wins_over_the_environment(data_path: Path) -> None:
    server = ServerProcess({"DATA_PATH": str(data_path), "SERVER_WORKERS": "nonsense"}, cwd=REPO, workers=2)
    try:
        assert len(wait_for_workers(server, 2)) == 2
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_the_core_a_worker_held_when_it_was_killed_mid_render_is_given_back(
        start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    """With one render at a time for the whole server, a worker killed while its render holds that one
    core must not take it along: the next large render starts (without the supervisor giving the core
    back it would wait for a core until IMGPROXY_TIMEOUT and answer 504; a small one would pass in its
    lane either way)."""
    bucket = data_path / "storage" / "photos"
    bucket.mkdir()
    shutil.copy(named_photo(photos, "infinite-sea-16mp.jpg"), bucket / "big.jpg")  # ~0.3 s to render
    server = start_server(workers=2, IMGPROXY_WORKERS="1", IMGPROXY_TIMEOUT="5")
    workers = wait_for_workers(server, 2)
    answered: list[int] = []

    def render_big() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):  # its worker is killed under it
            answered.append(fetch(server, "/previews/q/ext:jpeg/rs:fit:1024:0/plain/photos/big.jpg")[0])

    big = threading.Thread(target=render_big)
    big.start()
    poll(lambda: total(scrape(server), "preview_proxy_renders_in_progress") >= 1, "the big render in progress")
    for pid in workers:
        kill_worker(server, pid)
    big.join(30)
    assert not big.is_alive()
    assert not answered, "the big render ended before its worker was killed: nothing was proved"
    replaced = wait_for_workers(server, 2)
    assert not replaced & workers

    status, _, body = fetch(server, "/previews/q/ext:jpeg/rs:fit:512:0/plain/photos/big.jpg")
    assert status == 200, body

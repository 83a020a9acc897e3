"""The figures /metrics adds beside the request and cache counters, through real servers: every process's
memory, CPU and descriptors (the supervisor's and each worker's, a dead worker's gone), build_info, bytes
served by tier and result (the hot lane's included), the links file's last read and whether it was
taken, and /metrics on an address of its own (METRICS_BIND), answered for every worker.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, StartServer
from tests.support.http import fetch, request
from tests.support.previews_kit import Samples, metric, place, poll, scrape, total
from tests.support.server import ServerProcess
from tests.support.workers import kill_worker, render_host_pid, wait_for_workers

MEMORY = "preview_proxy_process_resident_memory_bytes"
FIGURES = (MEMORY, "preview_proxy_process_cpu_seconds_total", "preview_proxy_process_open_fds")
SERVED = "preview_proxy_served_bytes_total"
RELOAD_TIME = "preview_proxy_links_reload_timestamp_seconds"
RELOAD_OK = "preview_proxy_links_reload_success"
METRICS_ON = re.compile(r"\[(\d+)\] proxy\.metrics\.listener: metrics on (http://\S+)/metrics")


def processes(samples: Samples, name: str) -> dict[int, tuple[str, float]]:
    """pid -> (role, value) of one per-process family."""
    return {int(labels["pid"]): (labels["role"], value) for sample_name, labels, value in samples
            if sample_name == name}


def test_every_worker_and_the_supervisor_report_their_own_figures(start_server: StartServer) -> None:
    server = start_server(workers=2)
    workers = wait_for_workers(server, 2)
    host = render_host_pid(server)
    expected = {pid: "worker" for pid in workers} | {server.pid: "supervisor", host: "render-host"}

    # One scrape, answered by one worker, lists every process (each writes its own figures on a timer).
    samples = poll(lambda: (found := scrape(server)) and set(processes(found, FIGURES[2])) == set(expected)
                   and found, "every process's figures in one scrape")
    for name in FIGURES:
        listed = processes(samples, name)
        assert {pid: role for pid, (role, _) in listed.items()} == expected, name
        assert all(value > 0 for _, value in listed.values()), name
    # The figures are each process's own: the supervisor's memory is its own RSS, not a worker's; the
    # render host's is the host's (read from /proc by the supervisor).
    for pid in (server.pid, host):
        rss = processes(samples, MEMORY)[pid][1]
        rss_now = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        assert 0.5 * rss_now < rss < 2 * rss_now, pid

    dead = min(workers)
    kill_worker(server, dead)
    replaced = wait_for_workers(server, 2)
    after = poll(lambda: (found := scrape(server)) and set(processes(found, MEMORY)) == replaced | {server.pid, host}
                 and found, "the dead worker's figures gone and its successor's listed")
    assert dead not in processes(after, MEMORY)

    # A render host that dies goes from the scrape too, and the one that replaces it is listed.
    os.kill(host, signal.SIGKILL)
    server.wait_for_log(f"render host {host} exited unexpectedly", timeout=15)
    second = poll(lambda: (pid := render_host_pid(server)) != host and pid, "another render host")
    poll(lambda: (found := scrape(server)) and set(processes(found, MEMORY)) == replaced | {server.pid, second}
         and found, "the dead host's figures gone and its successor's listed")


def test_a_single_process_reports_itself(start_server: StartServer) -> None:
    server = start_server()
    samples = scrape(server)
    for name in FIGURES:
        assert {pid: role for pid, (role, _) in processes(samples, name).items()} == {server.pid: "single"}


def test_build_info_names_the_version_and_the_pillow_simd_build(start_server: StartServer) -> None:
    samples = scrape(start_server())
    info = [(labels, value) for name, labels, value in samples if name == "preview_proxy_build_info"]
    assert len(info) == 1
    labels, value = info[0]
    assert value == 1
    assert labels["version"] == version("preview-proxy")
    assert labels["pillow_simd"] == version("pillow-simd")
    stamp = Path(sys.prefix, ".pillow-simd-build")
    if stamp.exists():  # deploy/dev.sh's record of the SIMD level it built for
        assert labels["simd"] == stamp.read_text().split()[1]


def test_served_bytes_count_each_body_by_tier_and_result(start_server: StartServer, data_path: Path,
                                                         photos: list[Path]) -> None:
    place(data_path, "photos", "cat.jpg", min(photos, key=lambda p: p.stat().st_size))
    server = start_server(ACCESS_LOG="0", HOT_LANE="1", CACHE_SOURCE_INFO_TTL="1h")
    preview = f"/previews/q/cb:{uuid.uuid4().hex[:8]}/rs:fit:64:64/plain/photos/cat.jpg"

    original = request(server.url("/photos/cat.jpg"))
    assert metric(server, SERVED, tier="storage", result="bypass") == len(original.body)
    assert request(server.url("/photos/cat.jpg"), "HEAD").status == 200  # no body, no bytes
    assert metric(server, SERVED, tier="storage", result="bypass") == len(original.body)

    made = request(server.url(preview))
    assert made.headers["X-Cache"] == "MISS"
    assert metric(server, SERVED, tier="previews", result="miss") == len(made.body)
    hits = 0
    for _ in range(10):  # until the lane answers one itself: bounded
        lane_before = metric(server, "preview_proxy_hot_answers_total", by="lane")
        assert request(server.url(preview)).body == made.body
        hits += 1
        if metric(server, "preview_proxy_hot_answers_total", by="lane") == lane_before + 1:
            break
    else:
        raise AssertionError("the lane never answered")
    assert metric(server, SERVED, tier="previews", result="hit") == hits * len(made.body)
    part = request(server.url(preview), headers={"Range": "bytes=0-9"})  # the handler's `respond`: 10 bytes
    assert part.status == 206
    assert metric(server, SERVED, tier="previews", result="hit") == hits * len(made.body) + 10


def test_the_links_file_reads_are_timed_and_a_refused_one_shows(start_server: StartServer, tmp_path: Path) -> None:
    links = tmp_path / "links.yml"
    folder = tmp_path / "datasets"
    folder.mkdir()
    links.write_text(f"local-datasets: {{provider: fs, path: {folder}}}\n")
    started = time.time()
    server = start_server(workers=2, REMOTE_LINKS_PATH=str(links))
    wait_for_workers(server, 2)
    first = metric(server, RELOAD_TIME)
    assert started <= first <= time.time()
    assert metric(server, RELOAD_OK) == 1

    links.write_text("local-datasets: {provider: fs\n")  # not YAML any more
    server.process.send_signal(signal.SIGHUP)
    poll(lambda: metric(server, RELOAD_OK) == 0 or None, "the refused reload in the metrics")
    refused_at = poll(lambda: (at := metric(server, RELOAD_TIME)) > first and at, "the refused reload's time")
    assert refused_at <= time.time()

    links.write_text(f"local-datasets: {{provider: fs, path: {folder}}}\n")
    server.process.send_signal(signal.SIGHUP)
    # Every worker took it: the lowest of their last results is 1 again.
    poll(lambda: metric(server, RELOAD_OK) == 1 or None, "the good reload in every worker")
    assert metric(server, RELOAD_TIME) >= refused_at


def metrics_address(server: ServerProcess) -> tuple[int, str]:
    """The pid of the process that answers /metrics on METRICS_BIND, and its base URL, from its log."""
    line = server.wait_for_log("proxy.metrics.listener: metrics on", timeout=15)
    match = METRICS_ON.search(line)
    assert match is not None, line
    return int(match.group(1)), match.group(2)


class Address:
    """A base URL, for tests.support.http.fetch."""

    def __init__(self, base: str) -> None:
        self.base = base

    def url(self, path: str) -> str:
        """Absolute URL of `path` at this address."""
        return self.base + path


def scrape_at(address: Address) -> Samples:
    """/metrics at `address`, parsed."""
    status, _, body = fetch(address, "/metrics")
    assert status == 200
    return [(sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples]


def test_metrics_bind_moves_metrics_off_the_main_port(start_server: StartServer) -> None:
    server = start_server(workers=2, METRICS_BIND="127.0.0.1:0")
    workers = wait_for_workers(server, 2)
    pid, base = metrics_address(server)
    assert pid in workers  # the first worker's slot answers it
    metrics_port = Address(base)

    for index in range(6):  # the main port answers 404 whichever worker takes the connection
        assert fetch(server, f"/metrics?try={index}")[0] == 404
    assert fetch(server, "/healthz")[0] == 200
    status, headers, _ = fetch(metrics_port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert fetch(metrics_port, "/healthz")[0] == 404  # the metrics address serves nothing else
    assert fetch(metrics_port, "/photos/cat.jpg")[0] == 404
    # The summed scrape: the main port's requests (answered by either worker) and every process's figures.
    samples = scrape_at(metrics_port)
    assert total(samples, "preview_proxy_requests_total", route="healthz", status="200") == 1
    listed = poll(lambda: (found := processes(scrape_at(metrics_port), MEMORY))
                  and set(found) == workers | {server.pid, render_host_pid(server)} and found,
                  "every process in the scrape")
    assert listed[server.pid][0] == "supervisor"

    # Its worker dies: the one that replaces it in the slot listens again.
    kill_worker(server, pid)
    replaced = wait_for_workers(server, 2)
    new_pid = poll(lambda: (found := [int(m.group(1)) for line in list(server.log_lines)
                                      if (m := METRICS_ON.search(line)) and int(m.group(1)) != pid]) and found[-1],
                   "the metrics listener in the new worker")
    assert new_pid in replaced
    _, new_base = metrics_address_of(server, new_pid)
    assert fetch(Address(new_base), "/metrics")[0] == 200


def metrics_address_of(server: ServerProcess, pid: int) -> tuple[int, str]:
    """The metrics listener's base URL as `pid` logged it."""
    for line in list(server.log_lines):
        match = METRICS_ON.search(line)
        if match is not None and int(match.group(1)) == pid:
            return pid, match.group(2)
    raise AssertionError(f"worker {pid} logged no metrics address")


def serve_once(data_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`preview-proxy serve --port 0 ...` run to its end (it must stop by itself)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "SERVER_", "METRICS_"))}
    env.update(DATA_PATH=str(data_path), **extra)
    return subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "serve", "--port", "0", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("value", ["9090", "localhost:http", "127.0.0.1:70000"])
def test_a_malformed_metrics_bind_stops_serve_with_one_line(data_path: Path, value: str) -> None:
    result = serve_once(data_path, METRICS_BIND=value)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "METRICS_BIND=" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_metrics_bind_on_a_taken_port_stops_serve_with_one_line(data_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_once(data_path, "--workers", workers, METRICS_BIND=f"127.0.0.1:{port}")
    assert result.returncode == 1, result.stderr
    assert f"can't listen on 127.0.0.1:{port}" in result.stderr

"""The render host: the one process of a multi-worker server where large renders run (proxy.render.host).

Real processes: `serve --workers 2` on loopback, or a host started by the supervisor's own handle.
Where a render ran is read from the processes' peak memory (VmHWM): a decode of the 16 MP progressive
photo holds ~100 MiB, which only the process that decoded it can show.
"""

import contextlib
import http.client
import io
import os
import pickle
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from previews.errors import PublicError
from proxy.metrics.registry import Metrics
from proxy.render.host import MAX_JOBS
from proxy.render.host_process import FOLDER_PREFIX, RenderHostProcess
from proxy.render.host_wire import read_frame, send_reply
from proxy.render.pool import RenderPool
from tests.benchmarks.harness import cpu_seconds
from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.images import named_photo
from tests.support.previews_kit import poll, scrape, total
from tests.support.render_host import BIG, DECODE_MIB, render_file, started_host, status_kib
from tests.support.server import ServerProcess
from tests.support.workers import render_host_pid, wait_for_workers

BIG_URL = "/previews/q/ext:jpeg/rs:fit:1024:0/plain/photos/big.jpg"
HOST_JOBS = "preview_proxy_render_host_jobs_total"


def _host_socket(server: ServerProcess) -> Path:
    """The render host's socket: in the supervisor's own private folder."""
    found = list(Path(tempfile.gettempdir()).glob(f"preview-proxy-render-{server.pid}-*/render.sock"))
    assert len(found) == 1, found
    return found[0]


def _bound(path: Path) -> bool:
    """A live socket is bound at `path` (a dead host's file stays until the next one replaces it)."""
    return any(line.endswith(" " + str(path)) for line in Path("/proc/net/unix").read_text().splitlines())


@pytest.fixture
def big_photo_server(start_server: StartServer, data_path: Path, photos: list[Path]) -> ServerProcess:
    bucket = data_path / "storage" / "photos"
    bucket.mkdir()
    shutil.copy(named_photo(photos, BIG), bucket / "big.jpg")
    shutil.copy(named_photo(photos, BIG), bucket / "again.jpg")
    return start_server(workers=2, IMGPROXY_TIMEOUT="20")


def test_a_large_render_runs_in_the_render_host_not_in_a_worker(big_photo_server: ServerProcess) -> None:
    server = big_photo_server
    workers = wait_for_workers(server, 2)
    host = render_host_pid(server)
    before = {pid: status_kib(pid, "VmHWM") for pid in (*workers, host)}

    status, _, body = fetch(server, BIG_URL)

    assert status == 200, server.log_text()
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "JPEG" and image.width == 1024
    assert status_kib(host, "VmHWM") - before[host] > DECODE_MIB * 1024, "the host decoded the photo"
    for pid in workers:
        assert status_kib(pid, "VmHWM") - before[pid] < DECODE_MIB * 1024, f"worker {pid} decoded it"
    # Small: an idle host is smaller than an idle worker, since it imports none of the server.
    assert before[host] < min(before[pid] for pid in workers)
    samples = scrape(server)
    assert total(samples, HOST_JOBS, outcome="done") == 1
    assert total(samples, HOST_JOBS, outcome="lost") == total(samples, HOST_JOBS, outcome="ran_here") == 0


def test_a_servers_sizes_of_a_progressive_photo_share_the_hosts_decodes(big_photo_server: ServerProcess) -> None:
    # With a render host, 1,024 and 600 px of the 16 MP progressive photo both decode at 1/4: only the
    # first costs the host a decode (~300 ms of CPU). 300 and 50 px decode at 1/8, which reads only the
    # DC scans (~100 ms), once for both.
    server = big_photo_server
    wait_for_workers(server, 2)
    host = render_host_pid(server)
    spent = []
    for width in (1024, 600, 300, 50):
        before = cpu_seconds(host)
        status, _, body = fetch(server, BIG_URL.replace("1024", str(width)))
        spent.append(cpu_seconds(host) - before)
        assert status == 200, body
    first, shared, eighth, kept_eighth = spent
    assert first > 0.1 and shared < first / 3 and kept_eighth < first / 3, spent
    assert eighth < first * 0.6, spent  # the whole file's decode costs as much at 1/8 as at 1/4


def test_the_render_host_is_replaced_when_it_dies_and_renders_go_on(big_photo_server: ServerProcess) -> None:
    server = big_photo_server
    wait_for_workers(server, 2)
    first = render_host_pid(server)
    os.kill(first, signal.SIGKILL)
    server.wait_for_log(f"render host {first} exited unexpectedly", timeout=15)

    # Meanwhile, or once the next host runs, a large render is answered all the same.
    assert fetch(server, BIG_URL)[0] == 200
    second = poll(lambda: (pid := render_host_pid(server)) != first and pid, "another render host")
    poll(lambda: _bound(_host_socket(server)), "the new host listening")
    base = status_kib(second, "VmHWM")
    status, _, body = fetch(server, BIG_URL.replace("big.jpg", "again.jpg"))
    assert status == 200, body
    assert status_kib(second, "VmHWM") - base > DECODE_MIB * 1024, "the new host rendered it"


def test_a_render_whose_host_dies_under_it_gets_503_and_is_not_run_again(big_photo_server: ServerProcess) -> None:
    server = big_photo_server
    workers = wait_for_workers(server, 2)
    host = render_host_pid(server)
    idle = status_kib(host, "VmRSS")
    answers: list[tuple[int, bytes]] = []

    def render_big() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, body = fetch(server, BIG_URL)
            answers.append((status, body))

    big = threading.Thread(target=render_big)
    big.start()
    # The decode under way in the host: its memory grows well past idle (polled, bounded).
    poll(lambda: status_kib(host, "VmRSS") - idle > 20 * 1024, "the host decoding", timeout=20)
    worker_peaks = {pid: status_kib(pid, "VmHWM") for pid in workers}
    os.kill(host, signal.SIGKILL)
    big.join(30)

    assert not big.is_alive()
    assert answers and answers[0][0] == 503, answers
    assert b"render process restarted" in answers[0][1]
    assert total(scrape(server), HOST_JOBS, outcome="lost") == 1
    # Not run again in the worker: no worker's peak grew by a decode.
    for pid, peak in worker_peaks.items():
        assert status_kib(pid, "VmHWM") - peak < DECODE_MIB * 1024
    assert set(server.live_worker_pids()) == workers, "the workers live on"


def test_a_large_conversion_runs_in_the_render_host_too(start_server: StartServer, data_path: Path) -> None:
    bucket = data_path / "storage" / "scans"
    bucket.mkdir()
    # 4,000 x 3,000 RGB, uncompressed: a 36 MB decode, far over the small jobs' 8 MiB.
    gradient = Image.linear_gradient("L").resize((4000, 3000))
    Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient)).save(
        bucket / "big.tif")
    server = start_server(workers=2, IMGPROXY_TIMEOUT="20")
    workers = wait_for_workers(server, 2)
    host = render_host_pid(server)
    poll(lambda: _bound(_host_socket(server)), "the host listening")
    before = {pid: status_kib(pid, "VmHWM") for pid in (*workers, host)}

    status, _, body = fetch(server, "/image-converter/convert/scans/big.tif")

    assert status == 200, body
    with Image.open(io.BytesIO(body)) as converted:
        assert converted.size == (4000, 3000)
    assert status_kib(host, "VmHWM") - before[host] > 30 * 1024, "the host converted it"
    for pid in workers:
        assert status_kib(pid, "VmHWM") - before[pid] < 30 * 1024, f"worker {pid} converted it"


def test_the_supervisors_children_are_its_workers_and_the_render_host(big_photo_server: ServerProcess) -> None:
    server = big_photo_server
    workers = wait_for_workers(server, 2)
    host = render_host_pid(server)
    # No multiprocessing resource tracker beside them: nothing the workers make needs one.
    children = {int(entry.name) for entry in Path("/proc").iterdir()
                if entry.name.isdigit() and _parent(entry) == server.pid}
    assert children == workers | {host}
    # Only the server's user may reach its socket; the folder goes with the server.
    folder = _host_socket(server).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    server.stop()
    assert server.process.returncode == 0
    assert not Path(f"/proc/{host}").exists()
    assert any(f"render host {host} exited with status" in line for line in server.log_lines)
    assert not folder.exists()


def _parent(entry: Path) -> int:
    try:
        for line in (entry / "status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass  # gone meanwhile
    return -1


# The worker's side, without a server: run_file_job with a pool that knows a host.

@pytest.fixture
def host() -> Iterator[RenderHostProcess]:
    with started_host(heap_keep=0) as handle:
        yield handle


def test_the_host_renders_the_same_bytes_and_a_dead_socket_falls_back_here(
        host: RenderHostProcess, photos: list[Path], tmp_path: Path) -> None:
    path = named_photo(photos, BIG)
    here = render_file(RenderPool(1, 0, Metrics(None)), path, "rs:fit:800:0")
    assert host.pid is not None
    base = status_kib(host.pid, "VmHWM")

    there = render_file(RenderPool(1, 0, Metrics(None), host=host.address), path, "rs:fit:800:0")

    assert there == here
    assert status_kib(host.pid, "VmHWM") - base > DECODE_MIB * 1024, "the host made it"
    nobody = str(tmp_path / "nobody.sock")  # no host listens there: the job runs here
    metrics = Metrics(None)
    assert render_file(RenderPool(1, 0, Metrics(None), host=nobody), path, "rs:fit:800:0", metrics) == here
    assert metrics.registry.get_sample_value(HOST_JOBS, {"outcome": "ran_here"}) == 1


def test_an_error_in_the_host_reaches_the_request_as_it_would_here(
        host: RenderHostProcess, photos: list[Path], tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.jpg"
    whole = named_photo(photos, BIG).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 3])  # the header is whole; the scan data stops early
    errors = []
    for address in (None, host.address):
        with pytest.raises(PublicError) as raised:
            render_file(RenderPool(1, 0, Metrics(None), host=address), truncated, "rs:fit:800:0")
        errors.append((type(raised.value), raised.value.status, raised.value.reason))
    assert errors[0] == errors[1]
    assert 400 <= errors[0][1] < 500


def test_a_peer_that_sends_no_file_is_dropped_and_the_host_serves_on(host: RenderHostProcess,
                                                                     photos: list[Path]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as rogue:
        rogue.connect(host.address)
        rogue.sendall(b"\0\0\0\4junk")
        rogue.settimeout(10)
        try:
            answer = rogue.recv(16)
        except ConnectionResetError:
            answer = b""
        assert answer == b"", "closed, with no answer"
    assert host.pid is not None and Path(f"/proc/{host.pid}").exists()
    path = named_photo(photos, BIG)
    assert render_file(RenderPool(1, 0, Metrics(None), host=host.address), path, "rs:fit:300:0")


def test_a_host_running_all_the_jobs_it_may_says_so_and_the_job_runs_here(
        host: RenderHostProcess, photos: list[Path]) -> None:
    path = named_photo(photos, BIG)
    here = render_file(RenderPool(1, 0, Metrics(None)), path, "rs:fit:700:0")
    assert host.pid is not None
    base = status_kib(host.pid, "VmHWM")
    with contextlib.ExitStack() as idle:  # every job slot taken by a connection that sends nothing
        for _ in range(MAX_JOBS):
            peer = idle.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            peer.connect(host.address)
        probe = idle.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        probe.connect(host.address)  # accepted only once the others were: all slots are taken by then
        probe.settimeout(10)
        assert probe.recv(4), "the host answers a connection it has no slot for"

        assert render_file(RenderPool(1, 0, Metrics(None), host=host.address), path, "rs:fit:700:0") == here

    assert status_kib(host.pid, "VmHWM") - base < DECODE_MIB * 1024, "not rendered in the host"


def test_a_render_folder_left_by_a_killed_supervisor_is_removed(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True, timeout=30)
    left = Path(tempfile.gettempdir()) / f"{FOLDER_PREFIX}{int(gone.stdout)}-{uuid.uuid4().hex[:8]}"
    left.mkdir()
    (left / "render.sock").write_bytes(b"")

    handle = RenderHostProcess(heap_keep=0)
    assert left.exists(), "nothing is made or removed before the host starts"
    handle.start()
    try:
        assert not left.exists()
        assert Path(handle.address).parent.name.startswith(f"{FOLDER_PREFIX}{os.getpid()}-")
    finally:
        handle.stop(10)
    assert not Path(handle.address).parent.exists()


class _Unrebuildable(Exception):
    """Pickles, but can't be unpickled (its args don't fit its __init__), as some libraries' errors."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def test_an_error_that_cannot_cross_the_socket_is_named_instead() -> None:
    host_end, worker_end = socket.socketpair()
    with host_end, worker_end:
        send_reply(host_end, False, _Unrebuildable("bad tile", 7))
        succeeded, error = pickle.loads(read_frame(worker_end))
    assert succeeded is False
    assert isinstance(error, RuntimeError) and "_Unrebuildable" in str(error)

"""SIGKILL during concurrent cold fills: of the server, of one worker, of the supervisor.

Each test puts photographs into moto, sends a wave of cold requests for every original and a
preview of each through the server (S3 throttled at a TCP proxy, so fills are provably in flight:
part files are growing), kills a process, and then:
- every complete 200 the wave got is the object put into moto (sha256) or a whole preview;
- every tier's cache.db passes `PRAGMA integrity_check` right after the kill, and after a clean stop;
- a killed supervisor's processes (workers, multiprocessing's helper) are all gone within 15 s;
- a server restarted on the same DATA_PATH starts with no part files and serves every entry
  whole, the surviving entries as hits.
"""

import os
import signal
from pathlib import Path

from tests.conftest import StartServer
from tests.reliability.cold_fills import (
    Objects,
    Outcome,
    Wave,
    committed_entries,
    integrity_problems,
    part_files,
    run_wave,
    seed_photos,
    wait_until,
    wrong_answers,
)
from tests.reliability.soak_probes import descendants
from tests.support.s3 import MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy
from tests.support.workers import open_part_files, wait_for_workers

OBJECTS = 36
THROTTLE = 2 * 1024 * 1024  # bytes/s per S3 connection: the multi-megabyte photos take 2-3 s
ANSWERED_BEFORE_KILL = 6
# 36 cold previews at once on a shared 2-core machine may queue past the default 10 s: these tests
# are about what a kill leaves behind, so a render deadline must not turn a slow answer into a 504.
NO_RENDER_DEADLINE = {"IMGPROXY_TIMEOUT": "120"}


def test_sigkill_of_the_server_mid_fill_leaves_only_whole_entries(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy,
        photos: list[Path], data_path: Path) -> None:
    objects, env = _seed_and_throttle(moto, bucket, s3_proxy, photos)
    server = start_server(**env)

    wave = Wave(server.base_url, objects.all_paths()).start()
    _wait_for_fills_in_flight(wave, data_path)
    server.kill()
    outcomes = wave.join()

    _assert_killed_midway(objects, outcomes)
    _assert_sound_databases(data_path)
    s3_proxy.faults.bytes_per_second = 0
    _restart_and_check_every_entry(start_server, env, objects, data_path, workers=1)


def test_sigkill_of_a_worker_mid_fill_leaves_only_whole_entries(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy,
        photos: list[Path], data_path: Path) -> None:
    objects, env = _seed_and_throttle(moto, bucket, s3_proxy, photos)
    server = start_server(workers=2, **env)
    wait_for_workers(server, 2)
    partial = data_path / "cache" / "storage" / "partial"

    wave = Wave(server.base_url, objects.all_paths()).start()
    _wait_for_fills_in_flight(wave, data_path)
    # The victim is a worker writing a part file now: its fill dies with it.
    victim = wait_until(lambda: [pid for pid in sorted(server.live_worker_pids())
                                 if open_part_files(pid, partial)], "a worker mid-fill")[0]
    os.kill(victim, signal.SIGKILL)
    server.wait_for_log(f"worker {victim} exited unexpectedly", timeout=15)
    outcomes = wave.join()

    assert not (problems := wrong_answers(objects, outcomes)), problems
    replaced = wait_for_workers(server, 2)
    assert victim not in replaced
    s3_proxy.faults.bytes_per_second = 0
    _assert_all_whole(objects, run_wave(server.base_url, objects.all_paths()))
    server.stop()
    assert server.process.returncode == 0, server.log_lines[-25:]
    _assert_sound_databases(data_path)
    _restart_and_check_every_entry(start_server, env, objects, data_path, workers=2)


def test_sigkill_of_the_supervisor_takes_its_workers_and_leaves_only_whole_entries(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy,
        photos: list[Path], data_path: Path) -> None:
    objects, env = _seed_and_throttle(moto, bucket, s3_proxy, photos)
    server = start_server(workers=2, **env)
    workers = wait_for_workers(server, 2)
    children = set(descendants(server.pid))
    assert workers <= children

    wave = Wave(server.base_url, objects.all_paths()).start()
    _wait_for_fills_in_flight(wave, data_path)
    server.kill()
    lingering = _wait_until_gone(children, timeout=15)
    for pid in lingering:  # ours: don't leave them running on the machine, whatever the verdict
        os.kill(pid, signal.SIGKILL)
    outcomes = wave.join()

    assert lingering == set(), f"processes of the killed supervisor still run: {lingering}"
    # The workers may finish what they were serving before they go (their fills then commit whole), or
    # be cut: either way, no complete answer may be wrong.
    assert len(outcomes) == len(objects.all_paths())
    assert not (problems := wrong_answers(objects, outcomes)), problems
    _assert_sound_databases(data_path)
    s3_proxy.faults.bytes_per_second = 0
    _restart_and_check_every_entry(start_server, env, objects, data_path, workers=2)


def _seed_and_throttle(moto: MotoS3, bucket: str, s3_proxy: TcpProxy,
                       photos: list[Path]) -> tuple[Objects, dict[str, str]]:
    """The objects put into moto, and the server's settings; S3 throttled so that fills take seconds."""
    objects = seed_photos(moto, bucket, photos, OBJECTS)
    s3_proxy.faults.bytes_per_second = THROTTLE
    return objects, s3_env(s3_proxy.endpoint, **NO_RENDER_DEADLINE)


def _wait_for_fills_in_flight(wave: Wave, data_path: Path) -> None:
    """Until some answers are complete, some originals committed, and a storage part file is growing: the
    kill lands mid-wave. (An answer's last byte may reach its client just before its entry's commit: an
    answered original is not yet a committed one, and the restart checks that committed ones survive.)"""
    storage = data_path / "cache" / "storage"
    partial = storage / "partial"
    wait_until(lambda: wave.finished() >= ANSWERED_BEFORE_KILL and committed_entries(storage) > 0
               and partial.is_dir() and any(size > 0 for size in _sizes(partial)), "fills in flight")


def _sizes(folder: Path) -> list[int]:
    """Sizes of the files in `folder`, skipping those gone since the listing (fills commit and rename them)."""
    found = []
    for path in folder.iterdir():
        try:
            found.append(path.stat().st_size)
        except FileNotFoundError:
            continue
    return found


def _assert_killed_midway(objects: Objects, outcomes: list[Outcome]) -> None:
    assert len(outcomes) == len(objects.all_paths())
    assert not (problems := wrong_answers(objects, outcomes)), problems
    cut = [outcome for outcome in outcomes if outcome.status is None]
    assert cut, "the kill should have cut requests in flight"
    assert any(outcome.status == 200 for outcome in outcomes), "some answers should have completed first"


def _assert_sound_databases(data_path: Path) -> None:
    results = integrity_problems(data_path / "cache")
    assert {"storage", "previews"} <= set(results), results
    assert all(result == "ok" for result in results.values()), results


def _assert_all_whole(objects: Objects, outcomes: list[Outcome]) -> None:
    assert [(o.path, o.status) for o in outcomes if o.status != 200] == []
    assert not (problems := wrong_answers(objects, outcomes)), problems


def _restart_and_check_every_entry(start_server: StartServer, env: dict[str, str], objects: Objects,
                                   data_path: Path, workers: int) -> ServerProcess:
    """A new server on the same DATA_PATH: no part files, every entry whole, then every one a hit."""
    server = start_server(workers=workers, **env)
    if workers > 1:
        wait_for_workers(server, workers)
    assert part_files(data_path / "cache") == [], "part files of the killed fills must be gone at start-up"

    first = run_wave(server.base_url, objects.all_paths())
    second = run_wave(server.base_url, objects.all_paths())

    _assert_all_whole(objects, first)
    _assert_all_whole(objects, second)
    originals = {objects.original_path(key) for key in objects.bodies}
    assert any(o.x_cache == "HIT" for o in first if o.path in originals), "entries from before the kill are served"
    assert [o.path for o in second if o.x_cache != "HIT"] == []
    server.stop()
    assert server.process.returncode == 0, server.log_lines[-25:]
    _assert_sound_databases(data_path)
    return server


def _wait_until_gone(pids: set[int], timeout: float) -> set[int]:
    """The pids still running (not gone, not zombies) after at most `timeout` seconds."""
    def running() -> set[int]:
        alive = set()
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.add(pid)
        return alive

    try:
        wait_until(lambda: not running(), "exit of the supervisor's processes", timeout)
    except AssertionError:
        return running()
    return set()

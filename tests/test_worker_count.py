"""SERVER_WORKERS: `auto` (the default) runs one worker per two usable cores, under a supervisor with the
render host from two cores on; a number runs that many (1: one process). Usable cores count the
cgroup's CPU limit (proxy.runtime.cores), read here from cgroup files laid out as the kernel does.
"""

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from proxy.config import WorkersSetting, read_workers
from proxy.runtime.cores import cgroup_cpu_limit, usable_cores
from proxy.settings.errors import ConfigError
from tests.conftest import REPO
from tests.support.http import fetch
from tests.support.server import ServerProcess
from tests.support.workers import wait_for_workers

HOST_STARTED = re.compile(r"render host (\d+) started")


def auto(cores: int, text: str = "auto", flag: str | None = None) -> WorkersSetting:
    return read_workers({"SERVER_WORKERS": text} if flag is None else {}, flag, cores=lambda: cores)


def test_auto_runs_one_worker_per_two_cores_under_a_supervisor_from_two_cores_on() -> None:
    assert auto(1) == WorkersSetting(1, False, "auto: one process, for 1 usable core")
    assert auto(2) == WorkersSetting(1, True, "auto: 1 worker and the render host, for 2 usable cores")
    assert auto(3)[:2] == (1, True)
    assert auto(5) == WorkersSetting(2, True, "auto: 2 workers and the render host, for 5 usable cores")
    assert auto(64)[:2] == (32, True)


def test_auto_is_the_default_and_may_be_named_in_either_place() -> None:
    assert read_workers({}, None, cores=lambda: 4) == auto(4)
    assert auto(4, " Auto ") == auto(4, flag="AUTO") == auto(4)


def test_a_number_is_that_many_workers_and_one_is_a_single_process() -> None:
    assert auto(8, "1") == WorkersSetting(1, False, "")
    assert auto(8, "3") == WorkersSetting(3, True, "")
    assert auto(1, flag="2") == WorkersSetting(2, True, "")


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", "autos", "²"])
def test_other_counts_are_refused_naming_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=r"SERVER_WORKERS=.*expected auto or a whole number, 1 or more"):
        auto(2, text)
    with pytest.raises(ConfigError, match=r"--workers="):
        auto(2, flag=text)


def cgroups(root: Path, lines: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup mount at `root`/fs with `files` (path under the mount: content) and /proc/self/cgroup's `lines`."""
    mount = root / "fs"
    for name, content in files.items():
        (mount / name).parent.mkdir(parents=True, exist_ok=True)
        (mount / name).write_text(content + "\n")
    (root / "cgroup").write_text(lines)
    return mount, root / "cgroup"


def test_a_cgroup_v2_quota_counts_as_its_cpus_rounded_up(tmp_path: Path) -> None:
    mount, own = cgroups(tmp_path, "0::/kubepods/pod1/app\n", {"kubepods/pod1/app/cpu.max": "150000 100000",
                                                                "kubepods/cpu.max": "max 100000"})
    assert cgroup_cpu_limit(mount, own) == 1.5
    assert usable_cores(mount, own) == min(len(os.sched_getaffinity(0)), 2)


def test_the_lowest_limit_on_the_way_to_the_root_holds(tmp_path: Path) -> None:
    mount, own = cgroups(tmp_path, "0::/a/b\n", {"a/b/cpu.max": "400000 100000", "a/cpu.max": "50000 100000",
                                                 "cpu.max": "max 100000"})
    assert cgroup_cpu_limit(mount, own) == 0.5
    assert usable_cores(mount, own) == 1  # half a CPU still runs one worker


def test_a_cgroup_v1_quota_counts_and_minus_one_means_none(tmp_path: Path) -> None:
    lines = "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n"
    mount, own = cgroups(tmp_path, lines, {"cpu/docker/abc/cpu.cfs_quota_us": "300000",
                                           "cpu/docker/abc/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(mount, own) == 3.0
    (mount / "cpu/docker/abc/cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(mount, own) is None


def test_no_limit_or_unreadable_files_leave_the_cores_the_scheduler_allows(tmp_path: Path) -> None:
    mount, own = cgroups(tmp_path, "0::/\n", {"cpu.max": "max 100000"})
    assert cgroup_cpu_limit(mount, own) is None
    assert usable_cores(mount, own) == len(os.sched_getaffinity(0))
    assert cgroup_cpu_limit(tmp_path / "nothing", tmp_path / "nothing") is None
    mount, own = cgroups(tmp_path / "odd", "0::/\n", {"cpu.max": "a lot"})
    assert cgroup_cpu_limit(mount, own) is None


def test_serve_by_default_runs_the_workers_auto_gives(data_path: Path) -> None:
    """The real thing, on this machine's cores: the workers, and the supervisor and render host that
    come with two cores or more; `config` says the same."""
    expected = read_workers({}, None)
    env = {"DATA_PATH": str(data_path)}
    server = ServerProcess(env, cwd=REPO, args=["--workers", "auto"])  # the flag's auto: as if none were set
    try:
        assert fetch(server, "/healthz")[0] == 200
        if expected.supervised:
            assert len(wait_for_workers(server, expected.number)) == expected.number
            assert HOST_STARTED.search(server.wait_for_log("render host")) is not None
        else:
            assert not server.live_worker_pids()
    finally:
        server.stop()
    assert server.process.returncode == 0
    shown = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "config"], cwd=REPO, capture_output=True,
                           text=True, check=True, env={**_clean(os.environ), **env}).stdout
    assert f"SERVER_WORKERS = {expected.described}  # default" in shown


def _clean(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the settings a test's own environment must not inherit."""
    return {name: value for name, value in env.items() if not name.startswith(("STORAGE_", "CACHE_", "SERVER_"))}

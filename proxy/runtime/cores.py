"""The cores this server may use: those the scheduler lets it run on, within its cgroup's CPU limit.

A container's CPU limit (Docker's `--cpus`, a Kubernetes pod's `limits.cpu`) is a CFS quota: the
process still sees, and may run on, every core of the node, but gets at most quota/period of CPU time.
Counting the node's cores there would start a worker per core of a 64-core node for a pod limited to
two. So the limit counts too, rounded up (1.5 CPUs: two cores' worth of threads, each busy part of the
time). cgroup v2 keeps it in `cpu.max` ("max 100000" or "200000 100000") along the process's cgroup
path, v1 in the cpu controller's `cpu.cfs_quota_us` and `cpu.cfs_period_us` (-1: none); the lowest
limit on the way up to the root holds. No readable limit means none.
"""

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")


def usable_cores(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> int:
    """The cores this process may run on, capped by its cgroup's CPU limit; at least 1."""
    allowed = len(os.sched_getaffinity(0))  # not os.cpu_count(): a taskset or cpuset may allow fewer
    limit = cgroup_cpu_limit(root, self_cgroup)
    return max(1, min(allowed, math.ceil(limit)) if limit is not None else allowed)


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> float | None:
    """CPUs' worth of time the cgroup allows (quota / period), or None when nothing limits it."""
    limits = [limit for limit in (*_v2_limits(root, self_cgroup), *_v1_limits(root, self_cgroup)) if limit > 0]
    return min(limits, default=None)


def _v2_limits(root: Path, self_cgroup: Path) -> list[float]:
    path = _cgroup_path(self_cgroup, "")
    if path is None:
        return []
    limits = []
    for folder in _up_to_root(root, path):
        text = _read(folder / "cpu.max")
        if text is not None:
            quota, _, period = text.partition(" ")
            if quota != "max" and _positive(quota) and _positive(period):
                limits.append(int(quota) / int(period))
    return limits


def _v1_limits(root: Path, self_cgroup: Path) -> list[float]:
    path = _cgroup_path(self_cgroup, "cpu")
    if path is None:
        return []
    limits = []
    for folder in _up_to_root(root / "cpu", path):
        quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota is not None and period is not None and _positive(quota) and _positive(period):
            limits.append(int(quota) / int(period))
    return limits


def _cgroup_path(self_cgroup: Path, controller: str) -> str | None:
    """The process's cgroup path for `controller` ("" : cgroup v2's unified line), from /proc/self/cgroup."""
    text = _read(self_cgroup)
    for line in (text or "").splitlines():
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if (controller == "" and line.startswith("0::")) or (controller and controller in controllers.split(",")):
            return path
    return None


def _up_to_root(mount: Path, path: str) -> list[Path]:
    """`mount`/`path` and each folder above it up to `mount` (inside a container's cgroup namespace the
    path is "/", which is the mount itself)."""
    parts = [part for part in path.split("/") if part and part not in (".", "..")]
    return [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _positive(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) > 0

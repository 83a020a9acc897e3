"""Each server process's own figures: resident memory, CPU seconds and open descriptors, by role.

prometheus-client's ProcessCollector describes the process that answers a scrape, and can't be summed
over workers. Here every process writes its own figures as gauges of the `liveall` kind: in the
multi-worker folder each process keeps its values in its own file, the scrape lists every living
process's values under a `pid` label, and a dead worker's file goes with it (the supervisor marks it
dead). Each worker refreshes its figures on a timer (`REFRESH_SECONDS`) and when it answers a scrape;
the supervisor refreshes its own as it turns (proxy.runtime.supervisor), and the render host's (which
imports no metrics library) from /proc. A single process is labelled with its pid too, so a dashboard
reads both kinds of server alike.
"""

import asyncio
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.mmap_dict import MmapedDict, mmap_key

REFRESH_SECONDS = 5.0  # a figure is at most this old, or as old as the last scrape the process answered
ROLES = ("single", "worker", "supervisor", "render-host")

# name, help: one gauge each.
FAMILIES = (
    ("preview_proxy_process_resident_memory_bytes", "Resident memory of one server process."),
    ("preview_proxy_process_cpu_seconds_total", "User and system CPU seconds one server process has used."),
    ("preview_proxy_process_open_fds", "File descriptors one server process holds open."),
)


@dataclass(frozen=True, slots=True)
class Figures:
    """One process's figures now."""

    resident_bytes: int
    cpu_seconds: float
    open_fds: int

    def values(self) -> tuple[float, float, float]:
        """The figures in the order of FAMILIES."""
        return float(self.resident_bytes), self.cpu_seconds, float(self.open_fds)


def own_figures() -> Figures | None:
    """This process's figures from /proc (Linux); None where there is no /proc."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        open_fds = len(os.listdir("/proc/self/fd")) - 1  # less the descriptor listdir itself holds
    except OSError:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Figures(pages * os.sysconf("SC_PAGE_SIZE"), usage.ru_utime + usage.ru_stime, open_fds)


def figures_of(pid: int) -> Figures | None:
    """Another process's figures from /proc; None once it has gone (or where there is no /proc)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        open_fds = len(os.listdir(f"/proc/{pid}/fd"))
        # After the command's name (which may hold spaces), fields 14 and 15: user and system ticks.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = int(fields[11]) + int(fields[12])
    return Figures(pages * os.sysconf("SC_PAGE_SIZE"), ticks / os.sysconf("SC_CLK_TCK"), open_fds)


class ProcessGauges:
    """The three gauges of one process, labelled with its role (and its pid outside the shared folder,
    where prometheus-client adds it)."""

    def __init__(self, registry: CollectorRegistry, role: str, shared: bool) -> None:
        labels = ["role"] if shared else ["role", "pid"]
        label_values = [role] if shared else [role, str(os.getpid())]
        self._gauges = [Gauge(name, text, labels, registry=registry, multiprocess_mode="liveall").labels(*label_values)
                        for name, text in FAMILIES]

    def refresh(self) -> None:
        """Write this process's figures now."""
        figures = own_figures()
        if figures is not None:
            for gauge, value in zip(self._gauges, figures.values(), strict=True):
                gauge.set(value)


class SupervisorFigures:
    """The supervisor's figures, and the render host's, in the workers' shared folder.

    The supervisor imported prometheus_client before its folder existed, so its own metrics live in
    its memory. These three values are written to a file of the folder as prometheus-client's
    multiprocess gauges write theirs (`gauge_liveall_<pid>.db`), where the workers' scrapes read them.
    The render host's go to a file under its own pid, removed when another host replaces it. The
    files go with the folder when the supervisor stops."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._own = _FiguresFile(folder, os.getpid(), "supervisor")
        self._host: _FiguresFile | None = None

    def refresh(self, host_pid: int | None = None) -> None:
        """Write the supervisor's figures now, and those of the render host running as `host_pid`."""
        self._own.write(own_figures())
        if self._host is not None and self._host.pid != host_pid:
            self._host.remove()
            self._host = None
        if host_pid is not None:
            if self._host is None:
                self._host = _FiguresFile(self._folder, host_pid, "render-host")
            self._host.write(figures_of(host_pid))

    def close(self) -> None:
        """Release the files (before the folder is removed)."""
        self._own.close()
        if self._host is not None:
            self._host.close()


class _FiguresFile:
    """One process's three figures in a multiprocess gauge file of its pid."""

    def __init__(self, folder: Path, pid: int, role: str) -> None:
        self.pid = pid
        self._path = folder / f"gauge_liveall_{pid}.db"
        self._file = MmapedDict(str(self._path))
        self._keys = [mmap_key(name, name, ["role"], [role], text) for name, text in FAMILIES]

    def write(self, figures: Figures | None) -> None:
        if figures is not None:
            for key, figure in zip(self._keys, figures.values(), strict=True):
                self._file.write_value(key, figure, 0.0)

    def close(self) -> None:
        self._file.close()

    def remove(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)


async def keep_fresh(gauges: ProcessGauges) -> None:
    """Refresh this process's figures every REFRESH_SECONDS until cancelled (a few small /proc reads)."""
    while True:
        gauges.refresh()
        await asyncio.sleep(REFRESH_SECONDS)

"""The render host seen from a worker's side, without a server: a host started by the supervisor's own
handle, renders handed to it through run_file_job, and what /proc says of its memory."""

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from previews.config import RenderConfig
from previews.render import prepare_render
from proxy.metrics.registry import Metrics
from proxy.render.file_jobs import run_file_job
from proxy.render.host_process import RenderHostProcess
from proxy.render.host_wire import PortableWork
from proxy.render.pool import RenderPool
from proxy.storage.provider import ObjectInfo
from proxy.tiers.originals import Located
from tests.support.images import options
from tests.support.previews_kit import poll

BIG = "infinite-sea-16mp.jpg"  # progressive: its decode holds its whole coefficient buffer, ~100 MiB
DECODE_MIB = 40  # far below what that decode holds, far above what anything else here adds


@contextlib.contextmanager
def started_host(heap_keep: int) -> Iterator[RenderHostProcess]:
    """A render host, listening, stopped on leaving."""
    handle = RenderHostProcess(heap_keep=heap_keep)
    handle.start()
    try:
        poll(lambda: Path(handle.address).exists(), "the host listening")
        assert handle.pid is not None
        yield handle
    finally:
        handle.stop(10)


def render_file(pool: RenderPool, path: Path, spec: str, metrics: Metrics | None = None) -> bytes:
    """The preview `spec` asks for of the photo at `path`, as a worker renders it: through `pool`, which
    hands a large render to its host when it has one."""
    return asyncio.run(render_file_async(pool, path, spec, metrics))


async def render_file_async(pool: RenderPool, path: Path, spec: str, metrics: Metrics | None = None) -> bytes:
    """render_file, on the running loop; a render the host is said to keep the decode of is asked from
    those pixels first, as the previews tier asks."""
    config = RenderConfig()
    deadline = time.monotonic() + 30
    work = PortableWork(prepare_render, (options(spec, config), config, deadline))
    from_kept = PortableWork(prepare_render, (options(spec, config), config, deadline, True))
    rendered = await run_file_job(pool, metrics or Metrics(None), "preview", _located(path), work, deadline, "jpeg",
                                  lambda result: result.format, from_kept)
    return rendered.data


def _located(path: Path) -> Located:
    """The photo at `path`, opened, as the originals tier finds a local original."""
    return Located(ObjectInfo(path.stat().st_size, '"e"', 0.0, "image/jpeg"), "MISS", file=path.open("rb"))


def status_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/<pid>/status (VmHWM, VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def minor_faults(pid: int) -> int:
    """Pages the process has faulted in without I/O (/proc/<pid>/stat, field 10): fresh pages it was given."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])

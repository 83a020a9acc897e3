"""The render host's memory: the heap its jobs share, and the decodes it keeps (proxy.render.heap,
previews.imaging.decoded).

A host started by the supervisor's own handle, renders handed to it as a worker hands them; what the
host spent is read from /proc: its minor page faults (fresh pages) and its CPU time.
"""

import asyncio
import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from proxy.metrics.registry import Metrics
from proxy.render.heap import DEFAULT_HEAP_KEEP
from proxy.render.memory import RenderMemory
from proxy.render.pool import RenderPool
from proxy.render.shared_bounds import SharedBounds
from tests.benchmarks.harness import cpu_seconds
from tests.support.images import named_photo
from tests.support.render_host import BIG, DECODE_MIB, minor_faults, render_file, render_file_async, started_host

MIB = 2**20


@pytest.mark.parametrize("heap_keep", [DEFAULT_HEAP_KEEP, 0])
def test_the_hosts_next_large_render_reuses_the_pages_the_last_ones_freed(heap_keep: int, photos: list[Path],
                                                                        tmp_path: Path) -> None:
    # Each job runs on a thread of its own; the pages are kept across them only in one shared arena, and
    # after two renders overlapped only if a trim of that arena leaves some.
    page = os.sysconf("SC_PAGE_SIZE")
    with started_host(heap_keep) as host:
        assert host.pid is not None
        pid = host.pid

        def fresh_mib(*widths: int) -> float:
            """Fresh pages the host was given (MiB) while it rendered `widths` at once, each from a copy of
            the photo of its own: the host decodes each anew (it keeps a decode only for the same file)."""
            copies = [tmp_path / f"{width}.jpg" for width in widths]
            for copy in copies:
                shutil.copyfile(named_photo(photos, BIG), copy)
            before = minor_faults(pid)
            renders = [threading.Thread(target=render_file, args=(RenderPool(1, 0, Metrics(None), host=host.address),
                                                                  copy, f"rs:fit:{width}:0"))
                       for width, copy in zip(widths, copies, strict=True)]
            for render in renders:
                render.start()
            for render in renders:
                render.join(60)
            assert not any(render.is_alive() for render in renders)
            return (minor_faults(pid) - before) * page / MIB

        first = fresh_mib(800)  # also imports Pillow
        one_after_one = fresh_mib(801)
        fresh_mib(802, 803)
        one_after_two = fresh_mib(804)
    assert first > DECODE_MIB
    if heap_keep:
        assert one_after_one < DECODE_MIB / 4 and one_after_two < DECODE_MIB / 4, (one_after_one, one_after_two)
    else:  # glibc's own thresholds: the decode's buffers are mapped anew, and faulted in, every time
        assert one_after_one > DECODE_MIB and one_after_two > DECODE_MIB, (one_after_one, one_after_two)


def test_the_host_renders_the_next_size_of_a_photo_from_its_kept_decode(photos: list[Path]) -> None:
    # 1,024 and 600 px of the 16 MP progressive photo both decode at 1/4: the second render skips the
    # decode (~300 ms of CPU) and starts from the pixels the first left; the bytes are the same.
    path = named_photo(photos, BIG)
    spent = []
    with started_host(DEFAULT_HEAP_KEEP) as host:
        assert host.pid is not None
        pool = RenderPool(1, 0, Metrics(None), host=host.address)
        render_file(pool, path, "rs:fit:300:0")  # imports Pillow and the render modules; decoded at 1/8, not 1/4
        for spec in ("rs:fit:1024:0", "rs:fit:600:0"):
            before = cpu_seconds(host.pid)
            data = render_file(pool, path, spec)
            spent.append(cpu_seconds(host.pid) - before)
            assert data == render_file(RenderPool(1, 0, Metrics(None)), path, spec), f"{spec}: other bytes than here"
    first, second = spent
    assert first > 0.1 and second < first / 3, spent


def test_a_size_whose_decode_the_host_keeps_needs_only_the_memory_of_a_copy(photos: list[Path]) -> None:
    # 300 px of the 16 MP progressive photo: the host decodes its DC scans (~110 MiB with the coefficients)
    # and keeps the 1 MiB of pixels. 50 px decodes at the same scale: with 100 of a 150 MiB budget held
    # by another render, its whole estimate would wait; from the kept pixels it needs a few MiB.
    path = named_photo(photos, BIG)
    local = render_file(RenderPool(1, 0, Metrics(None)), path, "rs:fit:50:0")
    with started_host(DEFAULT_HEAP_KEEP) as host:
        memory = RenderMemory(1000 * MIB, together=150 * MIB)
        pool = RenderPool(1, 0, Metrics(None), memory=memory, host=host.address)

        async def scenario() -> bytes:
            await render_file_async(pool, path, "rs:fit:300:0")
            await memory.reserve(100 * MIB, time.monotonic() + 30)
            try:
                return await asyncio.wait_for(render_file_async(pool, path, "rs:fit:50:0"), 20)
            finally:
                memory.release(100 * MIB)

        assert asyncio.run(scenario()) == local
        assert memory.in_use == 0


def test_a_render_from_kept_pixels_does_not_wait_for_a_core(photos: list[Path]) -> None:
    # The server's only core is held by a large render (of another process, say). The header is read in
    # the small lane; the render from the kept 1/4 decode (a copy of 1,024 x 1,024 px, over the small
    # jobs' bound) is the host's work, asked without a core.
    path = named_photo(photos, BIG)
    local = render_file(RenderPool(1, 0, Metrics(None)), path, "rs:fit:1024:0")
    cores = SharedBounds(1, slots=1, context=multiprocessing.get_context("spawn"))
    cores.attach(0)
    with started_host(DEFAULT_HEAP_KEEP) as host:
        pool = RenderPool(1, 0, Metrics(None), memory=RenderMemory(1000 * MIB), cores=cores, host=host.address)

        async def scenario() -> bytes:
            await render_file_async(pool, path, "rs:fit:1024:0")
            with cores.core(time.monotonic() + 30, large=True):
                return await asyncio.wait_for(render_file_async(pool, path, "rs:fit:1024:0"), 20)

        assert asyncio.run(scenario()) == local


def test_a_decode_the_host_does_not_keep_is_rendered_whole_after_it_says_so(photos: list[Path],
                                                                           tmp_path: Path) -> None:
    # A fresh copy: no decode of it is kept. The render from kept pixels is refused before any decode,
    # and the whole render follows, with the whole estimate reserved.
    path = tmp_path / BIG
    shutil.copyfile(named_photo(photos, BIG), path)
    local = render_file(RenderPool(1, 0, Metrics(None)), path, "rs:fit:50:0")
    with started_host(DEFAULT_HEAP_KEEP) as host:
        assert host.pid is not None
        memory = RenderMemory(1000 * MIB, together=150 * MIB)
        pool = RenderPool(1, 0, Metrics(None), memory=memory, host=host.address)
        metrics = Metrics(None)
        before = cpu_seconds(host.pid)
        assert render_file(pool, path, "rs:fit:50:0", metrics) == local
        assert cpu_seconds(host.pid) - before > 0.03, "the host did not decode it"
        assert memory.in_use == 0

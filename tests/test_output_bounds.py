"""Bounded output and memory admission: a preview URL can't take the machine's memory.

Each option has its own bound, but together they multiply: these requests each asked a 1280x1024,
200 KB JPEG for gigabytes before the result bounds (the attacker's five). Here they are refused
with a 422 from the options and the header alone, proved by a header whose pixel data doesn't
exist (a decode would fail with 415). The plan of canvases is checked against the geometry cases'
hand-worked sizes, so bounds and pipeline can't drift; the memory estimate against the peak memory
of real renders in a fresh interpreter; the budget (proxy.render.memory) by its own rules.
"""

import asyncio
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from previews.config import RenderConfig
from previews.errors import ResultTooLarge, UnsupportedImage
from previews.render import PreparedRender, deadline_after, prepare_render
from proxy.errors import RenderMemoryExceeded, RenderMemoryTimeout, TooManyRequests
from proxy.render.memory import RenderMemory, default_memory_limit
from proxy.render.pool import RenderPool
from proxy.settings.errors import ConfigError
from proxy.settings.previews import PreviewsConfig
from tests.support.images import encoded, options, png_file, render
from tests.support.render_gauges import RecordingGauges
from tests.test_geometry import CASES, SOURCES, Case, gradient_jpeg

REPO = Path(__file__).resolve().parent.parent
ATTACKS = [
    "rs:fill:16384:16384/el:1/dpr:2",
    "rs:fit:16384:16384/el:1/ex:1",
    "pd:4096:4096:4096:4096/dpr:8",
    "rs:fill:16384:16384/el:1/dpr:8",
    "rs:fit:100:100/ex:1/s:16384:16384/dpr:8",
]
MIB = 1024 * 1024


def header_only(width: int, height: int) -> bytes:
    """An RGB PNG with a header and no pixel data: decoding it fails (415)."""
    return png_file(width, height, None, colour_type=2)


def prepared(source: bytes, spec: str, config: RenderConfig | None = None) -> PreparedRender:
    """prepare_render as the server calls it; the caller closes the result."""
    config = config or RenderConfig()
    return prepare_render(io.BytesIO(source), options(spec, config), config, deadline_after(30))


# --- the five URLs, and each growth ------------------------------------------------------------------

@pytest.fixture(scope="module")
def photo_1280() -> bytes:
    return gradient_jpeg(1280, 1024)


@pytest.mark.parametrize("kind", ["header only", "jpeg"])
@pytest.mark.parametrize("spec", ATTACKS)
def test_each_attack_is_a_422_naming_the_limit_before_any_decode(spec: str, kind: str, photo_1280: bytes) -> None:
    with pytest.raises(ResultTooLarge) as caught:
        render(header_only(1280, 1024) if kind == "header only" else photo_1280, spec)
    error = caught.value
    assert error.status == 422
    assert "IMGPROXY_MAX_RESULT_DIMENSION=8192" in error.reason
    assert "\n" not in error.reason and "source" not in error.reason  # the request is refused, not the image


def test_the_header_only_jpeg_would_fail_if_decoded() -> None:
    # What makes the test above prove "before decode": the same file with a small request is a 415.
    with pytest.raises(UnsupportedImage):
        render(header_only(1280, 1024), "rs:fit:100:100")


BOUND_1000 = RenderConfig(max_result_dimension=1000)
GROWTHS = {
    # option text: what grows an 800x600 source past 1000 px (each within its own option's bound)
    "enlarge": "rs:fit:1200:0/el:1",
    "dpr": "rs:fit:600:0/el:1/dpr:2",
    "zoom": "rs:fit:600:0/el:1/z:2",
    "extend": "rs:fit:600:600/ex:1/dpr:2",
    "padding": "pd:150",
    "min-width": "mw:1200",
    "min-height": "mh:1100",
    "rotation": "rot:90/rs:fit:1000:0/el:1",  # upright 600x800, 1000 wide: 1333 high (1000x750 unturned)
    "fill": "rs:fill:1000:1000/el:1/g:sm",  # covers 1000x1000 by a 1333x1000 resize, then cuts
}


@pytest.mark.parametrize("growth", sorted(GROWTHS))
def test_every_growth_is_bounded(growth: str) -> None:
    with pytest.raises(ResultTooLarge) as caught:
        prepared(header_only(800, 600), GROWTHS[growth], BOUND_1000)
    assert "IMGPROXY_MAX_RESULT_DIMENSION=1000" in caught.value.reason


def test_the_pixel_bound_names_its_limit() -> None:
    config = RenderConfig(max_result_resolution=1_000_000)
    with pytest.raises(ResultTooLarge) as caught:
        prepared(header_only(1280, 1024), "rs:fit:1200:1200/el:1", config)  # 1200x960: 1.15 MP
    assert "IMGPROXY_MAX_RESULT_RESOLUTION=1 MP" in caught.value.reason
    assert "1200x960" in caught.value.reason


def test_a_result_exactly_at_the_bounds_renders() -> None:
    source = gradient_jpeg(800, 600)
    config = RenderConfig(max_result_dimension=1000, max_result_resolution=1000 * 750)
    rendered = render(source, "rs:fit:1000:0/el:1", config)
    assert (rendered.width, rendered.height) == (1000, 750)
    with pytest.raises(ResultTooLarge):
        render(source, "rs:fit:1001:0/el:1", config)


def test_legal_large_requests_still_render_with_the_defaults() -> None:
    source = gradient_jpeg(1280, 1024)
    # 2048x1638 by fit, times dpr 2, plus 64 px of padding on each side times 2: 4352x3533 (15 MP).
    rendered = render(source, "rs:fit:2048:2048/el:1/dpr:2/pd:64")
    assert (rendered.width, rendered.height) == (4096 + 256, 3277 + 256)
    with Image.open(io.BytesIO(rendered.data)) as image:
        assert image.size == (4352, 3533)


# --- the plan is the pipeline's geometry ------------------------------------------------------------

@pytest.fixture(scope="module")
def geometry_sources() -> dict[str, bytes]:
    return {name: gradient_jpeg(*size) for name, size in SOURCES.items()}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_planned_result_is_the_hand_worked_size(case: Case, geometry_sources: dict[str, bytes]) -> None:
    # Every geometry case (fit, fill, force, auto, dpr, zoom, min sizes, crop, extend, padding...):
    # the plan, made before any decode, ends at the size worked out by hand from imgproxy's rules.
    plan = prepared(geometry_sources[case.source], case.options)
    try:
        final = plan.plan.canvases[-1]
        assert (final.width, final.height) == case.final
    finally:
        plan.close()


@pytest.mark.parametrize("spec", ["rot:90/rs:fill:300:500/g:sm/bl:1", "c:0.5:0.5/rs:fit:700:0/el:1/ex:1/pd:10",
                                  "rs:fill-down:2000:500/f:png", "rs:fit:300:0/ar:0/fl:1:1/sh:2"])
def test_the_planned_result_is_what_renders(spec: str) -> None:
    source = gradient_jpeg(1600, 1200)
    plan = prepared(source, spec)
    try:
        final = plan.plan.canvases[-1]
        rendered = plan.run()
    finally:
        plan.close()
    assert (rendered.width, rendered.height) == (final.width, final.height)


# --- the memory estimate ------------------------------------------------------------------------------

def test_the_estimate_counts_shrink_on_load_and_modes() -> None:
    big = gradient_jpeg(4000, 3000)
    thumbnail = prepared(big, "rs:fit:300:300")
    full = prepared(big, "rs:fit:3000:0")
    grey = encoded(Image.open(io.BytesIO(big)).convert("L"), "JPEG")
    grey_full = prepared(grey, "rs:fit:3000:0")
    try:
        decoded_rgb = 4000 * 3000 * 4  # Pillow keeps RGB in 4 bytes a pixel
        assert full.peak_bytes >= decoded_rgb + 3000 * 2250 * 4
        assert thumbnail.image.size == (500, 375)  # decoded at 1/8 of each side
        assert thumbnail.peak_bytes < decoded_rgb / 4  # not a full decode
        assert grey_full.peak_bytes < full.peak_bytes / 3  # one byte a pixel
    finally:
        for plan in (thumbnail, full, grey_full):
            plan.close()


MEASURE = """
import io, json, sys, time
from previews.config import RenderConfig
from previews.render import prepare_render
from tests.support.images import options
def peak():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
config = RenderConfig()
data = open(sys.argv[1], "rb").read()
warm_data = open(sys.argv[3], "rb").read() if len(sys.argv) > 3 else data  # another source, small
warm = prepare_render(io.BytesIO(warm_data), options("rs:fit:8:8", config), config, time.monotonic() + 60)
warm.run(); warm.close()  # the codecs' own start-up memory is not the render's
before = peak()
job = prepare_render(io.BytesIO(data), options(sys.argv[2], config), config, time.monotonic() + 60)
job.run(); job.close()
print(json.dumps({"estimate": job.peak_bytes, "measured": peak() - before}))
"""


@pytest.mark.parametrize("spec", ["rs:fit:3600:0", "rs:fit:2000:0/el:1/dpr:2/f:png", "rot:90/rs:fill:1500:1500/bl:2"])
def test_the_estimate_covers_the_measured_peak(spec: str, tmp_path: Path) -> None:
    # A 12 MP photo-like source; the render runs in a fresh interpreter whose VmHWM is read around it.
    path = tmp_path / "source.jpg"
    path.write_bytes(gradient_jpeg(4000, 3000))
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), spec], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=True)
    figures = json.loads(result.stdout)
    assert figures["measured"] > 20 * MIB  # the render did hold its images
    assert figures["estimate"] >= figures["measured"], figures


@pytest.mark.parametrize("subsampling", [0, 2])  # 4:4:4 and 4:2:0
def test_the_estimate_covers_a_progressive_jpegs_coefficients(subsampling: int, tmp_path: Path) -> None:
    # libjpeg holds a progressive source's coefficients at full resolution even for a thumbnail: 4:4:4
    # holds twice what 4:2:0 does, which a count by bands alone missed.
    path = tmp_path / "progressive.jpg"
    path.write_bytes(encoded(Image.open(io.BytesIO(gradient_jpeg(4000, 3000))), "JPEG", progressive=True,
                             subsampling=subsampling, quality=90))
    # Warmed up on a small baseline JPEG: the same source would have reached the peak already.
    small = tmp_path / "small.jpg"
    small.write_bytes(gradient_jpeg(64, 48))
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), "rs:fit:300:0", str(small)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=True)
    figures = json.loads(result.stdout)
    assert figures["measured"] > 30 * MIB  # far more than the 500x375 picture it decodes
    assert figures["estimate"] >= figures["measured"], figures
    assert figures["estimate"] < 1.5 * figures["measured"], figures  # and not so much more that renders queue


# --- admission ----------------------------------------------------------------------------------------

def test_one_render_over_the_budget_is_a_422_naming_the_limit() -> None:
    async def scenario() -> None:
        with pytest.raises(RenderMemoryExceeded) as caught:
            await RenderMemory(100 * MIB).reserve(101 * MIB, time.monotonic() + 5)
        assert caught.value.status == 422
        assert "RENDER_MEMORY_LIMIT=100 MiB" in caught.value.reason
    asyncio.run(scenario())


def test_renders_wait_in_order_for_memory_then_429_when_a_budget_already_waits() -> None:
    async def scenario() -> None:
        memory = RenderMemory(100)
        deadline = time.monotonic() + 5
        await memory.reserve(60, deadline)
        order: list[str] = []

        async def wait(name: str, size: int) -> None:
            await memory.reserve(size, deadline)
            order.append(name)

        big = asyncio.create_task(wait("big", 70))
        small = asyncio.create_task(wait("small", 30))  # would fit now, but is too large to overtake `big`
        await asyncio.sleep(0)
        assert order == [] and memory.in_use == 60
        with pytest.raises(TooManyRequests):
            await memory.reserve(40, deadline)  # 70 + 30 already wait: a whole budget
        memory.release(60)
        await asyncio.gather(big, small)
        assert order == ["big", "small"] and memory.in_use == 100
    asyncio.run(scenario())


def test_renders_run_together_within_the_concurrent_bound_and_a_bigger_one_alone() -> None:
    async def scenario() -> None:
        memory = RenderMemory(1000, together=100)
        deadline = time.monotonic() + 5
        await memory.reserve(40, deadline)
        await memory.reserve(60, deadline)  # 100 together: both run
        big = asyncio.create_task(memory.reserve(300, deadline))
        await asyncio.sleep(0)
        assert not big.done()  # over `together`: it waits for the process to be free of renders
        memory.release(40)
        await asyncio.sleep(0)
        assert not big.done()
        memory.release(60)
        await big
        assert memory.in_use == 300
        small = asyncio.create_task(memory.reserve(10, deadline))
        await asyncio.sleep(0)
        assert not small.done()  # nothing joins the render that runs alone
        memory.release(300)
        await small
        assert memory.in_use == 10
        with pytest.raises(RenderMemoryExceeded):
            await memory.reserve(1001, deadline)  # the hard limit still refuses
    asyncio.run(scenario())


def test_a_wait_past_the_deadline_gives_its_place_back() -> None:
    async def scenario() -> None:
        memory = RenderMemory(100)
        await memory.reserve(90, time.monotonic() + 5)
        with pytest.raises(RenderMemoryTimeout) as caught:
            await memory.reserve(50, time.monotonic() + 0.05)
        assert caught.value.status == 504
        memory.release(90)
        await memory.reserve(100, time.monotonic() + 5)  # nothing was left reserved or waiting
        assert memory.in_use == 100
    asyncio.run(scenario())


def test_the_pool_runs_no_more_at_once_than_the_memory_allows() -> None:
    active = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def work() -> None:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        release.wait(0.05)  # stands for pixel work; no result depends on its length
        with lock:
            active -= 1

    gauges = RecordingGauges()

    async def scenario() -> None:
        pool = RenderPool(workers=4, queue_size=0, observer=gauges, memory=RenderMemory(100))
        try:
            deadline = time.monotonic() + 10
            # Each needs 40 of 100: two at a time, though four threads are free. At most 100 may
            # wait, so of six, two run, two wait, two are turned away.
            results = await asyncio.gather(*(pool.run(work, deadline, memory=40) for _ in range(6)),
                                           return_exceptions=True)
        finally:
            pool.close()
        assert sum(isinstance(r, TooManyRequests) for r in results) == 2
        assert sum(r is None for r in results) == 4
        assert pool.memory is not None and pool.memory.in_use == 0
    asyncio.run(scenario())
    assert most == 2
    # The gauges saw two renders' worth reserved, two more waiting, and all of it given back.
    assert max(reserved for reserved, _ in gauges.memory) == 80
    assert max(waiting for _, waiting in gauges.memory) == 80
    assert gauges.memory[-1] == (0, 0)


# --- settings -----------------------------------------------------------------------------------------

def test_settings_and_their_defaults() -> None:
    default = PreviewsConfig.from_env({})
    assert default.render.max_result_dimension == 8192
    assert default.render.max_result_resolution == default.render.max_src_resolution
    physical = default_memory_limit(1) * 4
    assert PreviewsConfig.from_env({}, processes=4).memory_limit == physical // 4 // 4
    tuned = PreviewsConfig.from_env({"RENDER_MEMORY_LIMIT": "512m", "IMGPROXY_MAX_RESULT_DIMENSION": "0",
                                     "IMGPROXY_MAX_SRC_RESOLUTION": "80", "IMGPROXY_MAX_RESULT_RESOLUTION": "20"})
    assert tuned.memory_limit == 512 * MIB
    assert default.memory_concurrent == 160 * MIB  # for the whole server, shared by its worker processes
    assert default.describe()["RENDER_MEMORY_CONCURRENT"] == str(160 * MIB)
    assert PreviewsConfig.from_env({"RENDER_MEMORY_CONCURRENT": "64m"}).memory_concurrent == 64 * MIB
    unbounded = PreviewsConfig.from_env({"RENDER_MEMORY_CONCURRENT": "0", "RENDER_MEMORY_LIMIT": "512m"})
    assert unbounded.describe()["RENDER_MEMORY_CONCURRENT"] == str(512 * MIB)  # 0: as far as the limit
    assert tuned.render.max_result_dimension == 0  # no limit, as in imgproxy
    assert tuned.render.max_result_resolution == 20_000_000
    assert PreviewsConfig.from_env({"IMGPROXY_MAX_SRC_RESOLUTION": "80"}).render.max_result_resolution == 80_000_000
    for name, value in (("RENDER_MEMORY_LIMIT", "lots"), ("RENDER_MEMORY_CONCURRENT", "-5"),
                        ("IMGPROXY_MAX_RESULT_DIMENSION", "-1"), ("IMGPROXY_MAX_RESULT_RESOLUTION", "0")):
        with pytest.raises(ConfigError, match=name):
            PreviewsConfig.from_env({name: value})

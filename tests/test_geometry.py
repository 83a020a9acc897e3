"""Output sizes and positions, after imgproxy's resize semantics (previews.imaging.geometry, then a real render).

Reference: https://docs.imgproxy.net/usage/processing (resizing type, width, height, min-width, zoom, dpr,
enlarge, extend, gravity, crop, padding) and the arithmetic imgproxy does for them (processing/prepare.go
calcScale, crop.go, calc_position.go). Every expected value below is worked out by hand in its comment:
shrink = source side / requested side; `fit` takes the larger shrink, `fill`/`fill-down` the smaller, `force`
each; a 0 side follows the other's shrink (force keeps it); zoom divides the shrink; without enlarge a shrink
below 1 is lifted to 1 (zoom and dpr included); min-width/min-height lower the shrink afterwards; the result
is then cut to the requested box (width x height x dpr x zoom) by gravity.

L is a 1600x1200 landscape source, P a 900x1600 portrait one.
"""

import io
from dataclasses import dataclass

import pytest
from PIL import Image, ImageChops

from previews.config import RenderConfig
from previews.grammar.option_table import apply_options
from previews.grammar.options import Gravity, GravityType, ProcessingOptions
from previews.imaging.geometry import crop_box_size, fill_down_box, position, resize_scales, result_size
from previews.render import deadline_after, render_preview

SOURCES = {"L": (1600, 1200), "P": (900, 1600)}
G = GravityType


@dataclass(frozen=True)
class Case:
    """A source, URL options, the size after the resize (None: not a pure-resize case) and the final size."""

    source: str
    options: str
    resized: tuple[int, int] | None
    final: tuple[int, int]

    @property
    def id(self) -> str:
        return f"{self.source}-{self.options}"


CASES = [
    # --- fit: the larger shrink, so the image fits inside the box ---
    Case("L", "rs:fit:300:300", (300, 225), (300, 225)),  # max(1600/300=5.33, 1200/300=4)=5.33 -> 300x225
    Case("L", "rs:fit:300:0", (300, 225), (300, 225)),  # 1600/300=5.33 for both sides
    Case("L", "rs:fit:0:300", (400, 300), (400, 300)),  # 1200/300=4 for both sides -> 400x300
    Case("P", "rs:fit:450:400", (225, 400), (225, 400)),  # max(900/450=2, 1600/400=4)=4 -> 225x400
    Case("L", "rs:fit:3200:3000", (1600, 1200), (1600, 1200)),  # max(0.5, 0.4)=0.5 < 1, no enlarge -> 1
    Case("L", "rs:fit:3200:3000:1", (3200, 2400), (3200, 2400)),  # enlarge: 0.5 -> 3200x2400
    Case("L", "rs:fit:400:0/dpr:2", (800, 600), (800, 600)),  # 1600/400=4, /dpr 2 = 2 -> 800x600
    Case("L", "rs:fit:400:300/dpr:3", (1200, 900), (1200, 900)),  # 4 / 3 = 1.33 -> 1200x900
    Case("L", "rs:fit:1000:0/dpr:2", (1600, 1200), (1600, 1200)),  # 1.6 / 2 = 0.8 < 1, no enlarge -> 1
    Case("L", "rs:fit:1000:0:1/dpr:2", (2000, 1500), (2000, 1500)),  # enlarge: 0.8 -> 2000x1500
    Case("P", "rs:fit:300:0/dpr:2", (600, 1067), (600, 1067)),  # 900/300=3, /2 = 1.5 -> 600x1066.7
    # --- fill: the smaller shrink, then cut to the box ---
    Case("L", "rs:fill:300:300", (400, 300), (300, 300)),  # min(5.33, 4)=4 -> 400x300, cut 300x300
    Case("P", "rs:fill:300:300", (300, 533), (300, 300)),  # min(3, 5.33)=3 -> 300x533.3, cut 300x300
    Case("L", "rs:fill:300:0:0", (300, 225), (300, 225)),  # height 0 follows: 5.33 -> 300x225, no cut
    Case("L", "rs:fill:0:256:0", (341, 256), (341, 256)),  # 1200/256=4.6875 -> 341.3x256
    Case("L", "rs:fill:400:400/dpr:2", (1067, 800), (800, 800)),  # min(4, 3)=3, /2=1.5 -> 1066.7x800, box 800
    Case("L", "rs:fill:1000:1000", (1333, 1000), (1000, 1000)),  # min(1.6, 1.2)=1.2 -> 1333.3x1000, cut
    Case("L", "rs:fill:2000:2000", (1600, 1200), (1600, 1200)),  # min(0.8, 0.6)=0.6 -> 1; box 2000 clipped
    Case("L", "rs:fill:2000:2000:1", (2667, 2000), (2000, 2000)),  # enlarge: 0.6 -> 2666.7x2000, cut
    Case("P", "rs:fill:150:200/dpr:3", (450, 800), (450, 600)),  # min(6, 8)=6, /3=2 -> 450x800, box 450x600
    # --- fill-down: as fill, but a box bigger than the image shrinks to it, keeping its aspect ratio ---
    Case("L", "rs:fill-down:300:300", (400, 300), (300, 300)),  # as fill
    Case("L", "rs:fill-down:2000:1000", (1600, 1200), (1600, 800)),  # 1 (no enlarge); box 2:1 -> 1600x800
    Case("L", "rs:fill:2000:1000", (1600, 1200), (1600, 1000)),  # fill: the same box just clips
    Case("P", "rs:fill-down:1800:1600", (900, 1600), (900, 800)),  # min(0.5, 1) -> 1; box 9:8 -> 900x800
    Case("L", "rs:fill-down:2000:1000:1", (2000, 1500), (2000, 1000)),  # enlarge: 0.8 -> 2000x1500, cut
    # --- force: each side its own shrink; a 0 side keeps the source's ---
    Case("L", "rs:force:300:300", (300, 300), (300, 300)),
    Case("L", "rs:force:300:0", (300, 1200), (300, 1200)),  # 5.33 and 1
    Case("L", "rs:force:0:300", (1600, 300), (1600, 300)),  # 1 and 4
    Case("L", "rs:force:2000:600", (1600, 480), (1600, 480)),  # 0.8 and 2; no enlarge: /0.8 -> 1 and 2.5
    Case("L", "rs:force:2000:600:1", (2000, 600), (2000, 600)),
    Case("P", "rs:force:450:400/dpr:2", (900, 800), (900, 800)),  # 2 and 4, /2 -> 1 and 2
    # --- auto: fill when source and box have the same orientation, else fit (a square box is landscape) ---
    Case("L", "rs:auto:400:300", (400, 300), (400, 300)),  # landscape/landscape: fill, min(4, 4)
    Case("L", "rs:auto:300:400", (300, 225), (300, 225)),  # landscape/portrait: fit, max(5.33, 3)
    Case("P", "rs:auto:300:400", (300, 533), (300, 400)),  # portrait/portrait: fill, min(3, 4)=3, cut
    Case("P", "rs:auto:600:400", (225, 400), (225, 400)),  # portrait/landscape: fit, max(1.5, 4)=4
    Case("P", "rs:auto:450:450", (253, 450), (253, 450)),  # portrait/square: fit, max(2, 3.56) -> 253.1x450
    Case("L", "rs:auto:300:300", (400, 300), (300, 300)),  # landscape/square: fill, min(5.33, 4)=4, cut
    Case("L", "rs:auto:0:300", (400, 300), (400, 300)),  # width follows height: 4
    # --- min-width / min-height: lower the shrink after the enlarge check (so they may enlarge) ---
    Case("L", "mw:2000", (2000, 1500), (2000, 1500)),  # 1600/2000=0.8 < 1 -> both 0.8
    Case("P", "mh:2400", (1350, 2400), (1350, 2400)),  # 1600/2400=0.667 -> 1350x2400
    Case("P", "mw:450", (900, 1600), (900, 1600)),  # 900/450=2 is not below 1: unchanged
    Case("L", "rs:fit:200:0/mh:300", (400, 300), (200, 300)),  # 8 -> mh 1200/300=4 -> 400x300, cut to w 200
    Case("L", "rs:fit:0:100/mw:400", (400, 300), (400, 100)),  # 12 -> mw 1600/400=4 -> 400x300, cut to h 100
    # --- zoom: divides the shrink before the enlarge check; the box is multiplied by it too ---
    Case("L", "rs:fit:400:300/z:2", (800, 600), (800, 600)),  # 4/2=2 -> 800x600; box 800x600
    Case("L", "z:0.5", (800, 600), (800, 600)),  # 1/0.5=2
    Case("L", "z:0.5:0.25", (800, 300), (800, 300)),  # 2 and 4
    Case("L", "rs:fit:400:300/z:1.5:0.5", (600, 150), (600, 150)),  # 4/1.5=2.67 and 4/0.5=8; box 600x150
    Case("L", "z:2", (1600, 1200), (1600, 1200)),  # 1/2=0.5 < 1 and no enlarge -> 1
    Case("L", "rs:fit:1000:0/z:2", (1600, 1200), (1600, 1200)),  # 1.6/2=0.8 < 1, no enlarge -> 1
    Case("L", "z:2/el:1", (3200, 2400), (3200, 2400)),  # enlarge: 0.5
    # --- crop, extend and padding (the final size only) ---
    Case("L", "c:800:600/rs:fit:400:0", None, (400, 300)),  # crop 800x600, then 800/400=2
    Case("L", "c:0.5:0.5/rs:fill:200:200", None, (200, 200)),  # 800x600, min(4, 3)=3 -> 266.7x200, cut
    Case("P", "c:0.5:0:no", None, (450, 1600)),  # half the width, the whole height
    Case("L", "c:3000:3000", None, (1600, 1200)),  # a crop larger than the image keeps all of it
    Case("L", "rs:fit:2000:2000:0:1", None, (2000, 2000)),  # 1600x1200 extended to the box
    Case("P", "rs:fit:450:450:0:1:nowe", None, (450, 450)),  # 253x450 extended to 450x450
    Case("L", "rs:fit:400:300/pd:10:20", None, (440, 320)),  # 400x300 + 2*20 by + 2*10
    Case("L", "rs:fit:400:300/pd:1:2:3:4", None, (406, 304)),  # + (2+4) by + (1+3)
    Case("L", "rs:fit:400:300/dpr:2/pd:10", None, (840, 640)),  # 800x600, padding follows dpr: + 2*20
    # rotate turns the source first (1200x1600): width 300 is 1200/300=4 -> 300x400
    Case("L", "rs:fit:300:0/rot:90", None, (300, 400)),
    Case("L", "rs:fill:300:300/rot:90", None, (300, 300)),  # min(4, 5.33)=4 -> 300x400, cut
]


def parse(text: str) -> list[tuple[str, list[str]]]:
    return [(part.split(":")[0], part.split(":")[1:]) for part in text.split("/") if part]


def options_for(text: str) -> ProcessingOptions:
    return apply_options(ProcessingOptions(), parse(text), {})


def round_half_up(value: float) -> int:
    return int(value + 0.5)


# --- pure arithmetic ----------------------------------------------------------------------------

RESIZE_CASES = [case for case in CASES if case.resized is not None]


@pytest.mark.parametrize("case", RESIZE_CASES, ids=[case.id for case in RESIZE_CASES])
def test_resized_size(case: Case) -> None:
    width, height = SOURCES[case.source]
    x_scale, y_scale = resize_scales(width, height, options_for(case.options))
    assert (round_half_up(width * x_scale), round_half_up(height * y_scale)) == case.resized


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("rs:fill:300:200", (300, 200)),
        ("rs:fill:300:200/dpr:2", (600, 400)),
        ("rs:fill:300:200/dpr:2/z:1.5", (900, 600)),  # width x dpr x zoom
        ("rs:fill:300:200/z:2:0.5", (600, 100)),
        ("rs:fill:0:256", (0, 256)),  # 0 stays free
        ("", (0, 0)),
    ],
)
def test_result_box(text: str, box: tuple[int, int]) -> None:
    assert result_size(options_for(text)) == box


@pytest.mark.parametrize(
    ("box", "image", "expected"),
    [
        ((2000, 1000), (1600, 1200), (1600, 800)),  # too wide: width to 1600, height 1600 * 1000/2000
        ((1800, 1600), (900, 1600), (900, 800)),  # too wide: 900 * 1600/1800
        ((500, 2400), (1600, 1200), (250, 1200)),  # too tall: height to 1200, width 1200 * 500/2400
        ((300, 300), (400, 300), (300, 300)),  # fits: unchanged
        ((0, 500), (400, 300), (0, 500)),  # a free side: unchanged
    ],
)
def test_fill_down_box(box: tuple[int, int], image: tuple[int, int], expected: tuple[int, int]) -> None:
    assert fill_down_box(box, image) == expected


# Placing 400x300 in 1000x800: centred at ((1000-400+1)//2, (800-300+1)//2) = (300, 250); the far edges
# are at 1000-400=600 and 800-300=500. Offsets move away from the edge the gravity names (inwards).
OUTER, INNER = (1000, 800), (400, 300)
POSITIONS = [
    (Gravity(G.CENTER), (300, 250)),
    (Gravity(G.NORTH), (300, 0)),
    (Gravity(G.SOUTH), (300, 500)),
    (Gravity(G.EAST), (600, 250)),
    (Gravity(G.WEST), (0, 250)),
    (Gravity(G.NORTH_EAST), (600, 0)),
    (Gravity(G.NORTH_WEST), (0, 0)),
    (Gravity(G.SOUTH_EAST), (600, 500)),
    (Gravity(G.SOUTH_WEST), (0, 500)),
    (Gravity(G.CENTER, 10, 20), (310, 270)),  # centre + offsets
    (Gravity(G.NORTH, 10, 20), (310, 20)),  # top = y, left = centre + x
    (Gravity(G.SOUTH, 10, 20), (310, 480)),  # top = 500 - y
    (Gravity(G.EAST, 10, 20), (590, 270)),  # left = 600 - x
    (Gravity(G.WEST, 10, 20), (10, 270)),
    (Gravity(G.NORTH_EAST, 10, 20), (590, 20)),
    (Gravity(G.NORTH_WEST, 10, 20), (10, 20)),
    (Gravity(G.SOUTH_EAST, 10, 20), (590, 480)),
    (Gravity(G.SOUTH_WEST, 10, 20), (10, 480)),
    (Gravity(G.WEST, 700, 0), (600, 250)),  # pushed past the edge: kept inside
    (Gravity(G.NORTH, 0, -50), (300, 0)),  # negative offsets are kept inside too
    (Gravity(G.EAST, -10, 0), (600, 250)),
    (Gravity(G.FOCUS_POINT, 0.5, 0.5), (300, 250)),  # centre on (500, 400): 500-200, 400-150
    (Gravity(G.FOCUS_POINT, 0.25, 0.75), (50, 450)),  # centre on (250, 600): 250-200, 600-150
    (Gravity(G.FOCUS_POINT, 0.8, 0.1), (600, 0)),  # (800, 80): 600 and -70, kept inside
    (Gravity(G.FOCUS_POINT, 0, 0), (0, 0)),
    (Gravity(G.FOCUS_POINT, 1, 1), (600, 500)),
]


@pytest.mark.parametrize(("gravity", "expected"), POSITIONS,
                         ids=[f"{g.type.value}:{g.x:g}:{g.y:g}" for g, _ in POSITIONS])
def test_position(gravity: Gravity, expected: tuple[int, int]) -> None:
    assert position(OUTER, INNER, gravity) == expected


@pytest.mark.parametrize(
    ("gravity", "scale", "expected"),
    [
        (Gravity(G.NORTH_WEST, 10, 20), 2.0, (20, 40)),  # dpr 2 doubles pixel offsets
        (Gravity(G.SOUTH_EAST, 10, 20), 3.0, (570, 440)),  # 600 - 30, 500 - 60
        (Gravity(G.CENTER, 10, 0), 2.0, (320, 250)),
        (Gravity(G.FOCUS_POINT, 0.25, 0.75), 2.0, (50, 450)),  # focus points are fractions: no scaling
    ],
)
def test_position_offsets_follow_dpr(gravity: Gravity, scale: float, expected: tuple[int, int]) -> None:
    assert position(OUTER, INNER, gravity, offset_scale=scale) == expected


def test_position_of_a_box_as_large_as_the_image() -> None:
    for gravity, _ in POSITIONS:
        assert position((640, 480), (640, 480), gravity) == (0, 0)


@pytest.mark.parametrize(
    ("crop", "image", "expected"),
    [
        ((0.5, 0.25), (1600, 1200), (800, 300)),  # fractions of each side
        ((0.1, 0.1), (1600, 1200), (160, 120)),
        ((0, 0), (1600, 1200), (1600, 1200)),  # 0: the whole side
        ((800, 0), (1600, 1200), (800, 1200)),  # 1 or more: pixels
        ((1, 1), (1600, 1200), (1, 1)),  # exactly 1 is a pixel, not the whole side
        ((2000, 5000), (1600, 1200), (1600, 1200)),  # never more than the image
        ((0.001, 0.001), (100, 100), (1, 1)),  # never less than one pixel
        ((0.3, 0.5), (1001, 500), (300, 250)),  # 300.3 is rounded to the nearest pixel (imgproxy's Scale)
    ],
    ids=lambda value: "x".join(f"{v:g}" for v in value),
)
def test_crop_box_size(crop: tuple[float, float], image: tuple[int, int], expected: tuple[int, int]) -> None:
    assert crop_box_size(*crop, *image) == expected


# --- the same table through a real render --------------------------------------------------------


def gradient_jpeg(width: int, height: int) -> bytes:
    """A smooth RGB gradient: horizontal in red, vertical in green."""
    horizontal = Image.linear_gradient("L").rotate(90).resize((width, height))
    vertical = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (horizontal, vertical, ImageChops.invert(horizontal)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sources() -> dict[str, bytes]:
    return {name: gradient_jpeg(*size) for name, size in SOURCES.items()}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_rendered_size(case: Case, sources: dict[str, bytes]) -> None:
    config = RenderConfig()
    options = apply_options(config.defaults, parse(case.options), config.presets)
    rendered = render_preview(io.BytesIO(sources[case.source]), options, config, deadline_after(30))
    assert (rendered.width, rendered.height) == case.final
    with Image.open(io.BytesIO(rendered.data)) as image:
        assert image.size == case.final
        assert image.format == "JPEG"

"""ProcessingOptions.canonical(): the options part of the previews-cache key.

Equal for options that make the same image (aliases, header-only options), different otherwise.
"""

import dataclasses
from typing import Any

import pytest

from previews.grammar.option_table import apply_options
from previews.grammar.options import Crop, Gravity, Padding, ProcessingOptions
from tests.test_preview_options import BASE, PRESETS, G, R, apply, b64, parse

HEADER_ONLY = {"expires", "filename", "return_attachment"}

# One other value for every field that changes the image (or, for cachebuster, is meant to miss caches).
OTHER_VALUES: dict[str, Any] = {
    "resizing_type": R.FILL, "width": 10, "height": 10, "min_width": 10, "min_height": 10, "zoom_x": 2.0,
    "zoom_y": 2.0, "dpr": 2.0, "enlarge": True, "extend": True, "extend_gravity": Gravity(G.NORTH),
    "gravity": Gravity(G.SOUTH), "crop": Crop(10, 10), "padding": Padding(1, 1, 1, 1), "rotate": 90,
    "auto_rotate": False, "flip_horizontal": True, "flip_vertical": True, "background": (1, 2, 3), "blur": 1.0,
    "sharpen": 1.0, "quality": 50, "format": "png", "strip_metadata": False, "strip_color_profile": False,
    "cachebuster": "v2",
}


def test_every_field_is_classified() -> None:
    assert {f.name for f in dataclasses.fields(ProcessingOptions)} == set(OTHER_VALUES) | HEADER_ONLY


@pytest.mark.parametrize(("field", "value"), sorted(OTHER_VALUES.items()))
def test_canonical_differs_when_the_image_differs(field: str, value: Any) -> None:
    assert dataclasses.replace(BASE, **{field: value}).canonical() != BASE.canonical()


@pytest.mark.parametrize(
    "text", ["fn:a", "exp:4102444800", "att:1", f"fn:{b64('x.png')}:1/exp:4102444800/att:t"]
)
def test_canonical_ignores_header_only_options(text: str) -> None:
    base = apply("rs:fill:300:200/q:70")
    assert apply_options(base, parse(text), {}).canonical() == base.canonical()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("s:300:200", "w:300/h:200"),
        ("rs:fill:300:0:0", "rt:fill/w:300"),
        ("f:jpg", "ext:jpeg"),
        ("resize:fit:10:20", "rs:fit:10:20:0:0"),
        ("g:nowe:0:0", "g:nowe"),
        ("pd:5", "pd:5:5:5:5"),
        ("bg:ff0000", "bg:255:0:0"),
        ("rot:-90", "rot:270"),
        ("w:100/w:200", "w:200"),
        ("pr:thumb", "rs:fill:100:100"),
    ],
)
def test_canonical_is_equal_for_equal_images(first: str, second: str) -> None:
    assert apply(first, PRESETS).canonical() == apply(second, PRESETS).canonical()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("w:300", "h:300"),
        ("rs:fill:300:200", "rs:fit:300:200"),
        ("q:70", "q:71"),
        ("f:png", "f:webp"),
        ("cb:1", "cb:2"),
        ("g:no", "g:so"),
        ("g:no:1:0", "g:no:0:1"),
        ("pd:1:2", "pd:2:1"),
        ("z:2:1", "z:1:2"),
    ],
)
def test_canonical_differs_for_different_images(first: str, second: str) -> None:
    assert apply(first).canonical() != apply(second).canonical()

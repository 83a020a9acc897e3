"""Processing options by imgproxy's names and aliases (previews.grammar.option_table), presets and canonical().

Reference: https://docs.imgproxy.net/usage/processing#processing-options. Each option is `name:arg:arg`;
in the meta-options (`resize`, `size`) an empty argument keeps the current value; later options
override earlier ones; presets come from IMGPROXY_PRESETS and `default` applies to every URL.
"""

import base64
import dataclasses
from typing import Any

import pytest

from previews.errors import InvalidOption
from previews.grammar.option_table import OptionList, apply_options
from previews.grammar.options import Crop, Gravity, GravityType, Padding, ProcessingOptions, ResizingType
from previews.grammar.url import parse_preview_url
from proxy.settings.render import read_render_config

BASE = ProcessingOptions()
G = GravityType
R = ResizingType


def parse(text: str) -> OptionList:
    """`a:1:2/b:3` as the URL grammar splits it (no percent-escapes here)."""
    return [(part.split(":")[0], part.split(":")[1:]) for part in text.split("/")]


def apply(text: str, presets: dict[str, OptionList] | None = None, base: ProcessingOptions = BASE) -> ProcessingOptions:
    return apply_options(base, parse(text), presets or {})


def changed(options: ProcessingOptions, base: ProcessingOptions = BASE) -> dict[str, Any]:
    """The fields that differ from `base`."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
            if getattr(options, f.name) != getattr(base, f.name)}


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# Every option of imgproxy's we support, by its name and alias; the expected value is the full set of changed fields.
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    # resize / rs: %resizing_type:%width:%height:%enlarge:%extend
    ("resize:fill:300:200:1:1", {"resizing_type": R.FILL, "width": 300, "height": 200, "enlarge": True,
                                 "extend": True}),
    ("rs:fill-down:300:200", {"resizing_type": R.FILL_DOWN, "width": 300, "height": 200}),
    ("rs:force:10:20:0:0", {"resizing_type": R.FORCE, "width": 10, "height": 20}),
    ("rs:auto", {"resizing_type": R.AUTO}),
    ("rs:fit:640:480:t", {"width": 640, "height": 480, "enlarge": True}),
    ("rs:fill:100:100:0:1:so:5:10", {"resizing_type": R.FILL, "width": 100, "height": 100, "extend": True,
                                      "extend_gravity": Gravity(G.SOUTH, 5, 10)}),
    ("rs::300", {"width": 300}),
    ("rs:::300", {"height": 300}),
    # size / s: %width:%height:%enlarge:%extend
    ("size:300:200", {"width": 300, "height": 200}),
    ("s:300", {"width": 300}),
    ("s::200:1", {"height": 200, "enlarge": True}),
    ("s:10:20:true:1:nowe", {"width": 10, "height": 20, "enlarge": True, "extend": True,
                             "extend_gravity": Gravity(G.NORTH_WEST)}),
    # resizing_type / rt
    ("resizing_type:force", {"resizing_type": R.FORCE}),
    ("rt:fill", {"resizing_type": R.FILL}),
    ("rt:fill-down", {"resizing_type": R.FILL_DOWN}),
    ("rt:auto", {"resizing_type": R.AUTO}),
    ("rt:fit", {}),
    # width / w, height / h, min-width / mw, min-height / mh
    ("width:640", {"width": 640}),
    ("w:1", {"width": 1}),
    ("height:480", {"height": 480}),
    ("h:2", {"height": 2}),
    ("min-width:100", {"min_width": 100}),
    ("mw:200", {"min_width": 200}),
    ("min-height:50", {"min_height": 50}),
    ("mh:60", {"min_height": 60}),
    # zoom / z, dpr
    ("zoom:2", {"zoom_x": 2.0, "zoom_y": 2.0}),
    ("z:1.5:0.5", {"zoom_x": 1.5, "zoom_y": 0.5}),
    ("dpr:2", {"dpr": 2.0}),
    ("dpr:1.5", {"dpr": 1.5}),
    # enlarge / el (strconv.ParseBool spellings)
    ("enlarge:1", {"enlarge": True}),
    ("el:t", {"enlarge": True}),
    ("el:true", {"enlarge": True}),
    ("el:TRUE", {"enlarge": True}),
    ("el:0", {}),
    # extend / ex: %extend:%gravity (any gravity but sm)
    ("extend:1", {"extend": True}),
    ("ex:1:soea", {"extend": True, "extend_gravity": Gravity(G.SOUTH_EAST)}),
    ("ex:true:no:0:10", {"extend": True, "extend_gravity": Gravity(G.NORTH, 0, 10)}),
    ("ex:1:fp:0.25:0.75", {"extend": True, "extend_gravity": Gravity(G.FOCUS_POINT, 0.25, 0.75)}),
    # gravity / g: compass points (with offsets), fp:x:y, sm
    ("gravity:no", {"gravity": Gravity(G.NORTH)}),
    ("g:so", {"gravity": Gravity(G.SOUTH)}),
    ("g:ea", {"gravity": Gravity(G.EAST)}),
    ("g:we", {"gravity": Gravity(G.WEST)}),
    ("g:noea", {"gravity": Gravity(G.NORTH_EAST)}),
    ("g:nowe", {"gravity": Gravity(G.NORTH_WEST)}),
    ("g:soea", {"gravity": Gravity(G.SOUTH_EAST)}),
    ("g:sowe", {"gravity": Gravity(G.SOUTH_WEST)}),
    ("g:ce:10:20", {"gravity": Gravity(G.CENTER, 10, 20)}),
    ("g:soea:5:-7", {"gravity": Gravity(G.SOUTH_EAST, 5, -7)}),
    ("g:nowe:12.5:3", {"gravity": Gravity(G.NORTH_WEST, 12.5, 3)}),
    # imgproxy: "x_offset, y_offset - (optional)"; its parser takes x alone (nArgs > 1, nArgs > 2).
    ("g:nowe:10", {"gravity": Gravity(G.NORTH_WEST, 10, 0)}),
    ("g:fp:0.3:0.7", {"gravity": Gravity(G.FOCUS_POINT, 0.3, 0.7)}),
    ("g:fp:0:1", {"gravity": Gravity(G.FOCUS_POINT, 0, 1)}),
    ("g:sm", {"gravity": Gravity(G.SMART)}),
    # crop / c: %width:%height:%gravity (fractions below 1, 0 for the whole side)
    ("crop:100:200", {"crop": Crop(100, 200)}),
    ("c:0.5:0.25", {"crop": Crop(0.5, 0.25)}),
    ("c:0.5", {"crop": Crop(0.5, 0)}),
    ("c:300:200:nowe", {"crop": Crop(300, 200, Gravity(G.NORTH_WEST))}),
    ("c:300:200:soea:10:20", {"crop": Crop(300, 200, Gravity(G.SOUTH_EAST, 10, 20))}),
    ("c:100:100:fp:0.1:0.9", {"crop": Crop(100, 100, Gravity(G.FOCUS_POINT, 0.1, 0.9))}),
    ("c:100:100:sm", {"crop": Crop(100, 100, Gravity(G.SMART))}),
    # padding / pd: CSS shorthand, 1 to 4 values
    ("padding:10", {"padding": Padding(10, 10, 10, 10)}),
    ("pd:10:20", {"padding": Padding(10, 20, 10, 20)}),
    ("pd:10:20:30", {"padding": Padding(10, 20, 30, 20)}),
    ("pd:10:20:30:40", {"padding": Padding(10, 20, 30, 40)}),
    ("pd::20", {"padding": Padding(0, 20, 0, 20)}),
    # imgproxy: top applies "to all other sides if they haven't been explicitly set", right to left;
    # an empty argument is not an explicit 0.
    ("pd:10:", {"padding": Padding(10, 10, 10, 10)}),
    ("pd:10::30", {"padding": Padding(10, 10, 30, 10)}),
    # rotate / rot (multiples of 90), auto_rotate / ar, flip / fl
    ("rotate:90", {"rotate": 90}),
    ("rot:180", {"rotate": 180}),
    ("rot:270", {"rotate": 270}),
    ("rot:-90", {"rotate": 270}),
    ("auto_rotate:0", {"auto_rotate": False}),
    ("ar:false", {"auto_rotate": False}),
    ("flip:1", {"flip_horizontal": True}),
    ("fl:0:1", {"flip_vertical": True}),
    ("fl:1:1", {"flip_horizontal": True, "flip_vertical": True}),
    # background / bg: R:G:B or hex
    ("background:255:0:128", {"background": (255, 0, 128)}),
    ("bg:ff8000", {"background": (255, 128, 0)}),
    ("bg:FF8000", {"background": (255, 128, 0)}),
    ("bg:0:0:0", {"background": (0, 0, 0)}),
    # blur / bl, sharpen / sh
    ("blur:5", {"blur": 5.0}),
    ("bl:0.5", {"blur": 0.5}),
    ("sharpen:1", {"sharpen": 1.0}),
    ("sh:0.7", {"sharpen": 0.7}),
    # quality / q (0: the format's default)
    ("quality:70", {"quality": 70}),
    ("q:1", {"quality": 1}),
    ("q:100", {"quality": 100}),
    ("q:0", {}),
    # format / f / ext (jpg is jpeg)
    ("format:png", {"format": "png"}),
    ("f:webp", {"format": "webp"}),
    ("f:avif", {"format": "avif"}),
    ("f:gif", {"format": "gif"}),
    ("f:tiff", {"format": "tiff"}),
    ("f:bmp", {"format": "bmp"}),
    ("ext:jpeg", {"format": "jpeg"}),
    ("ext:jpg", {"format": "jpeg"}),
    ("f:JPG", {"format": "jpeg"}),
    # strip_metadata / sm, strip_color_profile / scp (both on by default)
    ("strip_metadata:0", {"strip_metadata": False}),
    ("sm:f", {"strip_metadata": False}),
    ("strip_color_profile:0", {"strip_color_profile": False}),
    ("scp:false", {"strip_color_profile": False}),
    # cachebuster / cb, expires / exp, filename / fn (plain or base64url), return_attachment / att
    ("cachebuster:v2", {"cachebuster": "v2"}),
    ("cb:abc", {"cachebuster": "abc"}),
    ("expires:1700000000", {"expires": 1700000000}),
    ("exp:4102444800", {"expires": 4102444800}),
    ("filename:report", {"filename": "report"}),
    ("fn:my photo", {"filename": "my photo"}),
    (f"fn:{b64('photo é.jpg')}:1", {"filename": "photo é.jpg"}),
    (f"fn:{b64('photo')}:t", {"filename": "photo"}),
    (f"fn:{b64('photo')}:0", {"filename": b64("photo")}),
    ("return_attachment:1", {"return_attachment": True}),
    ("att:true", {"return_attachment": True}),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[text for text, _ in ACCEPTED])
def test_option(text: str, expected: dict[str, Any]) -> None:
    assert changed(apply(text)) == expected


def test_sm_is_strip_metadata_as_an_option_and_smart_as_a_gravity() -> None:
    options = apply("sm:0/g:sm")
    assert options.strip_metadata is False
    assert options.gravity == Gravity(G.SMART)


def test_filename_percent_escapes_are_decoded_by_the_url_grammar() -> None:
    url = parse_preview_url("/q/fn:my%20report%C3%A9/att:1/plain/b/k")
    options = apply_options(BASE, url.options, {})
    assert (options.filename, options.return_attachment) == ("my report\u00e9", True)


# --- empty arguments and order -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rs:fill:100:200:1/rs::300", {"resizing_type": R.FILL, "width": 300, "height": 200, "enlarge": True}),
        ("rs:fill:100:200/rs:::50", {"resizing_type": R.FILL, "width": 100, "height": 50}),
        ("rs:force:100:200/rs:fit", {"width": 100, "height": 200}),
        ("s:100:200:1:1/s:::0", {"width": 100, "height": 200, "extend": True}),
        ("rs:fill:100:200/s::", {"resizing_type": R.FILL, "width": 100, "height": 200}),
        # `extend` with no gravity keeps the gravity it had.
        ("ex:1:so:5:5/rs:fill:10:10::1", {"resizing_type": R.FILL, "width": 10, "height": 10, "extend": True,
                                          "extend_gravity": Gravity(G.SOUTH, 5, 5)}),
        # A padding side left empty keeps its current value (imgproxy copies from the side it mirrors).
        ("pd:10/pd::2", {"padding": Padding(10, 2, 10, 2)}),
    ],
)
def test_empty_arguments_keep_the_current_value(text: str, expected: dict[str, Any]) -> None:
    assert changed(apply(text)) == expected


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("w:100/w:200", "width", 200),
        ("rs:fit:100:100/rt:fill", "resizing_type", R.FILL),
        ("rt:fill/rs:force:1:1", "resizing_type", R.FORCE),
        ("s:100:100/h:50", "height", 50),
        ("q:50/q:70", "quality", 70),
        ("g:no/g:so:1:2", "gravity", Gravity(G.SOUTH, 1, 2)),
        ("g:fp:0.1:0.2/g:sm", "gravity", Gravity(G.SMART)),
        ("f:png/ext:webp", "format", "webp"),
        ("bg:ff0000/bg:0:0:255", "background", (0, 0, 255)),
        ("bg:ff0000/bg:", "background", None),
        ("fn:a/fn:b", "filename", "b"),
        ("el:1/el:0", "enlarge", False),
        ("pd:10/pd:1:2", "padding", Padding(1, 2, 1, 2)),
        ("dpr:2/dpr:3", "dpr", 3.0),
        ("z:2/z:1:3", "zoom_y", 3.0),
        ("c:10:10/c:0.5:0.5", "crop", Crop(0.5, 0.5)),
        ("rot:90/rot:0", "rotate", 0),
    ],
)
def test_later_options_override_earlier_ones(text: str, field: str, value: Any) -> None:
    assert getattr(apply(text), field) == value


def test_empty_background_resets_to_none() -> None:
    """imgproxy: `bg` "with no arguments provided, disables any background manipulations"."""
    with_red = apply("bg:255:0:0")
    assert apply_options(with_red, [("bg", [""])], {}).background is None


# --- errors --------------------------------------------------------------------------------------

REJECTED = [
    "w:abc", "w:-1", "w:1.5", "width:", "w:1:2", "h:x", "mw:-5", "mh:abc", "min-width:1e3",
    "rs:bogus", "rs:fill:x", "rs:fill:1:2:3:4:5:6:7:8", "resize:fit:1:1:maybe", "s:1:2:maybe", "size:a",
    "rt:bogus", "rt:", "resizing_type:fill:fit",
    "z:0", "z:-1", "z:abc", "z:1:2:3", "zoom:inf", "dpr:0", "dpr:-1", "dpr:abc", "dpr:nan",
    "el:maybe", "enlarge:2", "ex:maybe", "ex:1:sm", "ex:1:xx", "extend:1:fp:0.5",
    "g:xx", "g:", "gravity:north", "g:fp:0.5", "g:fp:2:0.5", "g:fp:a:b", "g:sm:1", "g:no:1:2:3", "g:no:a:b",
    "c:abc", "c:-1:10", "c:10:10:xx", "crop:1:2:3:4:5:6",
    "pd:1:2:3:4:5", "pd:a", "pd:-1", "padding:1.5",
    "rot:45", "rot:abc", "rotate:1", "ar:maybe", "auto_rotate:2", "fl:2", "flip:1:1:1",
    "bg:1:2", "bg:256:0:0", "bg:zzzzzz", "bg:12345", "bg:1:2:3:4", "background:-1:0:0",
    "bl:-1", "bl:abc", "blur:1:2", "sh:x", "sharpen:-2",
    "q:101", "q:-1", "q:abc", "quality:7.5",
    "f:heic", "f:xyz", "ext:", "format:svg",
    "sm:maybe", "strip_metadata:2", "scp:2", "strip_color_profile:yes",
    "cb:a:b", "exp:abc", "exp:soon", "expires:1.5",
    "fn:", "fn:!!!:1", "filename:a:b:c", "att:maybe", "return_attachment:2",
]


@pytest.mark.parametrize("text", REJECTED)
def test_malformed_option_names_the_option(text: str) -> None:
    name = text.split(":")[0]
    with pytest.raises(InvalidOption) as excinfo:
        apply(text)
    error = excinfo.value
    assert error.status == 400
    assert "\n" not in error.reason
    assert name in error.reason, error.reason


@pytest.mark.parametrize("name", ["foo", "resize_type", "wdth", "W", "Rs", "quality_", "trim_x"])
def test_unknown_option_names_the_option(name: str) -> None:
    with pytest.raises(InvalidOption) as excinfo:
        apply_options(BASE, [("w", ["10"]), (name, ["1"])], {})
    assert excinfo.value.status == 400
    assert repr(name) in excinfo.value.reason or f" {name}" in excinfo.value.reason


def test_first_bad_option_stops_parsing() -> None:
    with pytest.raises(InvalidOption) as excinfo:
        apply("w:10/h:bad/q:nope")
    assert "h" in excinfo.value.reason and "q:" not in excinfo.value.reason


# --- presets ------------------------------------------------------------------------------------

PRESETS: dict[str, OptionList] = {
    "thumb": parse("rs:fill:100:100"),
    "hq": parse("q:95/sh:0.5"),
    "both": parse("pr:thumb:hq"),
    "deep": parse("pr:both/g:sm"),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("preset:thumb", {"resizing_type": R.FILL, "width": 100, "height": 100}),
        ("pr:hq", {"quality": 95, "sharpen": 0.5}),
        ("pr:thumb:hq", {"resizing_type": R.FILL, "width": 100, "height": 100, "quality": 95, "sharpen": 0.5}),
        ("pr:both", {"resizing_type": R.FILL, "width": 100, "height": 100, "quality": 95, "sharpen": 0.5}),
        ("pr:deep", {"resizing_type": R.FILL, "width": 100, "height": 100, "quality": 95, "sharpen": 0.5,
                     "gravity": Gravity(G.SMART)}),
        ("pr:thumb/w:50", {"resizing_type": R.FILL, "width": 50, "height": 100}),
        ("w:50/pr:thumb", {"resizing_type": R.FILL, "width": 100, "height": 100}),
    ],
)
def test_presets(text: str, expected: dict[str, Any]) -> None:
    assert changed(apply(text, PRESETS)) == expected


@pytest.mark.parametrize("text", ["pr:missing", "preset:thumb:missing"])
def test_unknown_preset_is_invalid(text: str) -> None:
    with pytest.raises(InvalidOption) as excinfo:
        apply(text, PRESETS)
    assert excinfo.value.status == 400
    assert text.split(":")[0] in excinfo.value.reason and "missing" in excinfo.value.reason


def test_presets_from_environment_with_default_and_nesting() -> None:
    config = read_render_config({"IMGPROXY_PRESETS": "default=q:60/ar:0, thumb=rs:fill:100:100/pr:sq, sq=g:sm"})
    # The default preset is part of every request's starting point.
    assert changed(config.defaults) == {"quality": 60, "auto_rotate": False}
    options = apply_options(config.defaults, parse("pr:thumb/w:120"), config.presets)
    assert changed(options) == {"quality": 60, "auto_rotate": False, "resizing_type": R.FILL, "width": 120,
                                "height": 100, "gravity": Gravity(G.SMART)}
    # URL options override the default preset.
    assert apply_options(config.defaults, parse("q:90/ar:1"), config.presets).quality == 90


def test_no_presets_means_imgproxy_defaults() -> None:
    config = read_render_config({})
    assert config.defaults == ProcessingOptions()
    assert (BASE.resizing_type, BASE.enlarge, BASE.auto_rotate, BASE.quality, BASE.dpr) == (R.FIT, False, True, 0, 1.0)
    assert BASE.gravity == Gravity(G.CENTER, 0, 0)

"""EXIF orientation, `auto_rotate`, `rotate` and `flip`.

Each stored image is made here from an upright one by the transposition the EXIF specification
describes for its Orientation value, so "upright" never depends on the code under test.
"""

import io
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from tests.support.images import (
    decoded,
    encoded,
    exif_block,
    named_photo,
    quadrant_names,
    quadrants,
    render,
    upright_photo,
)
from tests.support.perceptual import mean_abs_diff

T = Image.Transpose
# EXIF 2.32, tag 0x0112: where the stored 0th row and 0th column lie in the upright picture.
# The stored pixels are the upright ones moved by this transposition.
STORED_FROM_UPRIGHT: dict[int, T | None] = {
    1: None,                  # 0th row top, 0th column left
    2: T.FLIP_LEFT_RIGHT,     # 0th row top, 0th column right
    3: T.ROTATE_180,          # 0th row bottom, 0th column right
    4: T.FLIP_TOP_BOTTOM,     # 0th row bottom, 0th column left
    5: T.TRANSPOSE,           # 0th row left, 0th column top
    6: T.ROTATE_90,           # 0th row right, 0th column top (the camera turned clockwise)
    7: T.TRANSVERSE,          # 0th row right, 0th column bottom
    8: T.ROTATE_270,          # 0th row left, 0th column bottom
}
# A render matches its reference within this (mean absolute difference, 0..255, JPEG q95 output).
SAME = 4.0
PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def stored(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera would store for `upright` with this EXIF orientation."""
    move = STORED_FROM_UPRIGHT[orientation]
    return upright.copy() if move is None else upright.transpose(move)


def with_orientation(upright: Image.Image, orientation: int, pillow_format: str = "JPEG") -> bytes:
    """`upright` stored with `orientation` in an image file carrying that EXIF tag."""
    lossless = {"WEBP": {"lossless": True}, "JPEG": {"quality": 95}}.get(pillow_format, {})
    return encoded(stored(upright, orientation), pillow_format, exif=exif_block(orientation), **lossless)


def clockwise(names: dict[str, str], turns: int) -> dict[str, str]:
    """Quadrant names after `turns` quarter turns clockwise: top-left goes to top-right, and so on."""
    moves = {"tl": "tr", "tr": "br", "br": "bl", "bl": "tl"}
    for _ in range(turns % 4):
        names = {moves[corner]: name for corner, name in names.items()}
    return names


UPRIGHT_NAMES = {"tl": "tl", "tr": "tr", "bl": "bl", "br": "br"}


@pytest.fixture(scope="module")
def upright(photos: list[Path]) -> Image.Image:
    """A 300x200 upright photo: real content with no symmetry."""
    picture = upright_photo(named_photo(photos, "mate-ladybird.jpg"), 800)
    return ImageOps.fit(picture, (300, 200), Image.Resampling.LANCZOS)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_stored_fixtures_are_what_exif_readers_expect(upright, orientation):
    # Test the test: Pillow's own EXIF transposition turns each stored file back upright.
    with Image.open(io.BytesIO(with_orientation(upright, orientation))) as image:
        assert mean_abs_diff(ImageOps.exif_transpose(image).convert("RGB"), upright) < 2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(upright, orientation):
    rendered = render(with_orientation(upright, orientation), "rs:fit:150:150/q:95")
    got = decoded(rendered)
    assert (rendered.width, rendered.height) == got.size == (150, 100)
    reference = upright.resize((150, 100), Image.Resampling.LANCZOS)
    assert mean_abs_diff(got, reference) < SAME
    # The right answer is also the nearest: a mirrored or half-turned result would not pass.
    for wrong in (T.FLIP_LEFT_RIGHT, T.FLIP_TOP_BOTTOM, T.ROTATE_180):
        assert mean_abs_diff(got, reference.transpose(wrong)) > 3 * SAME


@pytest.mark.parametrize("container", sorted(PILLOW_FORMATS))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_read_from_jpeg_png_and_webp(container, orientation):
    source = with_orientation(quadrants((120, 80)), orientation, PILLOW_FORMATS[container])
    rendered = render(source, "f:png")
    assert (rendered.width, rendered.height) == (120, 80)
    assert quadrant_names(decoded(rendered)) == UPRIGHT_NAMES


@pytest.mark.parametrize("orientation", range(2, 9))
@pytest.mark.parametrize("container", ["jpg", "webp"])
def test_pillows_orientation_samples_match_the_upright_original(pillow_images, container, orientation):
    # hopper_orientation_N is hopper.jpg stored with orientation N (Pillow's exif_transpose tests).
    reference = decoded(render(pillow_images / "hopper.jpg", "f:png"))
    rendered = render(pillow_images / f"hopper_orientation_{orientation}.{container}", "f:png")
    got = decoded(rendered)
    assert got.size == reference.size
    assert mean_abs_diff(got, reference) < 6


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_auto_rotate_off_leaves_the_stored_pixels(upright, orientation):
    raw = stored(upright, orientation)
    rendered = render(with_orientation(upright, orientation), "ar:0/f:png")
    got = decoded(rendered)
    assert got.size == raw.size
    assert mean_abs_diff(got, raw) < SAME
    if raw.size == upright.size:
        assert mean_abs_diff(got, upright) > 4 * SAME


@pytest.mark.parametrize("angle, turns", [(90, 1), (180, 2), (270, 3), (-90, 3), (360, 0)])
def test_rotate_turns_clockwise(angle, turns):
    rendered = render(encoded(quadrants((120, 80)), "JPEG", quality=95), f"rot:{angle}")
    got = decoded(rendered)
    assert got.size == ((80, 120) if turns % 2 else (120, 80))
    assert quadrant_names(got) == clockwise(UPRIGHT_NAMES, turns)


@pytest.mark.parametrize("spec, swaps", [
    ("fl:1", {"tl": "tr", "tr": "tl", "bl": "br", "br": "bl"}),
    ("fl:0:1", {"tl": "bl", "bl": "tl", "tr": "br", "br": "tr"}),
    ("fl:1:1", {"tl": "br", "br": "tl", "tr": "bl", "bl": "tr"}),
    ("fl:0:0", UPRIGHT_NAMES),
])
def test_flip_mirrors(spec, swaps):
    rendered = render(encoded(quadrants((120, 80)), "JPEG", quality=95), spec)
    assert quadrant_names(decoded(rendered)) == swaps


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_rotate_applies_after_the_exif_orientation(orientation):
    # imgproxy: "The orientation from the image metadata is applied before the rotation".
    source = with_orientation(quadrants((120, 80)), orientation)
    got = decoded(render(source, "rot:90"))
    assert got.size == (80, 120)
    assert quadrant_names(got) == clockwise(UPRIGHT_NAMES, 1)


@pytest.fixture(scope="module")
def big_sideways_jpeg(photos: list[Path]) -> tuple[Image.Image, bytes]:
    """A 2400x1600 upright photo, stored as a 1600x2400 JPEG with orientation 6 (big enough for DCT scaling)."""
    big = upright_photo(named_photo(photos, "mate-twowings.jpg"))
    picture = ImageOps.fit(big, (2400, 1600), Image.Resampling.LANCZOS)
    return picture, with_orientation(picture, 6)


@pytest.mark.parametrize("spec, size", [("rs:fill:300:200", (300, 200)), ("rs:fit:200:200", (200, 133)),
                                        ("rs:fill:100:150", (100, 150))])
def test_orientation_holds_when_a_big_jpeg_is_shrunk_on_load(big_sideways_jpeg, spec, size):
    picture, source = big_sideways_jpeg
    got = decoded(render(source, spec))
    assert got.size == size
    assert mean_abs_diff(got, ImageOps.fit(picture, size, Image.Resampling.LANCZOS)) < 2 * SAME


def test_crop_is_measured_on_the_upright_image(big_sideways_jpeg):
    picture, source = big_sideways_jpeg
    got = decoded(render(source, "c:0.5:0:we/rs:fit:300:400"))
    left_half = picture.crop((0, 0, 1200, 1600))
    assert got.size == (300, 400)
    assert mean_abs_diff(got, left_half.resize((300, 400), Image.Resampling.LANCZOS)) < 2 * SAME

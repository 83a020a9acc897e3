"""IIIF images rendered by previews/iiif/render.py from real encoded files: region and size in the image's
pixels, quarter turns and mirroring that land each quadrant where the spec says, qualities, formats, the
shrink-on-load that a small result of a large JPEG gets, and the limits refused before any decode."""

import io

import pytest
from PIL import Image

from previews.config import RenderConfig
from previews.errors import PublicError
from previews.iiif.pixels import rotated_size
from previews.iiif.render import IiifRecipe, PreparedIiif
from previews.iiif.request import parse_iiif_path
from previews.render import Rendered, deadline_after
from tests.support.images import encoded, quadrant_names, quadrants
from tests.support.perceptual import mean_abs_diff

CONFIG = RenderConfig()
SOURCE = encoded(quadrants((480, 320)), "PNG")


def recipe(params: str, version: int = 3) -> IiifRecipe:
    path = parse_iiif_path(f"{version}/b%2Fk/{params}")
    assert path is not None and path.image is not None
    return IiifRecipe(path.image, key=params)


def prepared(params: str, source: bytes = SOURCE, config: RenderConfig = CONFIG) -> PreparedIiif:
    return recipe(params).prepare(io.BytesIO(source), config, deadline_after(30))


def render(params: str, source: bytes = SOURCE, config: RenderConfig = CONFIG) -> tuple[Rendered, Image.Image]:
    work = prepared(params, source, config)
    try:
        rendered = work.run()
    finally:
        work.close()
    return rendered, Image.open(io.BytesIO(rendered.data))


@pytest.mark.parametrize(("rotation", "expected"), [
    ("0", {"tl": "tl", "tr": "tr", "bl": "bl", "br": "br"}),
    ("90", {"tl": "bl", "tr": "tl", "bl": "br", "br": "tr"}),  # clockwise
    ("180", {"tl": "br", "tr": "bl", "bl": "tr", "br": "tl"}),
    ("270", {"tl": "tr", "tr": "br", "bl": "tl", "br": "bl"}),
    ("!0", {"tl": "tr", "tr": "tl", "bl": "br", "br": "bl"}),  # mirrored left to right
    ("!90", {"tl": "br", "tr": "tr", "bl": "bl", "br": "tl"}),  # mirrored, then turned
])
def test_quarter_turns_and_mirroring_put_each_quadrant_where_the_spec_says(rotation: str,
                                                                          expected: dict[str, str]) -> None:
    rendered, image = render(f"full/max/{rotation}/default.png")
    turned = rotation.lstrip("!") in ("90", "270")
    assert image.size == ((320, 480) if turned else (480, 320))
    assert (rendered.width, rendered.height) == image.size
    assert quadrant_names(image.convert("RGB")) == expected


def test_a_region_at_a_size_shows_that_region_only() -> None:
    whole = quadrants((480, 320))
    _, image = render("240,0,240,160/120,/0/default.png")
    assert image.size == (120, 80)
    expected = whole.crop((240, 0, 480, 160)).resize((120, 80))
    assert mean_abs_diff(image.convert("RGB"), expected) < 2
    _, square = render("square/100,/0/default.png")
    assert square.size == (100, 100)


def test_qualities() -> None:
    _, gray = render("full/max/0/gray.png")
    assert gray.mode == "L"
    _, bitonal = render("full/max/0/bitonal.png")
    assert sum(bitonal.convert("L").histogram()[1:255]) == 0  # black and white only
    _, bitonal_jpeg = render("full/120,/0/bitonal.jpg")
    assert bitonal_jpeg.mode == "L"


@pytest.mark.parametrize(("fmt", "pillow_format", "media_type"), [
    ("jpg", "JPEG", "image/jpeg"), ("png", "PNG", "image/png"), ("webp", "WEBP", "image/webp"),
    ("tif", "TIFF", "image/tiff"), ("gif", "GIF", "image/gif"),
])
def test_every_format_is_what_it_says(fmt: str, pillow_format: str, media_type: str) -> None:
    rendered, image = render(f"full/240,/0/default.{fmt}")
    assert (image.format, rendered.media_type, image.size) == (pillow_format, media_type, (240, 160))


def test_an_angle_between_quarter_turns_grows_the_canvas_with_transparent_corners_where_the_format_can() -> None:
    _, png = render("full/max/30/default.png")
    assert png.size == rotated_size(480, 320, recipe("full/max/30/default.png").request.rotation)
    assert png.mode == "RGBA" and png.getpixel((0, 0))[3] == 0
    _, jpeg = render("full/max/30/default.jpg")
    assert jpeg.mode == "RGB" and min(jpeg.getpixel((0, 0))) > 240  # white corners


def test_a_small_result_of_a_large_jpeg_is_decoded_shrunk() -> None:
    photo = encoded(quadrants((2400, 1600)), "JPEG", quality=90)
    small = prepared("full/300,/0/default.jpg", photo)
    whole = prepared("full/max/0/default.jpg", photo)
    try:
        assert small.image.size == (300, 200)  # libjpeg's 1/8 scale
        assert whole.image.size == (2400, 1600)
        assert small.peak_bytes < whole.peak_bytes / 10
        image = Image.open(io.BytesIO(small.run().data))
        assert image.size == (300, 200)
        assert quadrant_names(image) == {"tl": "tl", "tr": "tr", "bl": "bl", "br": "br"}
    finally:
        small.close()
        whole.close()
    # A tile of the shrunk decode is the same tile as one of a full decode, scaled.
    _, tile = render("1200,0,1200,800/150,/0/default.png", photo)
    assert quadrant_names(tile.convert("RGB")) == {"tl": "tr", "tr": "tr", "bl": "tr", "br": "tr"}


def test_limits_are_checked_from_the_header_before_any_decode() -> None:
    tight = RenderConfig(max_src_resolution=100_000)
    with pytest.raises(PublicError) as too_many:
        prepared("full/max/0/default.jpg", SOURCE, tight)
    assert too_many.value.status == 422
    narrow = RenderConfig(max_result_dimension=200)
    with pytest.raises(PublicError) as too_wide:
        prepared("full/^400,/0/default.jpg", SOURCE, narrow)
    assert too_wide.value.status == 400
    with pytest.raises(PublicError) as outside:
        prepared("500,0,10,10/max/0/default.jpg")
    assert outside.value.status == 400
    work = prepared("full/max/0/default.jpg", SOURCE, narrow)  # max is brought within the limits
    try:
        assert work.size == (200, 133)
    finally:
        work.close()

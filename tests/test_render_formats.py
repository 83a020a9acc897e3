"""Output formats: transparency, quality, format choice, metadata and animated sources.

AVIF answers are decoded with pillow-avif-plugin, imported here for the test's own decoding. That import
also registers the encoder in this process, so whether the product can write AVIF on its own is checked
in a fresh interpreter (test_avif_output_needs_nothing_from_the_caller).
"""

import io
import subprocess
import sys
from pathlib import Path

import pillow_avif  # noqa: F401 - lets the test decode AVIF answers (see the module docstring)
import pytest
from PIL import Image, ImageOps

from previews.grammar.url import parse_preview_url
from tests.support.images import (
    EXIF_MAKE,
    EXIF_ORIENTATION,
    cmyk_profile,
    decoded,
    encoded,
    exif_block,
    named_photo,
    quadrant_names,
    quadrants,
    render,
    upright_photo,
)
from tests.support.perceptual import colour_distance, mean_abs_diff, mean_colour

REPO = Path(__file__).resolve().parent.parent
# Media types are IANA's; Pillow's names are how Pillow identifies a file it reads.
FORMATS = {
    "jpeg": ("image/jpeg", "JPEG"),
    "png": ("image/png", "PNG"),
    "webp": ("image/webp", "WEBP"),
    "avif": ("image/avif", "AVIF"),
    "gif": ("image/gif", "GIF"),
    "tiff": ("image/tiff", "TIFF"),
    "bmp": ("image/bmp", "BMP"),
}
RED = (200, 40, 40)
HIDDEN = (0, 0, 255)  # under fully transparent pixels: it must never show


@pytest.fixture(scope="module")
def photo(photos: list[Path]) -> Image.Image:
    """A 240x160 photo crop: real texture for quality and format checks."""
    picture = upright_photo(named_photo(photos, "mate-garden.jpg"), 600)
    return ImageOps.fit(picture, (240, 160), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def rgba_png() -> bytes:
    """240x120 RGBA: left third opaque red, middle third red at alpha 128, right third clear (blue underneath)."""
    image = Image.new("RGBA", (240, 120), (*RED, 255))
    image.paste((*RED, 128), (80, 0, 160, 120))
    image.paste((*HIDDEN, 0), (160, 0, 240, 120))
    return encoded(image, "PNG")


THIRDS = {"opaque": (10, 10, 70, 110), "half": (90, 10, 150, 110), "clear": (170, 10, 230, 110)}


def mean_alpha(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    return mean_colour(image.convert("RGBA").getchannel("A").convert("RGB"), box)[0]


# --- transparency ------------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["png", "webp", "avif", "tiff"])
def test_formats_with_alpha_keep_it(rgba_png, output):
    got = decoded(render(rgba_png, f"f:{output}"))
    assert "A" in got.mode or "transparency" in got.info
    assert mean_alpha(got, THIRDS["opaque"]) > 250
    assert abs(mean_alpha(got, THIRDS["half"]) - 128) < 6
    assert mean_alpha(got, THIRDS["clear"]) < 5
    assert colour_distance(mean_colour(got.convert("RGBA").convert("RGB"), THIRDS["opaque"]), RED) < 8


@pytest.mark.parametrize("output", ["jpeg", "bmp"])
def test_formats_without_alpha_lay_it_on_white(rgba_png, output):
    got = decoded(render(rgba_png, f"f:{output}"))
    assert got.mode == "RGB"
    half_red = tuple((c + 255) / 2 for c in RED)
    assert colour_distance(mean_colour(got, THIRDS["opaque"]), RED) < 8
    assert colour_distance(mean_colour(got, THIRDS["half"]), half_red) < 8
    assert colour_distance(mean_colour(got, THIRDS["clear"]), (255, 255, 255)) < 4


@pytest.mark.parametrize("background, colour", [("bg:0:160:0", (0, 160, 0)), ("bg:ffcc00", (255, 204, 0))])
def test_jpeg_lays_alpha_on_the_background_option(rgba_png, background, colour):
    got = decoded(render(rgba_png, f"f:jpeg/{background}"))
    half = tuple((a + b) / 2 for a, b in zip(RED, colour, strict=True))
    assert colour_distance(mean_colour(got, THIRDS["clear"]), colour) < 6
    assert colour_distance(mean_colour(got, THIRDS["half"]), half) < 8


def test_a_background_flattens_even_where_alpha_could_stay(rgba_png):
    # imgproxy: "When set, imgproxy will fill the resulting image background with the specified color".
    got = decoded(render(rgba_png, "f:png/bg:0:160:0"))
    assert mean_alpha(got, THIRDS["clear"]) > 250
    assert colour_distance(mean_colour(got, THIRDS["clear"]), (0, 160, 0)) < 3


# --- quality -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["jpeg", "webp", "avif"])
def test_lower_quality_is_smaller_and_further_from_the_source(photo, output):
    source = encoded(photo, "JPEG", quality=98)
    low, high = render(source, f"f:{output}/q:10"), render(source, f"f:{output}/q:90")
    assert len(low.data) < 0.6 * len(high.data)
    assert mean_abs_diff(decoded(low), photo) > 1.5 * mean_abs_diff(decoded(high), photo)


def pillow_tables(image: Image.Image, quality: int) -> dict:
    """The quantization tables Pillow's JPEG encoder writes for `quality` (IJG scaling of the standard tables)."""
    return Image.open(io.BytesIO(encoded(image, "JPEG", quality=quality))).quantization


@pytest.mark.parametrize("spec", ["", "q:0"])
def test_default_jpeg_quality_is_80(photo, spec):
    got = decoded(render(encoded(photo, "JPEG", quality=98), f"f:jpeg/{spec}"))
    assert got.quantization == pillow_tables(photo, 80)
    assert got.quantization != pillow_tables(photo, 75)  # the tables do tell qualities apart


@pytest.mark.parametrize("quality", [35, 95])
def test_explicit_jpeg_quality_is_written(photo, quality):
    got = decoded(render(encoded(photo, "JPEG", quality=98), f"f:jpeg/q:{quality}"))
    assert got.quantization == pillow_tables(photo, quality)


@pytest.mark.parametrize("output, default", [("webp", 79), ("avif", 63)])
def test_q0_gives_the_formats_default_quality(photo, output, default):
    source = encoded(photo, "JPEG", quality=98)
    unset = render(source, f"f:{output}/q:0").data
    assert unset == render(source, f"f:{output}/q:{default}").data
    assert unset != render(source, f"f:{output}/q:{default - 30}").data


# --- format ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["f", "format", "ext"])
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_the_requested_format_is_written(photo, option, name):
    media_type, pillow_name = FORMATS[name]
    rendered = render(encoded(photo, "JPEG", quality=95), f"{option}:{name}")
    assert (rendered.format, rendered.media_type) == (name, media_type)
    got = decoded(rendered)
    assert got.format == pillow_name
    assert got.size == photo.size == (rendered.width, rendered.height)
    assert mean_abs_diff(got, photo) < (12 if name == "gif" else 6)


@pytest.mark.parametrize("alias, name", [("jpg", "jpeg"), ("tif", "tiff"), ("PNG", "png")])
def test_format_aliases(photo, alias, name):
    rendered = render(encoded(photo, "JPEG", quality=95), f"f:{alias}")
    assert rendered.format == name and decoded(rendered).format == FORMATS[name][1]


@pytest.mark.parametrize("path, extension", [
    ("/_/rs:fit:10:10/plain/bucket/key.png@webp", "webp"),
    ("/_/rs:fit:10:10/plain/bucket/key.png@jpg", "jpeg"),
    ("/_/rs:fit:10:10/plain/bucket/key.png", None),
    ("/_/rs:fit:10:10/YnVja2V0L2tleQ.avif", "avif"),
    ("/_/YnVja2V0L2tleQ.tif", "tiff"),
])
def test_the_url_extension_names_the_format(path, extension):
    assert parse_preview_url(path).extension == extension


@pytest.mark.parametrize("source, spec, media_type", [
    ("hopper.jpg", "f:avif", "image/avif"),
    ("avif/hopper.avif", "f:png", "image/png"),
], ids=["avif-output", "avif-source"])
def test_avif_needs_nothing_from_the_caller(pillow_images, source, spec, media_type):
    # The server never imports pillow_avif: a fresh interpreter shows whether previews/ reads and writes
    # AVIF on its own, whatever this test process has imported.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.support.images import decoded, render\n"
        "out = render(Path(sys.argv[1]), sys.argv[2])\n"
        "print(out.media_type, out.width, out.height)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(pillow_images / source), spec], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
    with Image.open(pillow_images / "hopper.jpg") as hopper:  # avif/hopper.avif is the same 128x128 picture
        assert result.stdout.split() == [media_type, str(hopper.width), str(hopper.height)]


SOURCES = {
    # source container -> (Pillow save arguments, mode, the format kept without `f`)
    "jpeg": ("JPEG", "RGB", "jpeg"),
    "png": ("PNG", "RGB", "png"),
    "gif": ("GIF", "RGB", "gif"),
    "webp": ("WEBP", "RGB", "webp"),
    "tiff": ("TIFF", "RGB", "jpeg"),
    "bmp": ("BMP", "RGB", "jpeg"),
    "ppm": ("PPM", "RGB", "jpeg"),
    "tiff with alpha": ("TIFF", "RGBA", "png"),
    "tga with alpha": ("TGA", "RGBA", "png"),
    "ico with alpha": ("ICO", "RGBA", "png"),
}


@pytest.mark.parametrize("source_kind", list(SOURCES))
def test_without_a_format_browser_formats_are_kept_and_others_become_jpeg_or_png(photo, source_kind):
    pillow_name, mode, kept = SOURCES[source_kind]
    rendered = render(encoded(photo.convert(mode), pillow_name), "rs:fit:120:120")
    assert rendered.format == kept
    assert decoded(rendered).format == FORMATS[kept][1]


# --- metadata ----------------------------------------------------------------------------------------

MAKE = "preview-proxy-test-camera"


@pytest.fixture(scope="module")
def sideways_with_exif() -> bytes:
    """Quadrants stored turned (orientation 6) in a JPEG whose EXIF also names a camera maker."""
    return encoded(quadrants((120, 80)).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95,
                   exif=exif_block(orientation=6, make=MAKE))


@pytest.mark.parametrize("output", ["jpeg", "png", "webp"])
def test_metadata_is_stripped_by_default(sideways_with_exif, output):
    rendered = render(sideways_with_exif, f"f:{output}")
    assert MAKE.encode() not in rendered.data
    assert EXIF_MAKE not in decoded(rendered).getexif()


def test_a_jpeg_comment_is_stripped_by_default_and_kept_with_sm0():
    source = encoded(quadrants((120, 80)), "JPEG", comment=b"private note 8d3f")
    assert b"private note 8d3f" not in render(source, "f:jpeg").data
    assert b"private note 8d3f" in render(source, "sm:0/f:jpeg").data


@pytest.mark.parametrize("output", ["png", "webp", "jpeg"])
def test_a_profile_the_pixels_no_longer_have_is_not_written(output):
    # A CMYK JPEG's profile describes ink, not the sRGB pixels the render makes from it.
    cmyk_profile_bytes = cmyk_profile(lambda c, m, y, k: (255 - c, 255 - m, 255 - y))
    source = encoded(Image.new("CMYK", (40, 30), (0, 200, 200, 0)), "JPEG", icc_profile=cmyk_profile_bytes)
    assert "icc_profile" not in decoded(render(source, f"scp:0/f:{output}")).info


@pytest.mark.parametrize("output", ["jpeg", "png", "webp"])
def test_keeping_metadata_keeps_exif_with_the_orientation_reset(sideways_with_exif, output):
    got = decoded(render(sideways_with_exif, f"sm:0/f:{output}"))
    exif = got.getexif()
    assert exif.get(EXIF_MAKE) == MAKE
    assert exif.get(EXIF_ORIENTATION, 1) == 1  # the pixels are upright now: a viewer must not turn them again
    assert quadrant_names(got) == {"tl": "tl", "tr": "tr", "bl": "bl", "br": "br"}


# --- animated sources --------------------------------------------------------------------------------

FRAME_COLOURS = [(220, 30, 30), (30, 180, 40), (30, 40, 220)]


def animation(pillow_format: str) -> bytes:
    frames = [Image.new("RGB", (64, 48), colour) for colour in FRAME_COLOURS]
    extra = {"lossless": True} if pillow_format == "WEBP" else {}
    return encoded(frames[0], pillow_format, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)


@pytest.mark.parametrize("pillow_format", ["GIF", "PNG", "WEBP"])
@pytest.mark.parametrize("output", ["", "f:png", "f:jpeg"])
def test_an_animated_source_gives_its_first_frame(pillow_format, output):
    source = animation(pillow_format)
    with Image.open(io.BytesIO(source)) as check:
        assert getattr(check, "n_frames", 1) == 3  # test the test: it is animated
    got = decoded(render(source, output))
    assert getattr(got, "n_frames", 1) == 1
    assert colour_distance(mean_colour(got), FRAME_COLOURS[0]) < 8


@pytest.mark.parametrize("name", ["iss634.gif", "iss634.apng", "iss634.webp"])
def test_pillows_animations_give_their_first_frame(pillow_images, name):
    with Image.open(pillow_images / name) as image:
        first = image.convert("RGBA")
    got = decoded(render(pillow_images / name, "f:png"))
    assert got.size == first.size
    assert mean_abs_diff(got, first) < 2

"""Colour: CMYK and ICC profiles to sRGB, `strip_color_profile`, 16-bit to 8-bit, palettes and grey+alpha.

References come from Pillow and LittleCMS used directly (ImageCms.profileToProfile), never from the
code under test; every comparison is perceptual (tests/support/perceptual.py).
"""

import io
import struct
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageStat

from tests.support.images import cmyk_profile, decoded, encoded, render
from tests.support.perceptual import brightness, colour_distance, mean_abs_diff, mean_colour

SRGB = ImageCms.createProfile("sRGB")
PATCH = 20  # side of one colour patch in the synthetic images
RGB_PATCHES = [(0, 200, 0), (200, 0, 0), (0, 0, 200), (128, 128, 128), (200, 150, 100), (40, 90, 160)]
CMYK_PATCHES = [(0, 0, 0, 0), (0, 0, 0, 255), (255, 0, 0, 0), (0, 0, 0, 128), (40, 200, 30, 60), (0, 255, 255, 0)]


def patches(mode: str, colours: list[tuple[int, ...]]) -> Image.Image:
    """A strip of flat square patches, one per colour."""
    image = Image.new(mode, (PATCH * len(colours), PATCH))
    for index, colour in enumerate(colours):
        image.paste(colour, (index * PATCH, 0, (index + 1) * PATCH, PATCH))
    return image


def patch_colours(image: Image.Image, count: int) -> list[tuple[float, float, float]]:
    """The mean colour of the middle of each patch (edges may bleed after JPEG)."""
    inset = PATCH // 4
    return [mean_colour(image, (i * PATCH + inset, inset, (i + 1) * PATCH - inset, PATCH - inset))
            for i in range(count)]


def embedded_profile(image: Image.Image) -> bytes | None:
    return image.info.get("icc_profile") or None


def profile_space(profile: bytes) -> bytes:
    """The data colour space an ICC profile describes (header bytes 16..20: b'RGB ', b'CMYK', ...)."""
    return profile[16:20]


# --- CMYK --------------------------------------------------------------------------------------------


def test_cmyk_jpeg_stays_close_to_its_srgb_twin(pillow_images):
    # Pillow ships one picture twice: as a CMYK JPEG and as an sRGB JPEG.
    rendered = render(pillow_images / "pil_sample_cmyk.jpg")
    got = decoded(rendered)
    twin = Image.open(pillow_images / "pil_sample_rgb.jpg").convert("RGB")
    assert rendered.format == "jpeg"
    assert got.mode == "RGB"  # browsers show CMYK JPEGs badly or not at all
    assert got.size == twin.size
    assert mean_abs_diff(got, twin) < 8
    assert colour_distance(mean_colour(got), mean_colour(twin)) < 6


@pytest.fixture(scope="module")
def cmyk_with_profile() -> tuple[Image.Image, bytes, bytes]:
    """CMYK patches, a profile in which black ink only darkens to 40% grey, and the JPEG carrying both."""
    profile = cmyk_profile(lambda c, m, y, k: tuple(round(255 * (1 - ink) * (1 - 0.6 * k)) for ink in (c, m, y)))
    source = patches("CMYK", CMYK_PATCHES)
    return source, profile, encoded(source, "JPEG", quality=95, icc_profile=profile)


def test_cmyk_jpeg_with_a_profile_is_converted_through_that_profile(cmyk_with_profile):
    source, profile, jpeg = cmyk_with_profile
    expected = ImageCms.profileToProfile(source, ImageCms.ImageCmsProfile(io.BytesIO(profile)), SRGB,
                                         outputMode="RGB")
    naive = source.convert("RGB")
    # Test the test: the profile and the naive formula disagree (full black ink: 40% grey, not black).
    assert colour_distance(patch_colours(expected, 2)[1], patch_colours(naive, 2)[1]) > 80
    got = decoded(render(jpeg, "f:png"))
    assert got.mode == "RGB"
    for seen, wanted in zip(patch_colours(got, len(CMYK_PATCHES)), patch_colours(expected, len(CMYK_PATCHES)),
                            strict=True):
        assert colour_distance(seen, wanted) < 6, (seen, wanted)


@pytest.mark.parametrize("output", ["jpeg", "png", "webp"])
def test_a_cmyk_profile_never_labels_rgb_output(cmyk_with_profile, output):
    # With scp:0 the profile is kept "as is" where it can be; the output's pixels are RGB, and an ICC
    # profile must describe the data it is attached to (ICC.1, header field "data colour space").
    _, _, jpeg = cmyk_with_profile
    got = decoded(render(jpeg, f"scp:0/f:{output}"))
    assert got.mode in ("RGB", "RGBA")
    profile = embedded_profile(got)
    assert profile is None or profile_space(profile) == b"RGB ", \
        f"an {got.mode} image carries a {profile_space(profile)!r} profile"


# --- RGB profiles ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[("xmp_test.jpg", "Adobe RGB"), ("frame_size.mpo", "Display P3")],
                ids=["adobe-rgb", "display-p3"])
def wide_profile(request, pillow_images: Path) -> bytes:
    """A wide-gamut RGB profile taken from one of Pillow's test images (only the header is read)."""
    name, description = request.param
    with Image.open(pillow_images / name) as image:
        profile = image.info["icc_profile"]
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).startswith(description)
    return profile


def test_a_wide_gamut_image_is_converted_to_srgb(wide_profile):
    source = patches("RGB", RGB_PATCHES)
    expected = ImageCms.profileToProfile(source, ImageCms.ImageCmsProfile(io.BytesIO(wide_profile)), SRGB)
    # Test the test: the profile moves saturated colours well away from their raw values.
    assert max(colour_distance(a, b) for a, b in zip(patch_colours(expected, 6), RGB_PATCHES, strict=True)) > 10
    got = decoded(render(encoded(source, "PNG", icc_profile=wide_profile)))
    for seen, wanted in zip(patch_colours(got, 6), patch_colours(expected, 6), strict=True):
        assert colour_distance(seen, wanted) < 3, (seen, wanted)
    profile = embedded_profile(got)
    assert profile != wide_profile
    if profile is not None:  # an sRGB label on sRGB pixels is fine; anything else is not
        assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).lower().startswith("srgb")


@pytest.mark.parametrize("output", ["png", "jpeg", "webp"])
def test_strip_color_profile_off_keeps_the_pixels_and_embeds_the_profile(wide_profile, output):
    source = patches("RGB", RGB_PATCHES)
    got = decoded(render(encoded(source, "PNG", icc_profile=wide_profile), f"scp:0/f:{output}"))
    assert embedded_profile(got) == wide_profile
    for seen, raw in zip(patch_colours(got, 6), RGB_PATCHES, strict=True):
        assert colour_distance(seen, raw) < 4, (seen, raw)


def test_an_srgb_profile_leaves_the_pixels_alone():
    source = patches("RGB", RGB_PATCHES)
    srgb_bytes = ImageCms.ImageCmsProfile(SRGB).tobytes()
    got = decoded(render(encoded(source, "PNG", icc_profile=srgb_bytes)))
    for seen, raw in zip(patch_colours(got, 6), RGB_PATCHES, strict=True):
        assert colour_distance(seen, raw) < 3, (seen, raw)


# --- 16-bit ------------------------------------------------------------------------------------------


def grey16(values: list[int], height: int = 8) -> Image.Image:
    """An I;16 image whose column x holds values[x] (built from raw samples: paste() scales 16-bit colours)."""
    row = struct.pack(f"<{len(values)}H", *values)
    image = Image.frombytes("I;16", (len(values), height), row * height)
    assert [image.getpixel((x, 0)) for x in (0, len(values) - 1)] == [values[0], values[-1]]
    return image


def pgm16(image: Image.Image) -> bytes:
    """A binary 16-bit PGM (maxval 65535, big-endian samples), written by hand: exact, with no encoder choices."""
    samples = image.tobytes("raw", "I;16B")
    return f"P5\n{image.width} {image.height}\n65535\n".encode() + samples


CONTAINERS_16BIT = {
    "png": lambda image: encoded(image, "PNG"),
    "tiff": lambda image: encoded(image, "TIFF"),
    "pgm": pgm16,
}


@pytest.mark.parametrize("container", sorted(CONTAINERS_16BIT))
def test_16bit_grey_becomes_8bit_with_the_same_brightness(container):
    levels = list(range(256))
    source = CONTAINERS_16BIT[container](grey16([level * 257 for level in levels]))
    got = decoded(render(source, "f:png"))
    assert got.mode in ("L", "RGB") and got.size == (256, 8)
    wanted = Image.new("L", (256, 8))
    for x in levels:
        wanted.paste(x, (x, 0, x + 1, 8))
    assert mean_abs_diff(got, wanted) < 1.0


@pytest.mark.parametrize("container", sorted(CONTAINERS_16BIT))
def test_a_dark_16bit_image_stays_dark(container):
    # Levels 0..255 out of 65535 are under 0.4% of full scale: all but black in 8 bits.
    source = CONTAINERS_16BIT[container](grey16(list(range(256))))
    got = decoded(render(source, "f:png"))
    assert brightness(got) < 2, f"a 16-bit image at most 0.4% bright came out {brightness(got):.0f}/255"


def test_pillows_16bit_tiff_keeps_its_brightness(pillow_images):
    with Image.open(pillow_images / "16bit.cropped.tif") as image:
        assert image.mode == "I;16"
        expected = ImageStat.Stat(image.convert("I")).mean[0] / 256
    got = decoded(render(pillow_images / "16bit.cropped.tif", "f:png"))
    assert abs(brightness(got) - expected) < 1.5


# --- palettes and grey with alpha ----------------------------------------------------------------------


def test_a_palette_image_keeps_its_colours(pillow_images):
    with Image.open(pillow_images / "hopper.gif") as image:
        assert image.mode == "P"
        reference = image.convert("RGB")
    got = decoded(render(pillow_images / "hopper.gif", "f:png"))
    assert mean_abs_diff(got, reference) < 1.5


def test_a_palette_image_with_transparency_keeps_alpha_in_png_and_flattens_in_jpeg(pillow_images):
    with Image.open(pillow_images / "pil123p.png") as image:
        assert image.mode == "P" and "transparency" in image.info
        reference = image.convert("RGBA")
    as_png = decoded(render(pillow_images / "pil123p.png", "f:png")).convert("RGBA")
    assert mean_abs_diff(as_png.getchannel("A").convert("RGB"), reference.getchannel("A").convert("RGB")) < 1
    as_jpeg = decoded(render(pillow_images / "pil123p.png", "f:jpeg"))
    assert as_jpeg.mode == "RGB"
    assert mean_abs_diff(as_jpeg, reference) < 6  # the reference is laid over white too


@pytest.fixture(scope="module")
def grey_with_alpha() -> Image.Image:
    """An LA image: a grey ramp, opaque on the left third, half transparent in the middle, clear on the right."""
    grey = Image.linear_gradient("L").resize((240, 60))
    alpha = Image.new("L", (240, 60), 255)
    alpha.paste(128, (80, 0, 160, 60))
    alpha.paste(0, (160, 0, 240, 60))
    return Image.merge("LA", (grey, alpha))


def test_grey_with_alpha_keeps_its_alpha_in_png(grey_with_alpha):
    got = decoded(render(encoded(grey_with_alpha, "PNG"), "f:png"))
    assert "A" in got.mode
    assert mean_abs_diff(got.getchannel("A").convert("RGB"), grey_with_alpha.getchannel("A").convert("RGB")) < 1
    assert mean_abs_diff(got, grey_with_alpha) < 1.5  # both laid over white


def test_grey_with_alpha_is_flattened_on_white_in_jpeg(grey_with_alpha):
    got = decoded(render(encoded(grey_with_alpha, "PNG"), "f:jpeg"))
    assert got.mode in ("L", "RGB")
    assert mean_abs_diff(got, grey_with_alpha) < 3
    assert min(mean_colour(got, (170, 10, 230, 50))) > 245  # the clear third is white

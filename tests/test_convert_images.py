"""The image converter's conversions: TIFF in every form, JPEG 2000, BMP, 16-bit, PSD, ICO.

Sources are made here with Pillow, or taken from Pillow's own test images; references come from
plain Pillow and LittleCMS, never from the code under test. Pixels are compared, not bytes.
"""

import io
import struct
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from tests.support.conversions import convert, multipage_tiff, result_image, tiff
from tests.support.images import cmyk_profile, encoded, png_file, quadrant_names, quadrants
from tests.support.perceptual import colour_distance, mean_abs_diff, mean_colour

UPRIGHT_NAMES = {"tl": "tl", "tr": "tr", "bl": "bl", "br": "br"}
LOSSLESS_TIFF = ["raw", "tiff_lzw", "tiff_adobe_deflate", "packbits"]
PAGE_COLOURS = [(200, 30, 30), (30, 160, 40), (40, 50, 210)]
TILE_TAG = 322  # TileWidth: present only in tiled TIFFs


def assert_same_pixels(got: Image.Image, want: Image.Image) -> None:
    assert got.size == want.size
    assert mean_abs_diff(got, want) == 0


# --- TIFF compressions, tiles, BigTIFF ----------------------------------------------------------------


@pytest.mark.parametrize("compression", LOSSLESS_TIFF)
def test_a_losslessly_compressed_tiff_becomes_a_png_with_the_same_pixels(compression):
    source = quadrants()
    data = tiff(source, compression=compression)
    assert Image.open(io.BytesIO(data)).info["compression"] == compression  # test the test
    converted = convert(data)
    assert (converted.media_type, converted.source_format) == ("image/png", "tiff")
    assert_same_pixels(result_image(converted), source)


def test_a_jpeg_compressed_tiff_becomes_a_jpeg():
    source = quadrants()
    converted = convert(tiff(source, compression="jpeg", quality=95))
    assert converted.media_type == "image/jpeg"
    got = result_image(converted)
    assert quadrant_names(got) == UPRIGHT_NAMES
    assert mean_abs_diff(got, source) < 3


@pytest.mark.parametrize("tiled, stripped", [
    ("tiff_tiled_raw.tif", "tiff_strip_raw.tif"),
    ("tiff_tiled_planar_raw.tif", "tiff_strip_planar_raw.tif"),
    ("tiff_tiled_planar_lzw.tiff", "tiff_strip_planar_lzw.tiff"),
    ("tiff_tiled_planar_16bit_RGB.tiff", "tiff_strip_planar_16bit_RGB.tiff"),
    ("tiff_tiled_ycbcr_jpeg_2x2_sampling.tif", "tiff_strip_ycbcr_jpeg_2x2_sampling.tif"),
    ("tiff_tiled_cmyk_jpeg.tif", "tiff_strip_cmyk_jpeg.tif"),
])
def test_a_tiled_tiff_matches_its_striped_twin(pillow_images, tiled, stripped):
    # Pillow's writer drops tile tags (it writes strips only), so the tiled files are Pillow's,
    # each with a striped twin holding the same picture.
    with Image.open(pillow_images / tiled) as tiles, Image.open(pillow_images / stripped) as strips:
        assert TILE_TAG in tiles.tag_v2 and TILE_TAG not in strips.tag_v2
        lossy = strips.info["compression"] == "jpeg"
        twin = strips.convert("RGB")
    converted = convert(pillow_images / tiled)
    assert converted.media_type == ("image/jpeg" if lossy else "image/png")
    got = result_image(converted)
    assert got.size == twin.size
    assert mean_abs_diff(got, twin) < (3 if lossy else 0.5)


def test_pillow_writes_bigtiff_and_it_converts():
    source = quadrants()
    data = tiff(source, big_tiff=True)
    assert data[:4] == b"II+\0"  # BigTIFF's version 43 (classic TIFF is 42)
    assert_same_pixels(result_image(convert(data)), source)


def test_pillows_bigtiff_sample_matches_its_classic_twin(pillow_images):
    assert (pillow_images / "hopper_bigtiff.tif").read_bytes()[2] == 43
    with Image.open(pillow_images / "hopper.tif") as classic:
        assert_same_pixels(result_image(convert(pillow_images / "hopper_bigtiff.tif")), classic.convert("RGB"))


# --- bit depths --------------------------------------------------------------------------------------


def grey16_gradient(width: int = 512) -> tuple[Image.Image, list[int]]:
    """A one-row 16-bit grey gradient over the full range, and its values."""
    values = [round(i * 65535 / (width - 1)) for i in range(width)]
    return Image.frombytes("I;16", (width, 1), struct.pack(f"<{width}H", *values)), values


def assert_8bit_of(got: Image.Image, values: list[int]) -> None:
    """Each 8-bit value is its 16-bit source scaled to 0..255 (within rounding)."""
    assert got.mode == "L"
    seen = list(got.tobytes())
    assert max(abs(eight - sixteen * 255 / 65535) for eight, sixteen in zip(seen, values, strict=True)) <= 1


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw", "tiff_adobe_deflate"])
def test_a_16bit_grey_tiff_becomes_the_right_8bit_values(compression):
    gradient, values = grey16_gradient()
    converted = convert(tiff(gradient, compression=compression))
    assert converted.media_type == "image/png"
    assert_8bit_of(result_image(converted), values)


def test_a_16bit_grey_png_is_converted_to_an_8bit_png():
    gradient, values = grey16_gradient()
    converted = convert(encoded(gradient, "PNG"))
    assert converted.data is not None and converted.source_format == "png"
    assert_8bit_of(result_image(converted), values)


def test_a_16bit_rgb_png_keeps_the_high_bytes():
    # Pillow can't write 16-bit RGB, so the PNG is written chunk by chunk: one row repeated.
    colours = [(65535, 0, 0), (0, 32896, 0), (4112, 8224, 61680), (25700, 25700, 25700)]
    row = b"".join(struct.pack(">HHH", *colour) for colour in colours)
    converted = convert(png_file(len(colours), 2, row, bit_depth=16, colour_type=2))
    got = result_image(converted)
    assert converted.media_type == "image/png" and got.mode == "RGB"
    for x, colour in enumerate(colours):
        assert colour_distance(got.getpixel((x, 1)), tuple(v * 255 / 65535 for v in colour)) <= 1


@pytest.mark.parametrize("name", ["tiff_16bit_RGB.tiff", "tiff_16bit_RGBa.tiff"])
def test_pillows_16bit_rgb_tiffs_match_pillows_targets(pillow_images, name):
    target = Image.open(pillow_images / name.replace(".tiff", "_target.png"))
    got = result_image(convert(pillow_images / name))
    assert got.mode == target.mode  # RGBa keeps its alpha
    assert mean_abs_diff(got, target) < 1


def test_a_float_tiff_is_stretched_over_its_range():
    levels = [-1.0, 0.0, 1.5, 3.0]  # min -1, max 3: 0, 63.75, 191.25, 255
    source = Image.new("F", (40, 10))
    for index, level in enumerate(levels):
        source.paste(level, (index * 10, 0, (index + 1) * 10, 10))
    got = result_image(convert(tiff(source)))
    assert got.mode == "L"
    for index, level in enumerate(levels):
        assert abs(got.getpixel((index * 10 + 5, 5)) - (level + 1) * 255 / 4) <= 1


# --- colour ------------------------------------------------------------------------------------------


def patches(mode: str, colours: list[tuple[int, ...]]) -> Image.Image:
    image = Image.new(mode, (20 * len(colours), 20))
    for index, colour in enumerate(colours):
        image.paste(colour, (index * 20, 0, (index + 1) * 20, 20))
    return image


RGB_PATCHES = [(0, 200, 0), (200, 0, 0), (0, 0, 200), (128, 128, 128), (200, 150, 100), (255, 255, 255)]


def test_a_cmyk_tiff_matches_its_rgb_twin():
    rgb = patches("RGB", RGB_PATCHES)
    converted = convert(tiff(rgb.convert("CMYK"), compression="tiff_lzw"))
    got = result_image(converted)
    assert converted.media_type == "image/png" and got.mode == "RGB"
    assert mean_abs_diff(got, rgb) < 1


def test_a_cmyk_tiff_with_a_profile_is_converted_through_it():
    profile = cmyk_profile(lambda c, m, y, k: tuple(round(255 * (1 - ink) * (1 - 0.6 * k)) for ink in (c, m, y)))
    source = patches("CMYK", [(0, 0, 0, 0), (0, 0, 0, 255), (255, 0, 0, 0), (40, 200, 30, 60)])
    expected = ImageCms.profileToProfile(source, ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                         ImageCms.createProfile("sRGB"), outputMode="RGB")
    # Test the test: through the profile, full black ink is a 40% grey, not black.
    assert mean_colour(expected, (25, 5, 35, 15))[0] > 80
    got = result_image(convert(tiff(source, icc_profile=profile)))
    for index in range(4):
        box = (index * 20 + 5, 5, index * 20 + 15, 15)
        assert colour_distance(mean_colour(got, box), mean_colour(expected, box)) < 3
    assert "icc_profile" not in got.info  # sRGB pixels, untagged


def test_a_lab_tiff_becomes_srgb(pillow_images):
    with Image.open(pillow_images / "hopper.tif") as reference:
        assert mean_abs_diff(result_image(convert(pillow_images / "hopper.Lab.tif")), reference) < 4


def test_an_rgb_tiff_with_a_wide_gamut_profile_becomes_untagged_srgb(pillow_images):
    with Image.open(pillow_images / "xmp_test.jpg") as tagged:
        adobe_rgb = tagged.info["icc_profile"]
    source = patches("RGB", RGB_PATCHES)
    expected = ImageCms.profileToProfile(source, ImageCms.ImageCmsProfile(io.BytesIO(adobe_rgb)),
                                         ImageCms.createProfile("sRGB"))
    assert mean_abs_diff(expected, source) > 3  # test the test: the profile moves the colours
    got = result_image(convert(tiff(source, icc_profile=adobe_rgb)))
    assert mean_abs_diff(got, expected) < 1
    assert "icc_profile" not in got.info


# --- pages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [0, 1, 2])
def test_page_n_of_a_multipage_tiff_is_the_page_drawn_in_its_colour(page):
    pages = [Image.new("RGB", (30 + 10 * index, 20), colour) for index, colour in enumerate(PAGE_COLOURS)]
    converted = convert(multipage_tiff(pages, compression="tiff_lzw"), page=page)
    got = result_image(converted)
    assert (converted.width, converted.height) == pages[page].size
    assert mean_colour(got) == PAGE_COLOURS[page]


def test_the_default_page_of_a_multipage_tiff_is_the_first(pillow_images):
    with Image.open(pillow_images / "multipage.tiff") as first:
        want = first.convert("RGB")
    assert mean_abs_diff(result_image(convert(pillow_images / "multipage.tiff")), want) == 0


def test_a_frame_of_an_animated_gif_is_converted_to_png():
    frames = [Image.new("RGB", (24, 24), colour) for colour in PAGE_COLOURS]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    converted = convert(gif, page=2)
    assert (converted.media_type, converted.source_format) == ("image/png", "gif")
    assert colour_distance(mean_colour(result_image(converted)), PAGE_COLOURS[2]) < 2


# --- orientation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw"])  # Pillow's own decoder, and libtiff
@pytest.mark.parametrize("orientation, stored_from_upright", [
    (3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
])
def test_a_tiff_orientation_tag_is_applied_once_and_not_written(compression, orientation, stored_from_upright):
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF 2.32: 6 is stored a quarter turn counter-clockwise of upright
    data = tiff(quadrants().transpose(stored_from_upright), compression=compression, exif=exif)
    with Image.open(io.BytesIO(data)) as check:
        assert check.getexif()[0x0112] == orientation
    got = result_image(convert(data))
    assert got.size == quadrants().size
    assert quadrant_names(got) == UPRIGHT_NAMES
    assert not got.getexif()


@pytest.mark.parametrize("orientation", range(2, 9))
def test_pillows_oriented_fax_tiffs_match_the_upright_one(pillow_images, orientation):
    upright = result_image(convert(pillow_images / "g4_orientation_1.tif"))
    got = result_image(convert(pillow_images / f"g4_orientation_{orientation}.tif"))
    assert got.size == upright.size
    assert mean_abs_diff(got, upright) < 1


# --- JPEG 2000, BMP, PSD, ICO ------------------------------------------------------------------------


@pytest.mark.parametrize("container", [{}, {"no_jp2": True}], ids=["jp2", "j2k"])
def test_a_reversible_jpeg2000_becomes_a_lossless_png(container):
    source = quadrants()
    converted = convert(encoded(source, "JPEG2000", **container))  # Pillow's default: the 5/3 wavelet
    assert (converted.media_type, converted.source_format) == ("image/png", "jpeg2000")
    assert_same_pixels(result_image(converted), source)


def test_an_irreversible_jpeg2000_becomes_a_jpeg():
    source = quadrants()
    converted = convert(encoded(source, "JPEG2000", irreversible=True, quality_mode="dB", quality_layers=[45]))
    assert converted.media_type == "image/jpeg"
    assert mean_abs_diff(result_image(converted), source) < 3


def test_an_irreversible_jpeg2000_with_alpha_becomes_a_png_with_alpha():
    source = quadrants().convert("RGBA")
    source.paste((0, 0, 0, 0), (0, 0, 60, 40))
    converted = convert(encoded(source, "JPEG2000", irreversible=True))
    got = result_image(converted)
    assert converted.media_type == "image/png" and got.mode == "RGBA"
    assert got.getpixel((10, 10))[3] < 10 and got.getpixel((200, 120))[3] > 245


def test_pillows_jpeg2000_test_card_is_a_png(pillow_images):
    converted = convert(pillow_images / "test-card-lossless.jp2")
    with Image.open(pillow_images / "test-card.png") as card:
        assert mean_abs_diff(result_image(converted), card) < 1
    assert converted.media_type == "image/png"


@pytest.mark.parametrize("mode", ["RGB", "L", "P"])
def test_a_bmp_becomes_a_png_with_the_same_pixels(mode):
    source = quadrants().convert(mode)
    converted = convert(encoded(source, "BMP"))
    assert (converted.media_type, converted.source_format) == ("image/png", "bmp")
    got = result_image(converted)
    assert got.mode == ("L" if mode == "L" else "RGB")
    assert got.convert("RGB").tobytes() == source.convert("RGB").tobytes()


def test_a_bmp_with_alpha_keeps_it(pillow_images):
    # Pillow writes 32-bit BMPs without alpha; this one of Pillow's samples has a real alpha channel.
    with Image.open(pillow_images / "bmp/q/rgba32.bmp") as bmp:
        want = bmp.convert("RGBA")
    assert want.getchannel("A").getextrema() == (0, 255)
    got = result_image(convert(pillow_images / "bmp/q/rgba32.bmp"))
    assert got.mode == "RGBA"
    assert got.tobytes() == want.tobytes()


def test_a_psd_becomes_its_composite(pillow_images):
    converted = convert(pillow_images / "hopper.psd")
    assert (converted.media_type, converted.source_format) == ("image/png", "psd")
    with Image.open(pillow_images / "hopper.tif") as hopper:
        assert mean_abs_diff(result_image(converted), hopper) < 3  # Pillow's own test allows 4.8


def test_a_psd_keeps_its_transparency(pillow_images):
    with Image.open(pillow_images / "rgba.psd") as psd:
        alpha = psd.getchannel("A")
        assert alpha.getextrema()[0] < 255  # test the test: some pixels are transparent
    got = result_image(convert(pillow_images / "rgba.psd"))
    assert got.mode == "RGBA"
    assert got.getchannel("A").tobytes() == alpha.tobytes()


def test_an_ico_becomes_its_largest_image_with_alpha():
    icon = quadrants((64, 64)).convert("RGBA")
    icon.paste((0, 0, 0, 0), (0, 0, 16, 16))
    converted = convert(encoded(icon, "ICO", sizes=[(16, 16), (64, 64), (32, 32)]))
    assert (converted.media_type, converted.source_format, converted.width) == ("image/png", "ico", 64)
    assert result_image(converted).tobytes() == icon.tobytes()


# --- browser-ready sources ---------------------------------------------------------------------------


@pytest.mark.parametrize("pillow_format, media_type, mode", [
    ("JPEG", "image/jpeg", "RGB"), ("PNG", "image/png", "RGBA"), ("PNG", "image/png", "P"),
    ("WEBP", "image/webp", "RGB"), ("GIF", "image/gif", "P"),
])
def test_a_browser_ready_source_passes_through(pillow_format, media_type, mode):
    converted = convert(encoded(quadrants().convert(mode), pillow_format))
    assert converted.data is None
    assert (converted.media_type, converted.source_format) == (media_type, pillow_format.lower())
    assert (converted.width, converted.height) == quadrants().size


def test_an_mpo_passes_through_as_a_jpeg(pillow_images: Path):
    converted = convert(pillow_images / "sugarshack.mpo")
    assert (converted.data, converted.media_type, converted.source_format) == (None, "image/jpeg", "jpeg")

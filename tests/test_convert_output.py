"""How the converter encodes for browsers: PNG for lossless sources (JPEG 2000 by its wavelet) and
transparency, JPEG for lossy ones, WebP in place of JPEG when allowed; no metadata; sizes each format
can't hold.
"""

import io

import pytest
from PIL import Image

from previews.conversions.jpeg2000 import uses_reversible_wavelet
from previews.conversions.still import ConvertOptions, encode_for_browser
from tests.support.conversions import convert, result_image, tiff
from tests.support.images import encoded, exif_block, quadrant_names, quadrants
from tests.support.perceptual import mean_abs_diff

WEBP = ConvertOptions(allow_webp=True)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def with_hole(image: Image.Image) -> Image.Image:
    """`image` as RGBA with a transparent top-left corner."""
    holed = image.convert("RGBA")
    holed.paste((0, 0, 0, 0), (0, 0, 40, 30))
    return holed


def webp_kind(data: bytes) -> bytes:
    """The first chunk of a WebP file: b"VP8 " lossy, b"VP8L" lossless, b"VP8X" extended (alpha, ...)."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return data[12:16]


@pytest.mark.parametrize("lossless_source, alpha, options, media_type", [
    (True, False, ConvertOptions(), "image/png"),
    (False, False, ConvertOptions(), "image/jpeg"),
    (False, True, ConvertOptions(), "image/png"),
    (True, True, ConvertOptions(), "image/png"),
    (False, False, WEBP, "image/webp"),
    (False, True, WEBP, "image/webp"),
    (True, False, WEBP, "image/png"),  # lossless WebP costs 4-17x PNG's time (convert_output)
    (True, True, WEBP, "image/png"),
])
def test_the_format_follows_the_source_the_alpha_and_the_client(lossless_source, alpha, options, media_type):
    image = with_hole(quadrants()) if alpha else quadrants()
    data, got_type = encode_for_browser(image, lossless_source, options)
    assert got_type == media_type
    got = opened(data)
    assert got.format == media_type.split("/")[1].upper()
    assert ("A" in got.mode) == alpha
    assert mean_abs_diff(got, image) < (0.01 if media_type == "image/png" else 3)


def test_webp_is_lossy_with_its_alpha_kept():
    data, _ = encode_for_browser(with_hole(quadrants()), False, WEBP)
    assert webp_kind(data) == b"VP8X"  # extended: carries an alpha chunk
    assert b"ALPH" in data[:200]
    assert webp_kind(encode_for_browser(quadrants(), False, WEBP)[0]) == b"VP8 "


def test_an_opaque_alpha_channel_is_dropped():
    data, media_type = encode_for_browser(quadrants().convert("RGBA"), False, ConvertOptions())
    assert media_type == "image/jpeg"
    data, media_type = encode_for_browser(quadrants().convert("RGBA"), True, ConvertOptions())
    assert opened(data).mode == "RGB"


def test_a_transparent_colour_becomes_alpha():
    image = quadrants().convert("P")
    image.info["transparency"] = image.getpixel((0, 0))
    data, media_type = encode_for_browser(image, False, ConvertOptions())
    assert media_type == "image/png"
    got = opened(data)
    assert got.getpixel((0, 0))[3] == 0 and got.getpixel(tuple(side - 1 for side in got.size))[3] == 255


def test_grey_stays_grey():
    data, media_type = encode_for_browser(quadrants().convert("L"), False, ConvertOptions())
    assert media_type == "image/jpeg" and opened(data).mode == "L"


def test_quality_sets_the_jpeg_and_webp_size():
    photo_like = quadrants().effect_spread(6)
    for options in (ConvertOptions(), WEBP):
        low = encode_for_browser(photo_like, False, ConvertOptions(quality=30, allow_webp=options.allow_webp))[0]
        high = encode_for_browser(photo_like, False, ConvertOptions(quality=95, allow_webp=options.allow_webp))[0]
        assert len(low) < len(high) * 0.7


def test_a_jpeg_at_quality_90_or_more_keeps_full_colour_resolution():
    # Red strokes on black: halved chroma (4:2:0) smears them; full chroma (4:4:4) does not.
    strokes = Image.new("RGB", (64, 64))
    for x in range(0, 64, 4):
        strokes.paste((230, 10, 10), (x, 0, x + 1, 64))
    sharp = opened(encode_for_browser(strokes, False, ConvertOptions(quality=90))[0])
    halved = opened(encode_for_browser(strokes, False, ConvertOptions(quality=89))[0])
    assert mean_abs_diff(sharp, strokes) < mean_abs_diff(halved, strokes) / 2


def test_too_wide_for_webp_falls_back_to_jpeg_and_too_wide_for_jpeg_to_png():
    assert encode_for_browser(Image.new("RGB", (16_384, 2), (9, 9, 9)), False, WEBP)[1] == "image/jpeg"
    assert encode_for_browser(Image.new("RGB", (65_501, 1), (9, 9, 9)), False, ConvertOptions())[1] == "image/png"


# --- metadata ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("allow_webp", [False, True])
@pytest.mark.parametrize("compression", ["tiff_lzw", "jpeg"])
def test_no_metadata_leaves_the_converter(pillow_images, compression, allow_webp):
    with Image.open(pillow_images / "xmp_test.jpg") as tagged:
        profile = tagged.info["icc_profile"]
    exif = Image.Exif()
    exif.load(exif_block(orientation=1, make="Secret Camera"))
    data = tiff(quadrants(), compression=compression, icc_profile=profile, exif=exif)
    converted = convert(data, allow_webp=allow_webp)
    got = result_image(converted)
    assert not set(got.info) & {"icc_profile", "exif", "xmp", "comment", "XML:com.adobe.xmp"}
    assert not got.getexif()
    assert b"Secret Camera" not in (converted.data or b"")
    assert quadrant_names(got.convert("RGB")) == {"tl": "tl", "tr": "tr", "bl": "bl", "br": "br"}


@pytest.mark.parametrize("lossless_source", [True, False], ids=["png", "jpeg"])
def test_metadata_left_in_the_images_info_is_not_written(lossless_source):
    # Pillow's writers copy some of image.info by themselves (PNG: the ICC profile; JPEG: the comment).
    tagged = opened(encoded(quadrants(), "PNG" if lossless_source else "JPEG", comment=b"private note",
                            icc_profile=b"not really a profile", exif=exif_block(orientation=6)))
    assert {"comment", "icc_profile", "exif"} & set(tagged.info)  # test the test
    data, _ = encode_for_browser(tagged, lossless_source, ConvertOptions())
    got = opened(data)
    assert not {"comment", "icc_profile", "exif"} & set(got.info)
    assert b"private note" not in data and b"not really a profile" not in data


# --- lossless or lossy: JPEG 2000's wavelet ----------------------------------------------------------


@pytest.mark.parametrize("params, reversible", [
    ({}, True), ({"no_jp2": True}, True), ({"irreversible": True}, False),
    ({"irreversible": True, "no_jp2": True}, False),
])
def test_the_jpeg2000_wavelet_is_read_from_the_header(params, reversible):
    file = io.BytesIO(encoded(quadrants(), "JPEG2000", **params))
    file.seek(5)
    assert uses_reversible_wavelet(file) is reversible
    assert file.tell() == 5  # the caller's position is kept


@pytest.mark.parametrize("data", [b"", b"\0\0\0\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51", b"not a jpeg 2000 file"])
def test_an_unreadable_jpeg2000_header_is_unknown(data):
    assert uses_reversible_wavelet(io.BytesIO(data)) is None


def test_a_rate_limited_reversible_jpeg2000_still_becomes_a_png(pillow_images):
    # Pillow's lossy test card uses the 5/3 wavelet cut short by rate control: PNG costs bytes, not detail.
    converted = convert(pillow_images / "test-card-lossy-tiled.jp2")
    assert converted.media_type == "image/png"
    with Image.open(pillow_images / "test-card-lossy-tiled.jp2") as card:
        assert mean_abs_diff(result_image(converted), card.convert("RGB")) == 0

"""Limits before decoding, and bad input: 422 from the header, 415 with a reason, never a 500.

Decompression bombs are rendered in a fresh interpreter whose peak resident memory (VmHWM) is read
before and after, so a bomb that got decoded would show as hundreds of megabytes.
"""

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from previews.config import RenderConfig
from previews.errors import PreviewError, RenderDeadlinePassed, TooManyPixels, UnsupportedImage
from proxy.settings.render import read_render_config
from tests.support.images import decoded, encoded, named_photo, png_file, render, upright_photo

REPO = Path(__file__).resolve().parent.parent
ONE_MP = RenderConfig(max_src_resolution=1_000_000)
# Pillow refuses outright above twice its MAX_IMAGE_PIXELS (about 179 MP); between 50 and 179 MP only
# the product's own limit stands between a small file and a huge decode.
PILLOW_REFUSES = 200_000_000


def gif_with_canvas(width: int, height: int) -> bytes:
    """A valid 1x1 GIF whose logical screen (what Pillow reports as its size) is `width` x `height`."""
    data = bytearray(encoded(Image.new("P", (1, 1)), "GIF"))
    data[6:10] = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims `width` x `height`: the header lies, the data is 16x16."""
    data = bytearray(encoded(Image.new("RGB", (16, 16), (90, 120, 150)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def refused_for_size(data: bytes, config: RenderConfig | None = None) -> bool:
    """Whether rendering `data` stops at the resolution limit (any other outcome, success or 415, is False)."""
    try:
        render(data, "rs:fit:100:100", config)
    except TooManyPixels:
        return True
    except UnsupportedImage:
        return False
    return False


def assert_one_line_reason(error: PreviewError) -> None:
    assert error.reason and "\n" not in error.reason and "Traceback" not in error.reason
    assert str(error) == error.reason


# --- resolution --------------------------------------------------------------------------------------

HEADER_ONLY = {
    # A header declaring the size and nothing to decode: a decoder would fail (415), so a 422 proves
    # that the size was refused from the header alone.
    "png": lambda w, h: png_file(w, h, None),
    "gif": gif_with_canvas,
    "jpeg": jpeg_claiming,
}


@pytest.mark.parametrize("kind", sorted(HEADER_ONLY))
def test_over_the_resolution_limit_is_refused_from_the_header(kind):
    with pytest.raises(TooManyPixels) as caught:
        render(HEADER_ONLY[kind](2000, 1000), "rs:fit:100:100", ONE_MP)
    assert caught.value.status == 422
    assert_one_line_reason(caught.value)


@pytest.mark.parametrize("kind", sorted(HEADER_ONLY))
def test_at_the_limit_a_source_is_not_refused_for_its_size(kind):
    # 1000x1000 is exactly 1 MP: allowed. The missing pixel data may still fail (415), never with a 422.
    assert not refused_for_size(HEADER_ONLY[kind](1000, 1000), ONE_MP)
    assert refused_for_size(HEADER_ONLY[kind](1001, 1000), ONE_MP)


def test_the_default_limit_is_50_megapixels():
    assert RenderConfig().max_src_resolution == 50_000_000
    assert refused_for_size(jpeg_claiming(8000, 6500))  # 52 MP
    assert not refused_for_size(jpeg_claiming(7000, 7000))  # 49 MP


def test_the_limit_is_read_from_the_environment():
    config = read_render_config({"IMGPROXY_MAX_SRC_RESOLUTION": "1.5"})
    assert config.max_src_resolution == 1_500_000
    assert refused_for_size(jpeg_claiming(2000, 1000), config)
    assert not refused_for_size(jpeg_claiming(1000, 1000), config)


PEAK_MEMORY_SCRIPT = """
import json, sys
from pathlib import Path
from previews.errors import PreviewError
from tests.support.images import render

def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

before = peak_kb()
try:
    render(Path(sys.argv[1]), sys.argv[2])
    outcome = "rendered"
except PreviewError as error:
    outcome = f"{type(error).__name__} {error.status}"
print(json.dumps({"outcome": outcome, "grew_mb": (peak_kb() - before) / 1024}))
"""


def render_in_fresh_process(path: Path, spec: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PEAK_MEMORY_SCRIPT, str(path), spec], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


BOMBS = {
    # name -> (file, decoded size in MB if it were decoded)
    "png 12000x12000 1-bit (144 MP, 18 KB)": (lambda: png_file(12000, 12000, bytes(1500), bit_depth=1), 144),
    "png 20000x20000 1-bit (400 MP)": (lambda: png_file(20000, 20000, bytes(2500), bit_depth=1), 400),
    "gif with a 65535x65535 canvas": (lambda: gif_with_canvas(65535, 65535), 4096),
    "gif with a 12000x12000 canvas": (lambda: gif_with_canvas(12000, 12000), 144),
    "jpeg claiming 12000x12000": (lambda: jpeg_claiming(12000, 12000), 432),
}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_decompression_bomb_is_refused_with_bounded_memory(tmp_path, bomb):
    make, decoded_mb = BOMBS[bomb]
    path = tmp_path / "bomb"
    path.write_bytes(make())
    assert path.stat().st_size < 200_000
    result = render_in_fresh_process(path, "rs:fit:300:300")
    assert result["outcome"] == "TooManyPixels 422"
    assert result["grew_mb"] < min(40, decoded_mb / 3), result


def test_the_memory_probe_sees_a_real_decode(tmp_path):
    # Control for the test above: an allowed 16 MP greyscale image, rendered without resizing, must
    # show at least its decoded size (16 MB) in the same measurement.
    path = tmp_path / "big.jpg"
    path.write_bytes(encoded(Image.new("L", (4000, 4000), 100), "JPEG"))
    result = render_in_fresh_process(path, "q:50")
    assert result["outcome"] == "rendered"
    assert result["grew_mb"] > 12, result


# --- bad input ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_jpeg(photos: list[Path]) -> bytes:
    return encoded(upright_photo(named_photo(photos, "mate-greenmeadow.jpg"), 800), "JPEG", quality=90)


@pytest.fixture(scope="module")
def photo_png(photos: list[Path]) -> bytes:
    return encoded(upright_photo(named_photo(photos, "mate-greenmeadow.jpg"), 400), "PNG")


def corrupt_middle(data: bytes, length: int = 300) -> bytes:
    """`data` with `length` bytes in its middle scrambled (its headers intact)."""
    middle = len(data) // 2
    return data[:middle] + bytes(byte ^ 0x5A for byte in data[middle:middle + length]) + data[middle + length:]


BAD_INPUTS = {
    "random bytes": lambda jpeg, png: random.Random(1).randbytes(4096),
    "empty": lambda jpeg, png: b"",
    "truncated jpeg": lambda jpeg, png: jpeg[: len(jpeg) // 2],
    "jpeg cut after its header": lambda jpeg, png: jpeg[:700],
    "truncated png": lambda jpeg, png: png[: len(png) * 6 // 10],
    "png with damaged pixel data": lambda jpeg, png: corrupt_middle(png),
    "svg": lambda jpeg, png: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
    "text": lambda jpeg, png: b"hello, this is not an image\n" * 20,
    "html": lambda jpeg, png: b"<!doctype html><html><body><img src=x></body></html>",
    "pdf": lambda jpeg, png: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
    "gif signature only": lambda jpeg, png: b"GIF89a",
    "jpeg marker then noise": lambda jpeg, png: b"\xff\xd8\xff\xe0" + random.Random(2).randbytes(2000),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_is_an_unsupported_image_with_a_reason(photo_jpeg, photo_png, kind):
    with pytest.raises(UnsupportedImage) as caught:
        render(BAD_INPUTS[kind](photo_jpeg, photo_png), "rs:fit:100:100")
    assert caught.value.status == 415
    assert_one_line_reason(caught.value)


# Files from Pillow's test suite that plain Pillow can't open or decode (each one fails Image.open().load()).
PILLOW_BROKEN = [
    "broken.png", "truncated_image.png", "truncated_jpeg.jpg", "broken_data_stream.png",
    "cross_scan_line_truncated.tga", "pngtest_bad.png.bin", "zero_width.gif", "negative_size.ppm",
    "invalid_header_length.jp2", "not_enough_data.jp2", "png_decompression_dos.png", "hopper_bad_checksum.msp",
    "unknown_compression_method.png", "zero_height.j2k", "raw_negative_stride.bin",
]


@pytest.mark.parametrize("name", PILLOW_BROKEN)
def test_pillows_broken_files_are_unsupported_images(pillow_images, name):
    with pytest.raises(Exception), Image.open(pillow_images / name) as image:  # noqa: B017 - Pillow fails too
        image.load()
    with pytest.raises(UnsupportedImage) as caught:
        render(pillow_images / name, "rs:fit:100:100")
    assert_one_line_reason(caught.value)


# One file per input format the previews read (previews.imaging.formats.INPUT_FORMATS), all valid.
SUPPORTED_SAMPLES = [
    "hopper.jpg", "hopper.png", "hopper.gif", "hopper.webp", "hopper.tif", "hopper.bmp", "hopper.ppm",
    "hopper.psd", "hopper.ico", "test-card-lossless.jp2", "rgb32rle.tga", "sugarshack.mpo", "avif/hopper.avif",
]


@pytest.mark.parametrize("name", SUPPORTED_SAMPLES)
def test_every_input_format_renders(pillow_images, name):
    with Image.open(pillow_images / name) as source:
        width, height = source.size
    scale = min(64 / width, 64 / height, 1.0)  # fit, never enlarged
    rendered = render(pillow_images / name, "rs:fit:64:64")
    assert decoded(rendered).size == (rendered.width, rendered.height) == (round(width * scale), round(height * scale))


MAX_FILES = 1500


def test_no_file_in_pillows_suite_raises_anything_but_a_preview_error(pillow_images):
    files = sorted(path for path in pillow_images.rglob("*") if path.is_file())
    assert 500 < len(files) <= MAX_FILES  # bounded: this loop stays a few seconds long
    problems = []
    outcomes = {"rendered": 0, 415: 0, 422: 0}
    for path in files:
        name = str(path.relative_to(pillow_images))
        try:
            rendered = render(path, "rs:fit:64:64")
        except PreviewError as error:
            if error.status not in (415, 422) or not error.reason or "\n" in error.reason:
                problems.append(f"{name}: {type(error).__name__} {error.status} {error.reason!r}")
            outcomes[error.status] = outcomes.get(error.status, 0) + 1
            continue
        except Exception as error:  # the point of the test: nothing else may escape
            problems.append(f"{name}: {type(error).__name__}: {error}")
            continue
        outcomes["rendered"] += 1
        with Image.open(io.BytesIO(rendered.data)) as image:
            if max(image.size) > 64 or image.size != (rendered.width, rendered.height):
                problems.append(f"{name}: rendered {image.size}, said {rendered.width}x{rendered.height}")
    assert not problems, "\n".join(problems)
    # Pillow's suite is mostly valid images in formats previews read: most must render.
    assert outcomes["rendered"] > len(files) // 2, outcomes


# --- deadline ----------------------------------------------------------------------------------------


def test_a_past_deadline_is_a_render_timeout(photo_jpeg):
    with pytest.raises(RenderDeadlinePassed) as caught:
        render(photo_jpeg, "rs:fit:100:100", seconds=-1)
    assert caught.value.status == 504
    assert_one_line_reason(caught.value)


def test_a_generous_deadline_renders(photo_jpeg):
    assert render(photo_jpeg, "rs:fit:100:100", seconds=60).width == 100


def test_pillow_refuses_beyond_its_own_bomb_limit_too():
    # Test the test's premise: above PILLOW_REFUSES pixels, Pillow itself raises on open.
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(jpeg_claiming(20000, 10001)))
    assert PILLOW_REFUSES < 20000 * 10001

"""The image converter's limits and bad input: 422 from the header with bounded memory, 415
with a one-line reason for damaged files and missing pages, 504 past the deadline, never anything else.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from previews.config import RenderConfig
from previews.conversions.still import ConvertOptions
from previews.errors import InvalidOption, PreviewError, RenderDeadlinePassed, TooManyPixels, UnsupportedImage
from tests.support.conversions import convert, multipage_tiff, result_image, tiff, tiff_claiming
from tests.support.images import encoded, quadrants

REPO = Path(__file__).resolve().parent.parent
ONE_MP = RenderConfig(max_src_resolution=1_000_000)


def assert_one_line_reason(error: PreviewError) -> None:
    assert error.reason and "\n" not in error.reason and "Traceback" not in error.reason
    assert str(error) == error.reason


# --- resolution, from the header ---------------------------------------------------------------------


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (8000, 7000)],
                         ids=["10 GP (Pillow refuses too)", "56 MP (only our limit)"])
def test_a_tiff_over_the_limit_is_refused_from_its_header_quickly(width, height):
    data = tiff_claiming(width, height)
    assert len(data) < 200
    started = time.monotonic()
    with pytest.raises(TooManyPixels) as caught:
        convert(data)
    assert time.monotonic() - started < 1
    assert caught.value.status == 422
    assert_one_line_reason(caught.value)


def test_the_header_claim_is_what_is_refused():
    # Control: the same file claiming 4x4 (its 16 bytes of pixels) converts; at the limit it isn't refused.
    assert result_image(convert(tiff_claiming(4, 4))).size == (4, 4)
    with pytest.raises(UnsupportedImage):  # 1 MP allowed, but 16 bytes can't fill it
        convert(tiff_claiming(1000, 1000), ONE_MP)
    with pytest.raises(TooManyPixels):
        convert(tiff_claiming(1001, 1000), ONE_MP)


def test_each_page_is_checked_against_the_limit():
    small, big = Image.new("L", (100, 100), 10), Image.new("L", (2000, 1000), 200)
    data = multipage_tiff([small, big], compression="tiff_lzw")
    assert convert(data, ONE_MP).width == 100
    with pytest.raises(TooManyPixels):
        convert(data, ONE_MP, page=1)


# A fresh interpreter reports how much its peak resident memory (VmHWM) grew over one conversion.
# Not ru_maxrss: Linux carries the forking pytest's peak over into the child's.
MEASURED_CONVERSION = """
import json, re, sys
from pathlib import Path
from previews.errors import PreviewError
from tests.support.conversions import convert

def peak_mb():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)) / 1024

baseline = peak_mb()
try:
    outcome = "converted " + convert(Path(sys.argv[1])).media_type
except PreviewError as error:
    outcome = f"{type(error).__name__} {error.status}"
print(json.dumps({"outcome": outcome, "grew_mb": peak_mb() - baseline}))
"""


def convert_in_fresh_process(path: Path) -> dict:
    """Convert in a new interpreter and report its outcome and how much its peak memory grew."""
    result = subprocess.run([sys.executable, "-c", MEASURED_CONVERSION, str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_huge_tiff_is_refused_with_bounded_memory(tmp_path):
    path = tmp_path / "huge.tif"
    path.write_bytes(tiff_claiming(100_000, 100_000))  # 10 GB of pixels if decoded
    result = convert_in_fresh_process(path)
    assert result["outcome"] == "TooManyPixels 422"
    assert result["grew_mb"] < 20, result


def test_the_memory_probe_sees_a_real_conversion(tmp_path):
    # Control for the test above: an allowed 16 MP grey TIFF must show at least its decoded 16 MB.
    path = tmp_path / "big.tif"
    path.write_bytes(tiff(Image.new("L", (4000, 4000), 100), compression="tiff_lzw"))
    result = convert_in_fresh_process(path)
    assert result["outcome"] == "converted image/png"
    assert result["grew_mb"] > 12, result


# --- bad input ---------------------------------------------------------------------------------------


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


BAD_INPUT = {
    "not an image": lambda: b"this is a text file, not a picture\n" * 10,
    "empty": lambda: b"",
    "truncated LZW TIFF": lambda: truncated(tiff(quadrants(), compression="tiff_lzw")),
    "truncated raw TIFF": lambda: truncated(tiff(quadrants())),
    "TIFF header only": lambda: tiff(quadrants())[:8],
    "TIFF with its strip offset past the end": lambda: tiff_claiming(4, 4)[:-16],
    "truncated JPEG 2000": lambda: truncated(encoded(quadrants(), "JPEG2000")),
    "truncated BMP": lambda: truncated(encoded(quadrants(), "BMP")),
}


@pytest.mark.parametrize("kind", list(BAD_INPUT))
def test_bad_input_is_a_415_with_a_one_line_reason(kind):
    with pytest.raises(UnsupportedImage) as caught:
        convert(BAD_INPUT[kind]())
    assert caught.value.status == 415
    assert_one_line_reason(caught.value)


MAX_FILES = 1500


def test_no_file_in_pillows_suite_raises_anything_but_a_preview_error(pillow_images):
    files = sorted(path for path in pillow_images.rglob("*") if path.is_file())
    assert 500 < len(files) <= MAX_FILES  # bounded: this loop stays a few seconds long
    problems = []
    converted = 0
    for path in files:
        try:
            result = convert(path)
        except PreviewError as error:
            if error.status not in (415, 422) or not error.reason or "\n" in error.reason:
                problems.append(f"{path.name}: {type(error).__name__} {error.status} {error.reason!r}")
            continue
        except Exception as error:  # the point of the test: nothing else may escape
            problems.append(f"{path.name}: {type(error).__name__}: {error}")
            continue
        converted += 1
        if result.data is not None:
            result_image(result)  # the bytes are the format and size they claim
    assert not problems, "\n".join(problems)
    assert converted > len(files) // 2, converted


# --- pages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source, pages", [
    (lambda: multipage_tiff([Image.new("L", (8, 8), shade) for shade in (0, 100, 200)]), "3 pages, 0 to 2"),
    (lambda: tiff(quadrants()), "1 page, page 0"),
    (lambda: encoded(quadrants(), "JPEG"), "1 page, page 0"),
], ids=["3-page TIFF", "TIFF", "JPEG"])
def test_a_page_that_does_not_exist_is_a_415_naming_the_pages(source, pages):
    with pytest.raises(UnsupportedImage) as caught:
        convert(source(), page=5)
    assert caught.value.reason == f"page 5 doesn't exist: the source has {pages}"


def test_a_psd_has_one_page_its_composite(pillow_images):
    with Image.open(pillow_images / "hopper.psd") as psd:
        assert psd.n_frames > 1  # test the test: Pillow counts its layers as frames
    with pytest.raises(UnsupportedImage, match="the source has 1 page"):
        convert(pillow_images / "hopper.psd", page=1)


@pytest.mark.parametrize("options", [{"page": -1}, {"quality": 0}, {"quality": 101}])
def test_malformed_options_are_a_400(options):
    with pytest.raises(InvalidOption) as caught:
        ConvertOptions(**options)
    assert caught.value.status == 400


# --- deadline ----------------------------------------------------------------------------------------


def test_a_past_deadline_is_a_504():
    with pytest.raises(RenderDeadlinePassed) as caught:
        convert(tiff(quadrants()), seconds=-1)
    assert caught.value.status == 504
    assert_one_line_reason(caught.value)


def test_the_deadline_is_checked_while_walking_pages():
    data = multipage_tiff([Image.new("L", (8, 8), shade) for shade in range(0, 250, 10)])
    with pytest.raises(RenderDeadlinePassed, match="page 1"):
        convert(data, page=20, seconds=-1)
    assert convert(data, page=20).width == 8


def test_a_browser_ready_source_is_not_decoded():
    # A JPEG whose data is cut short still passes through: only its header was read.
    data = encoded(quadrants(), "JPEG")
    assert convert(data[: len(data) // 2]).data is None

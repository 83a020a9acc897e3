"""previews.imaging.dc_scans: a progressive JPEG decoded at 1/8 from its DC scans alone.

The cut must decode to the very pixels of the whole file at 1/8 (real photos, and files Pillow writes
in every sampling, mode and restart interval), must not read the AC scans at all, and must step aside
(None) for anything it does not know, leaving the whole file's decode to report it.
"""

import io
import random
import struct
from pathlib import Path

import pytest
from PIL import Image

import previews.imaging.decode as decode
from previews.errors import PreviewError, UnsupportedImage
from previews.imaging.dc_scans import dc_scans_only
from tests.support.images import decoded, encoded, named_photo, render

PROGRESSIVE_PHOTOS = ["infinite-sea-16mp.jpg", "plasma-colorfulcups.jpg", "mate-freshflower.jpg"]
UNBOUNDED = 1 << 30


def eighth(data: bytes | io.BytesIO) -> Image.Image:
    """The image decoded at 1/8 (Pillow's draft), as the renders decode it."""
    image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
    image.load()
    return image


def cut(data: bytes, most_bytes: int = UNBOUNDED) -> io.BytesIO | None:
    return dc_scans_only(io.BytesIO(data), most_bytes)


def scans(data: bytes) -> list[tuple[int, int, int]]:
    """Each scan's (offset of its SOS marker, first coefficient, offset where its data ends)."""
    found, at = [], 2
    while data[at + 1] != 0xD9:
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        if data[at + 1] != 0xDA:
            at += 2 + length
            continue
        start = data[at + 4 + 2 * data[at + 4] + 1]
        end = at + 2 + length
        while not (data[end] == 0xFF and data[end + 1] not in (0, *range(0xD0, 0xD8))):
            end += 1
        found.append((at, start, end))
        at = end
    return found


@pytest.fixture(scope="module")
def sample(photos: list[Path]) -> Image.Image:
    with Image.open(named_photo(photos, "mate-blinds.jpg")) as image:
        return image.convert("RGB")


@pytest.mark.parametrize("name", PROGRESSIVE_PHOTOS)
def test_a_photo_decodes_from_its_dc_scans_to_the_same_pixels_as_from_the_whole_file(
        photos: list[Path], name: str) -> None:
    data = named_photo(photos, name).read_bytes()
    dc = cut(data)
    assert dc is not None
    assert len(dc.getvalue()) < len(data) / 2
    whole, part = eighth(data), eighth(dc)
    assert part.size == whole.size and part.tobytes() == whole.tobytes()


@pytest.mark.parametrize("mode, subsampling", [("RGB", 0), ("RGB", 1), ("RGB", 2), ("L", 0), ("CMYK", 0)])
@pytest.mark.parametrize("size", [(1001, 777), (17, 9), (1700, 1300)])  # 1,700 x 1,300: 34,600 blocks, two runs
@pytest.mark.parametrize("restarts", [{}, {"restart_marker_blocks": 7}, {"restart_marker_rows": 1}])
def test_every_sampling_mode_and_restart_interval_decodes_to_the_same_pixels(
        sample: Image.Image, mode: str, subsampling: int, size: tuple[int, int], restarts: dict[str, int]) -> None:
    data = encoded(sample.resize(size).convert(mode), "JPEG", progressive=True, subsampling=subsampling,
                   quality=90, **restarts)
    dc = cut(data)
    assert dc is not None
    whole, part = eighth(data), eighth(dc)
    assert part.mode == whole.mode == mode and part.tobytes() == whole.tobytes()


def test_the_ac_scans_of_a_component_decoded_from_its_dc_are_left_out(sample: Image.Image) -> None:
    data = encoded(sample, "JPEG", progressive=True, subsampling=0, quality=90)
    assert sum(start > 0 for _, start, _ in scans(data)) >= 6
    dc = cut(data)
    assert dc is not None
    # What is left of the AC: one empty scan per component, its header and an end-of-band run or two.
    left = [(end - at) for at, start, end in scans(dc.getvalue()) if start > 0]
    assert len(left) == 3 and max(left) < 24
    assert len(dc.getvalue()) < len(data) / 3


def test_a_render_at_an_eighth_never_reads_the_ac_scans(sample: Image.Image) -> None:
    # Every AC scan pointed at a Huffman table the file never defines: decoding them fails.
    data = bytearray(encoded(sample, "JPEG", progressive=True, subsampling=0, quality=90))
    for at, start, _ in scans(bytes(data)):
        if start > 0:
            data[at + 6] = 0x03  # the scan's one component: AC table 3
    with pytest.raises(OSError):
        eighth(bytes(data))
    assert decoded(render(bytes(data), "rs:fit:100:0")).width == 100
    with pytest.raises(UnsupportedImage):
        render(bytes(data), "rs:fit:400:0")  # 1/4 reads every scan


def test_subsampled_chroma_keeps_its_ac_scans(sample: Image.Image) -> None:
    # 4:2:0 chroma comes out of a 2x2 IDCT at 1/8, which reads AC coefficients: its scans stay.
    data = encoded(sample, "JPEG", progressive=True, subsampling=2, quality=90)
    ac_bytes = sum(end - at for at, start, end in scans(data) if start > 0)
    dc = cut(data)
    assert dc is not None
    kept_ac = sum(end - at for at, start, end in scans(dc.getvalue()) if start > 0)
    assert 0 < kept_ac < ac_bytes / 2


@pytest.mark.parametrize("damage", ["baseline", "arithmetic", "truncated", "not a jpeg", "bound", "no frame",
                                    "many segments"])
def test_what_the_cut_does_not_know_gives_none(sample: Image.Image, damage: str) -> None:
    data = encoded(sample, "JPEG", progressive=damage != "baseline", quality=90)
    most = UNBOUNDED
    if damage == "arithmetic":
        data = data.replace(b"\xff\xc2", b"\xff\xca", 1)
    elif damage == "truncated":
        data = data[: len(data) // 3]
    elif damage == "not a jpeg":
        data = b"GIF89a" + data
    elif damage == "bound":
        most = len(cut(data).getvalue()) - 1  # type: ignore[union-attr]
    elif damage == "many segments":  # 2,000 empty comments before the first scan: valid, but not for the cut
        first_scan = data.index(b"\xff\xda")
        commented = data[:first_scan] + b"\xff\xfe\x00\x02" * 2000 + data[first_scan:]
        assert eighth(commented).tobytes() == eighth(data).tobytes()
        data = commented
    elif damage == "no frame":
        frame = data.index(b"\xff\xc2")
        data = data[:frame] + data[frame + 2 + struct.unpack(">H", data[frame + 2:frame + 4])[0]:]
    assert cut(data, most) is None


@pytest.mark.parametrize("spec", ["rs:fit:100:0", "rs:fill:80:80/g:sm/f:webp", "rs:fit:120:0/rot:90/f:png"])
def test_a_render_at_an_eighth_gives_the_same_bytes_as_from_the_whole_file(
        photos: list[Path], spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = named_photo(photos, "plasma-summer-1am.jpg")  # 2560 x 1600, progressive, with EXIF
    from_dc = render(path, spec).data
    monkeypatch.setattr(decode, "DC_SCANS_MOST_BYTES", 0)  # no cut is small enough: the whole file
    assert render(path, spec).data == from_dc


def test_the_callers_file_is_given_back_after_the_decode(photos: list[Path]) -> None:
    with named_photo(photos, "plasma-summer-1am.jpg").open("rb") as file:
        image = Image.open(file)
        image.draft(image.mode, (320, 200))
        assert decode.reads_dc_scans_only(image)
        decode.load_pixels(image)
        assert image.fp is file and image.size == (320, 200)


def test_damaged_progressive_files_at_an_eighth_are_refused_or_rendered_never_anything_else(
        sample: Image.Image) -> None:
    data = encoded(sample.resize((400, 300)), "JPEG", progressive=True, quality=90)
    rng = random.Random(7)
    outcomes = set()
    for _ in range(150):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(2, len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            del damaged[rng.randrange(len(damaged) // 2, len(damaged)):]
        dc_scans_only(io.BytesIO(bytes(damaged)), UNBOUNDED)  # never raises
        try:
            render(bytes(damaged), "rs:fit:40:0")
            outcomes.add("rendered")
        except PreviewError as error:
            assert 400 <= error.status < 500
            outcomes.add(type(error).__name__)
    assert "rendered" in outcomes and UnsupportedImage.__name__ in outcomes


def test_a_cut_over_its_bound_a_pixel_is_not_made_and_the_whole_file_is_decoded(sample: Image.Image) -> None:
    # 4:2:0 at quality 100: the chroma's AC scans, kept, make the cut ~12 bytes a decoded pixel.
    data = encoded(sample, "JPEG", progressive=True, subsampling=2, quality=100)
    image = Image.open(io.BytesIO(data))
    image.draft(image.mode, (image.width // 8, image.height // 8))
    bound = decode.dc_scans_bound(image)
    assert bound == decode.DC_SCANS_BYTES_PER_PIXEL * image.width * image.height
    assert len(cut(data).getvalue()) > bound  # type: ignore[union-attr]
    assert dc_scans_only(io.BytesIO(data), bound) is None
    assert decode.load_pixels(image).tobytes() == eighth(data).tobytes()

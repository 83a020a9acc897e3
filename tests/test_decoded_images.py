"""previews.imaging.decoded: a decode kept for the next render of the same file at the same scale.

Real photos rendered in this process with keeping on and off: the bytes must not change, a kept decode
must be used only for the very file it came from, and the bound must hold.
"""

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from previews.config import RenderConfig
from previews.errors import DecodeNotKept
from previews.imaging.decode import open_source, shrink_on_load
from previews.imaging.decoded import SHARED_DECODE_PIXELS, DecodedImages, keep_decoded_images
from previews.imaging.formats import FORMATS
from previews.imaging.job import Job
from previews.render import Rendered, deadline_after, prepare_render
from tests.support.images import named_photo, options, render

PHOTO = "plasma-summer-1am.jpg"  # 2560 x 1600, progressive, with EXIF
OTHER = "plasma-autumn.jpg"  # the same size, other pixels
LIMIT = 16 * 1024 * 1024


@pytest.fixture
def keeping() -> Iterator[Callable[[], DecodedImages]]:
    """Turns keeping on when called (after the test's renders with nothing kept), and off after the test."""

    def start() -> DecodedImages:
        store = keep_decoded_images(LIMIT)
        assert store is not None
        return store

    try:
        yield start
    finally:
        keep_decoded_images(0)


@pytest.mark.parametrize("template", [
    "rs:fit:{w}:0",
    "rs:fill:{w}:{w}/g:sm/f:webp",
    "rs:fit:{w}:0/f:png/strip_metadata:0",
    "rs:fit:{w}:0/rot:90/bl:2/q:50",
])
def test_the_next_size_at_the_same_scale_starts_from_the_kept_decode_with_the_same_bytes(
        template: str, photos: list[Path], keeping: Callable[[], DecodedImages], tmp_path: Path) -> None:
    path = tmp_path / PHOTO
    shutil.copyfile(named_photo(photos, PHOTO), path)
    first, second = template.format(w=150), template.format(w=50)  # both decoded at 1/8 of 2560 x 1600
    expected = [render(path, first).data, render(path, second).data]
    kept = keeping()
    got = [render(path, first).data, render(path, second).data]
    assert kept.hits == 1, "the 50 px render decoded the file again"
    assert got == expected
    # And again, with the first render's metadata on the kept image if a save had left it there.
    assert render(path, first).data == expected[0] and kept.hits == 2


def test_another_scale_is_decoded_anew(photos: list[Path], keeping: Callable[[], DecodedImages],
                                       tmp_path: Path) -> None:
    path = tmp_path / PHOTO
    shutil.copyfile(named_photo(photos, PHOTO), path)
    expected = render(path, "rs:fit:1024:0").data
    kept = keeping()
    render(path, "rs:fit:300:0")
    assert render(path, "rs:fit:1024:0").data == expected  # decoded at 1/2, not from the 1/8 decode
    assert kept.hits == 0 and kept.held > 0


def test_a_replaced_or_rewritten_original_is_never_matched(photos: list[Path], keeping: Callable[[], DecodedImages],
                                                           tmp_path: Path) -> None:
    expected_other = render(named_photo(photos, OTHER), "rs:fit:50:0").data
    expected_back = render(named_photo(photos, PHOTO), "rs:fit:51:0").data
    kept = keeping()
    path = tmp_path / "photo.jpg"
    shutil.copyfile(named_photo(photos, PHOTO), path)
    render(path, "rs:fit:300:0")
    # Replaced by rename (a new inode), as local storage and the tiers replace files.
    replacement = tmp_path / "new.jpg"
    shutil.copyfile(named_photo(photos, OTHER), replacement)
    os.replace(replacement, path)
    assert render(path, "rs:fit:50:0").data == expected_other
    # Rewritten in place (the same inode, other bytes and times).
    path.write_bytes(named_photo(photos, PHOTO).read_bytes())
    assert render(path, "rs:fit:51:0").data == expected_back
    assert kept.hits == 0


def test_a_source_that_is_not_a_file_is_not_kept(photos: list[Path], keeping: Callable[[], DecodedImages]) -> None:
    data = named_photo(photos, PHOTO).read_bytes()
    kept = keeping()
    render(data, "rs:fit:300:0")
    render(data, "rs:fit:50:0")
    assert kept.hits == 0 and kept.held == 0


def test_the_bound_holds_and_among_equal_worth_the_least_recently_used_go_first() -> None:
    store = DecodedImages(4 * 1000 * 1000)
    images = {name: Image.new("RGB", (500, 500), colour) for name, colour in (("a", "red"), ("b", "green"),
                                                                                ("c", "blue"), ("d", "white"))}
    keys = {name: ((1, 2, 3, 4, 5, 0), 500, 500, name) for name in images}
    for name in "abc":
        store.keep(keys[name], images[name], 0.01)  # 1,000,000 bytes each (RGB is 4 bytes a pixel in Pillow)
    assert store.held == 3_000_000
    assert store.copy_of(keys["a"]) is not None  # a is now the most recently used
    store.keep(keys["d"], images["d"], 0.01)
    store.keep(((9, 9, 9, 9, 9, 0), 500, 500, "e"), Image.new("RGB", (500, 500)), 0.01)
    assert store.held <= store.limit
    assert store.copy_of(keys["b"]) is None, "the least recently used went first"
    assert store.copy_of(keys["a"]) is not None
    # One decode may take at most a quarter of the bound.
    store.keep(((7, 7, 7, 7, 7, 0), 1001, 1000, "RGB"), Image.new("RGB", (1001, 1000)), 1.0)
    assert store.copy_of(((7, 7, 7, 7, 7, 0), 1001, 1000, "RGB")) is None
    # A copy is handed out, never the kept image itself.
    first, second = store.copy_of(keys["a"]), store.copy_of(keys["a"])
    assert first is not None and second is not None and first is not second
    first.paste((0, 0, 0), (0, 0, 500, 500))
    assert second.getpixel((0, 0)) == (255, 0, 0)


def test_a_costly_decode_outlasts_cheaper_ones_kept_after_it_but_not_for_ever() -> None:
    store = DecodedImages(4 * 1000 * 1000)
    costly = ((1, 1, 1, 1, 1, 0), 500, 500, "RGB")
    store.keep(costly, Image.new("RGB", (500, 500)), 0.3)  # a 16 MP progressive photo's decode
    cheap = [((2, n, 1, 1, 1, 0), 500, 500, "RGB") for n in range(8)]
    for key in cheap:  # one-off decodes of baseline photos, each as large and 30 times cheaper
        store.keep(key, Image.new("RGB", (500, 500)), 0.01)
    assert store.copy_of(costly) is not None, "eight cheaper decodes pushed out the costly one"
    assert sum(store.copy_of(key) is not None for key in cheap) == 3 and store.held == 4_000_000
    # The floor rises with each eviction, by a cheap decode's worth: some 30 rounds of three cheap decodes
    # later, an unused costly one falls behind them.
    for n in range(200):
        store.keep(((3, n, 1, 1, 1, 0), 500, 500, "RGB"), Image.new("RGB", (500, 500)), 0.01)
    assert store.copy_of(costly) is None


@pytest.mark.parametrize("photo, spec, decoded", [
    ("infinite-sea-16mp.jpg", "rs:fit:50:0", (512, 512)),  # 4096 x 4096: 1/8, which reads only the DC scans
    ("infinite-sea-16mp.jpg", "rs:fit:1024:0", (1024, 1024)),
    ("infinite-sea-16mp.jpg", "rs:fit:600:0", (1024, 1024)),  # needs 1/4: the shared scale
    ("plasma-summer-1am.jpg", "rs:fit:500:0", (1280, 800)),  # 2560 x 1600: 1/2, not 1/4
    ("plasma-summer-1am.jpg", "rs:fit:300:0", (320, 200)),  # 1/8 still
    ("mate-freshflower.jpg", "rs:fit:250:0", (800, 602)),  # 1600 x 1203: the odd side rounds up
    ("mate-freshflower.jpg", "rs:fit:1024:0", (1600, 1203)),  # a request that needs more: its own scale
    ("kleiber-20mp.jpg", "rs:fit:1000:0", (1507, 848)),  # baseline: its own scale, 1/4
])
def test_a_progressive_jpeg_decodes_at_the_shared_scale_unless_it_can_at_an_eighth(
        photos: list[Path], photo: str, spec: str, decoded: tuple[int, int]) -> None:
    config = RenderConfig(shared_decode_pixels=SHARED_DECODE_PIXELS)
    with named_photo(photos, photo).open("rb") as file:
        image, facts = open_source(file, config.max_src_resolution)
        job = Job(options(spec, config), facts, FORMATS["jpeg"], 80, deadline_after(30))
        shrink_on_load(image, job, config.shared_decode_pixels)
        assert image.size == decoded
        image.load()  # and the decoder does decode at that size
        assert image.size == decoded


def test_a_srcset_of_a_progressive_photo_decodes_once_a_scale(
        photos: list[Path], keeping: Callable[[], DecodedImages], tmp_path: Path) -> None:
    path = tmp_path / PHOTO
    shutil.copyfile(named_photo(photos, PHOTO), path)
    config = RenderConfig(shared_decode_pixels=SHARED_DECODE_PIXELS)
    # 1/2 for 1,024 and 500 px, 1/8 (the DC scans) for 300 and 50 px.
    sizes = ("rs:fit:1024:0", "rs:fit:300:0", "rs:fit:500:0", "rs:fit:50:0")
    expected = [render(path, spec, config).data for spec in sizes]
    kept = keeping()
    assert [render(path, spec, config).data for spec in sizes] == expected
    assert kept.hits == 2, "a size decoded the photo again at a scale already decoded"
    assert kept.held == (1280 * 800 + 320 * 200) * 4


def test_a_render_from_kept_pixels_only_never_decodes(photos: list[Path], keeping: Callable[[], DecodedImages],
                                                       tmp_path: Path) -> None:
    path = tmp_path / PHOTO
    shutil.copyfile(named_photo(photos, PHOTO), path)
    config = RenderConfig()
    expected = render(path, "rs:fit:50:0", config).data
    kept = keeping()

    def from_kept_only() -> Rendered:
        with path.open("rb") as file:
            prepared = prepare_render(file, options("rs:fit:50:0", config), config, deadline_after(30), True)
            try:
                assert prepared.peak_bytes == prepared.from_kept_bytes < prepared.plan.peak_bytes
                return prepared.run()
            finally:
                prepared.close()

    with pytest.raises(DecodeNotKept):
        from_kept_only()
    assert kept.held == 0, "it decoded the photo"
    render(path, "rs:fit:300:0", config)  # the same 1/8 decode, kept now
    assert from_kept_only().data == expected and kept.hits == 1

"""The render pipeline against independent references made here with plain Pillow.

Golden images are never stored: each reference is computed from the full-resolution, upright decode
with ImageOps.fit or Image.resize, and compared perceptually. The negative controls prove the
threshold would catch a crop moved by gravity or a wrong scale.
"""

import io
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageOps

from previews.config import RenderConfig
from previews.imaging.decode import DECODE_BLOCK, load_pixels, open_source, shrink_on_load
from previews.imaging.formats import FORMATS
from previews.imaging.job import Job
from previews.render import deadline_after
from tests.support.images import decoded, encoded, named_photo, options, render, upright_photo
from tests.support.perceptual import colour_distance, edge_energy, mean_abs_diff, mean_colour

LANCZOS = Image.Resampling.LANCZOS
# Photos of varied content and size (1.3 to 20 MP; one greyscale); names from tests/corpus/make_photos.sh.
GOLDEN_PHOTOS = ["mate-greenmeadow.jpg", "mate-dune.jpg", "plasma-grey.jpg", "kleiber-20mp.jpg"]
# Mean absolute difference (0..255), at half the output size, allowed between a render and its reference:
# JPEG q80, DCT scaling and Pillow's reducing_gap stay under it; a crop off by 10 px does not.
GOLDEN_LIMIT = 7.0
# A render must be this close to the region it should show (sources are q95 JPEGs: no DCT scaling).
REGION_LIMIT = 4.0
WHITE = (255, 255, 255)


@pytest.fixture(scope="module")
def full_decodes(photos: list[Path]) -> dict[str, Image.Image]:
    """Each golden photo decoded in full and made upright, with plain Pillow."""
    return {name: upright_photo(named_photo(photos, name)) for name in GOLDEN_PHOTOS}


def expected_reference(full: Image.Image, spec: str) -> Image.Image:
    """What `spec` means, computed from imgproxy's documented rules with plain Pillow."""
    width, height = full.size
    kind, box_w, box_h = spec.split(":")[1:4]
    box_w, box_h = int(box_w), int(box_h)
    if kind == "fill" and box_w and box_h:
        return ImageOps.fit(full, (box_w, box_h), LANCZOS)
    scale = box_w / width if box_w else box_h / height  # one side given: the other follows the aspect ratio
    if kind == "fit":
        scale = min(box_w / width, box_h / height, 1.0)
    return full.resize((round(width * scale), round(height * scale)), LANCZOS)


GOLDEN_SPECS = ["rs:fill:300:300", "rs:fill:300:0:0", "rs:fill:0:256:0", "rs:fit:1024:1024"]


@pytest.mark.parametrize("spec", GOLDEN_SPECS)
@pytest.mark.parametrize("name", GOLDEN_PHOTOS)
def test_render_matches_a_plain_pillow_reference(photos, full_decodes, name, spec):
    reference = expected_reference(full_decodes[name], spec)
    got = decoded(render(named_photo(photos, name), spec))
    half = (reference.width // 2, reference.height // 2)
    assert mean_abs_diff(got, reference, size=half) < GOLDEN_LIMIT


@pytest.mark.parametrize("spec", GOLDEN_SPECS)
@pytest.mark.parametrize("name", GOLDEN_PHOTOS)
def test_output_size_follows_the_source_not_its_shrunk_decode(photos, full_decodes, name, spec):
    # imgproxy computes the result size from the source's size; shrink-on-load must not change it.
    reference = expected_reference(full_decodes[name], spec)
    rendered = render(named_photo(photos, name), spec)
    assert (rendered.width, rendered.height) == decoded(rendered).size == reference.size


@pytest.mark.parametrize("name", GOLDEN_PHOTOS)
def test_the_golden_limit_rejects_wrong_crops_and_scales(full_decodes, name):
    # Negative controls: plausible mistakes measured with the same measure and limit as the golden test.
    full = full_decodes[name]
    width, height = full.size
    reference = ImageOps.fit(full, (300, 300), LANCZOS)
    mistakes = {
        "gravity ignored (west instead of centre)": ImageOps.fit(full, (300, 300), LANCZOS, centering=(0, 0.5)),
        "off by a quarter": ImageOps.fit(full, (300, 300), LANCZOS, centering=(0.25, 0.5)),
        "10 px shift": ImageChops.offset(reference, 10, 0),
        "15% too large": ImageOps.fit(full.crop((width * 3 // 40, height * 3 // 40, width * 37 // 40,
                                                 height * 37 // 40)), (300, 300), LANCZOS),
    }
    for mistake, wrong in mistakes.items():
        assert mean_abs_diff(wrong, reference, size=(150, 150)) > GOLDEN_LIMIT, mistake


# --- gravity -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(photos: list[Path]) -> Image.Image:
    """A 400x400 photo crop with detail everywhere."""
    return ImageOps.fit(upright_photo(named_photo(photos, "mate-ladybird.jpg"), 900), (400, 400), LANCZOS)


@pytest.fixture(scope="module")
def scene_jpeg(scene: Image.Image) -> bytes:
    return encoded(scene, "JPEG", quality=95)


# The scene is scaled to 200x200 for these boxes; each case is the region imgproxy's rules pick.
GRAVITY_CASES = {
    "landscape": ("rs:fill:200:100", {
        "g:no": (0, 0), "g:so": (0, 100), "g:ce": (0, 50),
        "g:no:0:30": (0, 30),           # compass offsets of 1 or more are pixels, inwards
        "g:fp:0.1:0.65": (0, 80),       # the focus point is the centre of the result, kept inside
        "g:fp:0.1:0.9": (0, 100),       # ... and clamped to the image
    }),
    "portrait": ("rs:fill:100:200", {
        "g:we": (0, 0), "g:ea": (100, 0), "g:ce": (50, 0), "g:fp:0.4:0.5": (30, 0), "g:ea:20:0": (80, 0),
    }),
}


@pytest.mark.parametrize("shape, gravity", [(shape, gravity) for shape, (_, cases) in GRAVITY_CASES.items()
                                            for gravity in cases])
def test_gravity_picks_the_region(scene, scene_jpeg, shape, gravity):
    resize, cases = GRAVITY_CASES[shape]
    box_w, box_h = (int(side) for side in resize.split(":")[2:4])
    scaled = scene.resize((200, 200), LANCZOS)
    regions = {name: scaled.crop((left, top, left + box_w, top + box_h)) for name, (left, top) in cases.items()}
    got = decoded(render(scene_jpeg, f"{resize}/{gravity}"))
    assert got.size == (box_w, box_h)
    distances = {name: mean_abs_diff(got, region) for name, region in regions.items()}
    assert distances[gravity] < REGION_LIMIT, distances
    nearest = min(distances, key=distances.__getitem__)
    assert distances[nearest] == distances[gravity], distances


def test_gravity_offsets_below_one_are_fractions(scene, scene_jpeg):
    # imgproxy (processing/calc_position.go, docs "Gravity"): "When x_offset or y_offset is less than 1,
    # imgproxy treats it as a relative value" of the image's side: 0.15 of 200 px is 30 px.
    scaled = scene.resize((200, 200), LANCZOS)
    got = decoded(render(scene_jpeg, "rs:fill:200:100/g:no:0:0.15"))
    assert mean_abs_diff(got, scaled.crop((0, 30, 200, 130))) < REGION_LIMIT
    assert mean_abs_diff(got, scaled.crop((0, 0, 200, 100))) > REGION_LIMIT


def test_focus_point_places_a_crop_in_both_directions(scene, scene_jpeg):
    # fp:0.3:0.6 centres the 200x200 crop on (120, 240) of the 400x400 source.
    got = decoded(render(scene_jpeg, "c:200:200/g:fp:0.3:0.6"))
    assert mean_abs_diff(got, scene.crop((20, 140, 220, 340))) < REGION_LIMIT


def random_blocks(size: tuple[int, int], block: int = 6) -> Image.Image:
    """Detail everywhere: blocks of random colours (seeded, so every run sees the same picture)."""
    chooser = random.Random(3)
    image = Image.new("RGB", size)
    for top in range(0, size[1], block):
        for left in range(0, size[0], block):
            colour = (chooser.randrange(256), chooser.randrange(256), chooser.randrange(256))
            image.paste(colour, (left, top, left + block, top + block))
    return image


@pytest.mark.parametrize("vertical", [False, True], ids=["left-right", "top-bottom"])
def test_smart_gravity_keeps_the_detailed_half(vertical):
    source = Image.new("RGB", (400, 300), (128, 128, 128))
    source.paste(random_blocks((200, 300)), (200, 0))
    size = "150:300"
    if vertical:
        source, size = source.transpose(Image.Transpose.TRANSPOSE), "300:150"
    data = encoded(source, "JPEG", quality=95)
    got = decoded(render(data, f"rs:fill:{size}/g:sm"))
    centred = decoded(render(data, f"rs:fill:{size}/g:ce"))
    # The edge of the result nearest the flat half: detailed with smart gravity, flat with the centre.
    near_flat = (0, 0, 20, 300) if not vertical else (0, 0, 300, 20)
    assert edge_energy(got.crop(near_flat)) > 5
    assert edge_energy(centred.crop(near_flat)) < 1  # negative control: the measure sees the flat part


# --- crop --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, box", [
    ("c:0.5:0.5:nowe", (0, 0, 200, 200)),
    ("c:200:100:soea", (200, 300, 400, 400)),
    ("c:0.5:0:ea", (200, 0, 400, 400)),
    ("c:200:200/g:so", (100, 200, 300, 400)),     # without its own gravity, crop uses the main one
    ("c:120:80:nowe:30:40", (30, 40, 150, 120)),  # with pixel offsets
])
def test_crop_takes_the_region_before_resizing(scene, scene_jpeg, spec, box):
    got = decoded(render(scene_jpeg, spec))
    region = scene.crop(box)
    assert got.size == region.size
    assert mean_abs_diff(got, region) < REGION_LIMIT


def test_crop_then_resize(scene, scene_jpeg):
    got = decoded(render(scene_jpeg, "c:0.5:0.5/rs:fit:100:100"))
    assert mean_abs_diff(got, scene.crop((100, 100, 300, 300)).resize((100, 100), LANCZOS)) < REGION_LIMIT


@pytest.mark.parametrize("spec, box", [
    ("c:1000:1000/rs:fit:100:100", "centre"),
    ("c:1000:1000:nowe:500:300/rs:fit:100:100", (500, 300, 1500, 1300)),
])
def test_crop_in_pixels_means_source_pixels_even_when_shrunk_on_load(photos, full_decodes, spec, box):
    # A 20 MP JPEG to 100 px is decoded at 1/8 scale: the crop must still be 1000 *source* pixels
    # (imgproxy's scale_on_load.go scales crop sizes and offsets by the shrink).
    full = full_decodes["kleiber-20mp.jpg"]
    if box == "centre":
        left, top = (full.width - 1000 + 1) // 2, (full.height - 1000 + 1) // 2
        box = (left, top, left + 1000, top + 1000)
    reference = full.crop(box).resize((100, 100), LANCZOS)
    got = decoded(render(named_photo(photos, "kleiber-20mp.jpg"), spec))
    assert got.size == (100, 100)
    assert mean_abs_diff(got, reference) < GOLDEN_LIMIT


# --- padding and extend ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide_jpeg(scene: Image.Image) -> tuple[Image.Image, bytes]:
    """A 400x200 picture and its q95 JPEG."""
    picture = ImageOps.fit(scene, (400, 200), LANCZOS)
    return picture, encoded(picture, "JPEG", quality=95)


@pytest.mark.parametrize("spec, outer, at, colour", [
    ("rs:fit:100:100/pd:10:20", (140, 70), (20, 10), WHITE),
    ("rs:fit:100:100/pd:5:10:15:20/bg:0:0:255/f:png", (130, 70), (20, 5), (0, 0, 255)),
    ("rs:fit:100:100/pd:10/dpr:2", (240, 140), (20, 20), WHITE),   # padding follows dpr
])
def test_padding_surrounds_the_result(wide_jpeg, spec, outer, at, colour):
    picture, data = wide_jpeg
    got = decoded(render(data, spec))
    assert got.size == outer
    inner_w = 200 if "dpr:2" in spec else 100
    expected = picture.resize((inner_w, inner_w // 2), LANCZOS)
    # Compare 3 px inside the content's edges: JPEG bleeds the padding colour a little into them.
    content = got.crop((at[0] + 3, at[1] + 3, at[0] + expected.width - 3, at[1] + expected.height - 3))
    inner = (3, 3, expected.width - 3, expected.height - 3)
    assert mean_abs_diff(content, expected.crop(inner)) < REGION_LIMIT + 2
    # Negative control: the same comparison 2 px off the expected place fails it.
    moved = got.crop((at[0] + 5, at[1] + 3, at[0] + expected.width - 1, at[1] + expected.height - 3))
    assert mean_abs_diff(moved, expected.crop(inner)) > REGION_LIMIT + 2
    strip = (2, 1, outer[0] - 2, at[1] - 1)  # inside the top padding, clear of JPEG ringing at its edge
    assert colour_distance(mean_colour(got, strip), colour) < 6


def test_padding_is_transparent_where_the_format_keeps_alpha(wide_jpeg):
    _, data = wide_jpeg
    got = decoded(render(data, "rs:fit:100:100/pd:10/f:png")).convert("RGBA")
    assert got.size == (120, 70)
    assert got.getchannel("A").getextrema()[0] == 0
    assert got.getpixel((2, 2))[3] == 0 and got.getpixel((60, 35))[3] == 255


@pytest.mark.parametrize("spec, at", [
    ("rs:fit:400:300/ex:1", (100, 100)),
    ("rs:fit:400:300/ex:1:no", (100, 0)),
    ("rs:fit:400:300/ex:1:soea", (200, 200)),
    ("rs:fit:400:300/ex:1:we", (0, 100)),
    ("rs:fit:400:300:0:1:so", (100, 200)),    # extend and its gravity as resize's own arguments
])
def test_extend_places_a_smaller_image_by_gravity(scene, spec, at):
    small = ImageOps.fit(scene, (200, 100), LANCZOS)
    got = decoded(render(encoded(small, "JPEG", quality=95), spec))
    assert got.size == (400, 300)
    left, top = at
    assert mean_abs_diff(got.crop((left, top, left + 200, top + 100)), small) < REGION_LIMIT + 2
    # Everything around it is the background, white for JPEG (2 px kept clear of the image's edge).
    around = [(0, 0, 400, top - 2), (0, top + 102, 400, 300), (0, top, left - 2, top + 100),
              (left + 202, top, 400, top + 100)]
    bands = [band for band in around if band[2] > band[0] and band[3] > band[1]]
    assert len(bands) >= 2
    for band in bands:
        assert colour_distance(mean_colour(got, band), WHITE) < 4, band


def test_extend_is_transparent_where_the_format_keeps_alpha(scene):
    small = ImageOps.fit(scene, (200, 100), LANCZOS)
    got = decoded(render(encoded(small, "JPEG", quality=95), "rs:fit:400:300/ex:1:no/f:png")).convert("RGBA")
    assert got.size == (400, 300)
    assert got.getpixel((200, 290))[3] == 0 and got.getpixel((200, 50))[3] == 255


def test_without_extend_a_small_image_keeps_its_size(scene):
    small = ImageOps.fit(scene, (200, 100), LANCZOS)
    assert decoded(render(encoded(small, "JPEG", quality=95), "rs:fit:400:300")).size == (200, 100)


# --- filters -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_render(scene_jpeg: bytes) -> Image.Image:
    return decoded(render(scene_jpeg, "rs:fit:300:300/q:95"))


@pytest.mark.parametrize("sigma", [1, 3])
def test_blur_lowers_edge_energy(scene_jpeg, plain_render, sigma):
    blurred = decoded(render(scene_jpeg, f"rs:fit:300:300/q:95/bl:{sigma}"))
    assert blurred.size == plain_render.size
    assert edge_energy(blurred) < 0.8 * edge_energy(plain_render)
    assert mean_abs_diff(blurred, plain_render) < 25  # still the same picture


def test_stronger_blur_blurs_more(scene_jpeg):
    light, heavy = (decoded(render(scene_jpeg, f"rs:fit:300:300/q:95/bl:{sigma}")) for sigma in (1, 4))
    assert edge_energy(heavy) < edge_energy(light)


@pytest.mark.parametrize("sigma", [1, 2])
def test_sharpen_raises_edge_energy(scene_jpeg, plain_render, sigma):
    sharpened = decoded(render(scene_jpeg, f"rs:fit:300:300/q:95/sh:{sigma}"))
    assert edge_energy(sharpened) > 1.1 * edge_energy(plain_render)
    assert mean_abs_diff(sharpened, plain_render) < 15


# --- shrink on load ----------------------------------------------------------------------------------


def expected_draft_size(size: tuple[int, int], needed: tuple[int, int]) -> tuple[int, int]:
    """libjpeg's DCT scaling: the smallest of 1/1, 1/2, 1/4, 1/8 that still covers `needed`."""
    best = size
    for factor in (2, 4, 8):
        reduced = (math.ceil(size[0] / factor), math.ceil(size[1] / factor))
        if reduced[0] >= needed[0] and reduced[1] >= needed[1]:
            best = reduced
    return best


def _job(facts, spec):
    return Job(options(spec), facts, FORMATS["jpeg"], 80, deadline_after(30))


@pytest.mark.parametrize("spec, needed", [
    ("rs:fill:300:0:0", (300, 169)),       # 6028x3391 to 300 wide
    ("rs:fit:1024:1024", (1024, 576)),
    ("rs:fill:0:256:0", (455, 256)),
    ("rs:fit:4000:4000", (4000, 2250)),    # too close to the source to gain from scaling
])
def test_a_big_jpeg_is_decoded_shrunk_by_a_power_of_two(photos, spec, needed):
    config = RenderConfig()
    with named_photo(photos, "kleiber-20mp.jpg").open("rb") as file:
        image, facts = open_source(file, config.max_src_resolution)
        source_size = image.size
        assert source_size == (6028, 3391)
        shrink_on_load(image, _job(facts, spec))
        image.load()
        wanted = expected_draft_size(source_size, needed)
        assert image.size == wanted
        assert image.width >= needed[0] and image.height >= needed[1]
        if spec == "rs:fill:300:0:0":
            assert image.size == (math.ceil(6028 / 8), math.ceil(3391 / 8))  # the strongest scaling applies


def test_other_formats_are_decoded_at_full_size(scene):
    config = RenderConfig()
    with io.BytesIO(encoded(scene, "WEBP", lossless=True)) as file:
        image, facts = open_source(file, config.max_src_resolution)
        shrink_on_load(image, _job(facts, "rs:fit:40:40"))
        image.load()
        assert image.size == (400, 400)


class _CountedReads(io.FileIO):
    """A file that counts the reads made of it."""

    reads = 0

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        self.reads += 1
        return super().read(size)


def test_the_decoder_is_handed_a_large_photo_in_a_few_blocks(photos):
    """Each block is a trip back to the interpreter lock, which a render thread beside a busy event loop
    may wait for: a 6.5 MB JPEG in Pillow's own 64 KiB blocks took a hundred."""
    path = named_photo(photos, "infinite-sea-16mp.jpg")
    with _CountedReads(path) as file:
        image, _ = open_source(file, 100_000_000)
        image.draft(image.mode, (512, 512))
        before = file.reads
        load_pixels(image)
        assert image.size == (512, 512)
        assert file.reads - before <= path.stat().st_size // DECODE_BLOCK + 3


def test_a_serving_process_hands_the_interpreter_lock_over_sooner():
    probe = ("import sys\nfrom proxy.render.interpreter_lock import SWITCH_INTERVAL, hand_over_sooner\n"
             "before = sys.getswitchinterval()\nhand_over_sooner()\n"
             "print(before, sys.getswitchinterval(), SWITCH_INTERVAL)")
    before, after, wanted = map(float, subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                                      timeout=60, check=True).stdout.split())
    assert before == 0.005 and after == wanted < before

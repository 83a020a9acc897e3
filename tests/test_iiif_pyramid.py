"""Deep zoom that decodes once: an original of pyramid.MIN_PIXELS or more is made into a tile pyramid
(raw blocks at scale factors 1, 2, 4, ..., and each block's ready JPEG tile) in the converter tier by its
info.json or first IIIF request, once across worker processes; every later tile reads only the blocks it
covers, or its ready tile. Tiles from the pyramid match renders from the original, and a purge of the
original removes the pyramid with the images."""

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from previews.config import RenderConfig
from previews.iiif.pyramid.layout import MAGIC, MAGIC_1, is_pyramid
from previews.iiif.pyramid.making import prepare_pyramid
from previews.iiif.pyramid.open_pyramids import OpenPyramids
from previews.iiif.pyramid.policy import MIN_PIXELS, worth_a_pyramid
from previews.iiif.pyramid.reading import PyramidFile
from previews.iiif.render import IiifRecipe
from previews.iiif.request import parse_iiif_path
from previews.render import deadline_after
from tests.conftest import StartServer
from tests.support.http import request
from tests.support.images import encoded, quadrants
from tests.support.perceptual import mean_abs_diff
from tests.support.previews_kit import fetch_all, metric, place, poll

SIZE = (2400, 1800)  # 4.3 MP: over MIN_PIXELS
ADMIN_TOKEN = "pyramid-admin-token-0123456789abcdef"
RENDERS = "preview_proxy_render_duration_seconds_count"


def photo() -> Image.Image:
    """Four flat quadrants under fine noise: detail everywhere, and each tile's place is visible."""
    noise = Image.effect_noise(SIZE, 40).convert("RGB")
    return Image.blend(quadrants(SIZE), noise, 0.25)


def render(source: bytes, params: str) -> Image.Image:
    path = parse_iiif_path(f"3/b%2Fk/{params}")
    assert path is not None and path.image is not None
    work = IiifRecipe(path.image, key=params).prepare(io.BytesIO(source), RenderConfig(), deadline_after(30))
    try:
        return Image.open(io.BytesIO(work.run().data)).convert("RGB")
    finally:
        work.close()


def test_tiles_of_the_pyramid_match_renders_of_the_original() -> None:
    assert SIZE[0] * SIZE[1] >= MIN_PIXELS
    original = encoded(photo(), "PNG")
    made = prepare_pyramid(io.BytesIO(original), RenderConfig(), deadline_after(30))
    try:
        pyramid = made.run().data
    finally:
        made.close()
    assert pyramid is not None and is_pyramid(io.BytesIO(pyramid))
    levels = PyramidFile(io.BytesIO(pyramid)).levels
    assert [level.factor for level in levels] == [1, 2, 4, 8]
    assert (levels[0].width, levels[0].height, levels[-1].width) == (2400, 1800, 300)
    for params in ("0,0,512,512/512,/0/default.png", "1536,1024,512,512/512,/0/default.png",
                   "2048,1536,352,264/352,/0/default.png", "1024,0,1024,1024/256,/0/default.png",
                   "full/600,/0/default.png", "square/!200,200/90/gray.png", "pct:10,10,30,30/^900,/0/default.png"):
        from_pyramid, from_original = render(pyramid, params), render(original, params)
        assert from_pyramid.size == from_original.size, params
        assert mean_abs_diff(from_pyramid, from_original) < 3.0, params


def test_each_region_reads_the_smallest_level_that_still_has_its_pixels() -> None:
    made = prepare_pyramid(io.BytesIO(encoded(photo(), "JPEG")), RenderConfig(), deadline_after(30))
    try:
        pyramid = PyramidFile(io.BytesIO(made.run().data or b""))
    finally:
        made.close()
    assert pyramid.level_for((0, 0, 512, 512), (512, 512)).factor == 1
    assert pyramid.level_for((0, 0, 1024, 1024), (512, 512)).factor == 2
    assert pyramid.level_for((0, 0, 1024, 1024), (511, 511)).factor == 2
    assert pyramid.level_for((0, 0, 2400, 1800), (300, 225)).factor == 8
    assert pyramid.level_for((0, 0, 100, 100), (400, 400)).factor == 1  # an upscale reads the full level


@pytest.fixture
def tiles() -> list[str]:
    """A viewer's sweep: every 512 px tile at scale factors 1 and 2, and the smallest size."""
    paths = []
    for factor in (1, 2):
        span = 512 * factor
        for top in range(0, SIZE[1], span):
            for left in range(0, SIZE[0], span):
                width, height = min(span, SIZE[0] - left), min(span, SIZE[1] - top)
                paths.append(f"/iiif/3/gallery%2Fbig.jpg/{left},{top},{width},{height}/"
                             f"{-(-width // factor)},/0/default.jpg")
    return [*paths, "/iiif/3/gallery%2Fbig.jpg/full/300,/0/default.jpg"]


def test_the_first_request_makes_the_pyramid_once_across_workers(data_path: Path, start_server: StartServer,
                                                                   tiles: list[str]) -> None:
    place(data_path, "gallery", "big.jpg", encoded(photo(), "JPEG", quality=90))
    server = start_server(workers=2, IIIF_BUCKETS="gallery", ADMIN_TOKENS=ADMIN_TOKEN)
    answers = fetch_all(server, tiles)  # all at once, over both workers
    assert [answer.status for answer in answers] == [200] * len(tiles)
    assert metric(server, RENDERS, operation="pyramid") == 1
    assert metric(server, RENDERS, operation="iiif") == len(tiles)
    assert metric(server, "preview_proxy_cache_entries", tier="image-converter") >= 1
    # A viewer's JPEG tile is its pyramid's ready tile, not kept in the previews tier: its answer says
    # the converter tier's, a hit now; an image that needs an encode of its own is kept there.
    again = request(server.url(tiles[0]))
    assert again.headers["X-Cache"] == "HIT" and again.headers["Cache-Status"] == "preview-proxy; hit"
    assert again.body == answers[0].body and again.headers["ETag"] == answers[0].headers["ETag"]
    gray = "/iiif/3/gallery%2Fbig.jpg/0,0,512,512/512,/0/gray.jpg"
    assert request(server.url(gray)).headers["X-Cache"] == "MISS"
    poll(lambda: request(server.url(gray)).headers["X-Cache"] == "HIT" or None, "gray tile stored")
    # Purged with its original: the pyramid and every image kept.
    reply = request(server.url("/gallery/big.jpg"), "PURGE", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.status == 200, reply.body
    removed = json.loads(reply.body)["removed"]
    assert removed["image-converter"] == 1 and removed["previews"] == 1
    assert request(server.url(tiles[0])).headers["X-Cache"] == "MISS"
    assert request(server.url(gray)).headers["X-Cache"] == "MISS"
    assert metric(server, RENDERS, operation="pyramid") == 2  # made again, once


def test_ready_tiles_are_the_bytes_a_render_of_the_pyramid_makes() -> None:
    made = prepare_pyramid(io.BytesIO(encoded(photo(), "JPEG")), RenderConfig(), deadline_after(30))
    try:
        pyramid = made.run().data
    finally:
        made.close()
    read = PyramidFile(io.BytesIO(pyramid))
    assert read.ready_quality == RenderConfig().quality_for("jpeg", 0)
    tiles = 0
    for params in ("0,0,512,512/512,", "2048,1536,352,264/352,", "1024,1024,1024,776/512,", "full/300,"):
        path = parse_iiif_path(f"3/b%2Fk/{params}/0/default.jpg")
        assert path is not None and path.image is not None
        work = IiifRecipe(path.image, key=params).prepare(io.BytesIO(pyramid), RenderConfig(), deadline_after(30))
        try:
            assert work.ready is not None, params  # read in place
            made_now = replace(work, ready=None).run().data  # cut and encoded
        finally:
            work.close()
        assert work.ready == made_now, params
        tiles += 1
    gray = parse_iiif_path("3/b%2Fk/0,0,512,512/512,/0/gray.jpg")
    assert gray is not None and gray.image is not None
    work = IiifRecipe(gray.image, key="gray").prepare(io.BytesIO(pyramid), RenderConfig(), deadline_after(30))
    assert work.ready is None and tiles == 4
    work.close()


def _opened(path: Path) -> PyramidFile:
    return PyramidFile(path.open("rb"))  # closed by its holder


def test_a_held_pyramid_gives_ready_tiles_in_place_until_dropped(tmp_path: Path) -> None:
    made = prepare_pyramid(io.BytesIO(encoded(photo(), "JPEG")), RenderConfig(), deadline_after(30))
    try:
        (tmp_path / "pyramid").write_bytes(made.run().data)
    finally:
        made.close()
    quality = RenderConfig().quality_for("jpeg", 0)
    box, size = (512, 1024, 512, 512), (512, 512)
    with open(tmp_path / "pyramid", "rb") as file:
        expected = PyramidFile(file).ready_tile(box, size, quality)
    assert expected is not None
    held = OpenPyramids()
    assert held.ready_tile('"v1"', box, size, quality) is None  # not held yet
    assert held.wanted('"v1"') and not held.wanted('"v1"')  # one opening at a time
    held.keep('"v1"', _opened(tmp_path / "pyramid"), 123.0)
    assert held.ready_tile('"v1"', box, size, quality) == (expected, 123.0)
    assert held.ready_tile('"v2"', box, size, quality) is None  # another version of the source
    assert held.ready_tile('"v1"', box, size, quality + 1) is None  # not the quality it was encoded at
    assert held.ready_tile('"v1"', (256, 256, 512, 512), size, quality) is None  # not one block: rendered
    held.clear()  # a purge
    assert held.ready_tile('"v1"', box, size, quality) is None and held.wanted('"v1"')
    expiring = OpenPyramids(recheck_seconds=0.0)  # the tier is asked again once the recheck time is up
    expiring.keep('"v1"', _opened(tmp_path / "pyramid"), None)
    assert expiring.ready_tile('"v1"', box, size, quality) is None and expiring.wanted('"v1"')


def test_a_process_reads_ready_tiles_in_place_until_a_purge(data_path: Path, start_server: StartServer) -> None:
    place(data_path, "gallery", "big.jpg", encoded(photo(), "JPEG", quality=90))
    server = start_server(workers=1, IIIF_BUCKETS="gallery", ADMIN_TOKENS=ADMIN_TOKEN)
    tile = server.url("/iiif/3/gallery%2Fbig.jpg/512,0,512,512/512,/0/default.jpg")
    first = request(tile)
    assert first.status == 200 and first.headers["X-Cache"] == "MISS"
    lookups = {"tier": "image-converter", "result": "hit"}

    def read_in_place() -> bool:
        # Held open, a ready tile asks the converter tier nothing: its lookups stay where they were.
        before = metric(server, "preview_proxy_cache_requests_total", **lookups)
        again = request(tile)
        assert again.status == 200 and again.body == first.body and again.headers["ETag"] == first.headers["ETag"]
        assert again.headers["X-Cache"] == "HIT" and again.headers["Cache-Status"] == "preview-proxy; hit"
        return metric(server, "preview_proxy_cache_requests_total", **lookups) == before

    poll(read_in_place, "a ready tile read in place")
    reply = request(server.url("/gallery/big.jpg"), "PURGE", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.status == 200 and json.loads(reply.body)["removed"]["image-converter"] == 1, reply.body
    assert request(tile).headers["X-Cache"] == "MISS"  # the held pyramid went with the purge
    assert metric(server, RENDERS, operation="pyramid") == 2


def test_info_json_starts_the_pyramid_before_any_tile(data_path: Path, start_server: StartServer) -> None:
    place(data_path, "gallery", "big.jpg", encoded(photo(), "JPEG"))
    place(data_path, "gallery", "small.jpg", encoded(quadrants((1200, 800)), "JPEG"))
    server = start_server(IIIF_BUCKETS="gallery")
    assert request(server.url("/iiif/3/gallery%2Fsmall.jpg/info.json")).status == 200
    assert request(server.url("/iiif/3/gallery%2Fbig.jpg/info.json")).status == 200
    poll(lambda: metric(server, "preview_proxy_cache_entries", tier="image-converter") == 1 or None,
         "the pyramid made in the background")
    assert metric(server, RENDERS, operation="pyramid") == 1  # the big one's only
    # Written to a part file of the tier as it was made, and adopted whole: no part is left behind.
    tier = data_path / "cache" / "image-converter"
    assert not list((tier / "partial").glob("*.part"))
    stored = [path for path in tier.rglob("*") if path.is_file() and path.stat().st_size > 1_000_000]
    assert len(stored) == 1 and is_pyramid(io.BytesIO(stored[0].read_bytes()[:64]))
    tile = request(server.url("/iiif/3/gallery%2Fbig.jpg/0,0,2048,1800/512,/0/default.jpg"))
    assert tile.status == 200 and tile.headers["X-Cache"] == "HIT"  # a quarter's tile: from the pyramid
    assert metric(server, RENDERS, operation="pyramid") == 1


def test_which_requests_read_a_pyramid() -> None:
    whole = (0, 0, 2400, 1800)
    assert worth_a_pyramid("jpeg", 2400, 1800, (0, 0, 512, 512), (512, 512))  # a tile at full resolution
    assert worth_a_pyramid("jpeg", 2400, 1800, (0, 0, 1024, 1024), (512, 512))  # at half
    assert not worth_a_pyramid("jpeg", 2400, 1800, (0, 0, 2048, 2048), (512, 512))  # a quarter: DCT scaling
    assert worth_a_pyramid("jpeg", 2400, 1800, (0, 0, 2048, 1800), (512, 450))  # unless a viewer's tile
    assert worth_a_pyramid("jpeg", 2400, 1800, whole, (300, 225))  # its smallest
    assert not worth_a_pyramid("jpeg", 2400, 1800, whole, (299, 224))  # not one of info.json's
    assert not worth_a_pyramid("jpeg", 2400, 1800, (0, 0, 2400, 1800), (200, 150))  # a thumbnail
    assert worth_a_pyramid("png", 2400, 1800, whole, (300, 225))  # no DCT scaling: the whole image decoded
    assert not worth_a_pyramid("png", 1200, 800, (0, 0, 512, 512), (512, 512))  # small: decoded at once


def test_small_originals_and_thumbnails_are_rendered_directly(data_path: Path, start_server: StartServer) -> None:
    place(data_path, "gallery", "small.jpg", encoded(quadrants((1200, 800)), "JPEG"))
    place(data_path, "gallery", "big.jpg", encoded(photo(), "JPEG"))
    server = start_server(IIIF_BUCKETS="gallery")
    assert request(server.url("/iiif/3/gallery%2Fsmall.jpg/0,0,512,512/256,/0/default.jpg")).status == 200
    # (Not info.json's smallest size, 300 x 225: that is a viewer's first tile, read from the pyramid.)
    thumbnail = request(server.url("/iiif/3/gallery%2Fbig.jpg/full/!200,200/0/default.jpg"))
    assert thumbnail.status == 200 and Image.open(io.BytesIO(thumbnail.body)).size == (200, 150)
    assert metric(server, RENDERS, operation="iiif") == 2
    assert metric(server, RENDERS, operation="pyramid") == 0


def test_a_pyramid_over_the_memory_limit_gives_way_to_a_direct_render(data_path: Path,
                                                                      start_server: StartServer) -> None:
    place(data_path, "gallery", "big.jpg", encoded(photo(), "JPEG"))
    # Room for a decode of the 4.3 MP source (some 30 MB), not for its pyramid (some 100 MB).
    server = start_server(IIIF_BUCKETS="gallery", RENDER_MEMORY_LIMIT="64m")
    tile = request(server.url("/iiif/3/gallery%2Fbig.jpg/512,512,512,512/512,/0/default.jpg"))
    assert tile.status == 200, tile.body
    assert Image.open(io.BytesIO(tile.body)).size == (512, 512)
    assert metric(server, RENDERS, operation="pyramid") == 1  # tried (its header read), refused
    assert metric(server, "preview_proxy_cache_entries", tier="image-converter") == 0


def test_a_version_1_pyramid_reads_as_before() -> None:
    made = prepare_pyramid(io.BytesIO(encoded(photo(), "JPEG")), RenderConfig(), deadline_after(30))
    try:
        current = made.run().data
    finally:
        made.close()
    read = PyramidFile(io.BytesIO(current))
    raw_end = read.levels[-1].offset + read.levels[-1].width * read.levels[-1].height * 3
    start = current.index(b"\n", len(MAGIC)) + 1  # after the line giving where the JSON starts
    described = {"mode": read.mode, "format": read.format,
                 "levels": [{"factor": level.factor, "width": level.width, "height": level.height,
                             "offset": level.offset} for level in read.levels]}
    version_1 = MAGIC_1 + json.dumps(described).encode() + b"\n" + current[start:start + raw_end]
    old = PyramidFile(io.BytesIO(version_1))
    assert old.ready_quality is None and not old.levels[0].ready
    for box, size in (((0, 0, 512, 512), (512, 512)), ((300, 200, 1500, 900), (500, 300))):
        assert old.region(box, size).tobytes() == read.region(box, size).tobytes()
        assert old.ready_tile(box, size, 80) is None


def test_a_pyramid_larger_than_its_tier_is_served_and_not_kept(data_path: Path, start_server: StartServer) -> None:
    place(data_path, "gallery", "big.jpg", encoded(photo(), "JPEG"))
    # The 4.3 MP pyramid is some 18 MB: more than this whole tier.
    server = start_server(IIIF_BUCKETS="gallery", CACHE_IMAGE_CONVERTER_SIZE="8m")
    tile = request(server.url("/iiif/3/gallery%2Fbig.jpg/512,512,512,512/512,/0/default.jpg"))
    assert tile.status == 200, tile.body
    assert Image.open(io.BytesIO(tile.body)).size == (512, 512)
    assert metric(server, RENDERS, operation="pyramid") == 1
    assert metric(server, "preview_proxy_cache_entries", tier="image-converter") == 0
    # The tile may be answered while the pyramid's build, in the background, still holds its part
    # file; once the build is done the file is gone, not adopted.
    partial = data_path / "cache" / "image-converter" / "partial"
    poll(lambda: not list(partial.glob("*.part")), "the unkept pyramid's part file removed")
    assert metric(server, "preview_proxy_cache_entries", tier="image-converter") == 0

"""Deep zoom in a real browser: OpenSeadragon (from npm) in Debian's headless Chromium opens a photo's
info.json from a page on another loopback origin (in both versions; a photo decoded for each tile, and one
read from its tile pyramid), zooms in past the image's full resolution, and the screenshot shows the
photo's detail there: it matches a Pillow render of the same region of the original,
and holds as much fine detail as that render (a view made of the coarse levels only would not)."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from PIL import Image

from tests.support.browser import LaunchFailed, unavailable
from tests.support.deep_zoom import ensure_openseadragon, open_deep_zoom, viewer_pages
from tests.support.images import named_photo
from tests.support.perceptual import edge_energy, mean_abs_diff, ssim
from tests.support.previews_kit import metric, place, running_server
from tests.support.server import ServerProcess

BUCKET = "gallery"
# Photos, and where the view is centred (fractions of the width and height). Raindrops (1920 x 1200) is
# decoded for each tile; the ladybird (2560 x 1600, over the pyramid's 4 MP) is read from its pyramid.
RAINDROPS, LADYBIRD = "mate-raindrops.jpg", "mate-ladybird.jpg"
CENTRES = {RAINDROPS: (0.48, 0.64), LADYBIRD: (0.70, 0.50)}
ZOOM = 4.5  # a 640 px wide viewer at over 1 screen pixel per image pixel: only scale-factor-1 tiles will do
BROWSER_SECONDS = 120.0
# Chromium's resampling of JPEG tiles against Pillow's Lanczos from the original. Measured with OpenSeadragon
# 6.1.1 and Chromium 156: mean difference 2.8 and SSIM 0.93; the coarse view's were 4.1 and 0.86.
MAX_MEAN_DIFFERENCE = 6.0
MIN_SSIM = 0.88
SSIM_SIDE = 320


@dataclass(frozen=True)
class Setup:
    server: ServerProcess
    pages: str
    photos: dict[str, Path]


@pytest.fixture(scope="module")
def setup(photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    reason = unavailable() or ensure_openseadragon()
    if reason:
        pytest.skip(reason)
    chosen = {name: named_photo(photos, name) for name in CENTRES}
    data = tmp_path_factory.mktemp("iiif-browser") / "data"
    for name, photo in chosen.items():
        place(data, BUCKET, name, photo)
    with viewer_pages() as pages, running_server(data, IIIF_BUCKETS=BUCKET, CORS_ALLOW_ORIGINS=pages) as server:
        yield Setup(server, pages, chosen)


@pytest.mark.parametrize(("name", "version"), [(RAINDROPS, 3), (RAINDROPS, 2), (LADYBIRD, 3)])
def test_openseadragon_zoomed_in_shows_the_photos_detail(setup: Setup, name: str, version: int,
                                                         tmp_path: Path) -> None:
    info = setup.server.url(f"/iiif/{version}/{quote(f'{BUCKET}/{name}', safe='')}/info.json")
    centre = CENTRES[name]
    page = f"{setup.pages}/?" + urlencode({"info": info, "zoom": ZOOM, "x": centre[0], "y": centre[1]})
    shot = tmp_path / "view.png"
    try:
        state = open_deep_zoom(page, shot, BROWSER_SECONDS)
    except LaunchFailed as error:
        pytest.skip(f"Chromium could not start here: {error}")
    assert state["done"], state
    assert state["error"] is None, state
    # The view is made of full-resolution tiles: a region of 512 image pixels asked at 512 pixels wide.
    assert any("/512,512/" in url or "/512,/" in url for url in state["tiles"]), state["tiles"]
    view = Image.open(shot).convert("RGB")
    bounds = state["bounds"]
    box = (bounds["x"], bounds["y"], bounds["x"] + bounds["width"], bounds["y"] + bounds["height"])
    with Image.open(setup.photos[name]) as original:
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= original.width and box[3] <= original.height, box
        expected = original.convert("RGB").resize(view.size, Image.Resampling.LANCZOS, box=box)
        # What a viewer that stopped at the coarsest level would show: the same region, from a small copy.
        coarse_copy = original.convert("RGB").reduce(8)
    coarse = coarse_copy.resize(view.size, Image.Resampling.BICUBIC, box=tuple(edge / 8 for edge in box))
    assert mean_abs_diff(view, expected) < MAX_MEAN_DIFFERENCE
    similarity = ssim(view, expected, side=SSIM_SIDE)
    assert similarity > MIN_SSIM
    assert similarity > ssim(coarse, expected, side=SSIM_SIDE)
    assert edge_energy(view) > 0.8 * edge_energy(expected) > edge_energy(coarse)
    assert metric(setup.server, "preview_proxy_requests_total", route="iiif", status="200") >= len(state["tiles"])
    if name == LADYBIRD:  # its tiles came from the pyramid, made once
        assert metric(setup.server, "preview_proxy_render_duration_seconds_count", operation="pyramid") == 1

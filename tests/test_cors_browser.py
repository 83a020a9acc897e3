"""CORS in a real browser: headless Chromium (Debian's) opens a page from another loopback origin that
draws the proxy's images on a canvas with crossOrigin="anonymous" and reads their pixels back, and
reads an exposed header with fetch(). With the page's origin allowed it all works, the hot lane's
answers included; with CORS off, or from an origin not in the list, the browser refuses: the image does
not load, and one loaded without crossOrigin taints the canvas (getImageData throws SecurityError)."""

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image

from proxy.http.access.presign import presigned_query
from tests.support.browser import LaunchFailed, Visit, page_server, run_visits, unavailable
from tests.support.http import fetch
from tests.support.images import encoded
from tests.support.previews_kit import metric, place, running_server
from tests.support.server import ServerProcess

COLOUR = (30, 140, 220)
TOLERANCE = 12  # per channel: JPEG's rounding of a flat colour stays well inside this
BROWSER_SECONDS = 90.0
HOT = "preview_proxy_hot_answers_total"
SIGNING_KEY = "browser-upload-signing-key-0123456789"


@dataclass(frozen=True)
class Setup:
    """Two page origins (only `allowed` is listed) and two proxies: CORS on and off."""

    allowed: str
    other: str
    cors_on: ServerProcess
    cors_off: ServerProcess


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A flat-coloured photo behind both proxies, and the two page origins (skips without a browser)."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    data = tmp_path_factory.mktemp("cors-browser") / "data"
    place(data, "photos", "flat.jpg", encoded(Image.new("RGB", (160, 120), COLOUR), "JPEG", quality=95))
    # ACCESS_LOG off: the hot lane answers previews it already holds, so the browser meets it too.
    settings = {"ACCESS_LOG": "0", "CACHE_SOURCE_INFO_TTL": "1h"}
    with page_server() as allowed, page_server() as other, \
            running_server(data, CORS_ALLOW_ORIGINS=allowed, UPLOAD_SIGNING_KEYS=SIGNING_KEY, **settings) as cors_on, \
            running_server(data, **settings) as cors_off:
        yield Setup(allowed, other, cors_on, cors_off)


def preview(server: ServerProcess) -> str:
    """A preview URL no browser has seen (so each check goes to the network)."""
    return server.url(f"/previews/q/cb:{uuid.uuid4().hex}/rs:fit:40:40/ext:jpeg/plain/photos/flat.jpg")


def canvas(url: str, cross_origin: bool = True) -> dict[str, Any]:
    """A check that draws `url` on a canvas (with crossOrigin="anonymous" unless told) and reads a pixel."""
    return {"kind": "canvas", "url": url, "crossOrigin": cross_origin}


def read_x_cache(url: str) -> dict[str, Any]:
    """A check that fetch()es `url` and reads headers a page may read only when they are exposed."""
    return {"kind": "fetch", "url": url, "headers": ["X-Cache", "ETag", "Content-Length"]}


def warm(server: ServerProcess, url: str) -> None:
    """Ask until the hot lane answers `url` (bounded): the browser's request then meets the lane. No
    Origin needed: CORS headers are never kept with an answer."""
    path = url.removeprefix(server.base_url)
    for _ in range(10):
        before = metric(server, HOT, by="lane")
        assert fetch(server, path)[0] == 200
        if metric(server, HOT, by="lane") == before + 1:
            return
    raise AssertionError(f"{path} never answered by the hot lane")


def assert_colour(result: dict[str, Any]) -> None:
    """The canvas check loaded its image and read back the photo's colour."""
    assert result.get("loaded") and "error" not in result, result
    assert all(abs(got - want) <= TOLERANCE for got, want in zip(result["pixel"], COLOUR, strict=True)), result


def test_a_page_on_an_allowed_origin_reads_pixels_and_headers(setup: Setup) -> None:
    hot_preview = preview(setup.cors_on)
    warm(setup.cors_on, hot_preview)
    lane_before = metric(setup.cors_on, HOT, by="lane")
    # The hot preview first: a connection stays the lane's only while every request on it is hot.
    checks = [canvas(hot_preview), read_x_cache(hot_preview), canvas(preview(setup.cors_on)),
              canvas(setup.cors_on.url("/photos/flat.jpg"))]
    try:
        [results] = run_visits([Visit(setup.allowed, checks)], BROWSER_SECONDS)
    except LaunchFailed as error:
        pytest.skip(f"chromium cannot start here: {error}")
    from_lane, fetched, rendered, original = results
    assert_colour(rendered)
    assert rendered["width"] == 40
    assert_colour(from_lane)
    assert_colour(original)
    assert fetched["status"] == 200
    assert fetched["headers"]["X-Cache"] == "HIT"  # readable: exposed by Access-Control-Expose-Headers
    assert fetched["headers"]["ETag"] and fetched["headers"]["Content-Length"]
    # The hot preview's image and fetch() were answered by the lane, with its own CORS lines.
    assert metric(setup.cors_on, HOT, by="lane") >= lane_before + 2


def test_without_permission_the_browser_refuses(setup: Setup) -> None:
    off_preview = preview(setup.cors_off)
    visits = [
        Visit(setup.allowed, [canvas(off_preview), canvas(preview(setup.cors_off), cross_origin=False),
                              read_x_cache(off_preview)]),
        Visit(setup.other, [canvas(preview(setup.cors_on)), canvas(preview(setup.cors_on), cross_origin=False),
                            read_x_cache(preview(setup.cors_on))]),
    ]
    try:
        results = run_visits(visits, BROWSER_SECONDS)
    except LaunchFailed as error:
        pytest.skip(f"chromium cannot start here: {error}")
    for refused, tainted, fetched in results:
        assert refused == {"loaded": False}  # the CORS check failed: no image at all
        assert tainted == {"loaded": True, "error": "SecurityError"}  # drawn, but its pixels are not the page's
        assert fetched == {"error": "TypeError"}  # fetch() rejects a response it may not read


def upload(url: str, body: bytes) -> dict[str, Any]:
    """A check that PUTs `body` to a presigned `url` with fetch(), as an uploading page does, and reads the 201's
    ETag and Location (readable only when exposed)."""
    return {"kind": "fetch", "url": url, "method": "PUT", "send": {"Content-Type": "image/jpeg"},
            "body": base64.b64encode(body).decode(), "headers": ["ETag", "Location"]}


def test_a_page_uploads_with_a_presigned_url_and_draws_what_it_sent(setup: Setup) -> None:
    path = f"/photos/uploaded-{uuid.uuid4().hex[:8]}.jpg"
    url = setup.cors_on.url(f"{path}?{presigned_query(SIGNING_KEY.encode(), 'PUT', path, int(time.time()) + 300)}")
    jpeg = encoded(Image.new("RGB", (64, 48), COLOUR), "JPEG", quality=95)
    visits = [Visit(setup.allowed, [upload(url, jpeg), canvas(setup.cors_on.url(path))]),
              Visit(setup.other, [upload(url, jpeg)])]
    try:
        (uploaded, drawn), (refused,) = run_visits(visits, BROWSER_SECONDS)
    except LaunchFailed as error:
        pytest.skip(f"chromium cannot start here: {error}")
    assert uploaded["status"] == 201, uploaded
    assert uploaded["headers"]["ETag"] and uploaded["headers"]["Location"] == path  # exposed to the page
    assert_colour(drawn)
    assert refused == {"error": "TypeError"}  # another origin's preflight is granted nothing


"""Supervisely's older preview form, `/previews/<w>x<h>,<format>,q<quality>/image-converter/...`, through
a real server: the same bytes as its imgproxy equivalent, from the same cache entry.

The URLs are built the way the SDK's `compress_image_url` builds them: `/image-converter` of an image's
storage URL becomes `/previews/<width>x<height>,jpeg,q<quality>/image-converter`, an absent side empty.
"""

import dataclasses
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from previews.errors import InvalidOption
from previews.grammar.option_table import apply_options
from previews.grammar.options import ProcessingOptions
from previews.grammar.sdk_form import parse_sdk_form
from previews.grammar.url import parse_preview_url
from tests.conftest import StartServer
from tests.support.http import fetch, request
from tests.support.previews_kit import assert_one_line, metric, place, poll, sign
from tests.support.server import ServerProcess

BUCKET = "h5un6l2bnaz1vj8a9qgms4-public"
KEY = "images/original/S/j/hJ/scan.tif"
CONVERTED = f"/image-converter/convert/{BUCKET}/{KEY}"
RENDERS = "preview_proxy_render_duration_seconds_count"
TOKEN = "an-admin-token-0123456789"


def compress_image_url(url: str, width: int | None = None, height: int | None = None, quality: int = 70) -> str:
    """What the SDK's helper of that name returns for a storage URL (absent sides are empty)."""
    spec = f"{'' if width is None else width}x{'' if height is None else height},jpeg,q{quality}"
    return url.replace("/image-converter", f"/previews/{spec}/image-converter")


def canonical(url_path: str) -> tuple[object, ...]:
    """The previews-cache options key of a `/previews/...` path, as the route builds it."""
    path = url_path[len("/previews"):]
    url = parse_sdk_form(path) or parse_preview_url(path)
    options = apply_options(ProcessingOptions(), url.options, {})
    if url.extension:
        options = dataclasses.replace(options, format=url.extension)
    return (options.canonical(), url.source)


@pytest.fixture
def stored(data_path: Path) -> None:
    """Local storage holding a TIFF (a source the converter turns browser-ready)."""
    image = Image.new("RGB", (300, 200), (40, 90, 160))
    for x in range(0, 300, 20):
        image.paste((220, 200, 30), (x, 0, x + 10, 200))
    out = io.BytesIO()
    image.save(out, "TIFF", compression="tiff_lzw")
    place(data_path, BUCKET, KEY, out.getvalue())


@pytest.fixture
def server(start_server: StartServer, stored: None) -> ServerProcess:
    return start_server()


@pytest.mark.parametrize(("width", "height", "imgproxy_options"), [
    (120, 80, "rs:fit:120:80:0/q:70/f:jpeg"),
    (150, None, "rs:fit:150:0/q:70/f:jpg"),
    (None, 50, "resize:fit:0:50/quality:70/format:jpeg"),
])
def test_the_sdk_form_is_its_imgproxy_equivalent_byte_for_byte(server: ServerProcess, width: int | None,
                                                               height: int | None, imgproxy_options: str) -> None:
    sdk = compress_image_url(CONVERTED, width, height)
    status, headers, body = fetch(server, sdk)
    assert status == 200, body
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["X-Cache"] == "MISS"
    # The imgproxy form of the same render is a hit on the entry the SDK form made: one render in all.
    status, again, same = fetch(server, f"/previews/_/{imgproxy_options}/plain{CONVERTED}")
    assert status == 200, same
    assert again["X-Cache"] == "HIT"
    assert same == body
    assert again["ETag"] == headers["ETag"]
    assert metric(server, RENDERS, operation="preview") == 1
    rendered = Image.open(io.BytesIO(body)).size
    assert rendered == (width or round(300 * rendered[1] / 200), height or round(200 * rendered[0] / 300))
    assert width in (None, rendered[0]) and height in (None, rendered[1])


def test_the_sdk_form_keeps_the_quality_it_names(server: ServerProcess) -> None:
    low = fetch(server, compress_image_url(CONVERTED, 200, 200, quality=10))[2]
    high = fetch(server, compress_image_url(CONVERTED, 200, 200, quality=95))[2]
    assert len(low) < len(high)
    assert high == fetch(server, f"/previews/q/rs:fit:200:200/q:95/plain{CONVERTED}@jpeg")[2]


def test_canonical_keys_match_and_differ_where_the_renders_do() -> None:
    imgproxy = f"/previews/_/rs:fit:120:80/q:70/plain{CONVERTED}@jpg"
    assert canonical(compress_image_url(CONVERTED, 120, 80)) == canonical(imgproxy)
    assert canonical(compress_image_url(CONVERTED, 120, 80)) != canonical(compress_image_url(CONVERTED, 80, 120))
    assert canonical(compress_image_url(CONVERTED, 120)) != canonical(compress_image_url(CONVERTED, 120, 0, 71))


@pytest.mark.parametrize(("spec", "reason"), [
    ("300x200,jpeg,q", "expected <width>x<height>,<format>,q<quality>"),
    ("300x200,jpeg", "expected <width>x<height>,<format>,q<quality>"),
    ("300x200,jpeg,q70,extra", "expected <width>x<height>,<format>,q<quality>"),
    ("300x200,bogus,q70", "unsupported format"),
    ("1x1,jpeg,q7000", "expected <width>x<height>,<format>,q<quality>"),
])
def test_a_malformed_sdk_form_is_a_one_line_400(server: ServerProcess, spec: str, reason: str) -> None:
    status, _, body = fetch(server, f"/previews/{spec}{CONVERTED}")
    assert status == 400
    assert reason in assert_one_line(body)


def test_purging_the_sdk_form_purges_the_shared_entry(start_server: StartServer, data_path: Path,
                                                     stored: None) -> None:
    admin = start_server(ADMIN_TOKENS=TOKEN)
    sdk = compress_image_url(CONVERTED, 64, 64)
    imgproxy = f"/previews/_/rs:fit:64:64/q:70/f:jpeg/plain{CONVERTED}"
    assert fetch(admin, sdk)[1]["X-Cache"] == "MISS"
    poll(lambda: list((data_path / "cache" / "previews").rglob("*.val")) or None, "the preview on disk")
    reply = request(admin.url(sdk), "PURGE", {"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200, reply.body
    assert json.loads(reply.body)["removed"]["previews"] == 1
    assert fetch(admin, imgproxy)[1]["X-Cache"] == "MISS"


def test_the_sdk_form_without_a_source_is_refused() -> None:
    with pytest.raises(InvalidOption, match="no source"):
        parse_sdk_form("/300x200,jpeg,q70/")


def test_other_urls_are_not_the_sdk_form() -> None:
    assert parse_sdk_form("/_/rs:fit:10:10/plain/b/k.jpg") is None
    assert parse_sdk_form(f"/q{CONVERTED}") is None


def test_the_sdk_form_is_refused_when_urls_must_be_signed(start_server: StartServer, data_path: Path) -> None:
    place(data_path, BUCKET, "plain.png", _png())
    key, salt = "736563726574", "68656C6C6F"
    server = start_server(IMGPROXY_KEY=key, IMGPROXY_SALT=salt)
    status, _, body = fetch(server, f"/previews/100x100,jpeg,q70/{BUCKET}/plain.png")
    assert status == 403
    assert "missing signature" in assert_one_line(body)
    signed = "/rs:fit:100:100/q:70/f:jpeg/plain/" + f"{BUCKET}/plain.png"
    assert fetch(server, f"/previews/{sign(key, salt, signed)}{signed}")[0] == 200


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (5, 6, 7)).save(out, "PNG")
    return out.getvalue()

"""Previews through a real server: the client URL forms, HTTP caching, ranges and Content-Disposition.

Most tests share one server over one DATA_PATH (module scope, tests/support/previews_site.py) and keep
their cache entries apart with a cachebuster (`cb:`) or their own key; tests that need settings start
their own server with its own CACHE_PATH.
"""

import http.client
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from tests.support.http import fetch
from tests.support.previews_kit import (
    b64_source,
    decoded,
    poll,
    raw_exchange,
    running_server,
)
from tests.support.previews_site import (
    BUCKET,
    DEFAULT_CACHE_CONTROL,
    HEAD_KEY,
    KEY,
    MTIME,
    ODD_KEY,
    Site,
    buster,
)
from tests.support.server import ServerProcess


def client_forms(site: Site) -> list[tuple[str, str, str, tuple[float, float]]]:
    """(path, media type, Pillow format, expected size) for the URL forms real clients build."""
    w, h = site.width, site.height
    return [
        (f"/previews/q/ext:jpeg/resize:fill:300:0:0/q:70/plain/{BUCKET}/{KEY}", "image/jpeg", "JPEG",
         (300, 300 * h / w)),
        (f"/previews/q/ext:jpeg/resize:fill:0:256:0/q:0/plain/{BUCKET}/{KEY}", "image/jpeg", "JPEG",
         (256 * w / h, 256)),
        (f"/previews/q/rs:fill:240:180:0/g:ce/{b64_source(f'{BUCKET}/{KEY}')}.webp", "image/webp", "WEBP",
         (240, 180)),
    ]


FORM_IDS = ["sdk-width-300", "sdk-height-256", "imgproxy-base64-webp"]


def assert_size(actual: tuple[int, int], expected: tuple[float, float]) -> None:
    """A derived dimension may round either way; a given one is exact."""
    assert abs(actual[0] - expected[0]) <= 1 and abs(actual[1] - expected[1]) <= 1, (actual, expected)
    for got, wanted in zip(actual, expected, strict=True):
        if float(wanted).is_integer():
            assert got == wanted, (actual, expected)


@pytest.mark.parametrize("form", range(3), ids=FORM_IDS)
def test_client_url_forms_render_with_the_right_type_and_size(server: ServerProcess, site: Site, form: int) -> None:
    path, media_type, pillow_format, size = client_forms(site)[form]

    status, headers, body = fetch(server, path)

    assert status == 200, body[:200]
    assert headers["Content-Type"] == media_type
    assert headers["Content-Length"] == str(len(body))
    image = decoded(body)
    assert image.format == pillow_format
    assert_size(image.size, size)
    assert headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("form", range(3), ids=FORM_IDS)
def test_head_on_a_cold_preview_sends_the_get_headers_and_no_body(server: ServerProcess, site: Site,
                                                                  form: int) -> None:
    path = client_forms(site)[form][0].replace(KEY, HEAD_KEY).replace(
        b64_source(f"{BUCKET}/{KEY}"), b64_source(f"{BUCKET}/{HEAD_KEY}"))

    status_line, head_headers, rest = raw_exchange(server, "HEAD", path)
    status, get_headers, body = fetch(server, path)

    assert status_line.startswith("HTTP/1.1 200 "), status_line
    assert rest == b""
    assert status == 200
    assert head_headers["content-length"] == str(len(body))
    for name in ("Content-Type", "ETag", "Last-Modified", "Cache-Control", "Content-Disposition"):
        assert head_headers[name.lower()] == get_headers[name], name
    assert decoded(body).format == client_forms(site)[form][2]


def test_plain_source_with_an_at_extension_and_escaped_characters(server: ServerProcess, site: Site) -> None:
    escaped = quote(ODD_KEY, safe="/")  # imgproxy's rule: escape what isn't path-safe, `@` included
    assert "%40" in escaped and "%20" in escaped

    status, headers, body = fetch(server, f"/previews/q/rs:fit:200:200/plain/{BUCKET}/{escaped}@png")

    assert status == 200, body[:200]
    assert headers["Content-Type"] == "image/png"
    image = decoded(body)
    assert image.format == "PNG"
    assert max(image.size) == 200


def test_base64_source_split_into_chunks(server: ServerProcess) -> None:
    chunked = b64_source(f"{BUCKET}/{ODD_KEY}", chunk=7)
    assert chunked.count("/") >= 3

    status, headers, body = fetch(server, f"/previews/q/rs:fill:64:48:0/g:ce/{chunked}.png")

    assert status == 200, body[:200]
    assert decoded(body).size == (64, 48)
    assert headers["Content-Type"] == "image/png"


def test_x_cache_is_miss_then_hit_with_the_same_validator_and_bytes(server: ServerProcess) -> None:
    path = f"/previews/q/{buster()}/rs:fit:150:150/plain/{BUCKET}/{KEY}"

    first = fetch(server, path)
    second = fetch(server, path)

    assert (first[0], first[1]["X-Cache"]) == (200, "MISS")
    assert (second[0], second[1]["X-Cache"]) == (200, "HIT")
    assert second[1]["ETag"] == first[1]["ETag"]
    assert second[2] == first[2]


def test_current_etag_gives_304_with_validators_and_no_body(server: ServerProcess) -> None:
    path = f"/previews/q/{buster()}/rs:fit:120:120/plain/{BUCKET}/{KEY}"
    _, headers, _ = fetch(server, path)
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2

    for validator in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        status_line, fields, rest = raw_exchange(server, "GET", path, {"If-None-Match": validator})
        assert status_line.startswith("HTTP/1.1 304 "), (validator, status_line)
        assert rest == b""
        assert fields["etag"] == etag
        assert fields["cache-control"] == DEFAULT_CACHE_CONTROL
    status, _, body = fetch(server, path, {"If-None-Match": '"some-other-etag"'})
    assert status == 200 and decoded(body).format == "JPEG"


def test_last_modified_is_the_sources_and_if_modified_since_works(server: ServerProcess) -> None:
    path = f"/previews/q/{buster()}/rs:fit:100:100/plain/{BUCKET}/{KEY}"

    status, headers, _ = fetch(server, path)

    assert status == 200
    assert headers["Last-Modified"] == formatdate(MTIME, usegmt=True)
    assert fetch(server, path, {"If-Modified-Since": formatdate(MTIME, usegmt=True)})[0] == 304
    assert fetch(server, path, {"If-Modified-Since": formatdate(MTIME - 86400, usegmt=True)})[0] == 200


def test_cache_control_defaults_to_one_year_immutable(server: ServerProcess) -> None:
    status, headers, _ = fetch(server, f"/previews/q/rs:fit:90:90/plain/{BUCKET}/{KEY}")
    assert (status, headers["Cache-Control"]) == (200, DEFAULT_CACHE_CONTROL)


def test_cache_control_is_configurable(site: Site, tmp_path: Path) -> None:
    with running_server(site.data_path, CACHE_PATH=str(tmp_path / "cache"),
                        PREVIEWS_CACHE_CONTROL="public, max-age=600") as server:
        path = f"/previews/q/rs:fit:90:90/plain/{BUCKET}/{KEY}"
        status, headers, _ = fetch(server, path)
        assert (status, headers["Cache-Control"]) == (200, "public, max-age=600")
        not_modified = fetch(server, path, {"If-None-Match": headers["ETag"]})
        assert (not_modified[0], not_modified[1]["Cache-Control"]) == (304, "public, max-age=600")


@pytest.mark.parametrize(("options", "kind", "filename"), [
    ("", "inline", "cat.jpg"),
    ("att:1/", "attachment", "cat.jpg"),
    ("return_attachment:true/f:webp/", "attachment", "cat.webp"),
    ("fn:holiday/", "inline", "holiday.jpg"),
    ("filename:holiday/att:1/ext:png/", "attachment", "holiday.png"),
    (f"fn:{b64_source('отпуск 2024')}:1/", "inline", "отпуск 2024.jpg"),
], ids=["default", "attachment", "attachment-webp", "fn", "fn-attachment-png", "fn-base64-unicode"])
def test_content_disposition(server: ServerProcess, options: str, kind: str, filename: str) -> None:
    status, headers, body = fetch(server, f"/previews/q/{options}rs:fit:80:80/plain/{BUCKET}/{KEY}")

    assert status == 200, body[:200]
    disposition = headers["Content-Disposition"]
    assert disposition.split(";")[0].strip() == kind
    parameters = dict(part.strip().split("=", 1) for part in disposition.split(";")[1:])
    if "filename*" in parameters:
        charset, _, encoded = parameters["filename*"].partition("''")
        assert charset.upper() == "UTF-8"
        assert unquote(encoded) == filename
    else:
        assert parameters["filename"].strip('"') == filename
    if filename.isascii():
        assert parameters["filename"].strip('"') == filename


@pytest.mark.parametrize("first_request", ["cold", "warm"])
def test_range_on_a_preview_is_206_with_exact_bytes(server: ServerProcess, first_request: str) -> None:
    path = f"/previews/q/{buster()}/rs:fit:400:400/q:90/plain/{BUCKET}/{KEY}"
    if first_request == "cold":
        ranged = fetch(server, path, {"Range": "bytes=0-99"})
        whole = fetch(server, path)
    else:
        whole = fetch(server, path)
        ranged = fetch(server, path, {"Range": "bytes=0-99"})
    body = whole[2]
    assert whole[0] == 200 and len(body) > 1000

    assert ranged[0] == 206
    assert ranged[1]["Content-Range"] == f"bytes 0-99/{len(body)}"
    assert ranged[2] == body[:100]
    assert ranged[1]["ETag"] == whole[1]["ETag"]
    suffix = fetch(server, path, {"Range": "bytes=-50"})
    assert (suffix[0], suffix[2]) == (206, body[-50:])
    assert suffix[1]["Content-Range"] == f"bytes {len(body) - 50}-{len(body) - 1}/{len(body)}"
    unsatisfiable = fetch(server, path, {"Range": f"bytes={len(body) + 10}-"})
    assert unsatisfiable[0] == 416
    assert unsatisfiable[1]["Content-Range"] == f"bytes */{len(body)}"


@pytest.mark.parametrize("sendfile", ["true", "false"])
def test_range_on_a_preview_served_from_the_disk_tier(site: Site, tmp_path: Path, sendfile: str) -> None:
    with running_server(site.data_path, CACHE_PATH=str(tmp_path / "cache"), CACHE_PREVIEWS_MEMORY="0",
                        SENDFILE=sendfile) as server:
        path = f"/previews/q/rs:fit:500:500/q:90/plain/{BUCKET}/{KEY}"
        status, _, body = fetch(server, path)
        assert status == 200
        # The disk write follows the first answer; wait for it rather than race it.
        hit = _poll_for_hit(server, path)
        ranged = fetch(server, path, {"Range": "bytes=100-199"})
        assert hit[2] == body
        assert (ranged[0], ranged[1]["X-Cache"], ranged[2]) == (206, "HIT", body[100:200])
        assert ranged[1]["Content-Range"] == f"bytes 100-199/{len(body)}"


def _poll_for_hit(server: ServerProcess, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    def probe() -> tuple[int, http.client.HTTPMessage, bytes] | None:
        answer = fetch(server, path)
        return answer if answer[1].get("X-Cache") == "HIT" else None

    return poll(probe, "a hit from the disk tier", timeout=10)

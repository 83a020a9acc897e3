"""CORS for uploads on a real server: with UPLOAD_TOKENS set, a page on an allowed origin may preflight a PUT
on an object path with an upload's headers, and read the 201's ETag and Location (and a refusal's reason);
without uploads, or on a preview path, PUT is never granted. (test_cors.py covers the read side.)"""

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import fetch
from tests.support.previews_kit import running_server
from tests.support.server import ServerProcess
from tests.test_upload import TOKEN, put

ALLOWED = "https://app.example"
UPLOAD_HEADERS = "authorization, content-type, content-md5, x-amz-checksum-sha256"
ASKED = "Authorization,Content-Type,Content-MD5,x-amz-checksum-sha256,X-Custom"


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local storage with an empty bucket `photos` (uploads make no bucket)."""
    data = tmp_path_factory.mktemp("cors-uploads") / "data"
    (data / "storage" / "photos").mkdir(parents=True)
    return data


@pytest.fixture(scope="module")
def uploading(data_path: Path) -> Iterator[ServerProcess]:
    """CORS for one origin, uploads on."""
    with running_server(data_path, CORS_ALLOW_ORIGINS=ALLOWED, UPLOAD_TOKENS=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def reading(data_path: Path) -> Iterator[ServerProcess]:
    """CORS for one origin, uploads off."""
    with running_server(data_path, CORS_ALLOW_ORIGINS=ALLOWED) as server:
        yield server


def preflight(server: ServerProcess, path: str, method: str) -> tuple[int, dict[str, str]]:
    """An allowed origin's preflight for `method` asking for every upload header and one more."""
    status, headers, _ = fetch(server, path, {"Origin": ALLOWED, "Access-Control-Request-Method": method,
                                              "Access-Control-Request-Headers": ASKED}, method="OPTIONS")
    return status, dict(headers.items())


@pytest.mark.parametrize("path", ["/photos/new.jpg", "/links/s3/bucket/new.jpg"])
def test_a_put_preflight_on_an_object_path_is_granted_with_the_upload_headers(uploading: ServerProcess,
                                                                              path: str) -> None:
    status, headers = preflight(uploading, path, "PUT")
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert headers["Access-Control-Allow-Methods"] == headers["Allow"] == "GET, HEAD, OPTIONS, PUT"
    assert headers["Access-Control-Allow-Headers"] == UPLOAD_HEADERS  # not X-Custom
    # A GET's preflight on the same path is granted no Authorization: no read route takes one.
    _, read = preflight(uploading, path, "GET")
    assert "Access-Control-Allow-Headers" not in read


def test_a_preview_path_takes_no_put(uploading: ServerProcess) -> None:
    status, headers = preflight(uploading, "/previews/q/rs:fit:64:64/plain/photos/cat.jpg", "PUT")
    assert status == 204
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert "authorization" not in headers.get("Access-Control-Allow-Headers", "")


def test_without_uploads_put_is_never_granted(reading: ServerProcess) -> None:
    status, headers = preflight(reading, "/photos/new.jpg", "PUT")
    assert status == 204
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert "Access-Control-Allow-Headers" not in headers


def test_the_201_exposes_its_etag_and_location(uploading: ServerProcess) -> None:
    body = b"cross-origin upload"
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    status, headers, _ = put(uploading, "/photos/from-page.bin", body, len(body), {
        "Origin": ALLOWED, "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream",
        "x-amz-checksum-sha256": digest})
    assert status == 201
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {name.strip().lower() for name in headers["Access-Control-Expose-Headers"].split(",")}
    assert {"etag", "location"} <= exposed
    assert headers["ETag"] and headers["Location"] == "/photos/from-page.bin"


def test_a_refused_put_is_readable_by_the_page(uploading: ServerProcess) -> None:
    status, headers, body = put(uploading, "/photos/refused.bin", b"x", 1,
                                {"Origin": ALLOWED, "Authorization": "Bearer not-the-token"})
    assert status == 401
    assert headers["Access-Control-Allow-Origin"] == ALLOWED  # so the page can read why
    assert body

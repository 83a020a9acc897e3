"""GET and HEAD `/<bucket>/<key>` on local disk: served in place, with browser caching semantics.

Each test starts a real server on a loopback port and talks HTTP to it. Tests that send a file body
run twice, with SENDFILE on and off, so both ways of writing the body are exercised.
"""

import functools
import http.client
import io
import os
import socket
import time
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.server import ServerProcess

BUCKET = "photos"
KEY = "2024/cat.jpg"
PATH = f"/{BUCKET}/{KEY}"
MTIME = 1_700_000_000  # a fixed mtime, so Last-Modified can be checked exactly
DEFAULT_CACHE_CONTROL = "public, max-age=31536000, immutable"
Response = tuple[int, http.client.HTTPMessage, bytes]


@functools.cache  # noise is slow to draw; the bytes are the same every time
def make_jpeg(seed: int) -> bytes:
    """A noisy JPEG, big enough (over 256 KiB) that the body goes out in several chunks."""
    channels = [Image.effect_noise((900, 700), 60 + seed + index * 7) for index in range(3)]
    buffer = io.BytesIO()
    Image.merge("RGB", channels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def jpeg(data_path: Path) -> bytes:
    """A real JPEG at DATA_PATH/storage/photos/2024/cat.jpg, with a known mtime."""
    content = make_jpeg(seed=0)
    assert len(content) > 300_000, "the test image must span several 256 KiB chunks"
    path = data_path / "storage" / BUCKET / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    os.utime(path, (MTIME, MTIME))
    return content


@pytest.fixture(params=["true", "false"], ids=["sendfile", "no-sendfile"])
def server(request: pytest.FixtureRequest, start_server: StartServer, jpeg: bytes) -> ServerProcess:
    """A server over the local storage holding `jpeg`, with SENDFILE on and off."""
    return start_server(SENDFILE=request.param)


@pytest.fixture
def default_server(start_server: StartServer, jpeg: bytes) -> ServerProcess:
    """A server with default settings, for tests that send no file body."""
    return start_server()



def raw_exchange(server: ServerProcess, method: str, path: str, extra_headers: str = "") -> bytes:
    """Everything the server sends for one request with `Connection: close`, read to EOF (bounded).

    http.client never reads a body after HEAD or 304, so only the raw bytes show whether one was sent.
    """
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    request = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra_headers}\r\n"
    received = b""
    deadline = time.monotonic() + 10
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode())
        while time.monotonic() < deadline and (chunk := sock.recv(65536)):
            received += chunk
    return received


def split_head(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """The status line, the headers (names lower-cased) and whatever bytes followed the head."""
    head, separator, rest = raw.partition(b"\r\n\r\n")
    assert separator, f"no complete response head in {raw[:200]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status_line, fields, rest


def test_get_serves_the_file_with_representation_headers(server: ServerProcess, jpeg: bytes) -> None:
    status, headers, body = fetch(server, PATH)
    assert status == 200
    assert body == jpeg
    assert Image.open(io.BytesIO(body)).size == (900, 700)
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Length"] == str(len(jpeg))
    assert headers["ETag"].startswith('"') and headers["ETag"].endswith('"') and len(headers["ETag"]) > 2
    assert headers["Last-Modified"] == formatdate(MTIME, usegmt=True)
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Cache-Control"] == DEFAULT_CACHE_CONTROL
    assert headers["X-Cache"] == "BYPASS"


def test_head_sends_the_get_headers_and_no_body(default_server: ServerProcess, jpeg: bytes) -> None:
    _, get_headers, _ = fetch(default_server, PATH)
    status_line, fields, rest = split_head(raw_exchange(default_server, "HEAD", PATH))
    assert status_line.startswith("HTTP/1.1 200 ")
    assert rest == b""
    for name in ("ETag", "Last-Modified", "Content-Type", "Content-Length", "Cache-Control", "Accept-Ranges",
                 "X-Cache"):
        assert fields[name.lower()] == get_headers[name], name
    assert fields["content-length"] == str(len(jpeg))


def test_originals_cache_control_is_configurable(start_server: StartServer, jpeg: bytes) -> None:
    server = start_server(ORIGINALS_CACHE_CONTROL="private, max-age=60")
    status, headers, body = fetch(server, PATH)
    assert (status, body) == (200, jpeg)
    assert headers["Cache-Control"] == "private, max-age=60"


def test_if_none_match_with_current_etag_is_304_with_etag_and_no_body(default_server: ServerProcess) -> None:
    _, headers, _ = fetch(default_server, PATH)
    etag = headers["ETag"]
    status_line, fields, rest = split_head(raw_exchange(default_server, "GET", PATH, f"If-None-Match: {etag}\r\n"))
    assert status_line.startswith("HTTP/1.1 304 ")
    assert rest == b""
    assert fields["etag"] == etag
    assert fields["cache-control"] == DEFAULT_CACHE_CONTROL
    assert "content-type" not in fields


def test_if_modified_since_at_or_after_mtime_is_304(default_server: ServerProcess) -> None:
    for since in (MTIME, MTIME + 3600):
        status, headers, body = fetch(default_server, PATH, {"If-Modified-Since": formatdate(since, usegmt=True)})
        assert (status, body) == (304, b""), since
        assert headers["Last-Modified"] == formatdate(MTIME, usegmt=True)


def test_if_modified_since_before_mtime_is_200(default_server: ServerProcess, jpeg: bytes) -> None:
    status, _, body = fetch(default_server, PATH, {"If-Modified-Since": formatdate(MTIME - 86400, usegmt=True)})
    assert (status, body) == (200, jpeg)


def test_stale_if_none_match_gets_the_new_file(server: ServerProcess, data_path: Path) -> None:
    _, old_headers, _ = fetch(server, PATH)
    replacement = make_jpeg(seed=5)
    path = data_path / "storage" / BUCKET / KEY
    path.write_bytes(replacement)
    os.utime(path, (MTIME + 60, MTIME + 60))
    status, headers, body = fetch(server, PATH, {"If-None-Match": old_headers["ETag"]})
    assert status == 200
    assert body == replacement
    assert headers["ETag"] != old_headers["ETag"]
    assert parsedate_to_datetime(headers["Last-Modified"]).timestamp() == MTIME + 60


RANGES: list[tuple[str, Callable[[int], tuple[int, int]]]] = [
    ("bytes=10-19", lambda size: (10, 20)),
    ("bytes=100-", lambda size: (100, size)),
    ("bytes=-50", lambda size: (size - 50, size)),
    ("bytes=262100-262199", lambda size: (262100, 262200)),  # around the 256 KiB chunk boundary
]


@pytest.mark.parametrize(("range_header", "expected_span"), RANGES, ids=[header for header, _ in RANGES])
def test_single_range_is_206_with_exact_bytes(server: ServerProcess, jpeg: bytes, range_header: str,
                                              expected_span: Callable[[int], tuple[int, int]]) -> None:
    start, end = expected_span(len(jpeg))
    status, headers, body = fetch(server, PATH, {"Range": range_header})
    assert status == 206
    assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(jpeg)}"
    assert headers["Content-Length"] == str(end - start)
    assert body == jpeg[start:end]
    assert headers["ETag"] and headers["Content-Type"] == "image/jpeg"


def test_unsatisfiable_range_is_416_naming_the_size(default_server: ServerProcess, jpeg: bytes) -> None:
    status, headers, body = fetch(default_server, PATH, {"Range": "bytes=999999-"})
    assert len(jpeg) < 999999
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(jpeg)}"
    assert body.decode().count("\n") == 1 and body.endswith(b"\n")


def test_multi_range_gets_the_whole_file(server: ServerProcess, jpeg: bytes) -> None:
    status, headers, body = fetch(server, PATH, {"Range": "bytes=0-9,20-29"})
    assert status == 200
    assert body == jpeg
    assert "Content-Range" not in headers


def test_file_is_served_in_place_without_a_storage_cache_entry(server: ServerProcess, data_path: Path,
                                                               jpeg: bytes) -> None:
    for request_headers in ({}, {"Range": "bytes=0-99"}, {"Range": "bytes=-10"}):
        status, headers, _ = fetch(server, PATH, request_headers)
        assert status in (200, 206)
        assert headers["X-Cache"] == "BYPASS"
    assert fetch(server, PATH, method="HEAD")[0] == 200
    tier = data_path / "cache" / "storage"
    assert tier.is_dir(), "the storage tier should exist (opened at start-up)"
    written = [path.relative_to(tier) for path in tier.rglob("*") if path.is_file()]
    assert all(path.name.startswith("cache.db") for path in written), written
    assert not any(path.suffix == ".val" for path in written)
    status, _, metrics = fetch(server, "/metrics")
    assert status == 200
    assert 'preview_proxy_cache_entries{tier="storage"} 0.0' in metrics.decode()


def test_access_log_counts_the_body_whichever_path_sent_it(server: ServerProcess, jpeg: bytes) -> None:
    marker = f"size-check-{id(server)}"
    status, _, body = fetch(server, f"{PATH}?{marker}")
    assert (status, body) == (200, jpeg)

    line = server.wait_for_log(marker)

    # The body's bytes as sent (nginx's $body_bytes_sent), by sendfile or by the process alike.
    logged = int(line.split('" ')[1].split()[1])
    assert logged == len(jpeg)

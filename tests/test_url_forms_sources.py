"""imgproxy's source forms and settings through a real server: `local:///<path>` under
IMGPROXY_LOCAL_FILESYSTEM_ROOT, `abs://` beside `azure://` (Azurite), IMGPROXY_PATH_PREFIX, `/health`
beside `/healthz`, and IMGPROXY_TTL.
"""

import base64
import io
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from proxy.settings.compat.url_forms import read_url_forms_config
from proxy.settings.errors import ConfigError
from proxy.settings.previews import DEFAULT_PREVIEWS_CACHE_CONTROL, PreviewsConfig
from tests.conftest import REPO, StartServer
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from tests.support.http import fetch
from tests.support.previews_kit import assert_one_line, metric, place, sign
from tests.support.server import ServerProcess
from tests.test_upload import put

HOT = "preview_proxy_hot_answers_total"
REQUESTS = "preview_proxy_requests_total"


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    """A folder for local:// with a secret beside it and symlinks pointing out of it."""
    root = tmp_path / "local-root"
    (root / "pics").mkdir(parents=True)
    (root / "top.png").write_bytes(png((30, 24), (200, 10, 10)))
    (root / "pics" / "a.png").write_bytes(png((60, 40), (10, 200, 10)))
    (tmp_path / "secret.png").write_bytes(png((8, 8), (1, 2, 3)))
    (tmp_path / "secret.txt").write_text("LOCAL-ROOT-SECRET\n")
    (root / "pics" / "out.png").symlink_to(tmp_path / "secret.png")
    (root / "pics" / "up").symlink_to(tmp_path, target_is_directory=True)
    return root


@pytest.fixture
def local_server(start_server: StartServer, local_root: Path) -> ServerProcess:
    return start_server(IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(local_root))


@pytest.mark.parametrize(("source", "size"), [
    ("plain/local:///pics/a.png", (30, 20)),
    ("plain/local:///top.png", (30, 24)),
    (b64("local:///pics/a.png"), (30, 20)),
    ("plain/local://pics/a.png", (30, 20)),
])
def test_local_sources_are_read_under_the_root(local_server: ServerProcess, source: str,
                                                size: tuple[int, int]) -> None:
    status, headers, body = fetch(local_server, f"/previews/_/rs:fit:30:30/f:png/{source}")
    assert status == 200, body
    assert Image.open(io.BytesIO(body)).size == size
    # A file under the root can change, as a linked one can: no year-long `immutable`.
    assert "immutable" not in headers["Cache-Control"]


@pytest.mark.parametrize("source", [
    "local:///../secret.txt", "local:///pics/../../secret.txt", "local:///pics/%2e%2e/%2e%2e/secret.txt",
    "local:///pics/out.png", "local:///pics/up/secret.txt", "local:///pics/up/secret.png", "local:///",
    "local:///pics//a.png",
])
def test_local_sources_never_leave_the_root(local_server: ServerProcess, source: str) -> None:
    status, _, body = fetch(local_server, f"/previews/_/rs:fit:30:30/plain/{source}")
    assert status in (400, 404), body
    line = assert_one_line(body)
    assert "SECRET" not in line and "secret" not in line


def test_local_sources_are_refused_without_a_root(start_server: StartServer) -> None:
    server = start_server()
    status, _, body = fetch(server, "/previews/_/rs:fit:30:30/plain/local:///pics/a.png")
    assert status == 404
    assert "IMGPROXY_LOCAL_FILESYSTEM_ROOT is not set" in assert_one_line(body)


def test_abs_is_azure(start_server: StartServer, azurite: Azurite, tmp_path: Path) -> None:
    container = azurite.create_container("abs-boats")
    azurite.put(container, "a/photo.png", png((80, 60), (30, 60, 90)), "image/png")
    links = tmp_path / "remote_links.yml"
    links.write_text(f'boats: {{provider: azure, endpoint: "{azurite.endpoint}", access_key: {ACCOUNT}, '
                     f'secret_key: "{ACCOUNT_KEY}", buckets: [{container}]}}\n')
    server = start_server(REMOTE_LINKS_PATH=str(links))
    status, _, body = fetch(server, f"/previews/_/rs:fit:40:40/f:png/plain/abs://{container}/a/photo.png")
    assert status == 200, body
    assert Image.open(io.BytesIO(body)).size == (40, 30)
    status, again, same = fetch(server, f"/previews/_/rs:fit:40:40/f:png/plain/azure://{container}/a/photo.png")
    assert (status, same) == (200, body)
    assert again["X-Cache"] == "HIT"  # one original, one render: the schemes name the same object
    status, _, original = fetch(server, f"/links/abs/{container}/a/photo.png")
    assert status == 200 and Image.open(io.BytesIO(original)).size == (80, 60)


@pytest.fixture
def prefixed(start_server: StartServer, data_path: Path) -> ServerProcess:
    """A server under /img, with the hot lane on (no access log) and a TTL for previews."""
    place(data_path, "b", "p.png", png((50, 50), (9, 99, 199)))
    return start_server(IMGPROXY_PATH_PREFIX="/img/", ACCESS_LOG="0", IMGPROXY_TTL="3600")


def test_every_route_moves_under_the_prefix(prefixed: ServerProcess) -> None:
    status, headers, body = fetch(prefixed, "/img/previews/_/rs:fit:20:20/plain/b/p.png")
    assert status == 200, body
    assert headers["Cache-Control"] == "public, max-age=3600"
    assert fetch(prefixed, "/img/b/p.png")[0] == 200
    assert fetch(prefixed, "/img/image-converter/convert/b/p.png")[0] == 200
    assert fetch(prefixed, "/img/info/_/plain/b/p.png")[2] == b'{"width":50,"height":50,"format":"png","size":' + \
        str(len(png((50, 50), (9, 99, 199)))).encode() + b"}"
    for unprefixed in ("/previews/_/rs:fit:20:20/plain/b/p.png", "/b/p.png", "/img/healthz"):
        status, _, body = fetch(prefixed, unprefixed)
        assert status == 404, unprefixed
        assert_one_line(body)


def test_operational_routes_stay_at_their_bare_paths(prefixed: ServerProcess) -> None:
    for path in ("/healthz", "/health", "/readyz", "/metrics"):
        assert fetch(prefixed, path)[0] == 200, path


def test_a_prefix_written_percent_encoded_is_not_the_prefix(prefixed: ServerProcess) -> None:
    status, _, body = fetch(prefixed, "/im%67/previews/_/rs:fit:20:20/plain/b/p.png")
    assert status == 404
    assert "/img/" in assert_one_line(body)


def test_signatures_cover_the_path_after_the_prefix(start_server: StartServer, data_path: Path) -> None:
    place(data_path, "b", "p.png", png((50, 50), (9, 99, 199)))
    key, salt = "736563726574", "68656C6C6F"
    server = start_server(IMGPROXY_PATH_PREFIX="/img", IMGPROXY_KEY=key, IMGPROXY_SALT=salt)
    path = "/rs:fit:20:20/plain/b/p.png"
    assert fetch(server, f"/img/previews/{sign(key, salt, path)}{path}")[0] == 200
    assert fetch(server, f"/img/previews/{sign(key, salt, '/img' + path)}{path}")[0] == 403


def test_the_hot_lane_never_answers_an_unprefixed_path(prefixed: ServerProcess) -> None:
    path = "/previews/_/rs:fit:24:24/plain/b/p.png"
    answers = [fetch(prefixed, "/img" + path) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200] * 4
    assert metric(prefixed, HOT, by="handler") >= 1  # the entry is hot now, kept under its prefixed path
    status, _, body = fetch(prefixed, path)
    assert status == 404, body
    assert metric(prefixed, HOT, by="lane") == 0
    assert metric(prefixed, REQUESTS, route="preview", status="200") == 4


def test_presigned_upload_urls_carry_the_prefix(start_server: StartServer, data_path: Path) -> None:
    key = "upload-signing-key-0123456789abcdef-0123"
    (data_path / "storage" / "photos").mkdir()
    server = start_server(UPLOAD_SIGNING_KEYS=key, IMGPROXY_PATH_PREFIX="/img")
    env = {"DATA_PATH": str(data_path), "UPLOAD_SIGNING_KEYS": key, "IMGPROXY_PATH_PREFIX": "/img",
           "PATH": "/usr/bin:/bin"}
    printed = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "presign", "put", "photos/new.bin",
                              "--base-url", server.url("")], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=60, check=True).stdout.strip()
    url = urlsplit(printed)
    assert url.path == "/img/photos/new.bin"
    assert put(server, f"{url.path}?{url.query}", b"uploaded", len(b"uploaded"))[0] == 201
    assert fetch(server, "/img/photos/new.bin")[2] == b"uploaded"


def test_health_is_healthz(start_server: StartServer) -> None:
    server = start_server()
    assert fetch(server, "/health")[:1] == fetch(server, "/healthz")[:1] == (200,)
    assert fetch(server, "/health")[2] == b"ok\n"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, DEFAULT_PREVIEWS_CACHE_CONTROL),
    ({"IMGPROXY_TTL": "3600"}, "public, max-age=3600"),
    ({"IMGPROXY_TTL": "0"}, "public, max-age=0"),
    ({"IMGPROXY_TTL": "3600", "PREVIEWS_CACHE_CONTROL": "private, max-age=5"}, "private, max-age=5"),
])
def test_imgproxy_ttl_sets_max_age_unless_cache_control_is_given(env: dict[str, str], expected: str) -> None:
    assert PreviewsConfig.from_env(env).cache_control == expected


@pytest.mark.parametrize(("env", "named"), [
    ({"IMGPROXY_TTL": "1h"}, "IMGPROXY_TTL"),
    ({"IMGPROXY_PATH_PREFIX": "img"}, "IMGPROXY_PATH_PREFIX"),
    ({"IMGPROXY_PATH_PREFIX": "/a b"}, "IMGPROXY_PATH_PREFIX"),
    ({"IMGPROXY_PATH_PREFIX": "/a%20b"}, "IMGPROXY_PATH_PREFIX"),
    ({"IMGPROXY_LOCAL_FILESYSTEM_ROOT": "/nonexistent/folder"}, "IMGPROXY_LOCAL_FILESYSTEM_ROOT"),
])
def test_bad_settings_name_their_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        read_url_forms_config(env) if "TTL" not in named else PreviewsConfig.from_env(env)


def test_a_trailing_slash_on_the_prefix_is_dropped() -> None:
    assert read_url_forms_config({"IMGPROXY_PATH_PREFIX": "/img/v1/"}).path_prefix == "/img/v1"

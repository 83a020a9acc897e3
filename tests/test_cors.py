"""CORS over HTTP on a real server: which answers a page on another origin may read, preflights, and the
setting's checks. (A real browser reads them in test_cors_browser.py; the hot lane's answers are
compared with aiohttp's, Origin cases included, in test_hot_lane_differential.py.)"""

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from proxy.config import Config
from proxy.settings.cors import read_cors_config
from proxy.settings.errors import ConfigError
from tests.support.conversions import tiff
from tests.support.http import fetch
from tests.support.previews_kit import place, running_server, smallest_file
from tests.support.server import ServerProcess
from tests.test_cli import cli_env, described, run_cli

ALLOWED = "https://app.example"
OTHER = "https://evil.example"
PHOTO = "/photos/cat.jpg"
PREVIEW = "/previews/q/rs:fit:64:64/plain/photos/cat.jpg"  # no format: with IMGPROXY_AUTO_WEBP it varies on Accept
ROUTES = {
    "original": (PHOTO, 200),
    "preview": (PREVIEW, 200),
    "conversion": ("/image-converter/convert/photos/scan.tif", 200),
    "missing-original": ("/photos/none.jpg", 404),
    "bad-preview-option": ("/previews/q/rs:nonsense/plain/photos/cat.jpg", 400),
}
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Timing-Allow-Origin",
                "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age",
                "Access-Control-Allow-Credentials")


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory, photos: list[Path]) -> Path:
    """A photo and a TIFF (which the converter really converts) in bucket `photos`."""
    data = tmp_path_factory.mktemp("cors") / "data"
    place(data, "photos", "cat.jpg", smallest_file(photos))
    place(data, "photos", "scan.tif", tiff(Image.new("RGB", (40, 30), (200, 40, 10))))
    return data


@pytest.fixture(scope="module")
def listed(data_path: Path) -> Iterator[ServerProcess]:
    """CORS for a list of two origins, format negotiation on (so some answers already vary on Accept)."""
    with running_server(data_path, CORS_ALLOW_ORIGINS=f"{ALLOWED}, http://127.0.0.1:9", CORS_MAX_AGE="10m",
                        IMGPROXY_AUTO_WEBP="1", IMAGE_CONVERTER_AUTO_WEBP="1") as server:
        yield server


@pytest.fixture(scope="module")
def anyone(data_path: Path) -> Iterator[ServerProcess]:
    """CORS for every origin, through imgproxy's name for the setting."""
    with running_server(data_path, IMGPROXY_ALLOW_ORIGIN="*") as server:
        yield server


@pytest.fixture(scope="module")
def off(data_path: Path) -> Iterator[ServerProcess]:
    """No CORS setting: today's behaviour."""
    with running_server(data_path) as server:
        yield server


def vary_tokens(headers: http.client.HTTPMessage) -> list[str]:
    """Every token of every Vary line, lowercased."""
    return [token.strip().lower() for line in headers.get_all("Vary", []) for token in line.split(",")]


@pytest.mark.parametrize("route", ROUTES)
def test_an_allowed_origin_may_read_every_image_answer(listed: ServerProcess, route: str) -> None:
    path, expected = ROUTES[route]
    status, headers, _ = fetch(listed, path, {"Origin": ALLOWED})
    assert status == expected
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert headers["Timing-Allow-Origin"] == ALLOWED
    exposed = {name.strip().lower() for name in headers["Access-Control-Expose-Headers"].split(",")}
    assert {"etag", "x-cache", "content-range", "content-length", "accept-ranges", "last-modified"} <= exposed
    assert vary_tokens(headers).count("origin") == 1
    assert "Access-Control-Allow-Credentials" not in headers


@pytest.mark.parametrize("origin", [OTHER, None, "https://APP.example", ALLOWED + "/"],
                         ids=["other", "none", "other-case", "trailing-slash"])
@pytest.mark.parametrize("route", ["original", "preview", "missing-original"])
def test_other_origins_get_no_permission_but_the_same_vary(listed: ServerProcess, route: str,
                                                           origin: str | None) -> None:
    path, expected = ROUTES[route]
    status, headers, _ = fetch(listed, path, {"Origin": origin} if origin else {})
    assert status == expected
    assert not [name for name in CORS_HEADERS if name in headers]
    assert vary_tokens(headers).count("origin") == 1  # a shared cache must not give this to ALLOWED


def test_vary_names_accept_and_origin_in_one_line(listed: ServerProcess) -> None:
    """Caches that read a single Vary line must see both."""
    for path in (PREVIEW, ROUTES["conversion"][0]):
        for _ in range(3):  # a render, then answers from memory: each way keeps one line
            status, headers, _ = fetch(listed, path, {"Origin": ALLOWED, "Accept": "image/webp"})
            assert status == 200
            assert headers.get_all("Vary") == ["Accept, Origin"], path


def test_ranges_and_revalidations_are_readable(listed: ServerProcess) -> None:
    status, headers, body = fetch(listed, PHOTO, {"Origin": ALLOWED, "Range": "bytes=0-9"})
    assert (status, len(body)) == (206, 10)
    assert headers["Content-Range"].startswith("bytes 0-9/")
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    status, headers, _ = fetch(listed, PHOTO, {"Origin": ALLOWED, "If-None-Match": headers["ETag"]})
    assert status == 304
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert vary_tokens(headers) == ["origin"]


def test_a_preflight_from_an_allowed_origin_is_granted(listed: ServerProcess) -> None:
    status, headers, body = fetch(listed, PREVIEW, {
        "Origin": ALLOWED, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range,if-none-match,x-custom,authorization"}, method="OPTIONS")
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    # Only what the routes read is granted: a browser then refuses to send the rest.
    assert headers["Access-Control-Allow-Headers"] == "range, if-none-match"
    assert headers["Access-Control-Max-Age"] == "600"
    assert vary_tokens(headers) == ["origin"]


@pytest.mark.parametrize("path", [PHOTO, PREVIEW, ROUTES["conversion"][0], "/links/s3/bucket/key.jpg"])
def test_a_preflight_from_another_origin_gets_no_permission(listed: ServerProcess, path: str) -> None:
    status, headers, _ = fetch(listed, path, {"Origin": OTHER, "Access-Control-Request-Method": "GET"},
                               method="OPTIONS")
    assert status == 204
    assert not [name for name in CORS_HEADERS if name in headers]


def test_a_plain_options_says_what_is_allowed(listed: ServerProcess) -> None:
    status, headers, _ = fetch(listed, PHOTO, method="OPTIONS")
    assert status == 204
    assert headers["Allow"] == "GET, HEAD, OPTIONS"
    assert "Access-Control-Allow-Methods" not in headers


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_operator_routes_get_no_cors(listed: ServerProcess, path: str) -> None:
    status, headers, _ = fetch(listed, path, {"Origin": ALLOWED})
    assert status == 200
    assert "Access-Control-Allow-Origin" not in headers and "Vary" not in headers


@pytest.mark.parametrize("origin", [ALLOWED, OTHER, None])
def test_any_origin_gets_a_star_and_no_vary(anyone: ServerProcess, origin: str | None) -> None:
    for path in (PHOTO, PREVIEW, ROUTES["missing-original"][0]):
        status, headers, _ = fetch(anyone, path, {"Origin": origin} if origin else {})
        assert status in (200, 404)
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert headers["Timing-Allow-Origin"] == "*"
        assert "origin" not in vary_tokens(headers)
    status, headers, _ = fetch(anyone, PHOTO, {"Origin": origin or OTHER, "Access-Control-Request-Method": "HEAD"},
                               method="OPTIONS")
    assert (status, headers["Access-Control-Allow-Origin"]) == (204, "*")


def test_unset_means_no_cors_at_all(off: ServerProcess) -> None:
    for path in (PHOTO, PREVIEW, ROUTES["missing-original"][0]):
        status, headers, _ = fetch(off, path, {"Origin": ALLOWED})
        assert status in (200, 404)
        assert not [name for name in CORS_HEADERS if name in headers]
        assert "origin" not in vary_tokens(headers)
    status, _, _ = fetch(off, PHOTO, {"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}, method="OPTIONS")
    assert status == 405


@pytest.mark.parametrize(("text", "origins"), [
    ("https://a.example", {"https://a.example"}),
    ("HTTPS://A.Example:443 , http://127.0.0.1:8080,", {"https://a.example", "http://127.0.0.1:8080"}),
    ("http://[::1]:80,http://localhost:3000", {"http://[::1]", "http://localhost:3000"}),
    ("app://viewer", {"app://viewer"}),
])
def test_origins_are_read_as_browsers_send_them(text: str, origins: set[str]) -> None:
    config = read_cors_config({"CORS_ALLOW_ORIGINS": text})
    assert config is not None and config.origins == origins and not config.any_origin


@pytest.mark.parametrize("text", ["https://a.example/", "https://a.example/path", "a.example", "*.example.com",
                                  "https://*.example.com", "null", "*, https://a.example", "https://a:70000",
                                  "https://a.example?x", " , "])
def test_a_bad_origin_is_a_config_error_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^CORS_ALLOW_ORIGINS"):
        read_cors_config({"CORS_ALLOW_ORIGINS": text, "IMGPROXY_ALLOW_ORIGIN": "*"})


def test_the_alias_is_read_and_named_in_its_errors() -> None:
    assert read_cors_config({}) is None and read_cors_config({"CORS_ALLOW_ORIGINS": " "}) is None
    config = read_cors_config({"IMGPROXY_ALLOW_ORIGIN": "https://a.example"})
    assert config is not None and config.origins == {"https://a.example"}
    with pytest.raises(ConfigError, match=r"^IMGPROXY_ALLOW_ORIGIN"):
        read_cors_config({"IMGPROXY_ALLOW_ORIGIN": "https://a.example/x"})


def test_serve_refuses_a_bad_origin_in_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", SERVER_HOST="127.0.0.1", SERVER_PORT="0", CORS_ALLOW_ORIGINS="https://a/b")
    result = run_cli(["serve"], tmp_path, env, timeout=20)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("preview-proxy: CORS_ALLOW_ORIGINS: 'https://a/b' is not an origin")
    result = run_cli(["config"], tmp_path, {**env, "CORS_ALLOW_ORIGINS": "https://b.example,https://a.example"})
    assert described(result.stdout)["CORS_ALLOW_ORIGINS"] == "https://a.example,https://b.example"


def test_config_dump_shows_both_cors_settings(tmp_path: Path) -> None:
    config = Config.from_env({"DATA_PATH": str(tmp_path), "CORS_ALLOW_ORIGINS": "https://a.example",
                              "CORS_MAX_AGE": "10m"})
    described = config.describe()
    assert (described["CORS_ALLOW_ORIGINS"], described["CORS_MAX_AGE"]) == ("https://a.example", "600s")

"""The revalidation settings: CACHE_REVALIDATE, the links file's `revalidate:` and LINKS_CACHE_CONTROL,
read as operators write them, and the Cache-Control the main storage's originals get from them."""

from pathlib import Path

import pytest

from proxy.config import DEFAULT_ORIGINALS_CACHE_CONTROL, Config
from proxy.routes.links import changing_source_cache_control
from proxy.settings.errors import ConfigError
from proxy.storage.links.config import read_links
from tests.conftest import StartServer
from tests.support.http import request
from tests.test_links_config import BASE


@pytest.mark.parametrize(("written", "seconds"), [
    (None, 60.0), ('"30s"', 30.0), ('"1h30m"', 5400.0), ("90", 90.0), ("0", 0.0), ("off", 0.0), ('"off"', 0.0),
])
def test_revalidate_of_a_link(tmp_path: Path, written: str | None, seconds: float) -> None:
    field = f", revalidate: {written}" if written is not None else ""
    links_file = tmp_path / "remote_links.yml"
    links_file.write_text(f"cars: {{provider: minio, endpoint: 127.0.0.1:9, access_key: a, secret_key: b, "
                          f"buckets: [cars]{field}}}\n")

    (entry,) = read_links(links_file, True, BASE).entries

    assert entry.revalidate == seconds


@pytest.mark.parametrize("written", ['"soon"', "-5", "1.5", "[1m]", "true"])
def test_a_bad_revalidate_is_one_line_naming_the_field(tmp_path: Path, written: str) -> None:
    links_file = tmp_path / "remote_links.yml"
    links_file.write_text(f"cars: {{provider: minio, endpoint: 127.0.0.1:9, access_key: a, secret_key: b, "
                          f"buckets: [cars], revalidate: {written}}}\n")

    with pytest.raises(ConfigError) as raised:
        read_links(links_file, True, BASE)

    assert "entry 'cars': field 'revalidate': expected off, 0 or a number with" in str(raised.value)


@pytest.mark.parametrize(("env", "cache_control", "revalidate"), [
    ({}, DEFAULT_ORIGINALS_CACHE_CONTROL, "off"),
    ({"CACHE_REVALIDATE": "off"}, DEFAULT_ORIGINALS_CACHE_CONTROL, "off"),
    ({"CACHE_REVALIDATE": "5m"}, "public, max-age=300", "300s"),
    ({"CACHE_REVALIDATE": "5m", "ORIGINALS_CACHE_CONTROL": "private, max-age=9"}, "private, max-age=9", "300s"),
])
def test_main_storage_originals_are_immutable_only_when_not_revalidated(
        tmp_path: Path, env: dict[str, str], cache_control: str, revalidate: str) -> None:
    config = Config.from_env({"DATA_PATH": str(tmp_path), **env})

    assert config.server.originals_cache_control == cache_control
    assert config.describe()["CACHE_REVALIDATE"] == revalidate
    assert config.describe()["LINKS_CACHE_CONTROL"] == "public, max-age=60"


def test_bad_settings_name_their_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^CACHE_REVALIDATE='weekly': expected off, 0 or "):
        Config.from_env({"DATA_PATH": str(tmp_path), "CACHE_REVALIDATE": "weekly"})


def test_the_server_sends_them(start_server: StartServer, data_path: Path) -> None:
    (data_path / "storage" / "photos").mkdir()
    (data_path / "storage" / "photos" / "cat.jpg").write_bytes(b"not really a cat")
    server = start_server(CACHE_REVALIDATE="45s", LINKS_CACHE_CONTROL="public, max-age=5")

    reply = request(server.url("/photos/cat.jpg"))
    described = request(server.url("/photos/cat.jpg"), method="HEAD")

    assert reply.body == b"not really a cat"
    assert {reply.headers["Cache-Control"], described.headers["Cache-Control"]} == {"public, max-age=45"}


@pytest.mark.parametrize(("env", "source", "expected"), [
    ({}, "photos/cat.jpg", None),  # content-hashed main storage: the route's own immutable fits
    ({}, "s3://cars/a.jpg", "public, max-age=60"),
    ({}, "image-converter/convert/azure://boats/a.tif", "public, max-age=60"),
    ({"LINKS_CACHE_CONTROL": "public, max-age=5"}, "fs://planes/a.jpg", "public, max-age=5"),
    ({"CACHE_REVALIDATE": "2m"}, "photos/cat.jpg", "public, max-age=120"),
])
def test_what_is_made_from_a_changing_source_is_not_immutable(
        tmp_path: Path, env: dict[str, str], source: str, expected: str | None) -> None:
    config = Config.from_env({"DATA_PATH": str(tmp_path), **env})

    assert changing_source_cache_control(config, source) == expected

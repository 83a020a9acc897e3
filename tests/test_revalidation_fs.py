"""A local `fs` link and revalidation: its files are read in place, never copied into the storage tier,
so an overwritten file is served new at once (X-Cache: BYPASS) with LINKS_CACHE_CONTROL, and its
previews follow as soon as the source version is described again. Nothing is left to revalidate, so
the links file refuses a `revalidate:` field on an fs entry rather than ignore it.
"""

from pathlib import Path

import pytest

from proxy.settings.errors import ConfigError
from proxy.storage.links.config import read_links
from tests.conftest import StartServer
from tests.support.http import request
from tests.support.previews_kit import metric
from tests.test_links_config import BASE
from tests.test_revalidation_s3 import BLUE, RED, REVALIDATIONS, is_colour, preview_colour, solid_jpeg

KEY = "a/plane.jpg"


def test_an_overwritten_file_is_served_new_at_once_with_its_previews(start_server: StartServer, tmp_path: Path) -> None:
    folder = tmp_path / "datasets"
    (folder / "a").mkdir(parents=True)
    old, new = solid_jpeg(RED), solid_jpeg(BLUE, size=64)
    (folder / KEY).write_bytes(old)
    links_file = tmp_path / "remote_links.yml"
    links_file.write_text(f"planes: {{provider: fs, path: {folder}}}\n")
    server = start_server(REMOTE_LINKS_PATH=str(links_file), CACHE_SOURCE_INFO_TTL="0")
    path, source = f"/links/fs/planes/{KEY}", f"fs://planes/{KEY}"

    first = request(server.url(path))
    old_preview = preview_colour(server, source)
    (folder / KEY).write_bytes(new)
    after = request(server.url(path))
    new_preview = preview_colour(server, source)

    assert (first.headers["X-Cache"], first.body) == ("BYPASS", old)
    assert (after.headers["X-Cache"], after.body) == ("BYPASS", new)
    assert after.headers["ETag"] != first.headers["ETag"]
    assert {first.headers["Cache-Control"], after.headers["Cache-Control"]} == {"public, max-age=60"}
    assert is_colour(old_preview, RED) and is_colour(new_preview, BLUE)
    assert metric(server, REVALIDATIONS) == 0  # nothing cached, nothing to check


def test_an_fs_entry_refuses_revalidate(tmp_path: Path) -> None:
    links_file = tmp_path / "remote_links.yml"
    links_file.write_text(f"planes: {{provider: fs, path: {tmp_path}, revalidate: 1m}}\n")

    with pytest.raises(ConfigError) as raised:
        read_links(links_file, True, BASE)

    assert "entry 'planes': field 'revalidate': not used by provider fs" in str(raised.value)

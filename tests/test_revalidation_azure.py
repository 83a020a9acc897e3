"""Revalidation on Azure Blob (Azurite): a linked blob overwritten in its container is served from the
cache within its `revalidate:` period, once more while the background check runs, then new, with new
previews; an unchanged blob is answered 304 by Azurite and counted not_modified, its body not fetched again.
"""

import time
import uuid
from pathlib import Path

from tests.conftest import StartServer
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from tests.support.http import request
from tests.support.previews_kit import metric, poll
from tests.support.server import ServerProcess
from tests.test_revalidation_s3 import (
    BLUE,
    RED,
    REVALIDATE,
    REVALIDATIONS,
    is_colour,
    preview_colour,
    served_old_then_new,
    solid_jpeg,
    wait_out_the_period,
)

KEY = "a/boat.jpg"


def start(start_server: StartServer, azurite: Azurite, container: str, tmp_path: Path) -> ServerProcess:
    links_file = tmp_path / "remote_links.yml"
    links_file.write_text(f'boats: {{provider: azure, endpoint: "{azurite.endpoint}", access_key: {ACCOUNT}, '
                          f'secret_key: "{ACCOUNT_KEY}", buckets: [{container}], revalidate: {REVALIDATE:g}s}}\n')
    return start_server(REMOTE_LINKS_PATH=str(links_file), CACHE_SOURCE_INFO_TTL="0")


def test_an_overwritten_blob_is_served_old_within_the_period_then_new(
        azurite: Azurite, start_server: StartServer, tmp_path: Path) -> None:
    container = azurite.create_container(f"reval-{uuid.uuid4().hex[:10]}")
    old, new = solid_jpeg(RED), solid_jpeg(BLUE)
    azurite.put(container, KEY, old, "image/jpeg")
    server = start(start_server, azurite, container, tmp_path)
    path, source = f"/links/azure/{container}/{KEY}", f"azure://{container}/{KEY}"

    first = request(server.url(path))
    filled_at = time.monotonic()
    assert is_colour(preview_colour(server, source), RED)
    azurite.put(container, KEY, new, "image/jpeg")
    within = request(server.url(path))
    assert time.monotonic() < filled_at + REVALIDATE, "the machine is too slow for the period"
    wait_out_the_period(filled_at)
    during, after = served_old_then_new(server, path, old, new)

    assert (first.headers["X-Cache"], first.body) == ("MISS", old)
    assert (within.headers["X-Cache"], within.body) == ("HIT", old)
    assert (during.headers["X-Cache"], during.body) == ("HIT", old)
    assert after.headers["ETag"] != first.headers["ETag"]
    assert after.headers["Cache-Control"] == "public, max-age=60"
    assert is_colour(preview_colour(server, source), BLUE)
    assert metric(server, REVALIDATIONS, tier="storage", provider="link:boats", outcome="changed") == 1, (
        after.headers["X-Cache"], server.log_lines[-20:])


def test_an_unchanged_blob_is_revalidated_without_its_body(
        azurite: Azurite, start_server: StartServer, tmp_path: Path) -> None:
    container = azurite.create_container(f"reval-{uuid.uuid4().hex[:10]}")
    body = solid_jpeg(BLUE, size=512)
    azurite.put(container, KEY, body, "image/jpeg")
    server = start(start_server, azurite, container, tmp_path)
    path = f"/links/azure/{container}/{KEY}"

    first = request(server.url(path))
    wait_out_the_period(time.monotonic())
    during = request(server.url(path))
    poll(lambda: metric(server, REVALIDATIONS, outcome="not_modified") >= 1, "a not_modified revalidation")

    assert (first.body, during.body, during.headers["X-Cache"]) == (body, body, "HIT")
    # Azurite answered the conditional GET with 304: the body came up once, at the fill.
    assert metric(server, "preview_proxy_upstream_bytes_total", provider="link:boats") == len(body)
    assert metric(server, REVALIDATIONS, tier="storage", provider="link:boats", outcome="not_modified") == 1
    assert metric(server, REVALIDATIONS, outcome="changed") == 0

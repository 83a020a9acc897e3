"""PURGE against a real server on moto: an original with every preview and conversion made from it, in
every worker process (hot lane included); a prefix, after a restart; a linked original; one preview URL.

Refusals (no token, wrong token, nothing named, a whole bucket, a malformed key) are in test_purge_refusals.py;
a fill that started before a purge is in test_purge_no_resurrection.py.
"""

import io
import json
from pathlib import Path

from PIL import Image

from tests.conftest import StartServer
from tests.support.http import Reply, request
from tests.support.previews_kit import b64_source, metric, poll
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_env
from tests.support.server import ServerProcess

TOKENS = "first-admin-token-0123456789,second-admin-token-0123456789"
AUTH = {"Authorization": "Bearer second-admin-token-0123456789"}
FRESH_CONNECTIONS = 12  # requests on fresh connections, so that SO_REUSEPORT spreads them over both workers


def image(width: int, height: int, fmt: str = "JPEG") -> bytes:
    """A noisy image of that size (noise, so no two sizes encode alike)."""
    out = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(out, fmt)
    return out.getvalue()


def size_of(body: bytes) -> tuple[int, int]:
    """Pixel size of an encoded image."""
    return Image.open(io.BytesIO(body)).size


def purge(server: ServerProcess, path: str) -> dict[str, int]:
    """PURGE `path` with the second admin token; the counts removed per tier."""
    reply = request(server.url(path), "PURGE", AUTH)
    assert reply.status == 200, reply.body
    return dict(json.loads(reply.body)["removed"])


def wait_for_entries(data_path: Path, tier: str, count: int) -> None:
    """Until `tier` holds `count` entry files: a render is answered before its entry is written to disk."""
    folder = data_path / "cache" / tier
    poll(lambda: len(list(folder.rglob("*.val"))) >= count or None, f"{count} entries in {tier}")


def get(server: ServerProcess, path: str) -> Reply:
    """GET on a fresh connection; must be 200."""
    reply = request(server.url(path))
    assert reply.status == 200, (path, reply.status, reply.body[:200])
    return reply


def test_purge_removes_the_original_its_previews_and_conversions_in_every_worker(moto, bucket, data_path: Path,
                                                                                start_server: StartServer):
    moto.put(bucket, "scans/a.tif", image(400, 300, "TIFF"), "image/tiff")
    # The hot lane on, and source versions trusted for an hour: without the purge, every worker would
    # go on answering the old preview from memory for that long.
    server = start_server(workers=2, ADMIN_TOKENS=TOKENS, ACCESS_LOG="false", CACHE_SOURCE_INFO_TTL="1h",
                          **s3_env(moto.endpoint))
    original, conversion = f"/{bucket}/scans/a.tif", f"/image-converter/convert/{bucket}/scans/a.tif"
    preview = f"/previews/q/rs:fit:100:0/plain/{bucket}/scans/a.tif@png"
    preview_of_conversion = f"/previews/q/rs:fit:50:0/plain/image-converter/convert/{bucket}/scans/a.tif@png"
    for path in (original, conversion, preview_of_conversion):
        get(server, path)
    old = [size_of(get(server, preview).body) for _ in range(FRESH_CONNECTIONS)]
    assert set(old) == {(100, 75)}
    assert metric(server, "preview_proxy_hot_answers_total") > 0  # answered from memory, lane or handler
    wait_for_entries(data_path, "previews", 2)
    wait_for_entries(data_path, "image-converter", 1)

    moto.put(bucket, "scans/a.tif", new_tiff := image(200, 300, "TIFF"), "image/tiff")
    assert purge(server, original) == {"storage": 1, "previews": 2, "image-converter": 1}

    assert {size_of(get(server, preview).body) for _ in range(FRESH_CONNECTIONS)} == {(100, 150)}
    assert get(server, original).body == new_tiff
    assert size_of(get(server, conversion).body) == (200, 300)
    assert size_of(get(server, preview_of_conversion).body) == (50, 75)
    assert metric(server, "preview_proxy_purges_total", tier="previews") == 2
    assert metric(server, "preview_proxy_purge_requests_total", outcome="purged") == 1
    line = server.wait_for_log("purge by token #2")
    assert f"{bucket}/scans/a.tif" in line and "previews=2" in line
    assert "admin-token" not in server.log_text()


def test_prefix_purge_finds_what_an_earlier_run_stored(moto, bucket, data_path: Path, start_server: StartServer):
    for key in ("dir/a.jpg", "dir/sub/b.jpg", "dirt/c.jpg"):
        moto.put(bucket, key, image(64, 48), "image/jpeg")
    env = {"ADMIN_TOKENS": TOKENS, **s3_env(moto.endpoint)}
    first = start_server(**env)
    for key in ("dir/a.jpg", "dir/sub/b.jpg", "dirt/c.jpg"):
        get(first, f"/{bucket}/{key}")
    get(first, f"/previews/q/rs:fit:32:0/plain/{bucket}/dir/sub/b.jpg")
    wait_for_entries(data_path, "previews", 1)
    first.stop()

    server = start_server(**env)  # the same cache folders: the index survived the restart
    assert purge(server, f"/{bucket}/dir/*") == {"storage": 2, "previews": 1, "image-converter": 0}

    assert get(server, f"/{bucket}/dirt/c.jpg").headers["X-Cache"] == "HIT"
    assert get(server, f"/{bucket}/dir/a.jpg").headers["X-Cache"] == "MISS"
    assert get(server, f"/previews/q/rs:fit:32:0/plain/{bucket}/dir/sub/b.jpg").headers["X-Cache"] == "MISS"


def test_a_linked_original_is_purged_apart_from_the_main_storage(moto, bucket, data_path, start_server: StartServer):
    moto.put(bucket, "a.jpg", image(64, 48), "image/jpeg")
    links = data_path / "remote_links.yml"
    links.write_text(f'cars: {{provider: minio, endpoint: "{moto.endpoint}", access_key: {ACCESS_KEY}, '
                     f'secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{bucket}]}}\n')
    server = start_server(ADMIN_TOKENS=TOKENS, REMOTE_LINKS_PATH=str(links), **s3_env(moto.endpoint))
    linked, main = f"/links/s3/{bucket}/a.jpg", f"/{bucket}/a.jpg"
    get(server, linked)
    get(server, main)
    get(server, f"/previews/q/rs:fit:32:0/{b64_source(f's3://{bucket}/a.jpg')}.png")
    wait_for_entries(data_path, "previews", 1)

    assert purge(server, linked) == {"storage": 1, "previews": 1, "image-converter": 0}
    assert get(server, main).headers["X-Cache"] == "HIT"  # same bucket and key, another provider
    assert get(server, linked).headers["X-Cache"] == "MISS"


def test_purging_a_preview_url_removes_that_preview_alone(moto, bucket, data_path: Path, start_server: StartServer):
    moto.put(bucket, "a.jpg", image(64, 48), "image/jpeg")
    server = start_server(ADMIN_TOKENS=TOKENS, **s3_env(moto.endpoint))
    small, large = (f"/previews/q/rs:fit:{w}:0/plain/{bucket}/a.jpg@png" for w in (16, 32))
    for path in (small, large, small):
        get(server, path)
    wait_for_entries(data_path, "previews", 2)

    assert purge(server, small) == {"storage": 0, "previews": 1, "image-converter": 0}
    assert get(server, small).headers["X-Cache"] == "MISS"
    assert get(server, large).headers["X-Cache"] == "HIT"
    assert get(server, f"/{bucket}/a.jpg").headers["X-Cache"] == "HIT"

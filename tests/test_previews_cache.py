"""The previews tier through a real server: its key, its size bound, idle expiry, restarts and metrics.

The key is (canonical options, source, source version, output format): a changed original must never
be answered with the old preview, and options that only change headers share one entry.
"""

from pathlib import Path

from cache.key_lock import LOCKS_FOLDER
from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.previews_kit import (
    assert_log_clean,
    decoded,
    image_size,
    mean_difference,
    metric,
    place,
    poll,
    scrape,
    smallest_file,
    total,
)
from tests.support.server import ServerProcess

BUCKET = "photos"
KEY = "cat.jpg"
MTIME = 1_700_000_000
KIB = 1024
TIER = "previews"


def aspect(path: Path) -> float:
    """Width over height of an image file."""
    width, height = image_size(path)
    return width / height


def x_cache(server: ServerProcess, path: str) -> str:
    """GET `path` (it must succeed) and return its X-Cache."""
    status, headers, body = fetch(server, path)
    assert status == 200, body[:200]
    return headers["X-Cache"]


def stored_files(tier: Path) -> list[Path]:
    """The entry files of a tier (not its SQLite database, part files or key locks)."""
    return [path for path in tier.rglob("*") if path.is_file() and not path.name.startswith("cache.db")
            and "partial" not in path.parts and LOCKS_FOLDER not in path.parts]


def test_a_changed_original_gets_a_new_render_not_the_old_preview(
        start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    first_photo = smallest_file(photos)
    second_photo = min((p for p in photos if abs(aspect(p) - aspect(first_photo)) > 0.1),
                       key=lambda p: p.stat().st_size)
    source = place(data_path, BUCKET, KEY, first_photo, mtime=MTIME)
    server = start_server(CACHE_SOURCE_INFO_TTL="0")
    path = f"/previews/q/rs:fit:300:300/plain/{BUCKET}/{KEY}"
    status, old_headers, old_body = fetch(server, path)
    assert (status, old_headers["X-Cache"]) == (200, "MISS")
    assert x_cache(server, path) == "HIT"

    place(data_path, BUCKET, KEY, second_photo, mtime=MTIME + 60)
    assert aspect(source) == aspect(second_photo)
    status, new_headers, new_body = fetch(server, path)

    assert (status, new_headers["X-Cache"]) == (200, "MISS")
    assert new_headers["ETag"] != old_headers["ETag"]
    new_image = decoded(new_body)
    assert abs(new_image.width / new_image.height - aspect(second_photo)) < 0.02
    assert abs(decoded(old_body).width / decoded(old_body).height - aspect(first_photo)) < 0.02
    status, again_headers, again_body = fetch(server, path)
    assert (status, again_headers["X-Cache"], again_headers["ETag"]) == (200, "HIT", new_headers["ETag"])
    assert mean_difference(decoded(again_body), new_image) < 1.0
    status, _, body = fetch(server, path, {"If-None-Match": old_headers["ETag"]})
    assert status == 200 and decoded(body).size == new_image.size


def test_the_key_holds_options_and_format_but_not_header_only_options(
        start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos), mtime=MTIME)
    server = start_server()
    base = f"/plain/{BUCKET}/{KEY}"

    assert x_cache(server, f"/previews/q/rs:fit:200:200/q:70{base}") == "MISS"
    assert x_cache(server, f"/previews/q/rs:fit:200:200/q:30{base}") == "MISS"
    assert x_cache(server, f"/previews/q/rs:fit:200:200/q:70{base}@png") == "MISS"
    assert x_cache(server, f"/previews/q/rs:fit:201:200/q:70{base}") == "MISS"
    assert x_cache(server, f"/previews/q/rs:fit:200:200/q:70/cb:2{base}") == "MISS"
    # Aliases and header-only options (filename, attachment) name the same image: same entry.
    assert x_cache(server, f"/previews/q/resize:fit:200:200/quality:70{base}") == "HIT"
    assert x_cache(server, f"/previews/q/rs:fit:200:200/q:70/fn:other/att:1{base}") == "HIT"
    low = fetch(server, f"/previews/q/rs:fit:200:200/q:30{base}")[2]
    high = fetch(server, f"/previews/q/rs:fit:200:200/q:70{base}")[2]
    assert len(low) < len(high)
    assert decoded(fetch(server, f"/previews/q/rs:fit:200:200/q:70{base}@png")[2]).format == "PNG"


def test_the_size_bound_holds_and_the_oldest_previews_go(
        start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    bound = 512 * KIB
    place(data_path, BUCKET, KEY, smallest_file(photos), mtime=MTIME)
    server = start_server(CACHE_PREVIEWS_SIZE="512k", CACHE_PREVIEWS_MEMORY="0")
    paths = [f"/previews/q/rs:fit:{300 + index}:{300 + index}/plain/{BUCKET}/{KEY}@png" for index in range(16)]

    rendered = 0
    for path in paths:
        status, headers, body = fetch(server, path)
        assert (status, headers["X-Cache"]) == (200, "MISS")
        rendered += len(body)
    # Every render is stored once, then either still held or evicted: wait until all are accounted for.
    poll(lambda: (lambda s: total(s, "preview_proxy_cache_entries", tier=TIER)
                  + total(s, "preview_proxy_cache_evictions_total", tier=TIER) >= len(paths))(scrape(server)),
         "all previews stored")

    assert rendered > 2 * bound, "the test must write well past the bound"
    samples = scrape(server)
    assert 0 < total(samples, "preview_proxy_cache_size_bytes", tier=TIER) <= bound
    entries = total(samples, "preview_proxy_cache_entries", tier=TIER)
    assert 0 < entries < len(paths)
    assert total(samples, "preview_proxy_cache_evictions_total", tier=TIER) >= len(paths) - entries
    on_disk = stored_files(data_path / "cache" / TIER)
    assert len(on_disk) == entries
    assert sum(path.stat().st_size for path in on_disk) <= bound
    assert x_cache(server, paths[-1]) == "HIT"  # the newest stays
    assert x_cache(server, paths[0]) == "MISS"  # the oldest went


def test_disk_hits_survive_a_restart(start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos), mtime=MTIME)
    path = f"/previews/q/rs:fit:320:320/plain/{BUCKET}/{KEY}"
    first = start_server(CACHE_PREVIEWS_MEMORY="0")
    status, first_headers, first_body = fetch(first, path)
    assert (status, first_headers["X-Cache"]) == (200, "MISS")
    poll(lambda: metric(first, "preview_proxy_cache_entries", tier=TIER) == 1, "the preview on disk")
    first.stop()

    second = start_server(CACHE_PREVIEWS_MEMORY="0")
    status, headers, body = fetch(second, path)

    assert (status, headers["X-Cache"]) == (200, "HIT")
    assert headers["ETag"] == first_headers["ETag"]
    assert body == first_body
    assert metric(second, "preview_proxy_render_duration_seconds_count") == 0
    assert fetch(second, path, {"If-None-Match": first_headers["ETag"]})[0] == 304


def test_idle_previews_expire(start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos), mtime=MTIME)
    server = start_server(CACHE_PREVIEWS_EXPIRES="1s", CACHE_PREVIEWS_MEMORY="0")
    path = f"/previews/q/rs:fit:140:140/plain/{BUCKET}/{KEY}"
    assert x_cache(server, path) == "MISS"

    # Scrapes don't read the entry: it is stored, left idle, and must then be removed (an eviction).
    poll(lambda: (lambda s: total(s, "preview_proxy_cache_evictions_total", tier=TIER) >= 1
                  and total(s, "preview_proxy_cache_entries", tier=TIER) == 0)(scrape(server)),
         "the idle preview removed")

    assert stored_files(data_path / "cache" / TIER) == []
    assert x_cache(server, path) == "MISS"
    assert_log_clean(server)


def test_cache_request_metrics_count_hits_and_misses(
        start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos), mtime=MTIME)
    server = start_server()
    before = scrape(server)
    path = f"/previews/q/rs:fit:180:180/plain/{BUCKET}/{KEY}"

    results = [x_cache(server, path) for _ in range(3)] + [x_cache(server, f"{path}@webp")]
    etag = fetch(server, path)[1]["ETag"]
    assert fetch(server, path, {"If-None-Match": etag})[0] == 304

    after = scrape(server)
    assert results == ["MISS", "HIT", "HIT", "MISS"]

    def delta(result: str) -> float:
        name = "preview_proxy_cache_requests_total"
        return total(after, name, tier=TIER, result=result) - total(before, name, tier=TIER, result=result)

    assert delta("miss") == 2
    assert delta("hit") == 4  # two hits above, the ETag fetch and the 304
    renders = "preview_proxy_render_duration_seconds_count"
    assert total(after, renders) - total(before, renders) == 2
    # Originals on local disk are rendered where they lie, never copied into the storage tier.
    assert total(after, "preview_proxy_cache_entries", tier="storage") == 0

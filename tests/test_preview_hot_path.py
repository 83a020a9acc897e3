"""The hot-previews path through a real server: a URL answered from memory before is answered again
without parsing it, and the answer keeps every HTTP semantic of the full path.

Which path answered is read from /metrics (`preview_proxy_hot_answers_total`), so every test first shows
the request it checks went the short way; the tests of expiry and of a changed original fail if that
path ignored them (the source-info TTL is an hour there, or the original would never be seen again).
The module's server runs twice: with the hot lane answering plain requests before aiohttp, and
without it (HOT_LANE=0), where the handler answers them from the same map.
"""

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StartServer
from tests.support.http import fetch, request
from tests.support.previews_kit import (
    decoded,
    image_size,
    metric,
    place,
    poll,
    raw_exchange,
    running_server,
    scrape,
    smallest_file,
    total,
)
from tests.support.previews_site import BUCKET, KEY, Site, buster
from tests.support.server import ServerProcess

HOT = "preview_proxy_hot_answers_total"
WARM_UP_TRIES = 20
Headers = list[tuple[str, str]]


@pytest.fixture(scope="module", params=["1", "0"], ids=["lane", "handler"])
def hot_server(site: Site, tmp_path_factory: pytest.TempPathFactory,
               request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A server that trusts a source's version for an hour: only the URL's own rules end a hot answer."""
    cache = tmp_path_factory.mktemp("hot-cache")
    with running_server(site.data_path, CACHE_PATH=str(cache), CACHE_SOURCE_INFO_TTL="1h", ACCESS_LOG="0",
                        HOT_LANE=request.param) as server:
        yield server


def answered_hot(server: ServerProcess, path: str, headers: dict[str, str] | None = None,
                 method: str = "GET") -> tuple[int, Headers, bytes, bool]:
    """One request: status, headers in order, body, and whether the hot path answered it."""
    before = metric(server, HOT)
    reply = request(server.url(path), method, headers, timeout=15)
    return reply.status, list(reply.headers.items()), reply.body, metric(server, HOT) == before + 1


def warm(server: ServerProcess, path: str, headers: dict[str, str] | None = None) -> tuple[Headers, bytes]:
    """Ask for `path` until the hot path answers it (bounded); that answer's headers and body."""
    for _ in range(WARM_UP_TRIES):
        status, fields, body, hot = answered_hot(server, path, headers)
        assert status == 200, body[:200]
        if hot:
            return fields, body
    raise AssertionError(f"{path} never reached the hot path in {WARM_UP_TRIES} requests")


def without(fields: Headers, *names: str) -> Headers:
    """The headers minus `names` (case-insensitive), order kept."""
    dropped = {name.lower() for name in names}
    return [(name, value) for name, value in fields if name.lower() not in dropped]


def field(fields: Headers, name: str) -> str:
    """The value of header `name`."""
    return next(value for key, value in fields if key.lower() == name.lower())


def test_a_hot_answer_repeats_the_full_paths_headers_and_bytes(hot_server: ServerProcess) -> None:
    path = f"/previews/q/{buster()}/rs:fit:160:160/plain/{BUCKET}/{KEY}"
    miss = answered_hot(hot_server, path)
    full_hit = answered_hot(hot_server, path)
    hot_hit = answered_hot(hot_server, path)

    assert (miss[0], field(miss[1], "X-Cache"), miss[3]) == (200, "MISS", False)
    assert (full_hit[0], field(full_hit[1], "X-Cache"), full_hit[3]) == (200, "HIT", False)
    assert (hot_hit[0], field(hot_hit[1], "X-Cache"), hot_hit[3]) == (200, "HIT", True)
    # Same headers in the same order, only Date, Age and the request id may move on; same bytes.
    assert [name for name, _ in hot_hit[1]] == [name for name, _ in full_hit[1]]
    per_request = ("Date", "Age", "X-Request-ID")
    assert without(hot_hit[1], *per_request) == without(full_hit[1], *per_request)
    # The miss was made now: no Age, and its cache status says so.
    assert (field(miss[1], "Cache-Status"), field(hot_hit[1], "Cache-Status")) == (
        "preview-proxy; fwd=miss; stored", "preview-proxy; hit")
    assert without(hot_hit[1], *per_request, "X-Cache", "Cache-Status") == without(
        miss[1], *per_request, "X-Cache", "Cache-Status")
    assert hot_hit[2] == full_hit[2] == miss[2]
    assert field(hot_hit[1], "Content-Length") == str(len(hot_hit[2]))
    assert max(decoded(hot_hit[2]).size) == 160


def test_if_none_match_on_a_hot_url_is_304_without_a_body(hot_server: ServerProcess) -> None:
    path = f"/previews/q/{buster()}/rs:fit:140:140/plain/{BUCKET}/{KEY}"
    fields, body = warm(hot_server, path)
    etag = field(fields, "ETag")

    before = metric(hot_server, HOT)
    status_line, answer, rest = raw_exchange(hot_server, "GET", path, {"If-None-Match": etag})
    assert status_line.startswith("HTTP/1.1 304 ")
    assert rest == b""
    assert (answer["etag"], answer["x-cache"]) == (etag, "HIT")
    assert answer["cache-control"] == field(fields, "Cache-Control")
    status, _, other_body, hot = answered_hot(hot_server, path, {"If-None-Match": '"another-etag"'})
    assert (status, other_body, hot) == (200, body, True)
    assert metric(hot_server, HOT) == before + 2


def test_a_range_of_a_hot_preview_is_206_with_the_exact_bytes(hot_server: ServerProcess) -> None:
    path = f"/previews/q/{buster()}/rs:fit:150:150/plain/{BUCKET}/{KEY}"
    _, body = warm(hot_server, path)

    status, fields, part, hot = answered_hot(hot_server, path, {"Range": "bytes=10-99"})
    assert (status, part, hot) == (206, body[10:100], True)
    assert field(fields, "Content-Range") == f"bytes 10-99/{len(body)}"
    status, _, tail, hot = answered_hot(hot_server, path, {"Range": "bytes=-25"})
    assert (status, tail, hot) == (206, body[-25:], True)
    status, fields, _, hot = answered_hot(hot_server, path, {"Range": f"bytes={len(body)}-"})
    assert (status, field(fields, "Content-Range"), hot) == (416, f"bytes */{len(body)}", True)


def test_head_on_a_hot_url_sends_the_get_headers_and_no_body(hot_server: ServerProcess) -> None:
    path = f"/previews/q/{buster()}/rs:fit:130:130/plain/{BUCKET}/{KEY}"
    fields, body = warm(hot_server, path)

    before = metric(hot_server, HOT)
    status_line, head, rest = raw_exchange(hot_server, "HEAD", path)
    assert status_line.startswith("HTTP/1.1 200 ")
    assert metric(hot_server, HOT) == before + 1
    assert rest == b""
    expected = {name.lower(): value for name, value in without(fields, "Date", "Age", "X-Request-ID")}
    per_request = ("date", "age", "connection", "x-request-id")
    assert {name: value for name, value in head.items() if name not in per_request} == expected
    assert head["age"].isdigit()
    assert head["content-length"] == str(len(body))


def test_hot_answers_are_counted_as_requests_and_cache_hits(hot_server: ServerProcess) -> None:
    path = f"/previews/q/{buster()}/rs:fit:110:110/plain/{BUCKET}/{KEY}"
    warm(hot_server, path)
    labels = {"route": "preview", "status": "200"}
    before = scrape(hot_server)

    for _ in range(20):
        assert fetch(hot_server, path)[0] == 200

    after = scrape(hot_server)
    assert total(after, HOT) - total(before, HOT) == 20
    assert total(after, "preview_proxy_requests_total", **labels) - total(
        before, "preview_proxy_requests_total", **labels) == 20
    hits = {"tier": "previews", "result": "hit"}
    assert total(after, "preview_proxy_cache_requests_total", **hits) - total(
        before, "preview_proxy_cache_requests_total", **hits) == 20
    assert total(after, "preview_proxy_request_duration_seconds_count", route="preview") - total(
        before, "preview_proxy_request_duration_seconds_count", route="preview") == 20


def test_an_expired_url_is_403_even_when_it_was_hot(hot_server: ServerProcess) -> None:
    expires = int(time.time()) + 5
    path = f"/previews/q/exp:{expires}/rs:fit:120:120/plain/{BUCKET}/{KEY}"
    warm(hot_server, path)
    assert time.time() < expires, "the warm-up took longer than the URL lived; the test proves nothing"

    def forbidden() -> float | None:
        status = fetch(hot_server, path)[0]
        assert status in (200, 403), status
        return time.time() if status == 403 else None

    # The source's version is trusted for an hour here, so only the expiry check can end the hot answers.
    refused_at = poll(forbidden, "403 after the URL's expiry", timeout=expires - time.time() + 5)
    assert refused_at >= expires


@pytest.mark.parametrize("lane", ["1", "0"], ids=["lane", "handler"])
def test_a_different_accept_gets_its_own_format_not_the_hot_one(site: Site, tmp_path: Path, lane: str) -> None:
    path = f"/previews/q/rs:fit:170:170/plain/{BUCKET}/{KEY}"
    with running_server(site.data_path, CACHE_PATH=str(tmp_path / "cache"), IMGPROXY_AUTO_WEBP="true",
                        CACHE_SOURCE_INFO_TTL="1h", ACCESS_LOG="0", HOT_LANE=lane) as server:
        webp_fields, webp_body = warm(server, path, {"Accept": "image/webp,*/*"})
        status, jpeg_fields, jpeg_body, hot = answered_hot(server, path, {"Accept": "image/jpeg,*/*"})
        assert (status, hot) == (200, False)
        warm(server, path, {"Accept": "image/jpeg,*/*"})

        for accept, fields, body, pillow_format in (("image/webp,*/*", webp_fields, webp_body, "WEBP"),
                                                     ("image/jpeg,*/*", jpeg_fields, jpeg_body, "JPEG")):
            status, again, again_body, hot = answered_hot(server, path, {"Accept": accept})
            assert (status, hot, again_body) == (200, True, body), accept
            assert decoded(again_body).format == pillow_format
            assert field(again, "Content-Type") == f"image/{pillow_format.lower()}"
            assert field(again, "Vary") == "Accept"
            # `fields` may be a miss's (the first answer in its format): made now, so without an Age.
            per_request = ("Date", "X-Request-ID", "X-Cache", "Cache-Status", "Age")
            assert without(again, *per_request) == without(fields, *per_request)


def test_a_changed_original_is_seen_once_the_source_info_ttl_passes(
        start_server: StartServer, data_path: Path, photos: list[Path]) -> None:
    first = smallest_file(photos)
    width, height = image_size(first)
    second = min((p for p in photos if abs(image_size(p)[0] / image_size(p)[1] - width / height) > 0.1),
                 key=lambda p: p.stat().st_size)
    place(data_path, BUCKET, KEY, first, mtime=1_700_000_000)
    server = start_server(CACHE_SOURCE_INFO_TTL="500ms", ACCESS_LOG="0")
    path = f"/previews/q/rs:fit:200:200/plain/{BUCKET}/{KEY}"
    old_fields, _ = warm(server, path)

    place(data_path, BUCKET, KEY, second, mtime=1_700_000_060)

    def renewed() -> tuple[Headers, bytes] | None:
        reply = request(server.url(path), timeout=15)
        assert reply.status == 200
        fields = list(reply.headers.items())
        return (fields, reply.body) if field(fields, "ETag") != field(old_fields, "ETag") else None

    new_fields, new_body = poll(renewed, "the changed original's preview")
    image = decoded(new_body)
    second_width, second_height = image_size(second)
    assert abs(image.width / image.height - second_width / second_height) < 0.02
    assert field(new_fields, "X-Cache") == "MISS"
    hot_fields, hot_body = warm(server, path)
    assert (field(hot_fields, "ETag"), hot_body) == (field(new_fields, "ETag"), new_body)


def test_a_links_reload_that_drops_the_source_ends_its_hot_answers(
        start_server: StartServer, tmp_path: Path, photos: list[Path]) -> None:
    folder = tmp_path / "datasets"
    (folder / "a").mkdir(parents=True)
    shutil.copyfile(smallest_file(photos), folder / "a" / "photo.jpg")
    links_file = tmp_path / "remote_links.yml"
    links_file.write_text(f"local-datasets: {{provider: fs, path: {folder}}}\n")
    server = start_server(REMOTE_LINKS_PATH=str(links_file), CACHE_SOURCE_INFO_TTL="1h")
    path = "/previews/q/rs:fit:64:64/plain/fs://local-datasets/a/photo.jpg"
    warm(server, path)

    links_file.write_text(f"other-datasets: {{provider: fs, path: {folder}}}\n")
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_log("reloaded: 1 entries")

    status, _, body, hot = answered_hot(server, path)
    assert (status, hot) == (404, False), body[:200]


@pytest.mark.parametrize("memory", ["0", "64m"])
def test_hits_write_nothing_to_sqlite(start_server: StartServer, data_path: Path, photos: list[Path],
                                      memory: str) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos))
    server = start_server(CACHE_PREVIEWS_MEMORY=memory, CACHE_SOURCE_INFO_TTL="1h")
    path = f"/previews/q/rs:fit:180:180/plain/{BUCKET}/{KEY}"
    assert fetch(server, path)[1]["X-Cache"] == "MISS"
    # The fill is on disk once the tier counts it (the gauge is read from SQLite before each scrape).
    poll(lambda: metric(server, "preview_proxy_cache_entries", tier="previews") >= 1, "the stored preview")
    tier = data_path / "cache" / "previews"
    databases = [tier / "cache.db", tier / "cache.db-wal"]

    def snapshot() -> list[tuple[int, int]]:
        return [(p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else (-1, -1) for p in databases]

    before = snapshot()
    hits_before = metric(server, "preview_proxy_cache_requests_total", tier="previews", result="hit")
    for _ in range(30):
        status, headers, _ = fetch(server, path)
        assert (status, headers["X-Cache"]) == (200, "HIT")

    assert snapshot() == before
    assert metric(server, "preview_proxy_cache_requests_total", tier="previews", result="hit") == hits_before + 30
    # With no memory budget there is no hot map either: every hit took the full path.
    assert (metric(server, HOT) == 0) == (memory == "0")


def test_the_hot_map_stays_within_the_memory_budget(start_server: StartServer, data_path: Path,
                                                    photos: list[Path]) -> None:
    place(data_path, BUCKET, KEY, smallest_file(photos))
    budget = 64 * 1024
    server = start_server(CACHE_PREVIEWS_MEMORY="64k", CACHE_SOURCE_INFO_TTL="1h", ACCESS_LOG="0")
    paths = [f"/previews/q/cb:budget{index}/rs:fit:300:300/plain/{BUCKET}/{KEY}" for index in range(8)]
    sizes = [len(warm(server, path)[1]) for path in paths]

    # Newest first: a URL that is no longer hot is kept again as it is answered, pushing out the
    # least recently used, which the loop has already asked for.
    hot_again = sum(answered_hot(server, path)[3] for path in reversed(paths))

    # Each entry weighs its body plus at least a kilobyte: the newest ones stayed, the oldest went.
    assert 1 <= hot_again <= budget // (min(sizes) + 1024) < len(paths), (hot_again, sizes)
    assert answered_hot(server, paths[0])[3]

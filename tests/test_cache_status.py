"""`Cache-Status` (RFC 9211) beside `X-Cache`, and `Age` (RFC 9111) on answers read from a cache, through a
real server: originals from S3 (moto), previews and conversions from local storage, the preview handler's
short way and the hot lane.

Age counts from when an entry was stored, which is its file's modification time. Rather than wait for
seconds to pass, the tests move that time back to a moment they choose (`STORED_AGO` seconds before
now), as if the entry had been written then, and check Age against it: bounded by the clock read
before and after the request.
"""

import io
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from PIL import Image

from proxy.http.cache_status import age_seconds, cache_status
from tests.conftest import StartServer
from tests.support.http import Reply, request
from tests.support.previews_kit import metric, place, poll
from tests.support.s3 import MotoS3, s3_env
from tests.support.server import ServerProcess

NAME = "preview-proxy"
HIT = f"{NAME}; hit"
STORED_MISS = f"{NAME}; fwd=miss; stored"
STORED_AGO = 5000.0  # seconds: far above any time a request takes, so Age can only come from the entry
HOT = "preview_proxy_hot_answers_total"


def entry_files(cache: Path, tier: str) -> list[Path]:
    """The committed entries' files of one tier: those its index has a row for. diskcache renames an
    entry's `.val` file into its tree before it writes the row, and a lookup finds the entry only by the
    row, so a file alone is not yet an entry (a request then waits for the fill, `collapsed`)."""
    database = cache / tier / "cache.db"
    if not database.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as index:
            names = [row[0] for row in index.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")]
    except sqlite3.OperationalError:
        return []  # the server holds a write lock this moment: look again
    return [cache / tier / name for name in names]


def store_earlier(cache: Path, tier: str, seconds: float) -> float:
    """Move every entry of `tier` back to `seconds` ago, as if written then; return that moment. (The
    answer that stored an entry may reach the client before the commit: the commit is waited for.)"""
    files = poll(lambda: entry_files(cache, tier), f"an entry in the {tier} tier")
    moment = time.time() - seconds
    for path in files:
        os.utime(path, (moment, moment))
    return moment


def timed(server: ServerProcess, path: str, method: str = "GET",
          headers: dict[str, str] | None = None) -> tuple[Reply, float, float]:
    """The reply and the wall clock just before and just after it."""
    before = time.time()
    reply = request(server.url(path), method, headers)
    return reply, before, time.time()


def assert_age(reply: Reply, stored: float, before: float, after: float) -> None:
    """Age is the whole seconds from `stored` to the moment the answer was made (between before and after)."""
    age = int(reply.headers["Age"])
    assert int(before - stored) <= age <= int(after - stored) + 1


@pytest.fixture
def tiff(data_path: Path, photos: list[Path]) -> str:
    """A small TIFF in local storage (a browser can't show it, so the converter converts it)."""
    with Image.open(min(photos, key=lambda p: p.stat().st_size)) as photo:
        photo.thumbnail((160, 160))
        encoded = io.BytesIO()
        photo.save(encoded, "TIFF")
    place(data_path, "photos", "scan.tiff", encoded.getvalue())
    place(data_path, "photos", "cat.jpg", min(photos, key=lambda p: p.stat().st_size))
    return "/photos/scan.tiff"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """CACHE_PATH shared by the servers of one test (a restart reads what the first one stored)."""
    return tmp_path / "cache"


def test_an_original_from_s3_miss_then_hit_with_its_age(start_server: StartServer, moto: MotoS3, bucket: str,
                                                        cache: Path) -> None:
    moto.put(bucket, "photo.jpg", b"an original of 31 bytes or so..", "image/jpeg")
    server = start_server(CACHE_PATH=str(cache), **s3_env(moto.endpoint))
    path = f"/{bucket}/photo.jpg"

    head = request(server.url(f"/{bucket}/photo.jpg"), "HEAD")  # a HEAD miss stores nothing
    assert (head.headers["X-Cache"], head.headers["Cache-Status"]) == ("MISS", f"{NAME}; fwd=miss")
    first = request(server.url(path))
    assert (first.headers["X-Cache"], first.headers["Cache-Status"]) == ("MISS", STORED_MISS)
    assert "Age" not in first.headers  # made now, not read from a cache

    stored = store_earlier(cache, "storage", STORED_AGO)
    hit, before, after = timed(server, path)
    assert (hit.status, hit.body) == (200, first.body)
    assert (hit.headers["X-Cache"], hit.headers["Cache-Status"]) == ("HIT", HIT)
    assert_age(hit, stored, before, after)
    # A range and a 304 come from the same entry: the same Age.
    part, before, after = timed(server, path, headers={"Range": "bytes=0-3"})
    assert (part.status, part.body, part.headers["Cache-Status"]) == (206, first.body[:4], HIT)
    assert_age(part, stored, before, after)
    unchanged, before, after = timed(server, path, headers={"If-None-Match": first.headers["ETag"]})
    assert (unchanged.status, unchanged.headers["Cache-Status"]) == (304, HIT)
    assert_age(unchanged, stored, before, after)


def test_local_originals_bypass_the_cache(start_server: StartServer, tiff: str) -> None:
    server = start_server()
    reply = request(server.url("/photos/cat.jpg"))
    assert (reply.status, reply.headers["X-Cache"], reply.headers["Cache-Status"]) == (
        200, "BYPASS", f"{NAME}; fwd=bypass")
    assert "Age" not in reply.headers


def test_a_conversion_miss_then_hit_with_its_age(start_server: StartServer, tiff: str, cache: Path) -> None:
    server = start_server(CACHE_PATH=str(cache))
    path = f"/image-converter/convert{tiff}"
    first = request(server.url(path))
    assert (first.status, first.headers["X-Cache"], first.headers["Cache-Status"]) == (200, "MISS", STORED_MISS)
    assert "Age" not in first.headers

    stored = store_earlier(cache, "image-converter", STORED_AGO)
    hit, before, after = timed(server, path)
    assert (hit.headers["X-Cache"], hit.headers["Cache-Status"], hit.body) == ("HIT", HIT, first.body)
    assert_age(hit, stored, before, after)


@pytest.mark.parametrize("lane", ["0", "1"], ids=["handler", "hot-lane"])
def test_a_hot_preview_carries_the_age_of_its_stored_entry(start_server: StartServer, tiff: str, cache: Path,
                                                           lane: str) -> None:
    """The preview is stored by a first server; a second one, on the same cache, reads the entry (whose
    time the test moved back) and keeps it hot: the handler's short way or the lane answers with its Age."""
    path = "/previews/q/rs:fit:64:64/plain/photos/cat.jpg"
    settings = {"CACHE_PATH": str(cache), "ACCESS_LOG": "0", "HOT_LANE": lane, "CACHE_SOURCE_INFO_TTL": "1h"}
    first_server = start_server(**settings)
    first = request(first_server.url(path))
    assert (first.status, first.headers["X-Cache"], first.headers["Cache-Status"]) == (200, "MISS", STORED_MISS)
    assert "Age" not in first.headers
    first_server.stop()

    stored = store_earlier(cache, "previews", STORED_AGO)
    server = start_server(**settings)
    by = "lane" if lane == "1" else "handler"
    answers = []
    for _ in range(10):  # the first read finds the entry on disk, then the map keeps it: bounded
        before_count = metric(server, HOT, by=by)
        answers.append(timed(server, path))
        if metric(server, HOT, by=by) == before_count + 1:
            break
    else:
        raise AssertionError(f"never answered from the hot map by the {by}")
    for reply, before, after in answers:  # the disk read and the hot answer alike
        assert (reply.status, reply.body) == (200, first.body)
        assert (reply.headers["X-Cache"], reply.headers["Cache-Status"]) == ("HIT", HIT)
        assert_age(reply, stored, before, after)
    # A conditional request leaves the lane for the handler's `respond`: the 304 has its Age too.
    unchanged, before, after = timed(server, path, headers={"If-None-Match": first.headers["ETag"]})
    assert (unchanged.status, unchanged.headers["Cache-Status"]) == (304, HIT)
    assert_age(unchanged, stored, before, after)


def test_an_answer_made_now_and_then_kept_has_a_small_age(start_server: StartServer, tiff: str) -> None:
    """Without moving any clock: a preview stored by this request is read back with an Age no greater than
    the time since it was made."""
    server = start_server()
    path = "/previews/q/rs:fit:48:48/plain/photos/cat.jpg"
    made_before = time.time()
    assert request(server.url(path)).headers["Cache-Status"] == STORED_MISS
    hit, _, after = timed(server, path)
    assert hit.headers["Cache-Status"] == HIT
    assert 0 <= int(hit.headers["Age"]) <= int(after - made_before) + 1


@pytest.mark.parametrize(("x_cache", "from_entry", "stored", "expected"), [
    ("HIT", True, False, "preview-proxy; hit"),
    ("HIT", False, False, "preview-proxy; fwd=miss; collapsed"),  # joined another request's fill
    ("MISS", False, True, "preview-proxy; fwd=miss; stored"),
    ("MISS", False, False, "preview-proxy; fwd=miss"),
    ("STALE", True, False, "preview-proxy; fwd=stale; detail=stale-if-error"),
    ("BYPASS", False, False, "preview-proxy; fwd=bypass"),
])
def test_each_x_cache_status_has_its_rfc_9211_form(x_cache: str, from_entry: bool, stored: bool,
                                                   expected: str) -> None:
    assert cache_status(x_cache, from_entry, stored) == expected


def test_age_is_whole_seconds_and_never_negative() -> None:
    assert age_seconds(1000.0, now=1041.999) == "41"
    assert age_seconds(1000.0, now=999.0) == "0"  # an mtime a little ahead of this clock

"""Fills that fail: an origin that breaks off mid-body, a server killed mid-fill, a broken cache disk.

None of them may leave an entry a later request could serve, and none may turn into a 5xx.
"""

import http.client
import os
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO, StartServer
from tests.support.http import metric_value, request
from tests.support.s3 import s3_env
from tests.support.server import ServerProcess

MIB = 1024 * 1024


@pytest.mark.parametrize("sendfile", ["true", "false"], ids=["sendfile", "no-sendfile"])
def test_origin_reset_mid_body_aborts_the_client_and_caches_nothing(
        moto, bucket, s3_proxy, data_path: Path, start_server: StartServer, sendfile: str):
    body = os.urandom(4 * MIB)
    moto.put(bucket, "cut.jpg", body)
    # Every connection is cut after 1 MiB of response (bodies are not retried anyway: see test_upstream_faults).
    s3_proxy.faults.reset_after_bytes = MIB
    s3_proxy.faults.reset_connections = 1000
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES="1"), SENDFILE=sendfile)

    received, complete = _read_until_closed(server.url(f"/{bucket}/cut.jpg"))

    assert not complete, "a cut origin must show as an aborted response, never a short 200"
    assert len(received) < len(body)
    assert received == body[: len(received)]
    s3_proxy.faults.reset_after_bytes = None
    assert _files(data_path / "cache" / "storage" / "partial") == []
    again = request(server.url(f"/{bucket}/cut.jpg"))
    assert (again.status, again.headers["X-Cache"], again.body) == (200, "MISS", body)
    assert "Traceback" not in server.log_text()


def test_leftovers_of_a_killed_fill_are_removed_at_start_up(moto, bucket, s3_proxy, data_path: Path):
    body = os.urandom(16 * MIB)
    moto.put(bucket, "slow.bin", body)
    s3_proxy.faults.bytes_per_second = 4 * MIB  # the fill takes ~4 s: long enough to kill it midway
    env = {"DATA_PATH": str(data_path), **s3_env(s3_proxy.endpoint)}
    partial = data_path / "cache" / "storage" / "partial"
    first = ServerProcess(env, cwd=REPO)
    try:
        threading.Thread(target=_read_until_closed, args=(first.url(f"/{bucket}/slow.bin"),), daemon=True).start()
        _poll(lambda: any(p.stat().st_size > 0 for p in _files(partial)), "a growing part file")
    finally:
        first.kill()
    assert _files(partial), "the killed fill should have left its part file"

    s3_proxy.faults.bytes_per_second = 0
    second = ServerProcess(env, cwd=REPO)
    try:
        assert _files(partial) == []
        reply = request(second.url(f"/{bucket}/slow.bin"))
        assert (reply.headers["X-Cache"], reply.body) == ("MISS", body)
    finally:
        second.stop()


def test_an_unwritable_tier_serves_from_the_provider_and_counts_errors(
        moto, bucket, s3_proxy, data_path: Path, start_server: StartServer):
    moto.put(bucket, "x.jpg", b"jpeg bytes" * 1000)
    tier = data_path / "cache" / "storage"
    tier.mkdir(parents=True)
    (tier / "partial").write_text("a file where the part folder should be")
    server = start_server(**s3_env(s3_proxy.endpoint))

    replies = [request(server.url(f"/{bucket}/x.jpg")) for _ in range(2)]

    assert all((r.status, r.body) == (200, b"jpeg bytes" * 1000) for r in replies)
    metrics = request(server.url("/metrics")).body.decode()
    assert metric_value(metrics, 'preview_proxy_cache_errors_total{tier="storage"}') >= 2


def test_a_corrupt_cache_database_is_a_miss_not_an_error(
        moto, bucket, s3_proxy, data_path: Path, start_server: StartServer):
    moto.put(bucket, "y.jpg", b"y" * 50_000)
    server = start_server(**s3_env(s3_proxy.endpoint))
    assert request(server.url(f"/{bucket}/y.jpg")).headers["X-Cache"] == "MISS"
    database = data_path / "cache" / "storage" / "cache.db"
    with open(database, "r+b") as file:  # clobber the header and first pages under the running server
        file.write(os.urandom(64 * 1024))
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(database).execute("SELECT count(*) FROM Cache").fetchall()

    reply = request(server.url(f"/{bucket}/y.jpg"))

    assert (reply.status, reply.body) == (200, b"y" * 50_000)
    metrics = request(server.url("/metrics")).body.decode()
    assert metric_value(metrics, 'preview_proxy_cache_errors_total{tier="storage"}') >= 1


def _read_until_closed(url: str) -> tuple[bytes, bool]:
    """Read a GET body until the server ends or cuts it; (bytes, whether it was complete)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        try:
            return response.read(), True
        except http.client.IncompleteRead as error:
            return error.partial, False
    except (ConnectionError, http.client.HTTPException):
        return b"", False
    finally:
        connection.close()


def _files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _poll(condition, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout}s")

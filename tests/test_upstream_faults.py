"""A provider that misbehaves, through the fault-injecting TCP proxy on loopback: timeouts, retries,
bodies cut short, error statuses, stale-if-error and the circuit breaker.

Every count of provider requests is read at the proxy, on the wire.
"""

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import StartServer
from tests.support.backends import Backend, make_backend
from tests.support.fake_gcs import FakeGCS
from tests.support.http import metric_value, request
from tests.support.s3 import MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy, UnansweredPort
from tests.test_disk_tier import wait_for_clock
from tests.test_local_originals import make_jpeg
from tests.test_s3_faults import _files, _read_until_closed

MIB = 1024 * 1024


def _timed(server: ServerProcess, path: str) -> tuple[int, bytes, float]:
    started = time.monotonic()
    reply = request(server.url(path), timeout=60)
    return reply.status, reply.body, time.monotonic() - started


# --- timeouts ------------------------------------------------------------------------------------


def test_connect_timeout_is_504_after_storage_connect_timeout(start_server: StartServer, bucket: str) -> None:
    with UnansweredPort() as unanswered:
        server = start_server(**s3_env(unanswered.endpoint, STORAGE_CONNECT_TIMEOUT="1s",
                                       STORAGE_READ_TIMEOUT="20s", STORAGE_RETRIES="0"))

        status, body, seconds = _timed(server, f"/{bucket}/a.jpg")

    assert (status, body) == (504, b"storage provider timed out\n")
    assert 0.9 <= seconds < 5, "the connect timeout, not the read timeout, must end it"


def test_read_timeout_is_504_after_storage_read_timeout(
        start_server: StartServer, s3_proxy: TcpProxy, bucket: str) -> None:
    s3_proxy.faults.black_hole = True  # connects, never answers
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_READ_TIMEOUT="1s", STORAGE_RETRIES="0"))

    status, body, seconds = _timed(server, f"/{bucket}/a.jpg")

    assert (status, body) == (504, b"storage provider timed out\n")
    assert 0.9 <= seconds < 5


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("retries", "failures", "status", "attempts"), [
    ("2", 2, 200, 3),  # two 503s, then the object
    ("1", 2, 502, 2),  # retries run out
    ("0", 1, 502, 1),
])
def test_reads_are_retried_with_backoff_before_their_headers(
        start_server: StartServer, moto: MotoS3, s3_proxy: TcpProxy, bucket: str,
        retries: str, failures: int, status: int, attempts: int) -> None:
    moto.put(bucket, "r.jpg", b"retried until it came")
    s3_proxy.faults.error_status, s3_proxy.faults.error_connections = 503, failures
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES=retries, LOG_LEVEL="debug"))

    reply = request(server.url(f"/{bucket}/r.jpg"), headers={"X-Request-ID": "retried-read"})

    assert reply.status == status
    assert len(s3_proxy.gets("/r.jpg")) == attempts
    # One DEBUG line per retried attempt, and the failure once, as a warning, when the last one fails:
    # every line with the request's id.
    server.wait_for_log('"GET /')  # the access line comes after the provider's lines
    about = [line for line in server.log_lines if f"{bucket}/r.jpg failed" in line]
    levels = ["DEBUG"] * min(failures, attempts - 1) + ["WARNING"] * (status == 502)
    assert [line.split()[2] for line in about] == levels
    assert all(line.endswith(" request_id=retried-read") and "503" in line for line in about)


def test_a_reset_before_the_headers_is_retried(
        start_server: StartServer, moto: MotoS3, s3_proxy: TcpProxy, bucket: str) -> None:
    moto.put(bucket, "z.jpg", b"after one reset")
    s3_proxy.faults.reset_after_bytes, s3_proxy.faults.reset_connections = 0, 1
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES="1"))

    reply = request(server.url(f"/{bucket}/z.jpg"))

    assert (reply.status, reply.body) == (200, b"after one reset")
    assert len(s3_proxy.gets("/z.jpg")) == 2


# --- bodies cut short, on every provider the peers allow ---------------------------------------


@pytest.fixture
def gcs_behind_proxy() -> Iterator[tuple[FakeGCS, TcpProxy]]:
    """fake-gcs-server routes obstore's paths only for its public host, so here that is the proxy's."""
    with TcpProxy(("127.0.0.1", 0)) as proxy:
        server = FakeGCS(public_host=f"127.0.0.1:{proxy.port}")
        proxy.upstream = ("127.0.0.1", server.port)
        yield server, proxy
        server.close()


@pytest.mark.parametrize("name", ["s3", "azure-key", "gcs"])
def test_a_body_cut_midway_is_not_retried_aborts_the_client_and_caches_nothing(
        name: str, request: pytest.FixtureRequest, tmp_path: Path, data_path: Path,
        start_server: StartServer) -> None:
    backend, proxy, env = _backend_behind_proxy(name, request, tmp_path)
    body = os.urandom(4 * MIB)
    backend.seed("cut.bin", body, "application/octet-stream")
    proxy.faults.reset_after_bytes, proxy.faults.reset_connections = MIB, 1  # only the first connection
    server = start_server(**env, STORAGE_RETRIES="2")

    received, complete = _read_until_closed(server.url(f"/{backend.bucket}/cut.bin"))

    assert not complete and len(received) < len(body), "the client must see an aborted response"
    assert received == body[:len(received)]
    # obstore percent-encodes GCS paths (`cut%2Ebin`), so only the stem is matched.
    assert len(proxy.gets("/cut")) == 1, "a body is never resumed or retried once it has started"
    assert _files(data_path / "cache" / "storage" / "partial") == []
    again = _fetch_whole(server, f"/{backend.bucket}/cut.bin")
    assert (again.status, again.headers["X-Cache"], again.body == body) == (200, "MISS", True)


def _backend_behind_proxy(name: str, request: pytest.FixtureRequest,
                          tmp_path: Path) -> tuple[Backend, TcpProxy, dict[str, str]]:
    if name == "gcs":
        fake, proxy = request.getfixturevalue("gcs_behind_proxy")
        backend = make_backend("gcs", request, tmp_path)
        # A bucket on this test's own server, seeded through its own (unproxied) JSON API.
        fake.create_bucket(backend.bucket)
        backend.seed = lambda key, data, content_type: fake.put(backend.bucket, key, data, content_type)
        return backend, proxy, {**backend.env, "STORAGE_ENDPOINT": proxy.endpoint}
    backend = make_backend(name, request, tmp_path)
    proxy = TcpProxy(backend.upstream)
    request.addfinalizer(proxy.close)
    return backend, proxy, {**backend.env, "STORAGE_ENDPOINT": backend.endpoint_via(proxy.endpoint)}


def _fetch_whole(server: ServerProcess, path: str):  # type: ignore[no-untyped-def]
    return request(server.url(path))


# --- statuses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("injected", "status", "body", "log"), [
    (500, 502, b"storage provider failed\n", "failed: {error}"),
    (503, 502, b"storage provider failed\n", "failed: {error}"),
    (403, 502, b"storage provider denied access\n", "access denied: check the credentials"),
])
# s3_env's endpoint is http://, so the whole object is asked for by the spliced GET
# (proxy.storage.cloud.spliced_get), whose unexpected statuses are UpstreamStatus; without it, obstore's.
@pytest.mark.parametrize(("splice", "error"), [("true", "UpstreamStatus: GET /"), ("false", "GenericError")])
def test_provider_statuses_become_gateway_errors_with_a_reason_in_the_log(
        start_server: StartServer, s3_proxy: TcpProxy, bucket: str,
        injected: int, status: int, body: bytes, log: str, splice: str, error: str) -> None:
    s3_proxy.faults.error_status, s3_proxy.faults.error_connections = injected, 100
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES="0", STORAGE_SPLICE=splice))
    log = log.format(error=error)

    reply = request(server.url(f"/{bucket}/e.jpg"))

    assert (reply.status, reply.body) == (status, body)
    line = server.wait_for_log(log)
    assert f"{bucket}/e.jpg" in line and str(injected) in line


def test_not_found_is_404_and_not_retried(start_server: StartServer, s3_proxy: TcpProxy, bucket: str) -> None:
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES="2"))

    reply = request(server.url(f"/{bucket}/missing.jpg"))

    assert (reply.status, reply.body) == (404, b"no such object\n")
    assert len(s3_proxy.gets("/missing.jpg")) == 1


# --- stale-if-error ------------------------------------------------------------------------------


def _after_idle(server: ServerProcess, path: str, idle: float):  # type: ignore[no-untyped-def]
    """Leave `path` unread for longer than the tier's idle period, then request it once.

    Any read in between would refresh the entry's idle clock, so this waits on the clock itself:
    bounded in polls and in time, as tests/test_disk_tier.py's wait_for_clock.
    """
    wait_for_clock(time.time() + idle + 0.1)
    return request(server.url(path))


@pytest.mark.parametrize("fault", ["error", "black_hole"])
def test_an_expired_copy_is_served_stale_when_the_provider_fails(
        start_server: StartServer, moto: MotoS3, s3_proxy: TcpProxy, bucket: str, fault: str) -> None:
    moto.put(bucket, "s.jpg", b"kept past its expiry")
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES="0", STORAGE_READ_TIMEOUT="1s",
                                   CACHE_STORAGE_EXPIRES="1s"))
    assert request(server.url(f"/{bucket}/s.jpg")).headers["X-Cache"] == "MISS"
    if fault == "error":
        s3_proxy.faults.error_status, s3_proxy.faults.error_connections = 503, 100
    else:
        s3_proxy.faults.black_hole = True

    reply = _after_idle(server, f"/{bucket}/s.jpg", 1.0)

    assert (reply.status, reply.headers["X-Cache"], reply.body) == (200, "STALE", b"kept past its expiry")
    # RFC 9211: the request went on to the provider because the entry was stale; Age counts from its storing.
    assert reply.headers["Cache-Status"] == "preview-proxy; fwd=stale; detail=stale-if-error"
    assert int(reply.headers["Age"]) >= 1  # stored before the idle second the test waited out
    assert "serving a stale copy" in server.wait_for_log(f"{bucket}/s.jpg: the provider failed")
    head = request(server.url(f"/{bucket}/s.jpg"), method="HEAD")
    assert (head.status, head.headers["X-Cache"]) == (200, "STALE")
    metrics = request(server.url("/metrics")).body.decode()
    assert metric_value(metrics, 'preview_proxy_cache_requests_total{result="stale",tier="storage"}') >= 2


def test_once_the_provider_recovers_a_stale_copy_is_fetched_again(
        start_server: StartServer, moto: MotoS3, s3_proxy: TcpProxy, bucket: str) -> None:
    moto.put(bucket, "v.jpg", b"version one")
    server = start_server(**s3_env(s3_proxy.endpoint, CACHE_STORAGE_EXPIRES="1s"))
    assert request(server.url(f"/{bucket}/v.jpg")).headers["X-Cache"] == "MISS"
    moto.put(bucket, "v.jpg", b"version two")

    reply = _after_idle(server, f"/{bucket}/v.jpg", 1.0)

    assert (reply.headers["X-Cache"], reply.body) == ("MISS", b"version two")
    assert len(s3_proxy.gets("/v.jpg")) == 2


def test_stale_if_error_can_be_switched_off(
        start_server: StartServer, moto: MotoS3, s3_proxy: TcpProxy, bucket: str) -> None:
    moto.put(bucket, "off.jpg", b"not kept")
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES="0", CACHE_STORAGE_EXPIRES="1s",
                                   CACHE_STALE_IF_ERROR="false"))
    assert request(server.url(f"/{bucket}/off.jpg")).status == 200
    s3_proxy.faults.error_status, s3_proxy.faults.error_connections = 503, 100

    reply = _after_idle(server, f"/{bucket}/off.jpg", 1.0)

    assert reply.status == 502


# --- circuit breaker -----------------------------------------------------------------------------


def test_a_failing_provider_is_not_hammered_until_a_probe_finds_it_back(
        start_server: StartServer, moto: MotoS3, s3_proxy: TcpProxy, bucket: str) -> None:
    moto.put(bucket, "cb.jpg", b"back again")
    s3_proxy.faults.error_status, s3_proxy.faults.error_connections = 503, 3
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES="0", STORAGE_BREAKER_FAILURES="3",
                                   STORAGE_BREAKER_COOLDOWN="2s"))
    path = f"/{bucket}/cb.jpg"

    failures = [request(server.url(path)).status for _ in range(3)]
    opened_at = time.monotonic()
    short_circuited = [request(server.url(path)) for _ in range(5)]

    assert failures == [502] * 3
    assert all(r.status == 502 and r.body == b"storage provider is failing; requests to it are paused\n"
               for r in short_circuited)
    assert len(s3_proxy.gets("/cb.jpg")) == 3, "no request may reach the provider while the circuit is open"
    metrics = request(server.url("/metrics")).body.decode()
    assert metric_value(metrics, 'preview_proxy_upstream_circuit_state{provider="s3"}') == 1
    assert metric_value(metrics, 'preview_proxy_upstream_circuit_opens_total{provider="s3"}') == 1
    assert metric_value(metrics, 'preview_proxy_upstream_requests_total{outcome="short_circuit",provider="s3"}') == 5

    # After the cool-down one probe goes through; the provider answers, and the circuit closes.
    reply = _until_status(server, path, 200, timeout=10.0)
    assert time.monotonic() - opened_at >= 2.0
    assert reply.body == b"back again"
    assert len(s3_proxy.gets("/cb.jpg")) == 4, "exactly one probe"
    metrics = request(server.url("/metrics")).body.decode()
    assert metric_value(metrics, 'preview_proxy_upstream_circuit_state{provider="s3"}') == 0


def _until_status(server: ServerProcess, path: str, status: int, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = request(server.url(path))
        if reply.status == status:
            return reply
        time.sleep(0.1)
    raise AssertionError(f"{path} did not answer {status} within {timeout}s")


def test_a_body_that_stalls_midway_times_out_per_chunk_and_aborts_the_client(
        start_server: StartServer, moto: MotoS3, s3_proxy: TcpProxy, bucket: str, data_path: Path) -> None:
    body = os.urandom(4 * MIB)
    moto.put(bucket, "stall.bin", body)
    s3_proxy.faults.stall_after_bytes = MIB  # the headers and 1 MiB arrive, then nothing
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_READ_TIMEOUT="1s", STORAGE_RETRIES="2"))
    started = time.monotonic()

    received, complete = _read_until_closed(server.url(f"/{bucket}/stall.bin"))

    assert not complete and len(received) < len(body)
    assert time.monotonic() - started < 10, "the read timeout applies to each chunk, not the whole body"
    assert "read body of" in server.wait_for_log("timed out after 1s")
    assert len(s3_proxy.gets("/stall.bin")) == 1
    assert _files(data_path / "cache" / "storage" / "partial") == []


def test_a_preview_renders_from_a_stale_original_when_the_provider_fails(
        start_server: StartServer, moto: MotoS3, s3_proxy: TcpProxy, bucket: str) -> None:
    moto.put(bucket, "p.jpg", make_jpeg(seed=5), "image/jpeg")
    server = start_server(**s3_env(s3_proxy.endpoint, STORAGE_RETRIES="0", CACHE_STORAGE_EXPIRES="1s",
                                   CACHE_SOURCE_INFO_TTL="0"))
    assert request(server.url(f"/{bucket}/p.jpg")).headers["X-Cache"] == "MISS"
    s3_proxy.faults.error_status, s3_proxy.faults.error_connections = 503, 100

    # A size not rendered before, so the previews tier misses and the original is needed.
    reply = _after_idle(server, f"/previews/insecure/rs:fit:80:80/f:png/plain/{bucket}/p.jpg", 1.0)

    assert (reply.status, reply.headers["Content-Type"]) == (200, "image/png"), reply.body[:200]
    assert Image.open(io.BytesIO(reply.body)).size == (80, 62)
    assert "serving a stale copy" in server.wait_for_log(f"{bucket}/p.jpg: the provider failed")

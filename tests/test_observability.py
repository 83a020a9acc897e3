"""What operators see: health probes, Prometheus metrics, one access-log line per request, clean errors.

Every test runs a real server on a loopback port. The S3 test puts a fault-injecting TCP proxy
(added latency) between the server and moto, so a second request deterministically joins a fill
that is still in flight.
"""

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.s3 import MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
PATH = "/photos/cat.jpg"
TIERS = {"previews", "storage", "image-converter"}
# family name as the parser reports it (counters without `_total`) -> (type, label names)
FAMILIES = {
    "preview_proxy_requests": ("counter", {"route", "status"}),
    "preview_proxy_request_duration_seconds": ("histogram", {"route"}),
    "preview_proxy_cache_size_bytes": ("gauge", {"tier"}),
    "preview_proxy_cache_entries": ("gauge", {"tier"}),
    "preview_proxy_cache_errors": ("counter", {"tier"}),
    "preview_proxy_cache_evictions": ("counter", {"tier"}),
    "preview_proxy_upstream_requests": ("counter", {"provider", "outcome"}),
    "preview_proxy_singleflight_waiters": ("counter", {"tier"}),
}
T = TypeVar("T")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def server(start_server: StartServer, data_path: Path) -> ServerProcess:
    """A server over local storage holding one photo."""
    (data_path / "storage" / "photos").mkdir()
    (data_path / "storage" / "photos" / "cat.jpg").write_bytes(PHOTO)
    return start_server()



def scrape(server: ServerProcess) -> tuple[dict[str, str], Samples]:
    """/metrics parsed: family name -> type, and (sample name, labels) -> value."""
    status, _, body = fetch(server, "/metrics")
    assert status == 200
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the labelled child doesn't exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_names(samples: Samples, family: str) -> set[frozenset[str]]:
    """The distinct label-name sets of a family's samples (histograms' `le` left out)."""
    return {frozenset(k for k, _ in labels if k != "le") for name, labels in samples if name.startswith(family)}


def assert_one_line(body: bytes) -> None:
    """Error bodies are exactly one line of text."""
    text = body.decode()
    assert text.endswith("\n") and text.count("\n") == 1 and len(text.strip()) > 0, text


def test_healthz_answers_200(server: ServerProcess) -> None:
    status, _, body = fetch(server, "/healthz")
    assert (status, body) == (200, b"ok\n")


def test_readyz_answers_200_on_local_storage_and_503_without_its_root(server: ServerProcess,
                                                                      data_path: Path) -> None:
    assert fetch(server, "/readyz")[0] == 200
    storage = data_path / "storage"
    storage.rename(data_path / "storage-away")
    status, _, body = fetch(server, "/readyz")
    assert status == 503
    assert_one_line(body)
    (data_path / "storage-away").rename(storage)
    assert fetch(server, "/readyz")[0] == 200


def test_metrics_declares_every_family_with_its_labels(server: ServerProcess) -> None:
    assert fetch(server, PATH)[0] == 200
    types, samples = scrape(server)
    for family, (kind, labels) in FAMILIES.items():
        assert types.get(family) == kind, family
        assert label_names(samples, family) <= {frozenset(labels)}, family
    assert label_names(samples, "preview_proxy_requests") == {frozenset({"route", "status"})}
    assert label_names(samples, "preview_proxy_request_duration_seconds") == {frozenset({"route"})}
    for gauge in ("preview_proxy_cache_size_bytes", "preview_proxy_cache_entries"):
        tiers = {dict(labels)["tier"] for name, labels in samples if name == gauge}
        assert tiers == TIERS, gauge


def test_requests_counter_grows_by_exactly_the_requests_made(server: ServerProcess) -> None:
    _, before = scrape(server)
    for index in range(7):
        assert fetch(server, f"{PATH}?n={index}")[0] == 200
    for index in range(3):
        assert fetch(server, f"/photos/missing-{index}.jpg")[0] == 404
    _, after = scrape(server)
    ok = {"route": "original", "status": "200"}
    missing = {"route": "original", "status": "404"}
    assert value(after, "preview_proxy_requests_total", **ok) - value(before, "preview_proxy_requests_total", **ok) == 7
    assert (value(after, "preview_proxy_requests_total", **missing)
            - value(before, "preview_proxy_requests_total", **missing)) == 3
    histogram = "preview_proxy_request_duration_seconds_count"
    assert value(after, histogram, route="original") - value(before, histogram, route="original") == 10


def test_exactly_one_access_log_line_per_request(server: ServerProcess) -> None:
    token = uuid.uuid4().hex
    requests = [
        ("GET", f"{PATH}?t={token}-get", {}, 200),
        ("HEAD", f"{PATH}?t={token}-head", {}, 200),
        ("GET", f"{PATH}?t={token}-range", {"Range": "bytes=0-9"}, 206),
        ("GET", f"{PATH}?t={token}-unsatisfiable", {"Range": "bytes=999999-"}, 416),
        ("GET", f"/photos/missing-{token}.jpg", {}, 404),
        ("GET", f"/nowhere-{token}", {}, 404),
        ("POST", f"{PATH}?t={token}-post", {}, 405),
        ("GET", f"/photos/..%2f..%2fsecret?t={token}-bad", {}, 400),
        ("GET", f"/healthz?t={token}-healthz", {}, 200),
        ("GET", f"/readyz?t={token}-readyz", {}, 200),
    ]
    etag = fetch(server, PATH)[1]["ETag"]
    requests.append(("GET", f"{PATH}?t={token}-304", {"If-None-Match": etag}, 304))
    for method, path, headers, expected in requests:
        assert fetch(server, path, headers, method)[0] == expected, path
    # Lines are written in order: once the last request's line is there, all earlier ones are too.
    sentinel = f"/healthz?t={token}-sentinel"
    assert fetch(server, sentinel)[0] == 200
    server.wait_for_log(sentinel)
    for method, path, _, expected in requests:
        needle = path.rsplit("?", 1)[-1] if "?" in path else path
        lines = [line for line in server.log_lines if needle in line]
        assert len(lines) == 1, (path, lines)
        assert f'"{method} ' in lines[0] and f'" {expected} ' in lines[0], lines[0]


def test_errors_are_one_line_text_and_leave_no_traceback(server: ServerProcess) -> None:
    cases = [("GET", "/nope", 404), ("GET", "/no-such-bucket/x.jpg", 404), ("GET", "/photos/no-such-key.jpg", 404),
             ("POST", PATH, 405), ("PUT", PATH, 403), ("DELETE", PATH, 405), ("GET", "/photos/%2e%2e/x", 400),
             ("GET", "/photos/a%00b", 400), ("GET", "/photos/%ff%fe.jpg", 400)]
    for method, path, expected in cases:
        status, headers, body = fetch(server, path, method=method)
        assert status == expected, (method, path)
        assert headers["Content-Type"].startswith("text/plain"), (method, path)
        assert_one_line(body)
        if expected == 405:
            assert "GET" in headers["Allow"]
    server.stop()
    assert "Traceback" not in server.log_text()
    assert "unexpected error" not in server.log_text()


def test_upstream_and_singleflight_metrics_on_s3(start_server: StartServer, moto: MotoS3, bucket: str) -> None:
    body = bytes(range(256)) * 4096
    moto.put(bucket, "big.bin", body)
    with TcpProxy(("127.0.0.1", moto.port)) as proxy:
        proxy.faults.latency = 1.0  # holds the fill's response, so the second request finds it in flight
        server = start_server(**s3_env(proxy.endpoint))
        _, before = scrape(server)
        results: dict[str, tuple[int, str, bytes]] = {}

        def get(name: str) -> None:
            status, headers, data = fetch(server, f"/{bucket}/big.bin")
            results[name] = (status, headers["X-Cache"], data)

        first = threading.Thread(target=get, args=("first",))
        first.start()
        server_seen = bounded_poll(lambda: proxy.gets(f"/{bucket}/big.bin"), timeout=10)
        assert server_seen, "the fill never reached the provider"
        second = threading.Thread(target=get, args=("second",))
        second.start()
        for thread in (first, second):
            thread.join(30)
            assert not thread.is_alive()
        assert results == {"first": (200, "MISS", body), "second": (200, "HIT", body)}
        assert len(proxy.gets(f"/{bucket}/big.bin")) == 1
        # The fill commits just after the last byte went out; poll for the entry rather than race it.
        committed = bounded_poll(lambda: value(scrape(server)[1], "preview_proxy_cache_entries", tier="storage"), 10)
        assert committed == 1
        _, after = scrape(server)
    waiters = "preview_proxy_singleflight_waiters_total"
    assert value(after, waiters, tier="storage") - value(before, waiters, tier="storage") == 1
    upstream = "preview_proxy_upstream_requests_total"
    ok = {"provider": "s3", "outcome": "ok"}
    assert value(after, upstream, **ok) - value(before, upstream, **ok) == 1
    assert label_names(after, "preview_proxy_upstream_requests") == {frozenset({"provider", "outcome"})}
    assert label_names(after, "preview_proxy_singleflight_waiters") == {frozenset({"tier"})}
    # As with nginx's proxy_cache_lock, only the request that went to the provider is a miss.
    lookups = "preview_proxy_cache_requests_total"
    for result in ("miss", "hit"):
        assert value(after, lookups, tier="storage", result=result) - value(before, lookups, tier="storage",
                                                                            result=result) == 1, result


def bounded_poll(probe: Callable[[], T], timeout: float) -> T:
    """Call `probe` until it returns something truthy or `timeout` passes; return the last result."""
    deadline = time.monotonic() + timeout
    result = probe()
    while not result and time.monotonic() < deadline:
        time.sleep(0.02)
        result = probe()
    return result

"""Links end to end: a server with a links file reaching moto (S3), Azurite, fake-gcs-server and a local
folder, as originals (`/links/<scheme>/<bucket>/<key>`) and as preview sources (`s3://bucket/key`).

Only the buckets the file lists are reachable: the peers hold other buckets too, and a TCP proxy in
front of moto shows that a refused link never reaches it.
"""

import base64
import io
import signal
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import StartServer
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from tests.support.fake_gcs import FakeGCS, write_service_account
from tests.support.http import fetch, metric_value, request
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy
from tests.test_local_originals import make_jpeg
from tests.test_s3_faults import _poll, _read_until_closed

JPEG = make_jpeg(seed=3)


@dataclass
class Peers:
    """One bucket per provider, each listed in the links file, plus a bucket on moto that is not."""

    s3: str
    azure: str
    gcs: str
    fs_folder: Path
    unlisted: str
    s3_proxy: TcpProxy
    links_file: Path


def _links_yaml(peers: Peers, azurite: Azurite, fake_gcs: FakeGCS, credentials: Path,
                s3_buckets: list[str]) -> str:
    return f"""
cars: {{provider: minio, endpoint: "{peers.s3_proxy.endpoint}", access_key: {ACCESS_KEY},
        secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{", ".join(s3_buckets)}]}}
boats: {{provider: azure, endpoint: "{azurite.endpoint}", access_key: {ACCOUNT}, secret_key: "{ACCOUNT_KEY}",
         buckets: [{peers.azure}]}}
planes: {{provider: google, endpoint: "{fake_gcs.endpoint}", credentials_path: {credentials}, buckets: [{peers.gcs}]}}
local-datasets: {{provider: fs, path: {peers.fs_folder}}}
"""


@pytest.fixture
def peers(moto: MotoS3, azurite: Azurite, fake_gcs: FakeGCS, tmp_path: Path):  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:8]
    with TcpProxy(("127.0.0.1", moto.port)) as s3_proxy:
        found = Peers(s3=moto.create_bucket(f"cars-{suffix}"), azure=azurite.create_container(f"boats-{suffix}"),
                      gcs=fake_gcs.create_bucket(f"planes-{suffix}"), fs_folder=tmp_path / "datasets",
                      unlisted=moto.create_bucket(f"private-{suffix}"), s3_proxy=s3_proxy,
                      links_file=tmp_path / "remote_links.yml")
        found.fs_folder.mkdir()
        credentials = tmp_path / "gcs.json"
        write_service_account(credentials)
        for put in (lambda: moto.put(found.s3, "a/photo.jpg", JPEG, "image/jpeg"),
                    lambda: azurite.put(found.azure, "a/photo.jpg", JPEG, "image/jpeg"),
                    lambda: fake_gcs.put(found.gcs, "a/photo.jpg", JPEG, "image/jpeg"),
                    lambda: moto.put(found.unlisted, "a/photo.jpg", b"never relayed", "image/jpeg")):
            put()
        (found.fs_folder / "a").mkdir()
        (found.fs_folder / "a" / "photo.jpg").write_bytes(JPEG)
        found.links_file.write_text(_links_yaml(found, azurite, fake_gcs, credentials, [found.s3]))
        yield found


@pytest.fixture
def server(peers: Peers, start_server: StartServer) -> ServerProcess:
    return start_server(REMOTE_LINKS_PATH=str(peers.links_file))


def _bucket(peers: Peers, scheme: str) -> str:
    return {"s3": peers.s3, "minio": peers.s3, "azure": peers.azure, "google": peers.gcs, "gs": peers.gcs,
            "gcs": peers.gcs, "fs": "local-datasets"}[scheme]


@pytest.mark.parametrize("scheme", ["s3", "minio", "azure", "google", "gs", "gcs", "fs"])
def test_originals_through_each_link_scheme(server: ServerProcess, peers: Peers, scheme: str) -> None:
    path = f"/links/{scheme}/{_bucket(peers, scheme)}/a/photo.jpg"

    first = request(server.url(path))
    second = request(server.url(path))
    ranged = request(server.url(path), headers={"Range": "bytes=100-199"})
    revalidated = request(server.url(path), headers={"If-None-Match": first.headers["ETag"]})

    assert (first.status, first.body, first.headers["Content-Type"]) == (200, JPEG, "image/jpeg")
    in_place = scheme == "fs"
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == (
        ("BYPASS", "BYPASS") if in_place else ("MISS", "HIT"))
    assert second.body == JPEG
    assert (ranged.status, ranged.body) == (206, JPEG[100:200])
    assert (revalidated.status, revalidated.body) == (304, b"")


def test_a_link_fetches_once_and_is_cached_apart_from_the_main_storage(
        server: ServerProcess, peers: Peers, data_path: Path) -> None:
    # The main storage (local disk) has a bucket of the same name with other bytes.
    (data_path / "storage" / peers.s3 / "a").mkdir(parents=True)
    (data_path / "storage" / peers.s3 / "a" / "photo.jpg").write_bytes(b"main storage bytes")

    replies = [request(server.url(f"/links/s3/{peers.s3}/a/photo.jpg")) for _ in range(3)]
    main = request(server.url(f"/{peers.s3}/a/photo.jpg"))

    assert [r.body for r in replies] == [JPEG] * 3
    assert len(peers.s3_proxy.gets("/a/photo.jpg")) == 1
    assert main.body == b"main storage bytes"
    metrics = request(server.url("/metrics")).body.decode()
    assert metric_value(metrics, 'preview_proxy_upstream_requests_total{outcome="ok",provider="link:cars"}') == 1


@pytest.mark.parametrize("path", [
    "/links/s3/{unlisted}/a/photo.jpg",  # on the same server, with the same keys, but not in the file
    "/links/azure/{s3}/a/photo.jpg",  # a listed bucket, through another provider's scheme
    "/links/gs/{s3}/a/photo.jpg",
    "/links/fs/{s3}/a/photo.jpg",
    "/links/fs/no-such-storage/a/photo.jpg",
    "/links/s3/{s3}/a/missing.jpg",  # listed bucket, no such key
])
def test_anything_not_listed_is_404_and_never_relayed(server: ServerProcess, peers: Peers, path: str) -> None:
    reply = request(server.url(path.format(unlisted=peers.unlisted, s3=peers.s3)))

    assert reply.status == 404
    assert reply.body.count(b"\n") == 1 and b"never relayed" not in reply.body
    assert peers.s3_proxy.gets(f"/{peers.unlisted}/") == []


def test_fs_links_stay_inside_their_folder(server: ServerProcess, peers: Peers, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("outside the linked folder")
    (peers.fs_folder / "escape.txt").symlink_to(tmp_path / "outside.txt")

    traversal = request(server.url("/links/fs/local-datasets/a/%2e%2e/%2e%2e/outside.txt"))
    symlink = request(server.url("/links/fs/local-datasets/escape.txt"))

    assert traversal.status == 400
    assert symlink.status == 404
    assert b"outside" not in traversal.body + symlink.body


def test_links_with_another_second_segment_are_the_main_storage_bucket_named_links(
        server: ServerProcess, data_path: Path) -> None:
    (data_path / "storage" / "links" / "notes").mkdir(parents=True)
    (data_path / "storage" / "links" / "notes" / "a.txt").write_bytes(b"a plain bucket called links")

    reply = request(server.url("/links/notes/a.txt"))

    assert (reply.status, reply.body) == (200, b"a plain bucket called links")


@pytest.mark.parametrize("scheme", ["s3", "azure", "gs", "fs"])
def test_previews_from_link_sources(server: ServerProcess, peers: Peers, scheme: str) -> None:
    path = f"/previews/insecure/rs:fit:64:64/f:png/plain/{scheme}://{_bucket(peers, scheme)}/a/photo.jpg"

    status, headers, body = fetch(server, path)
    again = fetch(server, path)

    assert (status, headers["Content-Type"]) == (200, "image/png"), body[:200]
    assert Image.open(io.BytesIO(body)).size == (64, 50)  # 900x700 fitted into 64x64
    assert again[1]["X-Cache"] == "HIT"


@pytest.mark.parametrize("source", ["s3://{unlisted}/a/photo.jpg", "http://127.0.0.1:{port}/{s3}/a/photo.jpg",
                                    "gcs://{s3}/a/photo.jpg"])
def test_preview_sources_outside_the_file_are_404(server: ServerProcess, peers: Peers, source: str) -> None:
    filled = source.format(unlisted=peers.unlisted, s3=peers.s3, port=peers.s3_proxy.port)

    status, _, body = fetch(server, f"/previews/insecure/rs:fit:64:64/plain/{filled}")

    assert status == 404, body
    assert peers.s3_proxy.requests == []


def test_sighup_reloads_the_file_without_dropping_a_request_in_flight(
        server: ServerProcess, peers: Peers, moto: MotoS3) -> None:
    big = bytes(range(256)) * (16 * 1024)  # 4 MiB
    moto.put(peers.s3, "big.bin", big)
    added = moto.create_bucket(f"added-{uuid.uuid4().hex[:8]}")
    moto.put(added, "new.jpg", b"from a bucket added by the reload")
    peers.s3_proxy.faults.bytes_per_second = 2 * 1024 * 1024  # the body takes about 2 s
    results: list[tuple[bytes, bool]] = []
    reader = threading.Thread(target=lambda: results.append(
        _read_until_closed(server.url(f"/links/s3/{peers.s3}/big.bin"))), daemon=True)
    reader.start()
    _poll(lambda: peers.s3_proxy.bytes_down > 64 * 1024, "a body in flight")

    # The new file drops the bucket being read and adds another.
    peers.links_file.write_text(peers.links_file.read_text().replace(f"buckets: [{peers.s3}]", f"buckets: [{added}]"))
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_log("reloaded: 4 entries")
    assert peers.s3_proxy.bytes_down < len(big), "the request must still be in flight when the file changes"

    reader.join(30)
    assert results == [(big, True)], "the request in flight must complete, whole"
    assert request(server.url(f"/links/s3/{added}/new.jpg")).body == b"from a bucket added by the reload"
    assert request(server.url(f"/links/s3/{peers.s3}/a/photo.jpg")).status == 404


def test_sighup_with_a_bad_file_keeps_the_old_one(server: ServerProcess, peers: Peers) -> None:
    path = f"/links/s3/{peers.s3}/a/photo.jpg"
    assert request(server.url(path)).status == 200
    peers.links_file.write_text(peers.links_file.read_text().replace("provider: azure", "provider: azur"))

    server.process.send_signal(signal.SIGHUP)
    line = server.wait_for_log("links file not reloaded")

    assert "entry 'boats': field 'provider'" in line and ACCOUNT_KEY not in line
    assert request(server.url(path)).body == JPEG
    assert request(server.url(f"/links/azure/{peers.azure}/a/photo.jpg")).body == JPEG
    assert server.process.poll() is None


def test_a_bad_file_at_start_up_stops_the_server_with_one_line(
        peers: Peers, start_server: StartServer) -> None:
    peers.links_file.write_text(peers.links_file.read_text().replace("buckets: [", "bukets: [", 1))

    with pytest.raises(RuntimeError) as excinfo:
        start_server(REMOTE_LINKS_PATH=str(peers.links_file))

    # The unknown field by its place and the field it resembles, never its text (it could be a pasted secret).
    assert "entry 'cars': field #" in str(excinfo.value) and "did you mean 'buckets'?" in str(excinfo.value)
    assert "bukets" not in str(excinfo.value)
    assert SECRET_KEY not in str(excinfo.value)


def test_a_links_secret_never_reaches_logs_bodies_or_metrics(
        peers: Peers, azurite: Azurite, start_server: StartServer, tmp_path: Path) -> None:
    wrong_key = base64.b64encode(b"not the account key, but a well-formed one!!" * 2).decode()
    links = tmp_path / "wrong_key.yml"
    links.write_text(f'boats: {{provider: azure, endpoint: "{azurite.endpoint}", access_key: {ACCOUNT}, '
                     f'secret_key: "{wrong_key}", buckets: [{peers.azure}]}}\n')
    server = start_server(REMOTE_LINKS_PATH=str(links), STORAGE_RETRIES="0")

    reply = request(server.url(f"/links/azure/{peers.azure}/a/photo.jpg"))
    metrics = request(server.url("/metrics")).body.decode()

    assert (reply.status, reply.body) == (502, b"storage provider denied access\n")
    assert "access denied" in server.wait_for_log(f"{peers.azure}/a/photo.jpg")
    for text in (reply.body.decode(), metrics, server.log_text()):
        assert wrong_key not in text
    assert 'provider="link:boats"' in metrics

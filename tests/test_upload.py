"""PUT through the real server into moto (counted on the wire), Azurite and local disk: one request or parts,
checksums verified, a client that leaves midway aborts the upload, and the key's cached previews are purged.

Refusals (tokens, presigned URLs) are in test_upload_refusals.py; provider-level writes in test_upload_providers.py.
"""

import base64
import hashlib
import http.client
import io
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

from proxy.runtime.server import SHUTDOWN_SECONDS
from tests.conftest import StartServer
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY
from tests.support.http import request
from tests.support.previews_kit import poll
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

TOKEN = "upload-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MIB = 1024 * 1024
# S3's smallest part is 5 MiB: the smallest settings that still go up in parts on moto.
SMALL_PARTS = {"UPLOAD_TOKENS": TOKEN, "STORAGE_MULTIPART_THRESHOLD": "5m", "STORAGE_PART_SIZE": "5m"}
# moto (not S3) answers 500 to an AbortMultipartUpload that arrives while it still receives a part, and the
# upload stays open: the cases that abort send one part at a time, to test our abort rather than that race.
ABORTING = {**SMALL_PARTS, "STORAGE_UPLOAD_CONCURRENCY": "1"}
MULTIPART_SIZE = 40 * MIB


def put(server: ServerProcess, path: str, body: bytes | Iterator[bytes], length: int,
        headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """PUT `body` (bytes, or chunks streamed as they are made) with a Content-Length; status, headers, body."""
    parts = urlsplit(server.url(path))
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        connection.request("PUT", path, body=body, headers={"Content-Length": str(length), **(headers or {})})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def generated(size: int, seed: bytes = b"upload") -> Iterator[bytes]:
    """`size` bytes made on the fly in 1 MiB blocks, the same for the same seed (so a digest can be computed twice)."""
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    for start in range(0, size, MIB):
        yield block[: min(MIB, size - start)]


def sha256_of(chunks: Iterator[bytes]) -> bytes:
    """The raw SHA-256 of a stream of chunks."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.digest()


def jpeg(width: int, height: int) -> bytes:
    """A noisy JPEG of that size."""
    out = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(out, "JPEG")
    return out.getvalue()


@contextmanager
def upload_under_way(server: ServerProcess, path: str, s3_proxy: TcpProxy) -> Iterator[socket.socket]:
    """A raw PUT of MULTIPART_SIZE bytes whose first 16 MiB are sent and whose parts are on the wire;
    the connection closes when the block ends, mid-body."""
    parts = urlsplit(server.url("/"))
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as client:
        client.sendall(f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                       f"Content-Length: {MULTIPART_SIZE}\r\n\r\n".encode())
        for chunk in generated(16 * MIB):
            client.sendall(chunk)
        # Parts are on their way before the block runs: the upload was really started.
        poll(lambda: any("partNumber=" in seen.target for seen in s3_proxy.requests), "a part on the wire")
        yield client


def open_uploads(moto: MotoS3, bucket: str) -> list[str]:
    """Keys of the multipart uploads still open on moto."""
    return [upload["Key"] for upload in moto.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_a_small_put_is_one_request_and_answers_201_with_the_etag(moto, bucket, s3_proxy: TcpProxy,
                                                                   start_server: StartServer):
    server = start_server(**SMALL_PARTS, **s3_env(s3_proxy.endpoint))
    body = os.urandom(300_000)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    status, headers, _ = put(server, f"/{bucket}/dir/small.bin", body, len(body), {**AUTH, "Content-MD5": md5})
    assert status == 201
    assert headers["Location"] == f"/{bucket}/dir/small.bin"
    assert headers["ETag"] == moto.client.head_object(Bucket=bucket, Key="dir/small.bin")["ETag"]
    assert [seen.method for seen in s3_proxy.requests] == ["PUT"]
    got = request(server.url(f"/{bucket}/dir/small.bin"))
    assert (got.status, got.body, got.headers["ETag"]) == (200, body, headers["ETag"])


def test_a_large_put_goes_up_in_parts_and_reads_back_the_same(moto, bucket, s3_proxy: TcpProxy,
                                                              start_server: StartServer):
    server = start_server(**SMALL_PARTS, STORAGE_UPLOAD_CONCURRENCY="2", **s3_env(s3_proxy.endpoint))
    checksum = base64.b64encode(sha256_of(generated(MULTIPART_SIZE))).decode()
    status, headers, body = put(server, f"/{bucket}/big.bin", generated(MULTIPART_SIZE), MULTIPART_SIZE,
                                {**AUTH, "x-amz-checksum-sha256": checksum})
    assert status == 201, body
    parts = [seen for seen in s3_proxy.requests if seen.method == "PUT" and "partNumber=" in seen.target]
    assert len(parts) == MULTIPART_SIZE // (5 * MIB)
    stored = moto.client.get_object(Bucket=bucket, Key="big.bin")
    assert (stored["ETag"], hashlib.sha256(stored["Body"].read()).digest()) == (headers["ETag"],
                                                                                 sha256_of(generated(MULTIPART_SIZE)))


def test_a_checksum_mismatch_is_400_and_stores_nothing(moto, bucket, start_server: StartServer):
    server = start_server(**ABORTING, **s3_env(moto.endpoint))
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    for size in (300_000, 12 * MIB):  # one request, and parts (verified before they are completed)
        status, _, body = put(server, f"/{bucket}/bad-{size}.bin", generated(size), size,
                              {**AUTH, "x-amz-checksum-sha256": wrong})
        assert (status, b"x-amz-checksum-sha256" in body) == (400, True)
    assert moto.client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert open_uploads(moto, bucket) == []


def test_a_client_that_leaves_midway_aborts_the_upload(moto, bucket, s3_proxy: TcpProxy, start_server: StartServer):
    server = start_server(**ABORTING, **s3_env(s3_proxy.endpoint))
    with upload_under_way(server, f"/{bucket}/left.bin", s3_proxy):
        pass  # the client goes, mid-body
    poll(lambda: any(seen.method == "DELETE" and "uploadId=" in seen.target for seen in s3_proxy.requests),
         "the abort of the multipart upload")
    # The proxy sees the DELETE go by before moto has acted on it.
    poll(lambda: open_uploads(moto, bucket) == [] or None, "no multipart upload left open", timeout=10)
    assert moto.client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert request(server.url("/healthz")).status == 200


def test_an_upload_purges_the_previews_of_the_key(moto, bucket, start_server: StartServer):
    moto.put(bucket, "photo.jpg", jpeg(400, 300), "image/jpeg")
    # Source versions trusted for an hour: without the purge the old preview would be answered that long.
    server = start_server(UPLOAD_TOKENS=TOKEN, CACHE_SOURCE_INFO_TTL="1h", **s3_env(moto.endpoint))
    preview = f"/previews/q/rs:fit:100:0/plain/{bucket}/photo.jpg@png"
    assert Image.open(io.BytesIO(request(server.url(preview)).body)).size == (100, 75)
    assert request(server.url(f"/{bucket}/photo.jpg")).status == 200  # the original in the storage tier too
    new = jpeg(200, 300)
    assert put(server, f"/{bucket}/photo.jpg", new, len(new), AUTH)[0] == 201
    assert Image.open(io.BytesIO(request(server.url(preview)).body)).size == (100, 150)
    assert request(server.url(f"/{bucket}/photo.jpg")).body == new
    line = server.wait_for_log("upload by token #1")
    assert f"{bucket}/photo.jpg" in line and "previews=1" in line and TOKEN not in server.log_text()


def test_local_disk_takes_a_large_upload_through_a_part_file(data_path: Path, start_server: StartServer):
    (data_path / "storage" / "photos").mkdir()
    server = start_server(**SMALL_PARTS)
    size = 12 * MIB
    status, headers, _ = put(server, "/photos/new/big.bin", generated(size), size, AUTH)
    assert status == 201
    assert [p.name for p in (data_path / "storage" / "photos" / "new").iterdir()] == ["big.bin"]
    got = request(server.url("/photos/new/big.bin"))
    assert (got.headers["ETag"], hashlib.sha256(got.body).digest()) == (headers["ETag"], sha256_of(generated(size)))
    wrong = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    assert put(server, "/photos/new/other.bin", generated(size), size, {**AUTH, "Content-MD5": wrong})[0] == 400
    assert [p.name for p in (data_path / "storage" / "photos" / "new").iterdir()] == ["big.bin"]


def test_azure_takes_a_multipart_upload_as_blocks(azurite, start_server: StartServer):
    container = azurite.create_container(f"pp-up-{os.urandom(5).hex()}")
    with TcpProxy(("127.0.0.1", int(urlsplit(azurite.endpoint).port or 80))) as proxy:
        endpoint = proxy.endpoint + urlsplit(azurite.endpoint).path
        server = start_server(**SMALL_PARTS, STORAGE_PROVIDER="azure", STORAGE_ENDPOINT=endpoint,
                              STORAGE_ACCESS_KEY=ACCOUNT, STORAGE_SECRET_KEY=ACCOUNT_KEY)
        size = 12 * MIB
        status, headers, _ = put(server, f"/{container}/blob.bin", generated(size), size, AUTH)
        assert status == 201
        assert sum(1 for seen in proxy.requests if "comp=block&" in seen.target) == 3
        got = request(server.url(f"/{container}/blob.bin"))
        assert (got.headers["ETag"], hashlib.sha256(got.body).digest()) == (headers["ETag"],
                                                                            sha256_of(generated(size)))


def test_a_shutdown_mid_upload_aborts_it(moto, bucket, s3_proxy: TcpProxy, start_server: StartServer):
    server = start_server(**ABORTING, **s3_env(s3_proxy.endpoint))
    with upload_under_way(server, f"/{bucket}/stopped.bin", s3_proxy):
        # The client stays, silent: the server's grace period runs out and the request is cancelled.
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(SHUTDOWN_SECONDS + 20) == 0
    assert any(seen.method == "DELETE" and "uploadId=" in seen.target for seen in s3_proxy.requests)
    assert open_uploads(moto, bucket) == []
    assert moto.client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_linked_bucket_takes_uploads_on_its_own_provider(moto, bucket, data_path: Path, start_server: StartServer):
    links = data_path / "remote_links.yml"
    links.write_text(f'cars: {{provider: minio, endpoint: "{moto.endpoint}", access_key: {ACCESS_KEY}, '
                     f'secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{bucket}]}}\n')
    # The main storage is local disk, with no such bucket: the write can only have gone through the link.
    server = start_server(UPLOAD_TOKENS=TOKEN, REMOTE_LINKS_PATH=str(links))
    moto.put(bucket, "car.jpg", old := jpeg(64, 48), "image/jpeg")
    assert request(server.url(f"/links/s3/{bucket}/car.jpg")).body == old  # now in the storage tier
    new = jpeg(32, 48)
    status, headers, _ = put(server, f"/links/s3/{bucket}/car.jpg", new, len(new), AUTH)
    assert (status, headers["Location"]) == (201, f"/links/s3/{bucket}/car.jpg")
    assert moto.client.get_object(Bucket=bucket, Key="car.jpg")["Body"].read() == new
    got = request(server.url(f"/links/s3/{bucket}/car.jpg"))
    assert (got.body, got.headers["X-Cache"]) == (new, "MISS")  # purged, fetched again
    assert put(server, "/links/s3/not-listed/car.jpg", new, len(new), AUTH)[0] == 404

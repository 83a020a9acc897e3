"""Upload metrics through real uploads into moto: stored and rejected counted by provider, the stored bytes,
and the parts, compared with the parts the counting TCP proxy saw go up."""

import base64
import hashlib

from tests.conftest import StartServer
from tests.support.http import fetch, metric_value
from tests.support.s3 import MotoS3, s3_env
from tests.support.tcp_proxy import TcpProxy
from tests.test_upload import AUTH, MIB, SMALL_PARTS, generated, put, sha256_of


def test_uploads_are_counted_with_their_bytes_and_parts(moto: MotoS3, bucket: str, s3_proxy: TcpProxy,
                                                       start_server: StartServer) -> None:
    server = start_server(**SMALL_PARTS, **s3_env(s3_proxy.endpoint))
    large, small = 12 * MIB + 123, 1000
    status, _, _ = put(server, f"/{bucket}/large.bin", generated(large), large, AUTH)
    assert status == 201
    status, _, _ = put(server, f"/{bucket}/small.bin", b"s" * small, small, AUTH)
    assert status == 201
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    status, _, _ = put(server, f"/{bucket}/bad.bin", b"b" * small, small, {**AUTH, "x-amz-checksum-sha256": wrong})
    assert status == 400
    assert moto.client.head_object(Bucket=bucket, Key="large.bin")["ContentLength"] == large
    assert sha256_of(generated(large)) == hashlib.sha256(
        moto.client.get_object(Bucket=bucket, Key="large.bin")["Body"].read()).digest()

    parts_on_the_wire = sum(1 for seen in s3_proxy.requests if seen.method == "PUT" and "partNumber=" in seen.target)
    assert parts_on_the_wire >= 3  # 12 MiB in parts of 5 MiB
    status, _, body = fetch(server, "/metrics")
    exposition = body.decode()
    assert metric_value(exposition, 'preview_proxy_uploads_total{outcome="stored",provider="s3"}') == 2
    assert metric_value(exposition, 'preview_proxy_uploads_total{outcome="rejected",provider="s3"}') == 1
    assert metric_value(exposition, 'preview_proxy_upload_bytes_total{provider="s3"}') == large + small
    assert metric_value(exposition, 'preview_proxy_upload_parts_total{provider="s3"}') == parts_on_the_wire

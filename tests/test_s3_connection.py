"""How the S3 provider reaches its endpoint: https with a private CA, endpoint and port, region,
path-style addressing, and credentials from an IAM role via the instance-metadata service."""

import os
import re
from pathlib import Path

import pytest

from tests.conftest import StartServer
from tests.support.http import request
from tests.support.metadata_server import CREDENTIALS_PATH, MetadataServer
from tests.support.s3 import ACCESS_KEY, REGION, MotoS3, s3_env
from tests.support.tcp_proxy import TcpProxy
from tests.support.tls import make_tls_files


def test_https_endpoint_signed_by_a_private_ca(moto: MotoS3, bucket, tmp_path: Path, start_server: StartServer):
    body = os.urandom(10_000)
    moto.put(bucket, "tls.jpg", body)
    ca_file, server_tls = make_tls_files(tmp_path)
    with TcpProxy(("127.0.0.1", moto.port), tls=server_tls) as https_front:
        server = start_server(**s3_env(https_front.endpoint, STORAGE_CA_FILE=str(ca_file)))

        reply = request(server.url(f"/{bucket}/tls.jpg"))

        assert https_front.endpoint.startswith("https://")
        assert (reply.status, reply.body) == (200, body)
        assert len(https_front.gets("/tls.jpg")) == 1


def test_https_endpoint_with_an_untrusted_certificate_fails_closed(
        moto: MotoS3, bucket, tmp_path: Path, start_server: StartServer):
    moto.put(bucket, "tls.jpg", b"secret image")
    _, server_tls = make_tls_files(tmp_path)
    with TcpProxy(("127.0.0.1", moto.port), tls=server_tls) as https_front:
        server = start_server(**s3_env(https_front.endpoint, STORAGE_RETRIES="0"))

        reply = request(server.url(f"/{bucket}/tls.jpg"))

        assert reply.status == 502
        assert b"secret image" not in reply.body


def test_endpoint_without_scheme_uses_port_region_and_path_style(moto: MotoS3, bucket, start_server: StartServer):
    moto.put(bucket, "p.jpg", b"path style")
    with TcpProxy(("127.0.0.1", moto.port)) as proxy:
        env = s3_env("127.0.0.1", STORAGE_PORT=str(proxy.port), STORAGE_SECURE="false")

        reply = request(start_server(**env).url(f"/{bucket}/p.jpg"))

        assert reply.body == b"path style"
        (seen,) = proxy.gets("/p.jpg")
        assert seen.target == f"/{bucket}/p.jpg", "MinIO needs path-style addressing"
        assert seen.headers["host"] == f"127.0.0.1:{proxy.port}"
        assert f"Credential={ACCESS_KEY}/" in seen.headers["authorization"]
        assert f"/{REGION}/s3/aws4_request" in seen.headers["authorization"]


def test_https_is_the_default_for_an_endpoint_without_scheme(moto: MotoS3, bucket, start_server: StartServer):
    moto.put(bucket, "plain.jpg", b"only over http")
    with TcpProxy(("127.0.0.1", moto.port)) as plain_http:
        env = s3_env("127.0.0.1", STORAGE_PORT=str(plain_http.port), STORAGE_RETRIES="0")

        reply = request(start_server(**env).url(f"/{bucket}/plain.jpg"))

        assert reply.status == 502, "an https client talking to a plain-http port must fail"
        assert plain_http.gets("/plain.jpg") == []


@pytest.fixture
def metadata():
    """An instance-metadata service handing out one role's credentials."""
    server = MetadataServer("preview-proxy-reader", "ASIAROLEKEY123", "role-secret-9d8c", "role-session-token")
    yield server
    server.stop()


def test_iam_role_credentials_come_from_instance_metadata(
        moto: MotoS3, bucket, metadata: MetadataServer, start_server: StartServer):
    moto.put(bucket, "role.jpg", b"read with a role")
    with TcpProxy(("127.0.0.1", moto.port)) as proxy:
        server = start_server(
            STORAGE_PROVIDER="minio", STORAGE_ENDPOINT=proxy.endpoint, STORAGE_REGION=REGION,
            STORAGE_IAM_ROLE="preview-proxy-reader", STORAGE_METADATA_ENDPOINT=metadata.endpoint)

        reply = request(server.url(f"/{bucket}/role.jpg"))

        assert (reply.status, reply.body) == (200, b"read with a role")
        assert CREDENTIALS_PATH + "preview-proxy-reader" in metadata.paths
        (seen,) = proxy.gets("/role.jpg")
        assert re.search(r"Credential=ASIAROLEKEY123/", seen.headers["authorization"])
        assert seen.headers["x-amz-security-token"] == "role-session-token"
        assert "role-secret-9d8c" not in server.log_text()

"""How the S3 provider reaches its endpoint: https with a private CA, endpoint and port, region,
path-style addressing, and credentials from an IAM role via the instance-metadata service."""

import datetime
import os
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.conftest import StartServer
from tests.support.http import request
from tests.support.metadata_server import CREDENTIALS_PATH, MetadataServer
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, s3_env
from tests.support.tcp_proxy import SeenRequest, TcpProxy
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

        reply = request(server.url(f"/{bucket}/tls.jpg"), headers={"X-Request-ID": "tls-mismatch"})

        assert reply.status == 502
        assert b"secret image" not in reply.body
        # Logged once, with the transport's reason (the certificate refused), and the request's id.
        server.wait_for_log('"GET /')
        failed = [line for line in server.log_lines if "tls.jpg failed" in line]
        assert len(failed) == 1 and failed[0].endswith(" request_id=tls-mismatch")
        assert "InvalidCertificate" in failed[0] and "UnknownIssuer" in failed[0]
        assert SECRET_KEY not in server.log_text()


def test_endpoint_without_scheme_uses_port_region_and_path_style(moto: MotoS3, bucket, start_server: StartServer):
    moto.put(bucket, "p.jpg", b"path style")
    with TcpProxy(("127.0.0.1", moto.port)) as proxy:
        env = s3_env("127.0.0.1", STORAGE_PORT=str(proxy.port), STORAGE_SECURE="false")

        reply = request(start_server(**env).url(f"/{bucket}/p.jpg"))

        assert reply.body == b"path style"
        (seen,) = proxy.gets("/p.jpg")
        path, _, query = seen.target.partition("?")
        assert path == f"/{bucket}/p.jpg", "MinIO needs path-style addressing"
        assert seen.headers["host"] == f"127.0.0.1:{proxy.port}"
        # A whole object from an http:// endpoint is a presigned GET (proxy.storage.cloud.spliced_get):
        # the credential's scope is in the query rather than in an Authorization header.
        (credential,) = parse_qs(query)["X-Amz-Credential"]
        assert credential.startswith(f"{ACCESS_KEY}/") and credential.endswith(f"/{REGION}/s3/aws4_request")


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
        assert _signed_with(seen) == ("ASIAROLEKEY123", "role-session-token")
        assert "role-secret-9d8c" not in server.log_text()


# Objects the rotation test may read, one miss each, before it must have seen the new credentials. obstore
# fetches a token again no sooner than 100 ms after its last fetch (object_store's TokenCache), and 19
# misses on loopback once took less than that: enough for a second or more of misses.
ROTATION_OBJECTS = 400


def test_iam_role_credentials_rotate(moto: MotoS3, bucket, start_server: StartServer) -> None:
    """EC2 rotates role credentials well before they expire; a new set must be picked up without a restart.

    Credentials A expire in 2 minutes, inside obstore's refresh margin (object_store refetches a
    token with less than 5 minutes left), so it asks the metadata service again; meanwhile that
    service hands out B. moto accepts any key, so what is checked is the signature on the wire:
    S3 requests carry A's key id first and, from some point on, only B's.
    """
    metadata = MetadataServer("preview-proxy-reader", "ASIAROTATEKEYAAAA", "secret-a-1c2d", "session-token-a")
    metadata.expires_in = datetime.timedelta(minutes=2)
    for index in range(ROTATION_OBJECTS):
        moto.put(bucket, f"r{index}.jpg", f"object {index}".encode())
    try:
        with TcpProxy(("127.0.0.1", moto.port)) as proxy:
            server = start_server(
                STORAGE_PROVIDER="minio", STORAGE_ENDPOINT=proxy.endpoint, STORAGE_REGION=REGION,
                STORAGE_IAM_ROLE="preview-proxy-reader", STORAGE_METADATA_ENDPOINT=metadata.endpoint)
            assert request(server.url(f"/{bucket}/r0.jpg")).body == b"object 0"
            metadata.credentials = {"AccessKeyId": "ASIAROTATEKEYBBBB", "SecretAccessKey": "secret-b-3e4f",
                                    "Token": "session-token-b"}

            # Each request is for a new key (a miss), so each goes to S3, signed with what obstore holds.
            for index in range(1, ROTATION_OBJECTS):
                reply = request(server.url(f"/{bucket}/r{index}.jpg"))
                assert reply.body == f"object {index}".encode()
                if _signed_with(proxy.gets(f"/r{index}.jpg")[0])[0] == "ASIAROTATEKEYBBBB":
                    break
            key_ids, tokens = zip(*(_signed_with(seen) for seen in proxy.gets(f"/{bucket}/r")), strict=True)
    finally:
        metadata.stop()

    assert key_ids[0] == "ASIAROTATEKEYAAAA" and tokens[0] == "session-token-a"
    assert key_ids[-1] == "ASIAROTATEKEYBBBB" and tokens[-1] == "session-token-b", key_ids
    switched = key_ids.index("ASIAROTATEKEYBBBB")
    assert set(key_ids[switched:]) == {"ASIAROTATEKEYBBBB"}, "never back to the old credentials"
    assert metadata.paths.count(CREDENTIALS_PATH + "preview-proxy-reader") >= 2
    assert "secret-a-1c2d" not in server.log_text() and "secret-b-3e4f" not in server.log_text()


def _signed_with(seen: SeenRequest) -> tuple[str, str]:
    """The key id and session token a request was signed with: in its Authorization and X-Amz-Security-Token
    headers, or in its query when presigned (a whole object from an http:// endpoint: spliced_get)."""
    query = parse_qs(seen.target.partition("?")[2])
    if "X-Amz-Credential" in query:
        return query["X-Amz-Credential"][0].split("/")[0], query["X-Amz-Security-Token"][0]
    found = re.search(r"Credential=(\w+)/", seen.headers["authorization"])
    assert found is not None, seen.headers
    return found.group(1), seen.headers["x-amz-security-token"]

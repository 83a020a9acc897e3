"""The SigV4 signer against AWS's published examples, and against botocore's signer for the calls we make.

The suite's vectors (service `service`) come from AWS's Signature Version 4 test suite; the S3 ones
from the S3 API reference's header-based examples (GET Object with a Range, GET Bucket with a query).
"""

import hashlib
from datetime import UTC, datetime

import pytest
from botocore import auth as botocore_auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from proxy.storage.cloud.signed_s3.sigv4 import SigningKeys, canonical_path, canonical_query, sign

SUITE = SigningKeys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service")
SUITE_AT = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
S3_DOCS = SigningKeys("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1")
S3_DOCS_AT = datetime(2013, 5, 24, tzinfo=UTC)


@pytest.mark.parametrize(("name", "url", "signature"), [
    ("get-vanilla", "https://example.amazonaws.com/",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-key-case", "https://example.amazonaws.com/?Param2=value2&Param1=value1",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("get-utf8", "https://example.amazonaws.com/\u1234",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
])
def test_the_signature_suite_vectors(name: str, url: str, signature: str):
    headers = sign("GET", url, SUITE, SUITE_AT)
    assert headers["Authorization"] == ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                                        f"aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}"), name
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert "X-Amz-Content-Sha256" not in headers  # S3's header only


def test_the_s3_get_object_example_with_a_range():
    headers = sign("GET", "https://examplebucket.s3.amazonaws.com/test.txt", S3_DOCS, S3_DOCS_AT,
                   {"Range": "bytes=0-9"})
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_the_s3_list_objects_example_with_a_query():
    headers = sign("GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", S3_DOCS, S3_DOCS_AT)
    assert headers["Authorization"].endswith(
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")


def test_paths_and_queries_are_encoded_once_with_plus_and_slash_kept_apart():
    assert canonical_path("/b/a key/\u00fc+x.jpg") == "/b/a%20key/%C3%BC%2Bx.jpg"
    assert canonical_query([("uploadId", "a+b/c="), ("uploads", "")]) == "uploadId=a%2Bb%2Fc%3D&uploads="


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"], ids=["static", "session"])
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9000/bucket?uploads=&key-marker=a%20b&upload-id-marker=x%2By",
    "http://127.0.0.1:9000/bucket/photos/a%20b/%C3%BC.jpg?uploadId=VXBsb2FkIElE%2B%2F%3D",
])
def test_the_calls_we_make_sign_as_botocore_signs_them(monkeypatch: pytest.MonkeyPatch, url: str,
                                                       token: str | None):
    """botocore (the reference client) signs the same request, with or without a session token, alike."""
    when = datetime(2026, 12, 4, 5, 6, 7)
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: when)
    keys = SigningKeys("test-access-key", "test-secret-key", "eu-west-1", session_token=token)
    reference = AWSRequest(method="DELETE", url=url, headers={"X-Amz-Content-Sha256": hashlib.sha256(b"").hexdigest()})
    botocore_auth.S3SigV4Auth(Credentials(keys.access_key, keys.secret_key, token), "s3",
                              keys.region).add_auth(reference)
    ours = sign("DELETE", url, keys, when.replace(tzinfo=UTC))
    assert ours["Authorization"] == reference.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == reference.headers.get("X-Amz-Security-Token") == token

"""The presigning scheme as docs/uploads.md tells applications to compute it, checked against the server's code
with `openssl` (an independent HMAC), and the refusals of verify_presigned."""

import base64
import shutil
import subprocess

import pytest

from proxy.errors import Forbidden
from proxy.http.access.presign import object_url_path, presign_signature, presigned_query, verify_presigned

KEY = b"upload-signing-key-0123456789abcdef-0123"


def test_the_documented_recipe_matches_an_independent_hmac():
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    path, expires = object_url_path("photos", "dir/a b+é.jpg"), 1767225600
    assert path == "/photos/dir/a%20b%2B%C3%A9.jpg"
    # docs/uploads.md: HMAC-SHA256 of "PUT\n<path>\n<expires>", base64url without padding.
    raw = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", KEY.decode(), "-binary"],
                         input=f"PUT\n{path}\n{expires}".encode(), capture_output=True, check=True, timeout=30).stdout
    assert presign_signature(KEY, "PUT", path, expires) == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_verify_refuses_missing_fields_bad_signatures_and_expiry():
    path = "/photos/a.jpg"
    good = presigned_query(KEY, "PUT", path, 2000)
    verify_presigned((KEY,), "PUT", path, good, now=1999)
    for query, now, reason in ((good, 2001, "expired"), ("expires=2000", 0, "needs"),
                               ("signature=abc", 0, "needs"), (good.replace("expires=2000", "expires=x"), 0, "needs"),
                               (good + "x", 0, "invalid signature")):
        with pytest.raises(Forbidden, match=reason):
            verify_presigned((KEY,), "PUT", path, query, now=now)
    with pytest.raises(Forbidden, match="invalid signature"):
        verify_presigned((KEY,), "PUT", "/photos/b.jpg", good, now=0)

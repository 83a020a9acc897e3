"""Who may PUT: none configured (403), no or a wrong bearer token (401 with WWW-Authenticate), presigned URLs
that are right, expired, tampered with or for another method or path; and `preview-proxy presign`."""

import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from proxy.http.access.presign import presigned_query
from tests.conftest import REPO, StartServer
from tests.support.http import request
from tests.test_upload import TOKEN, put

KEY = "upload-signing-key-0123456789abcdef-0123"
OLD_KEY = "older-signing-key-0123456789abcdef-01234"
BODY = b"uploaded bytes"


def _bucket(data_path: Path) -> str:
    (data_path / "storage" / "photos").mkdir()
    return "photos"


def test_without_tokens_or_keys_uploads_are_off(data_path: Path, start_server: StartServer):
    server = start_server(ADMIN_TOKENS="admin-token-0123456789abcdef")  # an admin token is no upload token
    status, _, body = put(server, f"/{_bucket(data_path)}/a.bin", BODY, len(BODY),
                          {"Authorization": "Bearer admin-token-0123456789abcdef"})
    assert (status, body) == (403, b"uploads are off: no UPLOAD_TOKENS or UPLOAD_SIGNING_KEYS are configured\n")


def test_a_missing_or_wrong_token_is_401_with_a_bearer_challenge(data_path: Path, start_server: StartServer):
    server = start_server(UPLOAD_TOKENS=TOKEN)
    bucket = _bucket(data_path)
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Basic {TOKEN}"}):
        status, answer, _ = put(server, f"/{bucket}/a.bin", BODY, len(BODY), headers)
        assert (status, answer["WWW-Authenticate"]) == (401, 'Bearer realm="preview-proxy"'), headers
    assert not (data_path / "storage" / bucket / "a.bin").exists()
    assert TOKEN not in server.log_text()


def test_presigned_urls_allow_exactly_what_they_sign_until_they_expire(data_path: Path, start_server: StartServer):
    server = start_server(UPLOAD_SIGNING_KEYS=f"{KEY},{OLD_KEY}")
    bucket = _bucket(data_path)
    path, later, earlier = f"/{bucket}/dir/a%20b.bin", int(time.time()) + 600, int(time.time()) - 1
    refused = {
        "expired": f"{path}?{presigned_query(KEY.encode(), 'PUT', path, earlier)}",
        "another path": f"/{bucket}/dir/other.bin?{presigned_query(KEY.encode(), 'PUT', path, later)}",
        "another method": f"{path}?{presigned_query(KEY.encode(), 'GET', path, later)}",
        "a later expiry": f"{path}?" + presigned_query(KEY.encode(), "PUT", path, later).replace(str(later),
                                                                                                 str(later + 9)),
        "an unknown key": f"{path}?{presigned_query(b'not-the-key-0123456789abcdef-012345', 'PUT', path, later)}",
    }
    for what, url in refused.items():
        assert put(server, url, BODY, len(BODY))[0] == 403, what
    assert not (data_path / "storage" / bucket / "dir").exists()
    for key in (KEY, OLD_KEY):  # any configured key verifies: rotation without breaking URLs handed out
        assert put(server, f"{path}?{presigned_query(key.encode(), 'PUT', path, later)}", BODY, len(BODY))[0] == 201
    assert (data_path / "storage" / bucket / "dir" / "a b.bin").read_bytes() == BODY
    assert server.wait_for_log("upload by presigned URL")


def test_the_presign_command_prints_a_url_the_server_takes(data_path: Path, start_server: StartServer):
    env = {"DATA_PATH": str(data_path), "UPLOAD_SIGNING_KEYS": KEY, "PATH": "/usr/bin:/bin"}
    server = start_server(UPLOAD_SIGNING_KEYS=KEY)
    bucket = _bucket(data_path)
    printed = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "presign", "put", f"{bucket}/new/é.bin",
                              "--expires", "15m", "--base-url", server.url("")], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    url = urlsplit(printed)
    expires = int(dict(part.split("=") for part in url.query.split("&"))["expires"])
    assert 14 * 60 <= expires - time.time() <= 15 * 60
    assert put(server, f"{url.path}?{url.query}", BODY, len(BODY))[0] == 201
    assert request(server.url(f"/{bucket}/new/%C3%A9.bin")).body == BODY
    without_key = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "presign", "PUT", f"{bucket}/x"],
                                 cwd=REPO, env={**env, "UPLOAD_SIGNING_KEYS": ""}, capture_output=True, text=True,
                                 timeout=60)
    assert without_key.returncode == 2
    assert without_key.stderr == "preview-proxy presign: no SIGNING_KEYS configured\n"

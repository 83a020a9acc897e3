"""No request reaches a file outside the bucket folders of local storage.

One server (module scope) serves a DATA_PATH that holds a secret beside `storage/`, with another
secret outside DATA_PATH and symlinks inside the bucket pointing out. Every traversal trick is sent
verbatim with http.client (no client-side normalisation) and must get a one-line 400 or 404 that
never carries a secret. A symlink to another file in the same bucket is still served.
"""

import http.client
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

REPO = Path(__file__).resolve().parent.parent
BUCKET = "b"
PHOTO = b"\xff\xd8\xff\xe0 not really a jpeg, but bytes of the bucket's own photo \xff\xd9"


@dataclass(frozen=True)
class Layout:
    """Where the secrets are and what they contain."""

    data_path: Path
    secret: Path  # DATA_PATH/secret.txt, beside storage/
    outside: Path  # outside DATA_PATH altogether
    tokens: tuple[str, ...]  # strings that must never appear in a response to a path under /b/


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """DATA_PATH with secrets around one bucket, and symlinks in the bucket pointing in and out."""
    root = tmp_path_factory.mktemp("path-safety")
    data_path = root / "data"
    bucket = data_path / "storage" / BUCKET
    (bucket / "sub").mkdir(parents=True)
    token = uuid.uuid4().hex
    secret = data_path / "secret.txt"
    secret.write_text(f"DATA-SECRET-{token}\n")
    outside = root / "outside.txt"
    outside.write_text(f"OUTSIDE-SECRET-{token}\n")
    (bucket / "photo.jpg").write_bytes(PHOTO)
    other_bucket = data_path / "storage" / "other"
    other_bucket.mkdir()
    (other_bucket / "file.txt").write_text(f"OTHER-BUCKET-{token}\n")
    (bucket / "to-other-bucket").symlink_to(Path("..") / "other" / "file.txt")
    (bucket / "to-secret").symlink_to(secret)
    (bucket / "to-secret-relative").symlink_to(Path("..") / ".." / "secret.txt")
    (bucket / "to-outside.jpg").symlink_to(outside)
    (bucket / "to-hostname").symlink_to("/etc/hostname")
    (bucket / "data-dir").symlink_to(data_path, target_is_directory=True)
    (bucket / "alias.jpg").symlink_to("photo.jpg")
    (bucket / "sub" / "alias.jpg").symlink_to(Path("..") / "photo.jpg")
    return Layout(data_path, secret, outside, (token,))


@pytest.fixture(scope="module")
def server(layout: Layout) -> Iterator[ServerProcess]:
    """One server for the whole module: the requests don't change anything on disk."""
    process = ServerProcess({"DATA_PATH": str(layout.data_path)}, cwd=REPO)
    yield process
    process.stop()


def raw_get(server: ServerProcess, raw_path: str, method: str = "GET") -> tuple[int, bytes, str]:
    """Send `raw_path` exactly as written; return status, body and all header values joined."""
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest(method, raw_path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read(), "\n".join(response.headers.values())
    finally:
        connection.close()


TRAVERSALS = [
    # The bucket folder is DATA_PATH/storage/b: two levels up is DATA_PATH, three is outside it.
    "/b/../../secret.txt",
    "/b/../../../outside.txt",
    "/b/sub/../../../secret.txt",
    "/../../secret.txt",
    "/b/%2e%2e/%2e%2e/secret.txt",
    "/b/%2E%2E/%2E%2E/secret.txt",
    "/b/.%2e/.%2e/secret.txt",
    "/b/%2e./%2e./secret.txt",
    "/b/%2e%2e/%2e%2e/%2e%2e/outside.txt",
    "/%2e%2e/secret.txt",
    "/b/..%2f..%2fsecret.txt",
    "/b/..%2F..%2Fsecret.txt",
    "/b/%2e%2e%2f%2e%2e%2f%2e%2e%2foutside.txt",
    "/b%2f..%2f..%2fsecret.txt/x",
    "/..%2f..%2fsecret.txt/x",
    "/b/..%5c..%5csecret.txt",
    "/b/..%5C..%5C..%5Coutside.txt",
    "/b/%5c..%5c..%5csecret.txt",
    "//etc/passwd",
    "/b//etc/passwd",
    "/b/%2fetc%2fpasswd",
    "/b/%2Fetc/passwd",
    "/b/{secret}",
    "/b/{outside}",
    "/b/%2F{secret_rel}",
    "/b/secret.txt%00",
    "/b/photo.jpg%00.txt",
    "/b/%00/../../secret.txt",
    "/b/%00",
    "/b/to-secret",
    "/b/to-secret-relative",
    "/b/to-outside.jpg",
    "/b/to-hostname",
    "/b/data-dir/secret.txt",
    "/b/to-other-bucket",
]


def expand(template: str, layout: Layout) -> str:
    """Fill in absolute paths of the secrets (only known at run time)."""
    return template.format(secret=layout.secret, outside=layout.outside,
                           secret_rel=str(layout.secret).lstrip("/"))


@pytest.mark.parametrize("template", TRAVERSALS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_path_outside_the_bucket_is_refused_without_leaking(server: ServerProcess, layout: Layout,
                                                            template: str, method: str) -> None:
    raw_path = expand(template, layout)
    status, body, header_values = raw_get(server, raw_path, method)
    assert status in (400, 404), (raw_path, status, body[:200])
    if method == "GET":
        text = body.decode()
        assert text.endswith("\n") and text.count("\n") == 1, text
    for token in layout.tokens:
        assert token.encode() not in body
        assert token not in header_values


def test_symlink_to_etc_hostname_does_not_serve_its_bytes(server: ServerProcess) -> None:
    hostname = Path("/etc/hostname").read_bytes()
    status, body, _ = raw_get(server, "/b/to-hostname")
    assert status == 404
    assert body != hostname


@pytest.mark.parametrize("raw_path", ["/b/alias.jpg", "/b/sub/alias.jpg"])
def test_symlink_to_a_file_in_the_same_bucket_is_served(server: ServerProcess, raw_path: str) -> None:
    status, body, _ = raw_get(server, raw_path)
    assert status == 200
    assert body == PHOTO


def test_plain_file_in_the_bucket_is_served(server: ServerProcess) -> None:
    """The control: the refusals above are about the paths, not a server that refuses everything."""
    status, body, _ = raw_get(server, "/b/photo.jpg")
    assert (status, body) == (200, PHOTO)


def test_no_traceback_after_all_traversal_attempts(server: ServerProcess, layout: Layout) -> None:
    for template in TRAVERSALS:
        raw_get(server, expand(template, layout))
    marker = f"/b/end-{uuid.uuid4().hex}"
    assert raw_get(server, marker)[0] == 404
    server.wait_for_log(marker)
    log = server.log_text()
    assert "Traceback" not in log
    for token in layout.tokens:
        assert token not in log
    assert os.path.exists(layout.secret) and os.path.exists(layout.outside)

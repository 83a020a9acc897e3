"""`preview-proxy uploads list | abort` as real subprocesses: open multipart uploads on moto (the main storage
and a link) listed and aborted by age, a dry run that aborts nothing, AccessDenied named by its permission
(through the fault-injecting TCP proxy, and a loopback S3 stub for what moto lacks: pages and a refused
abort), local part files of crashed writes, and the providers with nothing to abort.
"""

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import REPO
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY
from tests.support.metadata_server import CREDENTIALS_PATH, MetadataServer
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, s3_env
from tests.support.tcp_proxy import TcpProxy

SUMMARY = re.compile(r"^(\d+) open multipart uploads \((\d+) buckets? searched[^)]*\)(?:: (.*))?$", re.MULTILINE)


def uploads(data_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`preview-proxy uploads <args>` on DATA_PATH, bounded in time."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "REMOTE_LINKS"))}
    return subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "uploads", *args], cwd=REPO,
                          env={**clean, "DATA_PATH": str(data_path), **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)


def outcomes(stdout: str) -> dict[str, int]:
    """The summary's `N outcome` counts (open, aborted, would abort, kept, ...)."""
    found = SUMMARY.search(stdout)
    assert found, stdout
    return {name: int(number) for number, name in
            (part.split(" ", 1) for part in (found.group(3) or "").split(", ") if part)}


def open_upload_ids(moto: MotoS3, bucket: str) -> set[str]:
    """The upload ids moto still holds open in `bucket`."""
    return {u["UploadId"] for u in moto.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}


def start_uploads(moto: MotoS3, bucket: str, keys: list[str]) -> set[str]:
    """Open a multipart upload with one part for each key, as a crashed writer leaves them; their ids."""
    ids = set()
    for key in keys:
        upload_id = moto.client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        moto.client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1024)
        ids.add(upload_id)
    return ids


KEYS = ["big.bin", "photos/a b/\u00fc+1.jpg", "z/last.tif"]
# moto answers every upload's Initiated as 2010-11-10T20:48:33Z, so on moto "younger than the age" needs an
# age past that; the split between young and old uploads is tested on the stub below, with real times.
OLDER_THAN_MOTO = "100y"


def test_open_uploads_are_listed_with_key_id_and_age(moto: MotoS3, bucket: str, data_path: Path):
    ids = start_uploads(moto, bucket, KEYS)
    done = uploads(data_path, "list", "--bucket", bucket, env=s3_env(moto.endpoint))
    assert done.returncode == 0, done.stderr
    for key in KEYS:
        assert f"{bucket}/{key}" in done.stdout
    assert all(upload_id in done.stdout for upload_id in ids)
    assert outcomes(done.stdout) == {"open": 3}
    assert SECRET_KEY not in done.stdout + done.stderr
    assert open_upload_ids(moto, bucket) == ids  # listing changes nothing


def test_abort_keeps_uploads_younger_than_the_age_and_aborts_the_older(moto: MotoS3, bucket: str, data_path: Path):
    ids = start_uploads(moto, bucket, KEYS)
    env = s3_env(moto.endpoint)
    young = uploads(data_path, "abort", "--older-than", OLDER_THAN_MOTO, "--bucket", bucket, env=env)
    assert young.returncode == 0, young.stderr
    assert outcomes(young.stdout) == {"kept": 3}
    assert open_upload_ids(moto, bucket) == ids

    dry = uploads(data_path, "abort", "--older-than", "0s", "--dry-run", "--bucket", bucket, env=env)
    assert dry.returncode == 0, dry.stderr
    assert outcomes(dry.stdout) == {"would abort": 3}
    assert open_upload_ids(moto, bucket) == ids

    every = uploads(data_path, "abort", "--older-than", "0s", "--bucket", bucket, env=env)
    assert every.returncode == 0, every.stderr
    assert outcomes(every.stdout) == {"aborted": 3}
    assert open_upload_ids(moto, bucket) == set()


def test_every_bucket_is_searched_when_none_is_named(moto: MotoS3, bucket: str, data_path: Path):
    other = moto.create_bucket(f"{bucket}-other")
    start_uploads(moto, bucket, ["one.bin"])
    start_uploads(moto, other, ["two.bin"])
    done = uploads(data_path, "list", env=s3_env(moto.endpoint))
    assert done.returncode == 0, done.stderr
    assert f"{bucket}/one.bin" in done.stdout and f"{other}/two.bin" in done.stdout


def test_a_links_file_entry_is_searched_by_name(moto: MotoS3, bucket: str, data_path: Path, tmp_path: Path):
    ids = start_uploads(moto, bucket, ["linked.bin"])
    links = tmp_path / "remote_links.yml"
    links.write_text(f'cars: {{provider: minio, endpoint: "{moto.endpoint}", access_key: {ACCESS_KEY}, '
                     f'secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{bucket}]}}\n')
    env = {"REMOTE_LINKS_PATH": str(links)}  # the main storage is local disk: only the link reaches moto
    done = uploads(data_path, "abort", "--older-than", "0s", "--link", "cars", env=env)
    assert done.returncode == 0, done.stderr
    assert outcomes(done.stdout) == {"aborted": 1}
    assert open_upload_ids(moto, bucket) == set() != ids
    unknown = uploads(data_path, "list", "--link", "boats", env=env)
    assert unknown.returncode == 2 and "no such entry" in unknown.stderr and "cars" in unknown.stderr


def test_access_denied_names_the_missing_permission(moto: MotoS3, bucket: str, s3_proxy: TcpProxy, data_path: Path):
    start_uploads(moto, bucket, ["denied.bin"])
    s3_proxy.faults.error_status, s3_proxy.faults.error_connections = 403, 100
    done = uploads(data_path, "list", "--bucket", bucket, env=s3_env(s3_proxy.endpoint))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"preview-proxy uploads: access denied: the credentials lack s3:ListBucketMultipartUploads on bucket "
        f"'{bucket}'"]
    assert any("uploads" in seen.target for seen in s3_proxy.requests)  # it was asked, and refused
    every = uploads(data_path, "list", env=s3_env(s3_proxy.endpoint))
    assert every.returncode == 1 and "s3:ListAllMyBuckets" in every.stderr and "--bucket" in every.stderr


class S3Stub:
    """A loopback S3 with what moto lacks: ListMultipartUploads in pages of one, real initiated times, and
    (when `refuse_aborts`) AccessDenied to every AbortMultipartUpload."""

    def __init__(self, uploads: dict[str, int], refuse_aborts: bool) -> None:
        stub, keys = self, list(uploads)
        # The uploads began their ages before the stub was made, so before any run that lists them: a run
        # measures ages from its own start, which a time taken at each answer could follow by a second or two.
        began = time.time()
        self.markers: list[str | None] = []
        self.aborted: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                marker = query.get("key-marker", [None])[0]
                stub.markers.append(marker)
                start = 0 if marker is None else keys.index(marker) + 1
                last = start + 1 >= len(keys)
                more = "" if last else (f"<NextKeyMarker>{keys[start]}</NextKeyMarker>"
                                        f"<NextUploadIdMarker>id-{start}</NextUploadIdMarker>")
                initiated = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(began - uploads[keys[start]]))
                body = (f'<?xml version="1.0"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/'
                        f'2006-03-01/"><IsTruncated>{str(not last).lower()}</IsTruncated>{more}<Upload><Key>'
                        f"{keys[start]}</Key><UploadId>id-{start}</UploadId><Initiated>{initiated}"
                        "</Initiated></Upload></ListMultipartUploadsResult>")
                self._reply(200, body)

            def do_DELETE(self) -> None:
                stub.aborted.append(parse_qs(urlsplit(self.path).query)["uploadId"][0])
                if refuse_aborts:
                    self._reply(403, '<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied'
                                     "</Message></Error>")
                else:
                    self._reply(204, "")

            def _reply(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


# Three uploads: started two days, two hours and one minute ago.
STUB_UPLOADS = {"a.bin": 2 * 86400, "b.bin": 2 * 3600, "c.bin": 60}


@pytest.fixture
def s3_stub(request: pytest.FixtureRequest) -> Iterator[S3Stub]:
    """The stub with STUB_UPLOADS; parametrize indirectly with True to refuse aborts."""
    stub = S3Stub(STUB_UPLOADS, refuse_aborts=getattr(request, "param", False))
    yield stub
    stub.close()


def test_pages_are_followed_by_their_markers(s3_stub: S3Stub, data_path: Path):
    done = uploads(data_path, "list", "--bucket", "paged", env=s3_env(s3_stub.endpoint))
    assert done.returncode == 0, done.stderr
    assert s3_stub.markers == [None, "a.bin", "b.bin"]
    assert outcomes(done.stdout) == {"open": 3}
    assert all(f"paged/{key}" in done.stdout for key in ("a.bin", "b.bin", "c.bin"))


def test_only_uploads_older_than_the_age_are_aborted(s3_stub: S3Stub, data_path: Path):
    done = uploads(data_path, "abort", "--older-than", "1d", "--bucket", "paged", env=s3_env(s3_stub.endpoint))
    assert done.returncode == 0, done.stderr
    assert s3_stub.aborted == ["id-0"]
    assert outcomes(done.stdout) == {"aborted": 1, "kept": 2}
    hours = uploads(data_path, "abort", "--older-than", "1h", "--bucket", "paged", env=s3_env(s3_stub.endpoint))
    assert outcomes(hours.stdout) == {"aborted": 2, "kept": 1}
    # Two hours, and the seconds since the stub began (its times are whole seconds, so at least 2h).
    assert re.search(r"aborted +paged/b\.bin  id-1  \S+  2h(\d{1,2}s)?$", hours.stdout, re.MULTILINE), hours.stdout


@pytest.mark.parametrize("s3_stub", [True], indirect=True)
def test_a_refused_abort_names_its_permission_and_stops(s3_stub: S3Stub, data_path: Path):
    done = uploads(data_path, "abort", "--older-than", "1h", "--bucket", "paged", env=s3_env(s3_stub.endpoint))
    assert done.returncode == 1
    assert s3_stub.aborted == ["id-0"]  # the first refusal ends the run: every later abort would be refused too
    assert done.stderr.strip().splitlines() == [
        "preview-proxy uploads: access denied: the credentials lack s3:AbortMultipartUpload on bucket 'paged'"]


def test_local_part_files_of_crashed_writes_are_listed_and_removed_by_age(data_path: Path):
    storage = data_path / "storage"
    (storage / "photos" / "2026").mkdir(parents=True)
    stale = storage / "photos" / "2026" / ".cat.jpg.4242.0123abcd.upload"
    fresh = storage / "photos" / ".dog.jpg.4243.89abcdef.upload"
    unrelated = storage / "photos" / ".hidden.upload"  # not a part file's name: never touched
    for path in (stale, fresh, unrelated):
        path.write_bytes(b"part")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    listed = uploads(data_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert "photos/2026/cat.jpg" in listed.stdout and "photos/dog.jpg" in listed.stdout
    assert "part files of unfinished writes" in listed.stdout and ".hidden" not in listed.stdout
    dry = uploads(data_path, "abort", "--older-than", "1d", "--dry-run")
    assert dry.returncode == 0 and stale.exists()
    done = uploads(data_path, "abort", "--older-than", "1d")
    assert done.returncode == 0, done.stderr
    assert (stale.exists(), fresh.exists(), unrelated.exists()) == (False, True, True)
    assert "1 kept, 1 removed" in done.stdout


def test_azure_and_google_say_what_applies_instead(data_path: Path, tmp_path: Path):
    azure = uploads(data_path, "list", env={"STORAGE_PROVIDER": "azure", "STORAGE_ACCESS_KEY": ACCOUNT,
                                            "STORAGE_SECRET_KEY": ACCOUNT_KEY})
    assert azure.returncode == 0, azure.stderr
    assert "7 days" in azure.stdout and ACCOUNT_KEY not in azure.stdout + azure.stderr
    credentials = tmp_path / "service-account.json"
    credentials.write_text('{"client_email": "x@example.iam.gserviceaccount.com", "private_key": "k"}')
    google = uploads(data_path, "abort", "--older-than", "1d",
                     env={"STORAGE_PROVIDER": "google", "STORAGE_CREDENTIALS_PATH": str(credentials)})
    assert google.returncode == 0, google.stderr
    assert "AbortIncompleteMultipartUpload" in google.stdout


def test_a_bad_age_is_refused_in_one_line(data_path: Path):
    done = uploads(data_path, "abort", "--older-than", "soon")
    assert done.returncode == 2 and "expected a duration" in done.stderr


def test_an_iam_role_signs_with_keys_from_instance_metadata(moto: MotoS3, bucket: str, s3_proxy: TcpProxy,
                                                            data_path: Path):
    ids = start_uploads(moto, bucket, ["role.bin"])
    metadata = MetadataServer("preview-proxy-writer", "ASIAROLEKEY456", "role-secret-4e5f", "role-session-token")
    try:
        env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": s3_proxy.endpoint, "STORAGE_REGION": REGION,
               "STORAGE_IAM_ROLE": "preview-proxy-writer", "STORAGE_METADATA_ENDPOINT": metadata.endpoint}
        done = uploads(data_path, "abort", "--older-than", "0s", "--bucket", bucket, env=env)
        assert done.returncode == 0, done.stderr
        assert CREDENTIALS_PATH + "preview-proxy-writer" in metadata.paths
        (listing,) = [seen for seen in s3_proxy.requests if seen.method == "GET" and "uploads" in seen.target]
        (abort,) = [seen for seen in s3_proxy.requests if seen.method == "DELETE"]
        for seen in (listing, abort):
            assert "Credential=ASIAROLEKEY456/" in seen.headers["authorization"]
            assert seen.headers["x-amz-security-token"] == "role-session-token"
        assert open_upload_ids(moto, bucket) == set() != ids
        assert "role-secret-4e5f" not in done.stdout + done.stderr
    finally:
        metadata.stop()
    gone = uploads(data_path, "list", "--bucket", bucket, env=env)  # the service has stopped: no keys to sign with
    assert gone.returncode == 1
    assert "no IAM role credentials from the instance metadata service" in gone.stderr

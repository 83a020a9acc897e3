"""`preview-proxy migrate` run as a real subprocess from local storage into moto and Azurite, through a counting
TCP proxy: killed midway and resumed without re-uploading what was done, every object compared by sha256
after, same-size garbage found and fixed, --verify-only and --dry-run writing nothing, retries on 503s and
mid-upload, Ctrl-C aborting a multipart upload in flight, a cloud main storage, bars and usage errors."""

import fcntl
import hashlib
import os
import pty
import re
import shlex
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from proxy.runtime.cli import main
from tests.conftest import REPO
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY
from tests.support.migrations import ENTRY, Migration, counts, links_entry, make_migration
from tests.support.previews_kit import poll
from tests.support.pty_output import read_pty
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, s3_env

MIB = 1024 * 1024
SMALL_FILES = 200
# Two files over the multipart threshold: 2 and 3 parts of 5 MiB (S3's smallest part).
LARGE_FILES = {"large/a.bin": 6 * MIB + 17, "large/b.bin": 11 * MIB}


@pytest.fixture(params=["s3", "azure-key"])
def migration(request: pytest.FixtureRequest, tmp_path: Path) -> Migration:
    """A few hundred small files and two over the multipart threshold, to go to moto or Azurite."""
    files = {f"small/{index:04d}.bin": os.urandom(200 + index * 7) for index in range(SMALL_FILES)}
    files.update({key: os.urandom(size) for key, size in LARGE_FILES.items()})
    return make_migration(request.param, request, tmp_path, files)


def test_killed_midway_resumes_without_reuploading_then_finds_and_fixes_garbage(migration: Migration) -> None:
    total = len(migration.files)
    # Copied by another tool before the first run: equal bytes, never journaled. Read back, not uploaded.
    copied_before = ["small/0007.bin", "small/0150.bin"]
    for key in copied_before:
        migration.backend.seed(key, migration.files[key], "application/octet-stream")
    migration.proxy.faults.bytes_per_second = 10_000  # ~30 ms an answer: the whole run would take seconds

    process = subprocess.Popen(migration.command("--jobs", "4"), cwd=REPO, env=migration.env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: len(migration.journaled()) >= 30, "30 objects journaled", timeout=30)
        process.kill()
        process.wait(10)
    finally:
        process.kill()
    journaled, present = migration.journaled(), set(migration.etags())
    assert 30 <= len(journaled) < total and journaled <= present
    migration.proxy.faults.bytes_per_second = 0
    before = len(migration.proxy.requests)

    resumed = migration.run("--jobs", "4")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    written = set(migration.written_keys(before))
    # Exactly what was missing went up: nothing journaled, nothing already there (journaled or not).
    assert written == set(migration.files) - present
    assert not set(copied_before) & set(migration.written_keys())  # in neither run
    assert counts(resumed.stdout) == {"objects": total, "copied": len(written), "skipped": total - len(written),
                                      "failed": 0}
    assert migration.hashes() == migration.sources()
    etags = migration.etags()

    # Someone replaces one object with garbage of the same size.
    victim = "small/0123.bin"
    migration.backend.seed(victim, os.urandom(len(migration.files[victim])), "application/octet-stream")
    before = len(migration.proxy.requests)

    dry, verify = migration.run_together(["--dry-run"], ["--verify-only"])  # both read only

    assert migration.written_keys(before) == []
    assert (dry.returncode, counts(dry.stdout)) == (0, {"objects": total, "would copy": 1, "skipped": total - 1,
                                                        "failed": 0}), dry.stdout
    assert re.search(rf"^would copy photos/{victim} -> \S+/{victim} .*another sha256", dry.stdout, re.M), dry.stdout
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert counts(verify.stdout) == {"objects": total, "verified": total - 1, "mismatch": 1, "missing": 0,
                                     "failed": 0}
    assert re.search(rf"^  mismatch photos/{victim} .*another sha256", verify.stdout, re.M), verify.stdout
    assert migration.hashes([victim])[victim] != migration.sources()[victim]  # reported, not fixed

    gets_before = len(migration.proxy.gets(migration.target("")))
    fixed = migration.run()

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert set(migration.written_keys(before)) == {victim}
    # Every other object was skipped on its HEAD alone (the ETag the journal recorded): only the victim read back.
    # The one object read back is the victim (the other GET lists the bucket: is anything there yet?).
    # (A whole-object GET from an http:// S3 endpoint is presigned: its target carries the signed query.)
    assert {seen.target.partition("?")[0] for seen in migration.proxy.gets(migration.target(""))[gets_before:]} == {
        migration.target(victim)}
    assert counts(fixed.stdout) == {"objects": total, "copied": 1, "skipped": total - 1, "failed": 0}
    assert migration.hashes() == migration.sources()
    # Nothing else was rewritten: every other object keeps the ETag it had.
    final = migration.etags()
    assert {k: v for k, v in final.items() if k != victim} == {k: v for k, v in etags.items() if k != victim}


def test_provider_errors_are_retried_with_backoff_and_a_last_failure_fails_the_run(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    migration = make_migration("s3", request, tmp_path, {f"{index}.bin": os.urandom(1000) for index in range(4)})
    # The first refused connection is the run's listing of the destination (is anything there yet?): a
    # run that can't tell asks object by object, as below; the next three are the first HEAD's tries.
    migration.proxy.faults.error_status, migration.proxy.faults.error_connections = 503, 4

    retried = migration.run("--jobs", "1", STORAGE_RETRIES="0")  # obstore's own retries off: these are ours

    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert counts(retried.stdout) == {"objects": 4, "copied": 4, "skipped": 0, "failed": 0}
    assert len(re.findall(r"migrate: HEAD of \S+: .*; try \d of 5 in [\d.]+ s", retried.stderr)) == 3, retried.stderr
    assert migration.hashes() == migration.sources()
    verified = migration.run("--verify-only")
    assert (verified.returncode, counts(verified.stdout)) == (0, {"objects": 4, "verified": 4, "mismatch": 0,
                                                                  "missing": 0, "failed": 0}), verified.stdout

    (migration.data_path / "storage" / "photos" / "0-new.bin").write_bytes(b"new")  # listed first
    migration.proxy.faults.error_connections = 2  # the listing, then the HEAD of 0-new.bin
    failed = migration.run("--jobs", "1", "--retries", "0", STORAGE_RETRIES="0")

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert counts(failed.stdout) == {"objects": 5, "copied": 0, "skipped": 4, "failed": 1}
    assert re.search(r"^  failed photos/0-new\.bin -> \S+ \(3 bytes\): storage provider failed$", failed.stdout,
                     re.M), failed.stdout
    assert "Traceback" not in failed.stderr


def test_ctrl_c_aborts_the_multipart_upload_in_flight_and_logs_progress_without_a_terminal(
        request: pytest.FixtureRequest, tmp_path: Path, moto: MotoS3) -> None:
    migration = make_migration("s3", request, tmp_path, {"big.bin": os.urandom(16 * MIB)})
    migration.proxy.faults.bytes_per_second = 2_000  # each answer ~0.2 s: four parts take a while
    process = subprocess.Popen(migration.command("--progress-every", "0.1"), cwd=REPO,
                               env=migration.env(STORAGE_UPLOAD_CONCURRENCY="1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        poll(lambda: "partNumber=" in " ".join(seen.target for seen in migration.proxy.requests), "a part sent")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 130, stdout + stderr
    assert "0 copied, 0 skipped, 0 failed; 0 B copied; stopped early, a rerun resumes" in stdout, stdout
    assert moto.client.list_multipart_uploads(Bucket=migration.backend.bucket).get("Uploads", []) == []
    assert migration.etags() == {} and migration.journaled() == set()
    assert re.search(r"migrate: 0/1 objects \(\), [\d.]+ \S+ of 16\.0 MiB, .*/s, ETA \S+", stderr), stderr
    assert "\r" not in stderr and "\x1b" not in stderr


def test_a_part_refused_midway_aborts_the_upload_and_the_copy_is_retried_from_the_start(
        request: pytest.FixtureRequest, tmp_path: Path, moto: MotoS3) -> None:
    body = os.urandom(11 * MIB)  # three parts of 5 MiB at most
    migration = make_migration("s3", request, tmp_path, {"big.bin": body})
    migration.proxy.faults.bytes_per_second = 2_000  # each answer ~0.2 s: time to arm the fault after part 1
    process = subprocess.Popen(migration.command("--jobs", "1"), cwd=REPO,
                               env=migration.env(STORAGE_UPLOAD_CONCURRENCY="1", STORAGE_RETRIES="0"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        poll(lambda: any("partNumber=1&" in seen.target for seen in migration.proxy.requests), "part 1 sent")
        # The next connection (part 2's: moto answers each request on a connection of its own) gets a 503.
        migration.proxy.faults.error_status, migration.proxy.faults.error_connections = 503, 1
        migration.proxy.faults.bytes_per_second = 0
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()

    assert process.returncode == 0, stdout + stderr
    assert counts(stdout) == {"objects": 1, "copied": 1, "skipped": 0, "failed": 0}
    assert re.search(r"migrate: copy of \S+/big\.bin: storage provider failed; try 2 of 5", stderr), stderr
    methods = [(seen.method, seen.target.split("?")[1].split("=")[0]) for seen in migration.proxy.requests
               if "?" in seen.target]
    assert methods.count(("POST", "uploads")) == 2 and ("DELETE", "uploadId") in methods, methods
    assert moto.client.list_multipart_uploads(Bucket=migration.backend.bucket).get("Uploads", []) == []
    assert migration.hashes() == {"big.bin": hashlib.sha256(body).hexdigest()}


def test_a_bad_entry_or_bucket_is_a_one_line_usage_error(request: pytest.FixtureRequest, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    migration = make_migration("s3", request, tmp_path, {"a.bin": b"a"})
    (migration.data_path / "remote_links.yml").write_text(
        links_entry(migration.backend, migration.proxy.endpoint) + "folder: {provider: fs, path: /tmp}\n")
    for name in os.environ:
        if name.startswith(("STORAGE_", "REMOTE_LINKS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATA_PATH", str(migration.data_path))
    monkeypatch.chdir(tmp_path)  # no ./.env is read

    def run(*args: str) -> tuple[int, str]:
        """The CLI in this process (the checks come before any I/O): its exit status and what it wrote."""
        status = main(["migrate", *args])
        captured = capsys.readouterr()
        return status, (captured.out + captured.err).strip()

    assert run("--to", "nowhere") == (2, f"preview-proxy migrate: --to nowhere: no such entry in "
                                         f"{migration.data_path / 'remote_links.yml'} (its entries: {ENTRY}, folder)")
    assert run("--to", "folder") == (2, "preview-proxy migrate: --to folder: a folder entry (provider fs); migrate "
                                        "copies into an object store (minio, azure or google)")
    assert run("--to", ENTRY) == (2, f"preview-proxy migrate: --bucket photos=photos: entry '{ENTRY}' does not list "
                                     f"bucket 'photos' (its buckets: {migration.backend.bucket})")
    assert run("--to", ENTRY, "--bucket", "videos=x") == (
        2, f"preview-proxy migrate: --bucket 'videos=x': no bucket folder 'videos' in "
           f"{migration.data_path / 'storage'}")
    (migration.data_path / "storage" / "videos").mkdir()
    into = f"photos={migration.backend.bucket}"
    assert run("--to", ENTRY, "--bucket", into, "--bucket", f"videos={migration.backend.bucket}") == (
        2, f"preview-proxy migrate: --bucket: several source buckets go into {migration.backend.bucket}; keys could "
           "collide")
    with monkeypatch.context() as cloud:
        cloud.setenv("STORAGE_PROVIDER", "azure")
        cloud.setenv("STORAGE_ACCESS_KEY", ACCOUNT)
        cloud.setenv("STORAGE_SECRET_KEY", ACCOUNT_KEY)
        assert run("--to", ENTRY) == (2, "preview-proxy migrate: the main storage is azure: name its buckets with "
                                         "--bucket SRC[=DST]")
    (migration.data_path / "migrate").write_text("a file where the journals' folder should be")
    status, output = run("--to", ENTRY, "--bucket", into)
    assert (status, output.startswith(f"preview-proxy migrate: can't open the journal "
                                      f"{migration.data_path / 'migrate' / ENTRY}.db: ")) == (2, True), output
    (migration.data_path / "migrate").unlink()
    assert migration.proxy.requests == []  # every refusal came before any I/O
    status, output = run("--to", ENTRY, "--bucket", into, "--bucket", into, "--dry-run")
    assert (status, counts(output)["objects"]) == (0, 1), output  # a repeated mapping is one route, not two


def test_a_cloud_main_storage_is_listed_and_a_prefix_is_text_not_folders(
        request: pytest.FixtureRequest, tmp_path: Path, moto: MotoS3, bucket: str) -> None:
    migration = make_migration("s3", request, tmp_path, {})
    bodies = {key: os.urandom(500) for key in ("keep/1.bin", "keep/deeper/2.bin", "keepsake.bin", "other/3.bin")}
    for key, body in bodies.items():
        moto.put(bucket, key, body)
    main_storage = s3_env(moto.endpoint, STORAGE_RETRIES="0")
    command = [sys.executable, "-m", "proxy.runtime.cli", "migrate", "--to", ENTRY, "--bucket",
               f"{bucket}={migration.backend.bucket}", "--prefix", "keep"]

    done = subprocess.run(command, cwd=REPO, env=migration.env(**main_storage), capture_output=True, text=True,
                          timeout=60, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert counts(done.stdout) == {"objects": 3, "copied": 3, "skipped": 0, "failed": 0}
    wanted = ("keep/1.bin", "keep/deeper/2.bin", "keepsake.bin")
    assert migration.hashes() == {key: hashlib.sha256(bodies[key]).hexdigest() for key in wanted}


def test_on_a_terminal_progress_is_a_bar_for_the_run_and_one_for_a_large_file(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    migration = make_migration("s3", request, tmp_path, {"big.bin": os.urandom(6 * MIB), "small.bin": b"small"})
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # a pty starts 0 columns wide
    try:
        done = subprocess.run(migration.command("--jobs", "1"), cwd=REPO, env=migration.env(),
                              stdout=subprocess.PIPE, stderr=follower, text=True, timeout=60, check=False)
        os.close(follower)
        screen = read_pty(leader)
    finally:
        os.close(leader)

    assert (done.returncode, counts(done.stdout)) == (0, {"objects": 2, "copied": 2, "skipped": 0, "failed": 0})
    assert re.search(r"\r100%\|.*\| 6\.00M/6\.00M \[.*B/s, 2/2 objects, copied 2\]", screen), screen
    assert re.search(r"\S*big\.bin: +\d+%\|", screen), screen  # the large file's own bar
    assert "migrate: 0/2 objects" not in screen  # no log lines as well as the bars


# The README's commands, run verbatim against its layout: local bucket `photos`, links entry `archive`.
README_DRY_RUN = "preview-proxy migrate --to archive --dry-run"
README_RUN = "preview-proxy migrate --to archive --jobs 8"


def test_the_readme_commands_list_then_copy_then_skip(tmp_path: Path) -> None:
    moto = MotoS3()  # its own server: the README's bucket name is fixed
    try:
        moto.create_bucket("photos")
        files = {f"images/{index}.jpg": os.urandom(300 + index) for index in range(5)}
        data_path = tmp_path / "data"
        for key, body in files.items():
            (data_path / "storage" / "photos" / key).parent.mkdir(parents=True, exist_ok=True)
            (data_path / "storage" / "photos" / key).write_bytes(body)
        (data_path / "remote_links.yml").write_text(
            f'archive: {{provider: minio, endpoint: "{moto.endpoint}", access_key: {ACCESS_KEY}, '
            f'secret_key: {SECRET_KEY}, region: {REGION}, buckets: [photos]}}\n')
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "AWS_"))}
        env = {**clean, "DATA_PATH": str(data_path)}

        def run(command: str) -> str:
            done = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", *shlex.split(command)[1:]], cwd=tmp_path,
                                  env=env, capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        dry = run(README_DRY_RUN)
        assert sorted(line.split()[2] for line in dry.splitlines() if line.startswith("would copy ")) == sorted(
        f"photos/{key}" for key in files), dry
        assert moto.client.list_objects_v2(Bucket="photos").get("KeyCount") == 0
        assert counts(run(README_RUN)) == {"objects": 5, "copied": 5, "skipped": 0, "failed": 0}
        copied = {key: moto.client.get_object(Bucket="photos", Key=key)["Body"].read() for key in files}
        assert copied == files
        assert counts(run(README_RUN)) == {"objects": 5, "copied": 0, "skipped": 5, "failed": 0}
    finally:
        moto.stop()


def test_into_a_bucket_with_nothing_under_the_prefix_objects_are_copied_without_a_head_each(
        migration: Migration) -> None:
    before = len(migration.proxy.requests)

    first = migration.run("--jobs", "4")

    assert first.returncode == 0, first.stdout + first.stderr
    assert counts(first.stdout)["copied"] == len(migration.files)
    assert migration.hashes() == migration.sources()
    first_requests = migration.proxy.requests[before:]
    assert not [seen for seen in first_requests if seen.method == "HEAD"]  # the listing said nothing was there
    # Now the bucket holds them all: a second run asks about each (and skips it) as before.
    before = len(migration.proxy.requests)
    second = migration.run("--jobs", "4")
    assert second.returncode == 0, second.stdout + second.stderr
    assert counts(second.stdout) == {"objects": len(migration.files), "copied": 0, "skipped": len(migration.files),
                                     "failed": 0}
    heads = {seen.target.split("?")[0] for seen in migration.proxy.requests[before:] if seen.method == "HEAD"}
    assert heads == {migration.target(key) for key in migration.files}

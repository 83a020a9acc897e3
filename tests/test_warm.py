"""`preview-proxy warm` run as a real subprocess against moto (main storage and a link) and local disk,
then a real server on the same DATA_PATH: what warm fetched and rendered is a HIT, and the provider,
counted through a TCP proxy, sees no further GET."""

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import uuid
from pathlib import Path

from tests.conftest import REPO, StartServer
from tests.support.http import request
from tests.support.previews_kit import place, poll
from tests.support.pty_output import read_pty
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, s3_env
from tests.support.tcp_proxy import TcpProxy
from tests.test_cache_cli import noise_jpeg

PREVIEW_OPTIONS = "rs:fit:32:0/q:70"
# The options part of a whole preview URL is accepted too; its @png names the format.
PREVIEW_PATH = "/previews/any/rs:fit:16:16/plain/photos/x.jpg@png"
SUMMARY = re.compile(r"warm: (\d+) source\(s\) in [\d.]+ s: (\d+) warmed, (\d+) already cached, (\d+) failed")


def warm(data_path: Path, file: Path, *args: str, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`preview-proxy warm FILE <args>` on DATA_PATH, output piped (so not a terminal), bounded in time."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "AWS_"))}
    return subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "warm", str(file), *args], cwd=REPO,
                          env={**clean, "DATA_PATH": str(data_path), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, check=False)


def counts(output: str) -> tuple[int, int, int, int]:
    """(sources, warmed, already cached, failed) from the summary line."""
    found = SUMMARY.search(output)
    assert found, output
    total, warmed, cached, failed = (int(group) for group in found.groups())
    return total, warmed, cached, failed


def links_file(tmp_path: Path, endpoint: str, bucket: str) -> Path:
    """remote_links.yml with one S3 entry (through `endpoint`) listing `bucket`."""
    path = tmp_path / "remote_links.yml"
    path.write_text(f'cars: {{provider: minio, endpoint: "{endpoint}", access_key: {ACCESS_KEY}, '
                    f'secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{bucket}]}}\n')
    return path


def test_warm_from_s3_and_a_link_then_a_server_hits_without_the_provider(
        moto: MotoS3, s3_proxy: TcpProxy, bucket: str, data_path: Path, tmp_path: Path,
        start_server: StartServer) -> None:
    linked = moto.create_bucket(f"cars-{uuid.uuid4().hex[:8]}")
    images = {"a.jpg": noise_jpeg(80, 60), "b/c.jpg": noise_jpeg(64, 64), "d.jpg": noise_jpeg(48, 40)}
    moto.put(bucket, "a.jpg", images["a.jpg"], "image/jpeg")
    moto.put(bucket, "b/c.jpg", images["b/c.jpg"], "image/jpeg")
    moto.put(linked, "d.jpg", images["d.jpg"], "image/jpeg")
    sources = tmp_path / "sources.txt"
    sources.write_text(f"# Supervisely links: main storage and a linked bucket\n{bucket}/a.jpg\n\n"
                       f"s3://{linked}/d.jpg\n{bucket}/../escape.jpg\n{bucket}/missing.jpg\n  {bucket}/b/c.jpg  \n")
    env = {**s3_env(s3_proxy.endpoint), "REMOTE_LINKS_PATH": str(links_file(tmp_path, s3_proxy.endpoint, linked))}

    first = warm(data_path, sources, "--previews", PREVIEW_OPTIONS, PREVIEW_PATH, "--jobs", "2", env=env)

    assert first.returncode == 1, first.stdout + first.stderr
    assert counts(first.stdout) == (5, 3, 0, 2)
    assert re.search(r"failed: line 5: bad source: .*'\.\.'", first.stdout), first.stdout
    assert re.search(rf"failed: line 6: {bucket}/missing\.jpg: original: no such object", first.stdout), first.stdout
    assert "Traceback" not in first.stderr
    # Each original was fetched once, whatever the previews made of it.
    fetched = {key: len(s3_proxy.gets(f"/{key}")) for key in ("a.jpg", "b/c.jpg", "d.jpg")}
    assert fetched == {"a.jpg": 1, "b/c.jpg": 1, "d.jpg": 1}

    server = start_server(**env)
    gets_before = len(s3_proxy.gets())
    paths = [f"/{bucket}/a.jpg", f"/{bucket}/b/c.jpg", f"/links/s3/{linked}/d.jpg"]
    for source in (f"{bucket}/a.jpg", f"{bucket}/b/c.jpg", f"s3://{linked}/d.jpg"):
        paths += [f"/previews/sig/{PREVIEW_OPTIONS}/plain/{source}", f"/previews/sig/rs:fit:16:16/plain/{source}@png"]
    replies = {path: request(server.url(path)) for path in paths}

    assert {path: (r.status, r.headers["X-Cache"]) for path, r in replies.items()} == {
        path: (200, "HIT") for path in paths}
    assert [replies[path].body for path in paths[:3]] == [images["a.jpg"], images["b/c.jpg"], images["d.jpg"]]
    assert replies[paths[4]].headers["Content-Type"] == "image/png"
    assert len(s3_proxy.gets()) == gets_before

    # Again, while the server runs: everything is cached, nothing fetched but the missing object's try.
    second = warm(data_path, sources, "--previews", PREVIEW_OPTIONS, PREVIEW_PATH, env=env)

    assert second.returncode == 1, second.stdout + second.stderr
    assert counts(second.stdout) == (5, 0, 3, 2)
    # By path: a whole-object GET from an http:// S3 endpoint is presigned, its target carries the signed query.
    assert [g.target.partition("?")[0] for g in s3_proxy.gets()[gets_before:]] == [f"/{bucket}/missing.jpg"]


def test_warm_local_storage_fills_previews_and_reports_them_cached_next_time(
        data_path: Path, tmp_path: Path, start_server: StartServer) -> None:
    place(data_path, "photos", "a.jpg", noise_jpeg(90, 60))
    sources = tmp_path / "sources.txt"
    sources.write_text("photos/a.jpg\n")

    first = warm(data_path, sources, "--previews", PREVIEW_OPTIONS)
    second = warm(data_path, sources, "--previews", PREVIEW_OPTIONS)

    assert (first.returncode, counts(first.stdout)) == (0, (1, 1, 0, 0)), first.stdout + first.stderr
    assert (second.returncode, counts(second.stdout)) == (0, (1, 0, 1, 0)), second.stdout + second.stderr
    server = start_server()
    reply = request(server.url(f"/previews/sig/{PREVIEW_OPTIONS}/plain/photos/a.jpg"))
    assert (reply.status, reply.headers["X-Cache"]) == (200, "HIT")


def test_without_a_terminal_progress_goes_out_as_log_lines(
        moto: MotoS3, s3_proxy: TcpProxy, bucket: str, data_path: Path, tmp_path: Path) -> None:
    for index in range(3):
        moto.put(bucket, f"{index}.bin", os.urandom(100_000))
    sources = tmp_path / "sources.txt"
    sources.write_text("".join(f"{bucket}/{index}.bin\n" for index in range(3)))
    s3_proxy.faults.bytes_per_second = 400_000  # ~0.75 s in all: several 0.1 s ticks

    done = warm(data_path, sources, "--progress-every", "0.1", "--jobs", "1", env=s3_env(s3_proxy.endpoint))

    assert (done.returncode, counts(done.stdout)) == (0, (3, 3, 0, 0)), done.stdout + done.stderr
    lines = re.findall(r"warm: \d/3 sources, 0 failed, .*/s, ETA \S+", done.stderr)
    assert len(lines) >= 3, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr


def test_bad_options_and_an_unreadable_file_are_one_line_usage_errors(data_path: Path, tmp_path: Path) -> None:
    sources = tmp_path / "sources.txt"
    sources.write_text("photos/a.jpg\n")

    bad_options = warm(data_path, sources, "--previews", "rs:fit:abc")
    missing = warm(data_path, tmp_path / "nowhere.txt")

    assert (bad_options.returncode, missing.returncode) == (2, 2)
    assert bad_options.stdout.startswith("preview-proxy warm: bad --previews options: ")
    assert missing.stdout.startswith("preview-proxy warm: can't read ")
    assert len(bad_options.stdout.splitlines()) == len(missing.stdout.splitlines()) == 1


def test_ctrl_c_keeps_what_was_committed_and_leaves_no_part_file(
        moto: MotoS3, s3_proxy: TcpProxy, bucket: str, data_path: Path, tmp_path: Path,
        start_server: StartServer) -> None:
    small, large = os.urandom(20_000), os.urandom(3_000_000)
    moto.put(bucket, "small.bin", small)
    moto.put(bucket, "large.bin", large)
    sources = tmp_path / "sources.txt"
    sources.write_text(f"{bucket}/small.bin\n{bucket}/large.bin\n")
    s3_proxy.faults.bytes_per_second = 300_000  # the large one takes ~10 s: interrupted midway
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "AWS_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy.runtime.cli", "warm", str(sources), "--jobs", "1"], cwd=REPO,
        env={**clean, "DATA_PATH": str(data_path), **s3_env(s3_proxy.endpoint)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        parts = data_path / "cache" / "storage" / "partial"
        # Larger than the small original can be: the large one's part file (the small one's, written as
        # its bytes arrive, may show for a moment before its commit, and SIGINT then would cut it too).
        poll(lambda: any(part.stat().st_size > len(small) for part in parts.glob("*.part")) or None,
             "the large original half-written")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()

    assert process.returncode == 130, stdout + stderr
    assert "1 warmed, 0 already cached, 0 failed, stopped with 1 not done" in stdout, stdout
    assert list(parts.glob("*.part")) == []
    s3_proxy.faults.bytes_per_second = 0
    server = start_server(**s3_env(s3_proxy.endpoint))
    kept, cut = request(server.url(f"/{bucket}/small.bin")), request(server.url(f"/{bucket}/large.bin"))
    assert (kept.headers["X-Cache"], kept.body == small) == ("HIT", True)
    assert (cut.headers["X-Cache"], cut.body == large) == ("MISS", True)


def test_on_a_terminal_progress_is_a_tqdm_bar(data_path: Path, tmp_path: Path) -> None:
    place(data_path, "photos", "a.jpg", noise_jpeg(40, 30))
    sources = tmp_path / "sources.txt"
    sources.write_text("photos/a.jpg\nphotos/missing.jpg\n")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # a pty starts 0 columns wide
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "AWS_"))}
    try:
        done = subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "warm", str(sources)], cwd=REPO,
                              env={**clean, "DATA_PATH": str(data_path)}, stdout=subprocess.PIPE, stderr=follower,
                              text=True, timeout=60, check=False)
        os.close(follower)
        screen = read_pty(leader)
    finally:
        os.close(leader)

    assert (done.returncode, counts(done.stdout)) == (1, (2, 0, 1, 1))  # in place on local disk: nothing to fetch
    assert re.search(r"\r100%\|.*\| 2/2 \[.*src/s, failed=1 ", screen), screen
    assert "warm: 0/2 sources" not in screen  # no log lines as well as the bar



def test_an_original_the_storage_tier_refuses_is_a_failure_not_a_warm(
        moto: MotoS3, s3_proxy: TcpProxy, bucket: str, data_path: Path, tmp_path: Path) -> None:
    moto.put(bucket, "big.bin", os.urandom(2_000_000))
    sources = tmp_path / "sources.txt"
    sources.write_text(f"{bucket}/big.bin\n")

    done = warm(data_path, sources, env=s3_env(s3_proxy.endpoint, CACHE_STORAGE_SIZE="1m"))

    assert (done.returncode, counts(done.stdout)) == (1, (1, 0, 0, 1)), done.stdout + done.stderr
    assert f"failed: line 1: {bucket}/big.bin: original: fetched but not kept" in done.stdout

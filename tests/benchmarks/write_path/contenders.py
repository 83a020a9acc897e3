"""The four measured runs of the write-path benchmark, each into a fresh moto and a fresh bucket:

- upload through preview-proxy: curl PUTs the file (bearer token, no checksum header) to a one-worker
  server whose main storage is moto; the clock runs from curl's start to the 201;
- boto3's `upload_file` of the same file straight to moto, in this process, with the same threshold,
  part size and concurrency (TransferConfig), and without a checksum header, as obstore sends parts;
- `preview-proxy migrate` of the tree into a links entry on moto (`--jobs 4`, its default);
- `rclone copy` of the same folder to the same kind of endpoint (`--transfers 4`, its default; the
  same multipart settings through its --s3-* flags; its other defaults, so it reads each large file
  once more for the MD5 it stores as metadata, as it always does).

Each run returns its seconds and the CPU seconds of every process involved (the client or tool, the
server, moto), so a gap can be told apart: whose CPU it is, or waiting.
"""

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig

from tests.benchmarks.harness import REPO, BenchmarkError, cpu_seconds, proxy_server
from tests.benchmarks.write_path.ground import SOURCE_BUCKET, Files, Moto, Multipart
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_env

TOKEN = "benchmark-write-path-token-0123456789"
LINKS_ENTRY = "bench"
TIMEOUT = 600.0
TRANSFERS = 4  # migrate's --jobs and rclone's --transfers, both their defaults


@dataclass
class Run:
    """One measured run: wall seconds, bytes moved, and CPU seconds by process."""

    seconds: float
    size: int
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def mib_s(self) -> float:
        """Throughput in MiB/s."""
        return self.size / 2**20 / self.seconds


@contextmanager
def _clock(run_cpu: dict[str, float], pids: dict[str, int]) -> Iterator[list[float]]:
    """Time the block; add the CPU seconds of `pids`, of this process and of children waited on meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed: list[float] = []
    started = time.perf_counter()
    yield elapsed
    elapsed.append(time.perf_counter() - started)
    for name, pid in pids.items():
        run_cpu[name] = cpu_seconds(pid) - before[name]
    own_after, children_after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    run_cpu["this process"] = own_after.ru_utime + own_after.ru_stime - own.ru_utime - own.ru_stime
    run_cpu["tool"] = (children_after.ru_utime + children_after.ru_stime - children.ru_utime - children.ru_stime)


def _timed_tool(tool: str, argv: list[str], size: int, pids: dict[str, int], env: dict[str, str] | None = None,
                cwd: Path | None = None) -> tuple[Run, subprocess.CompletedProcess[str]]:
    """Run `argv` to its end on the clock: the Run (its CPU seconds under `tool`, beside those of `pids`)
    and what it printed and returned."""
    run = Run(0.0, size)
    with _clock(run.cpu, pids) as elapsed:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    run.seconds = elapsed[0]
    run.cpu[tool] = run.cpu.pop("tool")
    return run, done


def _expect_etags(moto: Moto, bucket: str, expected: dict[str, str], who: str) -> None:
    found = moto.etags(bucket)
    if found != expected:
        wrong = sorted(key for key in expected.keys() | found.keys() if found.get(key) != expected.get(key))
        raise BenchmarkError(f"{who}: {len(wrong)} object(s) missing or with another ETag, e.g. {wrong[:3]}")


def upload_through_proxy(moto: Moto, files: Files, multipart: Multipart) -> Run:
    """PUT the upload file through preview-proxy into moto."""
    bucket = moto.make_bucket("upload-proxy")
    env = {"UPLOAD_TOKENS": TOKEN, "STORAGE_READ_TIMEOUT": "10m",
           "STORAGE_MULTIPART_THRESHOLD": str(multipart.threshold), "STORAGE_PART_SIZE": str(multipart.part_size),
           "STORAGE_UPLOAD_CONCURRENCY": str(multipart.concurrency), **s3_env(moto.endpoint)}
    size = files.upload.stat().st_size
    with proxy_server(env) as server:
        argv = ["curl", "-sS", "--fail-with-body", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(files.upload),
                "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/octet-stream",
                "-H", "Expect:", server.url(f"/{bucket}/upload.bin")]
        run, answer = _timed_tool("curl", argv, size, {"preview-proxy": server.pid, "moto": moto.pid})
        if answer.stdout != "201":
            raise BenchmarkError(f"upload through preview-proxy: {answer.stdout} {answer.stderr}\n"
                                 + "\n".join(server.log_lines[-10:]))
    _expect_etags(moto, bucket, {"upload.bin": files.upload_etag}, "upload through preview-proxy")
    return run


def upload_with_boto3(moto: Moto, files: Files, multipart: Multipart) -> Run:
    """boto3's upload_file of the upload file straight to moto, with the same multipart settings."""
    bucket = moto.make_bucket("upload-boto3")
    transfer = TransferConfig(multipart_threshold=multipart.threshold, multipart_chunksize=multipart.part_size,
                              max_concurrency=multipart.concurrency)
    # Without a checksum header, as obstore sends its parts: moto answers a part with a CRC32 header by
    # checksumming each part, and one without by copying the whole object once more at completion to
    # checksum it (its stand-in for S3's CRC64NVME). The same path for both keeps moto's cost equal.
    client = boto3.client("s3", endpoint_url=moto.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY,
                          config=BotoConfig(s3={"addressing_style": "path"},
                                            request_checksum_calculation="when_required"))
    run = Run(0.0, files.upload.stat().st_size)
    with _clock(run.cpu, {"moto": moto.pid}) as elapsed:
        client.upload_file(str(files.upload), bucket, "upload.bin", Config=transfer)
    run.seconds = elapsed[0]
    run.cpu["boto3"] = run.cpu.pop("this process")
    _expect_etags(moto, bucket, {"upload.bin": files.upload_etag}, "boto3 upload_file")
    return run


def migrate(moto: Moto, files: Files, multipart: Multipart, tmp_journal_root: str) -> Run:
    """`preview-proxy migrate` of the tree into a fresh bucket of a links entry on moto."""
    bucket = moto.make_bucket("migrate-proxy")
    (files.data_path / "remote_links.yml").write_text(
        f'{LINKS_ENTRY}: {{provider: minio, endpoint: "{moto.endpoint}", access_key: {ACCESS_KEY}, '
        f'secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{bucket}]}}\n')
    journal = files.data_path / "migrate" / f"{LINKS_ENTRY}.db"
    for leftover in (journal, journal.with_name(journal.name + "-wal"), journal.with_name(journal.name + "-shm")):
        leftover.unlink(missing_ok=True)  # each run starts from nothing, as rclone does
    env = {name: value for name, value in os.environ.items() if not name.startswith(("STORAGE_", "CACHE_", "AWS_"))}
    env |= {"DATA_PATH": str(files.data_path), "CACHE_PATH": tmp_journal_root,
            "STORAGE_MULTIPART_THRESHOLD": str(multipart.threshold), "STORAGE_PART_SIZE": str(multipart.part_size),
            "STORAGE_UPLOAD_CONCURRENCY": str(multipart.concurrency)}
    argv = [sys.executable, "-m", "proxy.runtime.cli", "migrate", "--to", LINKS_ENTRY, "--bucket",
            f"{SOURCE_BUCKET}={bucket}", "--jobs", str(TRANSFERS), "--progress-every", "3600"]
    run, done = _timed_tool("migrate", argv, files.tree_bytes, {"moto": moto.pid}, env=env, cwd=REPO)
    if done.returncode != 0:
        raise BenchmarkError(f"migrate exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    _expect_etags(moto, bucket, files.tree_etags, "migrate")
    return run


def rclone_copy(moto: Moto, files: Files, multipart: Multipart, config_path: str) -> Run:
    """`rclone copy` of the tree's folder into a fresh bucket on moto, with the same multipart settings."""
    bucket = moto.make_bucket("migrate-rclone")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "RCLONE_CONFIG_DEST_TYPE": "s3", "RCLONE_CONFIG_DEST_PROVIDER": "Other",
           "RCLONE_CONFIG_DEST_ENV_AUTH": "false", "RCLONE_CONFIG_DEST_ACCESS_KEY_ID": ACCESS_KEY,
           "RCLONE_CONFIG_DEST_SECRET_ACCESS_KEY": SECRET_KEY, "RCLONE_CONFIG_DEST_REGION": REGION,
           "RCLONE_CONFIG_DEST_ENDPOINT": moto.endpoint, "RCLONE_CONFIG_DEST_FORCE_PATH_STYLE": "true"}
    argv = ["rclone", "copy", str(files.tree), f"dest:{bucket}", "--config", config_path,
            "--transfers", str(TRANSFERS), "--s3-upload-cutoff", f"{multipart.threshold}B",
            "--s3-chunk-size", f"{multipart.part_size}B", "--s3-upload-concurrency", str(multipart.concurrency)]
    run, done = _timed_tool("rclone", argv, files.tree_bytes, {"moto": moto.pid}, env=env)
    if done.returncode != 0:
        raise BenchmarkError(f"rclone exited {done.returncode}:\n{done.stderr[-2000:]}")
    _expect_etags(moto, bucket, files.tree_etags, "rclone copy")
    return run

"""What the write-path benchmark writes and where: the files (made once per run), a fresh moto for each
figure, and the multipart ETags the objects must end with.

The ETag check stands in for a read-back: S3's ETag of a multipart upload is the MD5 of its parts' MD5s
followed by `-<parts>`, and of a single PUT the MD5 of the body. Every contender uses the same part
size, so every object must end with the ETag computed here from the local file, whoever wrote it.
"""

import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from tests.benchmarks.harness import BenchmarkError, helper_process
from tests.benchmarks.originals import MOTO_SERVER
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY

MIB = 1024 * 1024
SMALL_SIZES = (1024, 64 * 1024)  # each small file's size is drawn between these (bytes), seed fixed
SOURCE_BUCKET = "tree"


@dataclass(frozen=True)
class Sizes:
    """How much is written: the upload's body, and the migrated tree's small and large files."""

    upload: int
    small_files: int
    large_files: int
    large_size: int


@dataclass(frozen=True)
class Multipart:
    """The settings every contender uploads with (preview-proxy's defaults): one PUT up to `threshold`
    bytes, else parts of `part_size`, `concurrency` parts at once."""

    threshold: int = 64 * MIB
    part_size: int = 16 * MIB
    concurrency: int = 4


@dataclass(frozen=True)
class Files:
    """The upload's body, the tree to migrate (DATA_PATH/storage/<SOURCE_BUCKET>), and their ETags."""

    upload: Path
    upload_etag: str
    data_path: Path
    tree_etags: dict[str, str]  # key -> ETag (unquoted)

    @property
    def tree(self) -> Path:
        """The folder `rclone copy` reads, which `migrate` lists as bucket SOURCE_BUCKET."""
        return self.data_path / "storage" / SOURCE_BUCKET

    @property
    def tree_bytes(self) -> int:
        """The tree's total size."""
        return sum(path.stat().st_size for path in self.tree.rglob("*") if path.is_file())


def s3_etag(path: Path, multipart: Multipart) -> str:
    """The ETag S3 gives `path`'s bytes when they go up with `multipart`'s settings."""
    size = path.stat().st_size
    digests = []
    with path.open("rb") as source:
        while block := source.read(multipart.part_size if size > multipart.threshold else size or 1):
            digests.append(hashlib.md5(block, usedforsecurity=False))
    if size <= multipart.threshold:
        return digests[0].hexdigest() if digests else hashlib.md5(b"", usedforsecurity=False).hexdigest()
    joined = hashlib.md5(b"".join(d.digest() for d in digests), usedforsecurity=False)
    return f"{joined.hexdigest()}-{len(digests)}"


def lay_out(tmp: Path, big: Path, sizes: Sizes, multipart: Multipart) -> Files:
    """The upload's body (the first `sizes.upload` bytes of `big`) and the tree: small random files under
    small/, and large/ files cut from `big` at different offsets (so no two are alike)."""
    upload = tmp / "upload.bin"
    _copy_range(big, upload, 0, sizes.upload)
    tree = tmp / "data" / "storage" / SOURCE_BUCKET
    (tree / "small").mkdir(parents=True)
    (tree / "large").mkdir()
    chooser = random.Random(16)
    for index in range(sizes.small_files):
        (tree / "small" / f"{index:04d}.bin").write_bytes(os.urandom(chooser.randint(*SMALL_SIZES)))
    big_size = big.stat().st_size
    for index in range(sizes.large_files):
        offset = (index * sizes.large_size) % max(1, big_size - sizes.large_size + 1)
        _copy_range(big, tree / "large" / f"{index}.bin", offset, sizes.large_size)
    etags = {str(path.relative_to(tree)): s3_etag(path, multipart) for path in sorted(tree.rglob("*"))
             if path.is_file()}
    return Files(upload, s3_etag(upload, multipart), tmp / "data", etags)


def _copy_range(source: Path, target: Path, offset: int, size: int) -> None:
    if source.stat().st_size < offset + size:
        raise BenchmarkError(f"{source} is shorter than {offset + size} bytes")
    with source.open("rb") as reader, target.open("wb") as writer:
        reader.seek(offset)
        left = size
        while left:
            block = reader.read(min(left, 8 * MIB))
            writer.write(block)
            left -= len(block)


@dataclass(frozen=True)
class Moto:
    """A running moto S3 server: its address, its pid (for its CPU time) and a boto3 client on it."""

    endpoint: str
    pid: int
    client: Any  # boto3 makes its clients' classes at run time

    def make_bucket(self, name: str) -> str:
        """A new, empty bucket."""
        self.client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def etags(self, bucket: str) -> dict[str, str]:
        """Every object of `bucket`: key -> ETag, unquoted."""
        found: dict[str, str] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            found.update({item["Key"]: item["ETag"].strip('"') for item in page.get("Contents", [])})
        return found


@contextmanager
def fresh_moto() -> Iterator[Moto]:
    """moto's ThreadedMotoServer in a process of its own, empty, stopped (and its memory freed) on the way out."""
    with helper_process(MOTO_SERVER) as (pid, endpoint):
        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, config=BotoConfig(s3={"addressing_style": "path"}))
        yield Moto(endpoint, pid, client)


def rclone_version() -> str:
    """`rclone v1.60.1-DEV`, or a BenchmarkError saying how to install it."""
    if shutil.which("rclone") is None:
        raise BenchmarkError("rclone is not installed: run `bash tests/benchmarks/peers.sh --install-only`")
    return subprocess.run(["rclone", "version"], capture_output=True, text=True, check=True).stdout.split("\n")[0]

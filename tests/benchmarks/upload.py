"""Benchmark: one large PUT through preview-proxy into moto, with constant memory.

The body (--size, default 5g) is made on the fly in 1 MiB blocks, never held whole, and sent with its
Content-Length and x-amz-checksum-sha256 (so the server verifies it too). A counting TCP proxy between
the server and moto counts the parts on the wire (`PUT ...?partNumber=`). After the 201, the object is
read back from moto in chunks and its SHA-256 compared; the server's peak RSS (VmHWM) must stay under
200 MiB. moto keeps the object in memory: a 5 GiB run needs about 11 GiB free on the machine (the parts,
then the object they make).

Run:  cd /work/main && .venv/bin/python -m tests.benchmarks.upload [--size 1g] [--part-size 16m] [--concurrency 4]
Exits 1 if a check fails; the figures are printed and written to tests/benchmarks/results/upload.md.
"""

import argparse
import base64
import hashlib
import http.client
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig

from proxy.settings.units import parse_size
from tests.benchmarks.harness import REPO, helper_process, machine, proxy_server
from tests.benchmarks.originals import MOTO_SERVER
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_env
from tests.support.tcp_proxy import TcpProxy

RESULTS = REPO / "tests" / "benchmarks" / "results" / "upload.md"
MIB = 1024 * 1024
RSS_LIMIT = 200 * MIB
BUCKET, KEY = "bench-upload", "big/upload.bin"
TOKEN = "benchmark-upload-token-0123456789"


def body(size: int, base: bytes) -> Iterator[bytes]:
    """`size` bytes in 1 MiB blocks: one random block with each block's number written over its head."""
    for number, start in enumerate(range(0, size, MIB)):
        yield (number.to_bytes(8, "big") + base[8:])[: min(MIB, size - start)]


def main() -> int:
    """Run the upload once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="5g", help="body size, nginx-style (default 5g)")
    parser.add_argument("--part-size", default="16m", help="STORAGE_PART_SIZE (default 16m)")
    parser.add_argument("--concurrency", default="4", help="STORAGE_UPLOAD_CONCURRENCY (default 4)")
    args = parser.parse_args()
    size, base = parse_size(args.size), os.urandom(MIB)
    digest = hashlib.sha256()
    for block in body(size, base):
        digest.update(block)
    with ExitStack() as stack:
        _, endpoint = stack.enter_context(helper_process(MOTO_SERVER))
        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, config=BotoConfig(s3={"addressing_style": "path"}))
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        wire = stack.enter_context(TcpProxy(("127.0.0.1", int(urlsplit(endpoint).port or 80))))
        server = stack.enter_context(proxy_server({
            # moto joins the parts of CompleteMultipartUpload before it answers anything (S3 keeps the
            # connection alive with whitespace meanwhile): at 5 GiB that is longer than the default 30 s.
            "STORAGE_READ_TIMEOUT": "10m",
            "UPLOAD_TOKENS": TOKEN, "STORAGE_PART_SIZE": args.part_size,
            "STORAGE_UPLOAD_CONCURRENCY": args.concurrency, **s3_env(wire.endpoint)}))
        target = urlsplit(server.url(f"/{BUCKET}/{KEY}"))
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=600)
        started = time.monotonic()
        connection.request("PUT", target.path, body=body(size, base), headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Length": str(size),
            "x-amz-checksum-sha256": base64.b64encode(digest.digest()).decode()})
        response = connection.getresponse()
        answer = response.read()
        seconds = time.monotonic() - started
        connection.close()
        peak = server.peak_rss_bytes()
        parts = sum(1 for seen in wire.requests if seen.method == "PUT" and "partNumber=" in seen.target)
        read_back = hashlib.sha256()
        if response.status == 201:
            for chunk in client.get_object(Bucket=BUCKET, Key=KEY)["Body"].iter_chunks(MIB):
                read_back.update(chunk)
        else:
            print("\n".join(server.log_lines[-10:]), file=sys.stderr)
    checks = {"201 Created": response.status == 201, "same sha256 read back": read_back.digest() == digest.digest(),
              f"peak RSS under {RSS_LIMIT // MIB} MiB": peak < RSS_LIMIT, "parts under 10,000": 0 < parts < 10_000}
    lines = [f"# upload benchmark ({machine()})", "",
             f"- body: {size / MIB:.0f} MiB made on the fly, part size {args.part_size}, "
             f"concurrency {args.concurrency}",
             f"- answer: {response.status} {answer[:200]!r}",
             f"- time: {seconds:.1f} s, {size / MIB / seconds:.0f} MiB/s (server and moto on one machine)",
             f"- parts on the wire: {parts}",
             f"- server peak RSS (VmHWM): {peak / MIB:.0f} MiB",
             *(f"- {name}: {'ok' if passed else 'FAILED'}" for name, passed in checks.items())]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

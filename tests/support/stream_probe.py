"""Stream one object through a provider in a process of its own and report what memory it took.

    python -m tests.support.stream_probe <bucket> <key>     (STORAGE_* and DATA_PATH from the environment)

Prints one JSON line: bytes read, their SHA-256, the chunk count, the largest chunk, the resident
set size just before the GET and its peak during the stream. A process of its own, because the
test process also hosts moto, whose copy of the object would hide what the provider itself holds;
and resident memory counts obstore's Rust buffers too, which tracemalloc can't see.
"""

import asyncio
import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path

from proxy.runtime.cli import exit_without_teardown
from proxy.storage.config import StorageConfig
from proxy.storage.provider import ObjectRef, ObjectStream
from proxy.storage.registry import build_provider


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); without it, the peak only overstates."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


async def _stream(bucket: str, key: str) -> dict[str, int | str]:
    provider = build_provider(StorageConfig.from_env(os.environ, Path(os.environ["DATA_PATH"])))
    await provider.head(ObjectRef(bucket, key))  # connections and imports settle before the baseline
    _reset_peak()
    baseline = _status_kib("VmRSS")
    stream = await provider.get(ObjectRef(bucket, key))
    assert isinstance(stream, ObjectStream)
    digest, count, chunks, largest = hashlib.sha256(), 0, 0, 0
    async for chunk in stream.chunks:
        digest.update(chunk)
        count += len(chunk)
        chunks += 1
        largest = max(largest, len(chunk))
    peak = _status_kib("VmHWM")
    await provider.close()
    return {"bytes": count, "sha256": digest.hexdigest(), "chunks": chunks, "largest_chunk": largest,
            "baseline_rss": baseline * 1024, "peak_rss": peak * 1024}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_stream(sys.argv[1], sys.argv[2]))), flush=True)
    exit_without_teardown(0)  # obstore's runtime can abort the interpreter's teardown (see there)

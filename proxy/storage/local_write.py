"""Writes to local disk: a part file beside the target, fsync'd, renamed over it at the end.

Readers (and the in-place serving of originals) see the old file or the whole new one, never a part:
the part file has a hidden name of its own, and the rename is atomic within one folder. The folder is
fsync'd after the rename, so a crash right after the 201 can't lose the new name.
"""

import asyncio
import os
import secrets
from collections.abc import AsyncIterable
from pathlib import Path
from typing import BinaryIO

from proxy.storage.provider import quote_etag
from proxy.storage.writes import WriteResult

# Part files start with this and end with PART_SUFFIX; nothing is served under such a name by accident
# since it is a dot-file, and an operator can find (and remove) those a crash left behind.
PART_PREFIX = "."
PART_SUFFIX = ".upload"


def part_path(target: Path) -> Path:
    """A part file beside `target`, named so that two writes of the same key never share one."""
    return target.with_name(f"{PART_PREFIX}{target.name}.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}")


async def write_file(target: Path, chunks: AsyncIterable[bytes]) -> WriteResult:
    """Stream `chunks` into a part file and rename it to `target` once they end without error."""
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    part = part_path(target)
    file = await asyncio.to_thread(open, part, "xb")
    try:
        async for chunk in chunks:
            await asyncio.to_thread(file.write, chunk)
        await asyncio.to_thread(_flush_and_close, file)
        await asyncio.to_thread(os.replace, part, target)
        await asyncio.to_thread(_sync_folder, target.parent)
    except BaseException:
        file.close()
        part.unlink(missing_ok=True)
        raise
    stat = await asyncio.to_thread(target.stat)
    # The same ETag as a read of the file gives (proxy.storage.local.info_from_stat).
    return WriteResult(quote_etag(f"{stat.st_mtime_ns:x}-{stat.st_size:x}"), stat.st_size)


def _flush_and_close(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())  # the bytes are on disk before the name points at them
    file.close()


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

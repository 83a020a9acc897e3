"""Local disk: `DATA_PATH/storage/<bucket>/<key>`, read where the files lie (never copied to a cache).

Every path is resolved and checked to stay inside its bucket folder, after symlinks, so neither
`..`, an absolute key nor a symlink pointing out can reach another file.
"""

import asyncio
import errno
import mimetypes
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from proxy.storage.errors import InvalidObjectPath, ObjectNotFound
from proxy.storage.local_write import write_file
from proxy.storage.provider import ByteSpan, NotModified, ObjectInfo, ObjectRef, ObjectStream, absolute_span
from proxy.storage.writes import WritePlan, WriteResult

READ_CHUNK = 256 * 1024


class LocalProvider:
    """Buckets are the folders directly under `root`."""

    provider_id = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def open_in_place(self, ref: ObjectRef) -> tuple[BinaryIO, ObjectInfo]:
        """Open the object's file and describe it. Blocks: run it in an executor."""
        path = self._resolve(ref)
        try:
            file = open(path, "rb")  # noqa: SIM115 - ownership passes to the caller
        except OSError as error:
            raise _not_found_or(error) from None
        stat = os.fstat(file.fileno())
        return file, info_from_stat(path, stat)

    def stat_in_place(self, ref: ObjectRef) -> ObjectInfo:
        """Describe the object's file without opening it. Blocks: run it in an executor."""
        path = self._resolve(ref)
        try:
            stat = path.stat()
        except OSError as error:
            raise _not_found_or(error) from None
        if not path.is_file():
            raise ObjectNotFound()
        return info_from_stat(path, stat)

    async def head(self, ref: ObjectRef) -> ObjectInfo:
        """Describe the object's file."""
        file, info = await asyncio.to_thread(self.open_in_place, ref)
        file.close()
        return info

    async def get(
        self, ref: ObjectRef, span: ByteSpan | None = None, if_none_match: str | None = None
    ) -> ObjectStream | NotModified:
        """Stream the file, or part of it, in chunks read off the event loop."""
        file, info = await asyncio.to_thread(self.open_in_place, ref)
        if if_none_match is not None and if_none_match == info.etag:
            file.close()
            return NotModified(info.etag)
        start, end = absolute_span(span, info.size)
        return ObjectStream(info, start, end, _read_chunks(file, start, end))

    async def put(self, ref: ObjectRef, chunks: AsyncIterable[bytes], content_type: str) -> None:
        """Write to a temporary file beside the target, then rename: readers never see half a file."""
        path = self._resolve(ref)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.upload")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        file = await asyncio.to_thread(open, temporary, "wb")
        try:
            async for chunk in chunks:
                await asyncio.to_thread(file.write, chunk)
            await asyncio.to_thread(file.close)
            await asyncio.to_thread(os.replace, temporary, path)
        except BaseException:
            file.close()
            temporary.unlink(missing_ok=True)
            raise

    async def write(self, ref: ObjectRef, chunks: AsyncIterable[bytes], plan: WritePlan) -> WriteResult:
        """A part file beside the target, renamed over it at the end (local_write); the bucket must exist."""
        return await write_file(self._resolve(ref), chunks)

    async def check(self) -> None:
        """Ready when the storage root exists."""
        if not await asyncio.to_thread(self.root.is_dir):
            raise ObjectNotFound(f"storage root {self.root} does not exist")

    async def close(self) -> None:
        """Nothing to release."""

    def bucket_dir(self, bucket: str) -> Path:
        """The folder that holds `bucket`'s objects (already checked to be one folder name)."""
        return self.root / bucket

    def _resolve(self, ref: ObjectRef) -> Path:
        if ref.bucket in ("", ".", "..") or "/" in ref.bucket or "\0" in ref.bucket + ref.key:
            raise InvalidObjectPath("bucket must be one folder name")
        bucket_dir = self.bucket_dir(ref.bucket)
        if Path(ref.key).is_absolute() or any(part in ("", ".", "..") for part in ref.key.split("/")):
            raise InvalidObjectPath("object key may not be absolute or contain empty, '.' or '..' segments")
        real_bucket = os.path.realpath(bucket_dir)
        real_path = os.path.realpath(bucket_dir / ref.key)
        # A symlink inside the bucket that points out of it resolves elsewhere: treat it as absent.
        # (The bucket folder itself may be a symlink an operator made, e.g. onto another disk.)
        if not real_path.startswith(real_bucket + os.sep) or not os.path.isdir(real_bucket):
            raise ObjectNotFound()
        return Path(real_path)


class FolderProvider(LocalProvider):
    """One folder served as one bucket: an `fs` entry of the links file, whose name is the bucket.

    The same containment checks apply, with the folder in place of the bucket's: nothing outside it
    is reachable, through `..` or a symlink.
    """

    provider_id = "fs"

    def __init__(self, folder: Path, storage_id: str) -> None:
        super().__init__(folder)
        self.storage_id = storage_id

    def bucket_dir(self, bucket: str) -> Path:
        """The folder itself, for its own storage id; no other bucket exists here."""
        if bucket != self.storage_id:
            raise ObjectNotFound()
        return self.root


def _not_found_or(error: OSError) -> Exception:
    """ObjectNotFound for a name no file can have here; any other OSError (EIO, ...) unchanged.

    A key segment longer than NAME_MAX (ENAMETOOLONG) or a symlink loop (ELOOP) names no object:
    that is a 404, not the 500 an escaped OSError would give.
    """
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return ObjectNotFound()
    if error.errno in (errno.ENAMETOOLONG, errno.ELOOP):
        return ObjectNotFound()
    return error


def info_from_stat(path: Path, stat: os.stat_result) -> ObjectInfo:
    """ObjectInfo for a local file: the ETag is built from mtime and size, as nginx and aiohttp do."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    return ObjectInfo(stat.st_size, etag, stat.st_mtime, content_type)


async def _read_chunks(file: BinaryIO, start: int, end: int) -> AsyncIterator[bytes]:
    try:
        position = start
        while position < end:
            chunk = await asyncio.to_thread(os.pread, file.fileno(), min(READ_CHUNK, end - position), position)
            if not chunk:
                break
            position += len(chunk)
            yield chunk
    finally:
        file.close()

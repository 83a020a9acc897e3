"""One object migrated: skipped when the destination already holds its bytes, else copied, hashed on the way.

How a skip is decided, cheapest proof first (docs/migrate.md):
1. journaled for this source version, and the destination's HEAD shows the size and the ETag the
   journal recorded: nothing has touched it since it was written or read back (no HEAD, and no
   journal look-up, where the destination bucket held nothing under the prefix when the run began);
2. else, at the destination with the same size: read back and hashed; the same sha256 as the source's
   (the journal's, for an unchanged source) is a skip, recorded in the journal; other bytes are copied;
3. else (absent, or another size): copied.
A copy streams the source through sha256 into the destination's write (one request or parts, as
proxy.storage.writes plans it), then journals the sha256 and the new ETag.
"""

import contextlib
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from tqdm import tqdm

from previews.errors import PublicError
from proxy.commands.migrate.journal import Journal
from proxy.commands.migrate.listing import SourceObject
from proxy.commands.migrate.outcomes import ObjectResult, Outcome
from proxy.commands.migrate.progress import Progress
from proxy.commands.migrate.retries import with_retries
from proxy.settings.uploads import UploadConfig
from proxy.storage.checksums import ExpectedDigests, verified
from proxy.storage.errors import ObjectNotFound
from proxy.storage.provider import ObjectInfo, ObjectRef, ObjectStream, StorageProvider
from proxy.storage.writes import WritePlan


@dataclass(frozen=True)
class Digest:
    """An object's bytes hashed as they were read, and the version (size, ETag, mtime) the read saw."""

    sha256: str
    info: ObjectInfo


class Migrator:
    """Copies, checks or verifies objects from `source` into `destination`, journaling what it proves."""

    def __init__(self, source: StorageProvider, destination: StorageProvider, journal: Journal,
                 uploads: UploadConfig, retries: int, progress: Progress,
                 empty_at_start: frozenset[str] = frozenset()) -> None:
        self._source = source
        self._destination = destination
        self._journal = journal
        self._uploads = uploads
        self._retries = retries
        self._progress = progress
        # Destination buckets that held nothing under the prefix when the run started: what is not
        # copied by this run can't be there, so their objects are copied without a HEAD each.
        self._empty_at_start = empty_at_start

    async def migrate(self, item: SourceObject, dest_bucket: str, dry_run: bool = False) -> ObjectResult:
        """Skip `item` if the destination holds its bytes, else copy it (or, in a dry run, say it would)."""
        return await self._guarded(item, dest_bucket, lambda tally: self._migrate(item, dest_bucket, dry_run, tally))

    async def verify(self, item: SourceObject, dest_bucket: str) -> ObjectResult:
        """Read the destination's object and the source back and compare their sha256; copy nothing."""
        return await self._guarded(item, dest_bucket, lambda tally: self._verify(item, dest_bucket))

    async def _guarded(self, item: SourceObject, dest_bucket: str,
                       work: Callable[["_Tally"], Awaitable[tuple[Outcome, str]]]) -> ObjectResult:
        tally = _Tally(self._progress)
        try:
            outcome, why = await work(tally)
        except Exception as error:
            outcome, why = Outcome.FAILED, _reason(error)
        result = ObjectResult(item, dest_bucket, outcome, why, tally.bytes if outcome is Outcome.COPIED else 0)
        self._progress.finished(outcome, item.size, tally.bytes)
        return result

    async def _migrate(self, item: SourceObject, dest_bucket: str, dry_run: bool,
                       tally: "_Tally") -> tuple[Outcome, str]:
        target = ObjectRef(dest_bucket, item.key)
        if dest_bucket in self._empty_at_start:
            found = None
        else:
            found = await with_retries(lambda: self._head(target), self._retries, f"HEAD of {_name(target)}")
        row = await self._journal.find(item, dest_bucket) if found is not None else None
        known = row if row is not None and row.describes(item) else None
        if found is None:
            why = "not at the destination"
        elif found.size != item.size:
            why = f"the destination holds {found.size} bytes, not {item.size}"
        elif known is not None and found.etag == known.dest_etag:
            return Outcome.SKIPPED, "journaled; the destination's size and ETag are the ones recorded"
        else:
            source_sha = known.sha256 if known is not None else (await self._hash(self._source, _source(item))).sha256
            there = await self._hash(self._destination, target)
            if there.sha256 == source_sha:
                if not dry_run:
                    await self._journal.record(item, dest_bucket, source_sha, there.info.etag)
                return Outcome.SKIPPED, "the destination holds the same bytes (read back, same sha256)"
            why = "the destination holds other bytes of the same size (read back, another sha256)"
        if dry_run:
            return Outcome.WOULD_COPY, why
        await self._copy(item, target, tally)
        return Outcome.COPIED, why

    async def _verify(self, item: SourceObject, dest_bucket: str) -> tuple[Outcome, str]:
        target = ObjectRef(dest_bucket, item.key)
        try:
            there = await self._hash(self._destination, target)
        except ObjectNotFound:
            return Outcome.MISSING, "not at the destination"
        if there.info.size != item.size:
            return Outcome.MISMATCH, f"the destination holds {there.info.size} bytes, not {item.size}"
        source = await self._hash(self._source, _source(item))
        if there.sha256 != source.sha256:
            return Outcome.MISMATCH, "the destination holds other bytes (another sha256)"
        await self._journal.record(_version(item, source.info), dest_bucket, source.sha256, there.info.etag)
        return Outcome.VERIFIED, "read back: the same sha256 as the source"

    async def _copy(self, item: SourceObject, target: ObjectRef, tally: "_Tally") -> None:
        large = item.size > self._uploads.multipart_threshold
        with self._progress.file_bar(_name(target), item.size) if large else contextlib.nullcontext() as bar:
            async def attempt() -> tuple[SourceObject, str, str]:
                stream = await self._source.get(_source(item))
                assert isinstance(stream, ObjectStream)  # no If-None-Match was sent
                digest = hashlib.sha256()
                tally.restart(bar)
                # The body must be as long as the source said: one cut short or grown raises before it
                # ends, so the write is aborted instead of completing with other bytes.
                body = verified(tally.count(stream.chunks, digest, bar), ExpectedDigests(), stream.info.size,
                                stream.info.size)
                plan = WritePlan(stream.info.content_type, stream.info.size, self._uploads.multipart_threshold,
                                 self._uploads.part_size, self._uploads.concurrency)
                try:
                    result = await self._destination.write(target, body, plan)
                except ObjectNotFound:
                    raise ObjectNotFound(f"the destination answered 'not found' to a write: does bucket "
                                         f"{target.bucket!r} exist?") from None
                return _version(item, stream.info), digest.hexdigest(), result.etag

            version, sha256, etag = await with_retries(attempt, self._retries, f"copy of {_name(target)}")
        await self._journal.record(version, target.bucket, sha256, etag)

    async def _head(self, ref: ObjectRef) -> ObjectInfo | None:
        try:
            return await self._destination.head(ref)
        except ObjectNotFound:
            return None

    async def _hash(self, provider: StorageProvider, ref: ObjectRef) -> Digest:
        async def attempt() -> Digest:
            stream = await provider.get(ref)
            assert isinstance(stream, ObjectStream)  # no If-None-Match was sent
            digest = hashlib.sha256()
            async for chunk in stream.chunks:
                digest.update(chunk)
            return Digest(digest.hexdigest(), stream.info)

        return await with_retries(attempt, self._retries, f"read of {_name(ref)}")


class _Tally:
    """Bytes sent for one object, reported to the run's progress (and a file's bar) as they go."""

    def __init__(self, progress: Progress) -> None:
        self.bytes = 0
        self._progress = progress

    def restart(self, bar: "tqdm[None] | None") -> None:
        """A new try sends the object from its start: what the last one sent no longer counts as done."""
        if self.bytes:
            self._progress.moved(-self.bytes)
        self.bytes = 0
        if bar is not None:
            bar.reset()

    async def count(self, chunks: AsyncIterable[bytes], digest: "hashlib._Hash",
                    bar: "tqdm[None] | None") -> AsyncIterator[bytes]:
        """Re-yield `chunks`, hashing and counting them."""
        async for chunk in chunks:
            digest.update(chunk)
            self.bytes += len(chunk)
            self._progress.moved(len(chunk))
            if bar is not None:
                bar.update(len(chunk))
            yield chunk


def _source(item: SourceObject) -> ObjectRef:
    return ObjectRef(item.bucket, item.key)


def _version(item: SourceObject, info: ObjectInfo) -> SourceObject:
    """The source version a read saw (the listing may be older), for the journal."""
    return SourceObject(item.bucket, item.key, info.size, info.last_modified, info.etag)


def _name(ref: ObjectRef) -> str:
    return f"{ref.bucket}/{ref.key}"


def _reason(error: Exception) -> str:
    if isinstance(error, PublicError):
        return error.reason
    return " ".join(str(error).split())[:300] or type(error).__name__

"""The source objects of a migration, listed in batches: local disk walked, a cloud bucket listed through obstore.

Local storage is listed as the server reads it: every file a request could be answered with, checked
by the provider's own containment rules (a symlink out of its bucket is not an object), and none of
the part files an upload in progress writes (proxy.storage.local_write).
"""

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import obstore

from proxy.storage.cloud.obstore_calls import ObstoreCalls
from proxy.storage.cloud.obstore_provider import ObstoreProvider
from proxy.storage.errors import InvalidObjectPath, ObjectNotFound
from proxy.storage.local import LocalProvider
from proxy.storage.local_write import PART_PREFIX, PART_SUFFIX
from proxy.storage.provider import ObjectRef, StorageProvider, quote_etag

BATCH = 500  # objects per batch: one obstore list page or one trip to the walking thread
# Pages read to learn whether a destination holds anything under the prefix before a run gives up
# and asks object by object: obstore lists whole folders, so pages of other keys may come first.
EMPTINESS_PAGES = 4


@dataclass(frozen=True)
class SourceObject:
    """One object to migrate, as the listing described it."""

    bucket: str
    key: str
    size: int
    mtime: float
    etag: str


def local_buckets(provider: LocalProvider) -> list[str]:
    """The bucket folders of local storage (hidden folders are not buckets). Blocks: run it in an executor."""
    root = provider.root
    if not root.is_dir():
        return []
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def list_objects(provider: StorageProvider, bucket: str, prefix: str) -> AsyncIterator[list[SourceObject]]:
    """Batches of `bucket`'s objects whose keys start with `prefix`."""
    if isinstance(provider, LocalProvider):
        return _list_local(provider, bucket, prefix)
    if isinstance(provider, ObstoreProvider):
        return _list_obstore(provider, bucket, prefix)
    raise TypeError(f"can't list a {type(provider).__name__}")


async def _list_local(provider: LocalProvider, bucket: str, prefix: str) -> AsyncIterator[list[SourceObject]]:
    batches = _walk(provider, bucket, prefix)
    while (batch := await asyncio.to_thread(next, batches, None)) is not None:
        yield batch


def _walk(provider: LocalProvider, bucket: str, prefix: str) -> Iterator[list[SourceObject]]:
    bucket_dir = provider.bucket_dir(bucket)
    # Walk from the deepest folder the prefix names, not the whole bucket.
    start = bucket_dir / prefix.rpartition("/")[0] if "/" in prefix else bucket_dir
    batch: list[SourceObject] = []
    for folder, folders, files in os.walk(start):
        folders.sort()
        for name in sorted(files):
            if name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX):
                continue
            key = Path(folder, name).relative_to(bucket_dir).as_posix()
            if not key.startswith(prefix):
                continue
            try:
                info = provider.stat_in_place(ObjectRef(bucket, key))
            except (ObjectNotFound, InvalidObjectPath):
                continue  # a symlink out of the bucket, or a name no request could reach
            batch.append(SourceObject(bucket, key, info.size, info.last_modified, info.etag))
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


async def _list_obstore(provider: ObstoreProvider, bucket: str, prefix: str) -> AsyncIterator[list[SourceObject]]:
    config = provider.config
    calls = ObstoreCalls(provider.provider_id, config.read_timeout, config.secrets())
    # obstore matches prefixes by whole path segments: list the folder part, then filter on the text.
    folder = prefix.rpartition("/")[0] or None
    with calls.translated(ObjectRef(bucket, prefix), "list"):
        async for page in obstore.list(provider.store(bucket), folder, chunk_size=BATCH):
            yield [SourceObject(bucket, meta["path"], int(meta["size"]), meta["last_modified"].timestamp(),
                                quote_etag(meta["e_tag"] or f"{meta['size']:x}"))
                   for meta in page if meta["path"].startswith(prefix)]


async def holds_nothing(provider: StorageProvider, bucket: str, prefix: str) -> bool:
    """Whether `bucket` has no object whose key starts with `prefix`, known from a few listing pages.

    False when it has one, and when the pages read don't tell (or the provider can't be listed): the
    caller then asks about each object as before. True lets a first migration into a fresh bucket copy
    without a HEAD per object, which would only answer "not found" each time.
    """
    if not isinstance(provider, (LocalProvider, ObstoreProvider)):
        return False
    pages = 0
    try:
        async for batch in list_objects(provider, bucket, prefix):
            pages += 1
            if batch or pages >= EMPTINESS_PAGES:
                return False
    except ObjectNotFound:
        return False  # no such bucket: each object's write says so, as it did before
    return True

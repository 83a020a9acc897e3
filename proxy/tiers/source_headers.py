"""The header facts of originals (`/info`): read once per source version, then kept in memory.

A version is the original's ETag, so a changed original is read again. The header comes from the file
on local disk or in the storage tier when there is one, else by byte ranges from the provider (as a
video frame's conversion reads it): what Pillow or PyAV read of the header is all that is fetched.
"""

import asyncio
import posixpath

from cachetools import LRUCache

from previews.imaging.header_info import HeaderInfo, read_header_info
from proxy.storage.provider import ObjectInfo, ObjectRef
from proxy.tiers.keys import source_header_key
from proxy.tiers.originals import Originals

HEADER_ENTRIES = 10_000


class SourceHeaders:
    """Reads and keeps the header facts of originals, bounded by count (least recently used go)."""

    def __init__(self, max_pixels: int, timeout: float, entries: int = HEADER_ENTRIES) -> None:
        self._max_pixels = max_pixels
        self._timeout = timeout
        self._known: LRUCache[str, HeaderInfo] = LRUCache(maxsize=entries)

    async def read(self, originals: Originals, ref: ObjectRef) -> tuple[ObjectInfo, HeaderInfo]:
        """The original's description and its header facts, read now unless known for this version.

        Locating the original (a stat, the storage tier's row, or one provider HEAD) gives its version;
        its body is not fetched.
        """
        located = await originals.locate(ref, want_body=False)
        try:
            info = located.info
            key = source_header_key(originals.cache_key(ref), info.etag)
            known = self._known.get(key)
            if known is not None:
                return info, known
            if located.file is None:
                located.file = originals.open_ranges(ref, info, self._timeout)
            header = await asyncio.to_thread(read_header_info, located.file, _video_format(info, ref),
                                             self._max_pixels)
        finally:
            located.close()
        self._known[key] = header
        return info, header

def _video_format(info: ObjectInfo, ref: ObjectRef) -> str:
    """A video's format name: its media subtype (`video/mp4`), else its key's extension."""
    kind, _, subtype = info.content_type.partition("/")
    if kind == "video" and subtype:
        return subtype.split(";")[0].strip().lower()
    return posixpath.splitext(ref.key)[1].lstrip(".").lower() or "video"

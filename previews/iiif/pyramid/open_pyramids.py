"""Pyramids kept open in a process, their index read: a viewer's ready tile is then one read at a known
offset (os.pread, a page-cache copy of some tens of kilobytes), small enough for the event loop, with
no trip to a thread.

A pyramid is held for RECHECK_SECONDS at most: then the next tile goes the long way again (the
converter tier's lookup, which also keeps the entry from idling out), and reopens it. The holder drops
everything on a purge. Keyed by the pyramid's version (its ETag: operation, source and the source's
version), so a changed original never reads an old pyramid.
"""

import os
import time
from collections import OrderedDict
from dataclasses import dataclass

from previews.iiif.pyramid.reading import PyramidFile
from previews.iiif.region import Box

ENTRIES = 32  # open files at most: a viewer works on a few images at a time
RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class _Held:
    pyramid: PyramidFile
    stored_at: float | None  # when the tier's entry was written (for Age)
    until: float  # time.monotonic() after which the tier is asked again


class OpenPyramids:
    """The pyramids a process reads ready tiles from in place, least recently used dropped first."""

    def __init__(self, entries: int = ENTRIES, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._entries = entries
        self._recheck_seconds = recheck_seconds
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._opening: set[str] = set()

    def ready_tile(self, version: str, box: Box, size: tuple[int, int],
                   quality: int) -> tuple[bytes, float | None] | None:
        """The ready tile of `box` at `size` and `quality` from the pyramid of `version`, and when its entry
        was stored; None when the pyramid is not held (or no longer trusted) or has no such tile."""
        held = self._held.get(version)
        if held is None:
            return None
        if time.monotonic() >= held.until:
            self._drop(version)
            return None
        span = held.pyramid.ready_span(box, size, quality)
        if span is None:
            return None
        try:
            data = os.pread(held.pyramid.fileno(), span[1], span[0])
        except OSError:
            data = b""
        if len(data) != span[1]:
            self._drop(version)  # unreadable: the long way, which reopens it
            return None
        self._held.move_to_end(version)
        return data, held.stored_at

    def wanted(self, version: str) -> bool:
        """Whether `version` is neither held nor being opened; if so it is marked as being opened, and the
        caller then calls `keep` or `abandon`."""
        if version in self._held or version in self._opening:
            return False
        self._opening.add(version)
        return True

    def keep(self, version: str, pyramid: PyramidFile, stored_at: float | None) -> None:
        """Hold `pyramid` (now owned here) as `version`."""
        self._opening.discard(version)
        self._drop(version)
        self._held[version] = _Held(pyramid, stored_at, time.monotonic() + self._recheck_seconds)
        while len(self._held) > self._entries:
            self._drop(next(iter(self._held)))

    def abandon(self, version: str) -> None:
        """`version` was not opened after all."""
        self._opening.discard(version)

    def clear(self) -> None:
        """Close and forget every pyramid (a purge may have removed any of them)."""
        for version in list(self._held):
            self._drop(version)

    def _drop(self, version: str) -> None:
        held = self._held.pop(version, None)
        if held is not None:
            held.pyramid.close()

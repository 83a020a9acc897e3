"""Decoded images kept for the next render of the same original at the same scale.

A page asks for several sizes of one photo at once (a srcset, a gallery's thumbnail beside its
lightbox). JPEG's shrink-on-load decodes the 50 px and the 300 px preview of a 16 MP photo at the same
1/8 scale (for a progressive file, from its DC scans: ~100 ms of CPU and ~100 MiB of coefficients for
that photo, while the pixels it leaves are 1 MiB), and a progressive file costs its whole entropy decode
at any larger scale (~300 ms). A process that turns this on (`keep_decoded_images`: every serving
process for its own renders, the workers' small ones and the render host's large ones) keeps the decodes
most worth keeping (DecodedImages), bounded by bytes; the next render of the same file at the same decode
size and mode starts from a copy. A server with a
render host also decodes a progressive JPEG at one scale for every size between 1/8 and about 1,024 px
(SHARED_DECODE_PIXELS, previews.imaging.decode.shared_divisor), which costs it nothing, so its 600 px
and 1,024 px previews share one decode.

What names a decode: the file's device, inode, size, modification and change times (a replaced or
rewritten original is never matched; local storage and the tiers replace files by rename), where the
image starts in it, and the size and mode the decoder was set to. A source that is not a regular file
(a spooled stream) is not kept.

The steps after the decode get a copy and never the kept image: Pillow keeps what one save was given on
the image itself (its encoderinfo), which the next render's save would inherit.

Pillow is not imported here: the render host imports it with its first job.
"""

import io
import os
import stat
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from previews.limits.pixel_memory import image_bytes

if TYPE_CHECKING:
    from PIL import Image

# (device, inode, size, mtime ns, ctime ns, start in the file)
SourceIdentity = tuple[int, int, int, int, int, int]
# The source's identity, then the decode's width, height and mode.
DecodeKey = tuple[SourceIdentity, int, int, str]
# What a progressive JPEG is decoded to at least, where decodes are kept (RenderConfig.shared_decode_pixels):
# a 1,024 px preview of a square photo, 4 MiB of pixels, so a page's sizes up to that share one decode.
SHARED_DECODE_PIXELS = 1024 * 1024
# One decode may take at most this share of the bound: a few large ones would only evict each other.
LARGEST_SHARE = 4


@dataclass(eq=False)
class _Kept:
    image: "Image.Image"
    size: int  # bytes of pixels
    worth: float  # the decode's CPU seconds per byte kept


class DecodedImages:
    """The decodes most worth keeping, up to `limit` bytes of pixels. Safe from any thread.

    A decode is worth what it saves per byte it holds: its CPU time over its size. A 16 MP progressive
    photo's (290 ms for 4 MiB) outlasts a dozen baseline ones (5-15 ms for the same bytes) kept after it,
    which one-off 1,024 px previews leave behind. This is GreedyDual-Size: an entry's credit is the
    store's floor plus its worth, set when it is kept and each time it is used; the lowest credit goes
    first (among equals, the least recently used), and the floor rises to it, so what is not used falls
    behind what is.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.hits = 0
        self._floor = 0.0
        self._uses = 0  # a clock of keeps and uses: among equal credits, the oldest goes first
        self._images: dict[DecodeKey, _Kept] = {}
        self._credit: dict[DecodeKey, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def copy_of(self, key: DecodeKey) -> "Image.Image | None":
        """A copy of the decode kept under `key`, or None."""
        with self._lock:
            kept = self._images.get(key)
            if kept is None:
                return None
            self._credit[key] = self._credit_for(kept)
            self.hits += 1
        return kept.image.copy()  # outside the lock: a kept image is never changed, only dropped

    def keep(self, key: DecodeKey, image: "Image.Image", cost: float) -> None:
        """Keep a copy of `image`, decoded in `cost` seconds of CPU, unless it is over a share of the bound."""
        size = image_bytes(image.size, image.mode)
        if size > self.limit // LARGEST_SHARE:
            return
        kept = _Kept(image.copy(), size, cost / max(1, size))
        with self._lock:
            self._drop(key)
            self._images[key] = kept
            self._credit[key] = self._credit_for(kept)
            self.held += size
            while self.held > self.limit:
                lowest = min(self._credit, key=self._credit.__getitem__)
                self._floor = self._credit[lowest][0]
                self._drop(lowest)

    def _credit_for(self, kept: _Kept) -> tuple[float, int]:
        self._uses += 1
        return self._floor + kept.worth, self._uses

    def _drop(self, key: DecodeKey) -> None:
        old = self._images.pop(key, None)
        if old is not None:
            del self._credit[key]
            self.held -= old.size


_kept: DecodedImages | None = None


def keep_decoded_images(limit: int) -> DecodedImages | None:
    """Keep up to `limit` bytes of decodes in this process from now on (0: none). Returns the store."""
    global _kept
    _kept = DecodedImages(limit) if limit > 0 else None
    return _kept


def kept_decodes() -> DecodedImages | None:
    """This process's kept decodes, or None when it keeps none (the default)."""
    return _kept


def source_identity(file: BinaryIO) -> SourceIdentity | None:
    """What names the image that starts at `file`'s position, or None if it is not a regular file."""
    try:
        status = os.fstat(file.fileno())
        start = file.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns, start)

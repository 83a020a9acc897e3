"""Decoded images kept for the next render of the same original at the same scale.

A page asks for several sizes of one photo at once (a srcset, a gallery's thumbnail beside its
lightbox). JPEG's shrink-on-load decodes the 50 px and the 300 px preview of a 16 MP photo at the same
1/8 scale, and a progressive file costs its whole entropy decode either way: ~300 ms of CPU and ~100
MiB for that photo, while the pixels it leaves are 1 MiB. A process that turns this on
(`keep_decoded_images`: the render host, which runs the large renders) keeps its last decodes, bounded
by bytes; the next render of the same file at the same decode size and mode starts from a copy.

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
from collections import OrderedDict
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from PIL import Image

# (device, inode, size, mtime ns, ctime ns, start in the file)
SourceIdentity = tuple[int, int, int, int, int, int]
# The source's identity, then the decode's width, height and mode.
DecodeKey = tuple[SourceIdentity, int, int, str]
# One decode may take at most this share of the bound: a few large ones would only evict each other.
LARGEST_SHARE = 4


class DecodedImages:
    """The last decodes, least recently used out first, up to `limit` bytes of pixels. Safe from any thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.hits = 0
        self._images: OrderedDict[DecodeKey, Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def copy_of(self, key: DecodeKey) -> "Image.Image | None":
        """A copy of the decode kept under `key`, or None."""
        with self._lock:
            image = self._images.get(key)
            if image is None:
                return None
            self._images.move_to_end(key)
            self.hits += 1
        return image.copy()  # outside the lock: a kept image is never changed, only dropped

    def keep(self, key: DecodeKey, image: "Image.Image") -> None:
        """Keep a copy of `image` (just decoded) under `key`, unless it is too large for the bound."""
        size = _pixel_bytes(image)
        if size > self.limit // LARGEST_SHARE:
            return
        kept = image.copy()
        with self._lock:
            old = self._images.pop(key, None)
            if old is not None:
                self.held -= _pixel_bytes(old)
            self._images[key] = kept
            self.held += size
            while self.held > self.limit:
                _, dropped = self._images.popitem(last=False)
                self.held -= _pixel_bytes(dropped)


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


def _pixel_bytes(image: "Image.Image") -> int:
    # Pillow stores a pixel of the one-band 8-bit modes in a byte and every other mode in four (RGB too).
    return image.width * image.height * (1 if image.mode in ("1", "L", "P") else 4)

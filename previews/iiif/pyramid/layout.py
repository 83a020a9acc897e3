"""The pyramid file: a header line; a line giving where the JSON line of the levels starts; each level's
pixels, uncompressed, in blocks of 512 x 512 (row by row of blocks, each block's rows together); the
ready tiles: each block of each level encoded as the JPEG a viewer asks for it; the JSON line last (it
holds where each ready tile lies, known once they are made, so the file is written in one pass).

A viewer's tile at scale factor f is one block of level f: its ready tile is one seek and one read of
some tens of kilobytes, with no codec at all; any other request reads the raw blocks it covers.
Version 1 files (the JSON line second, no ready tiles) are read too.
"""

from dataclasses import dataclass, field
from typing import BinaryIO

MAGIC = b"preview-proxy tile pyramid 2\n"
MAGIC_PREFIX = b"preview-proxy tile pyramid "  # any version: 1 lays the raw blocks out the same way
MAGIC_1 = b"preview-proxy tile pyramid 1\n"
INDEX_DIGITS = 19  # the width of the second line: the JSON line's offset from the file's start
MEDIA_TYPE = "application/x-preview-proxy-pyramid"
BANDS = {"L": 1, "RGB": 3, "RGBA": 4}  # the modes a pyramid holds, and their bytes a pixel
READY_MODES = frozenset({"L", "RGB"})  # the modes a JPEG holds as they are (RGBA is flattened first)
READY_FORMAT = "jpeg"  # the renderer's name of the ready tiles' format
BLOCK = 512  # the side of a block: info.json's tile size
Edges = tuple[int, int, int, int]  # left, top, right, bottom
Span = tuple[int, int]  # an offset after the header, and a length


@dataclass(frozen=True)
class Level:
    """One level: its scale factor, size, where its blocks start after the header, and where each
    block's ready tile lies (in the blocks' order; empty when none were made)."""

    factor: int
    width: int
    height: int
    offset: int
    ready: tuple[Span, ...] = field(default=())


def blocks(width: int, height: int) -> list[Edges]:
    """The blocks of a level as (left, top, right, bottom), in the file's order: row by row of blocks."""
    return [(left, top, min(left + BLOCK, width), min(top + BLOCK, height))
            for top in range(0, height, BLOCK) for left in range(0, width, BLOCK)]


def is_pyramid(file: BinaryIO) -> bool:
    """Whether `file` holds a pyramid (read from its start; the position is put back to 0)."""
    file.seek(0)
    head = file.read(len(MAGIC_PREFIX))
    file.seek(0)
    return head == MAGIC_PREFIX

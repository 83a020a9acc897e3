"""The pyramid file: a header line, a JSON line of the levels, then each level's pixels, uncompressed, in
blocks of 512 x 512 (row by row of blocks, each block's rows together). A viewer's tile at scale factor f
is one block of level f: one seek and one read of under a megabyte, with no decoder at all.
"""

from dataclasses import dataclass
from typing import BinaryIO

MAGIC = b"preview-proxy tile pyramid 1\n"
MEDIA_TYPE = "application/x-preview-proxy-pyramid"
BANDS = {"L": 1, "RGB": 3, "RGBA": 4}  # the modes a pyramid holds, and their bytes a pixel
BLOCK = 512  # the side of a block: info.json's tile size
Edges = tuple[int, int, int, int]  # left, top, right, bottom


@dataclass(frozen=True)
class Level:
    """One level: its scale factor, size and where its blocks start after the header."""

    factor: int
    width: int
    height: int
    offset: int


def blocks(width: int, height: int) -> list[Edges]:
    """The blocks of a level as (left, top, right, bottom), in the file's order: row by row of blocks."""
    return [(left, top, min(left + BLOCK, width), min(top + BLOCK, height))
            for top in range(0, height, BLOCK) for left in range(0, width, BLOCK)]


def is_pyramid(file: BinaryIO) -> bool:
    """Whether `file` holds a pyramid (read from its start; the position is put back to 0)."""
    file.seek(0)
    head = file.read(len(MAGIC))
    file.seek(0)
    return head == MAGIC

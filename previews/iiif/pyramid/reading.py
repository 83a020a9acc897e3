"""Reading a region of a pyramid: the blocks it covers in the smallest level that still has its pixels,
cut and resampled to the size asked."""

import json
import math
from typing import BinaryIO

from PIL import Image

from previews.iiif.pyramid.layout import BANDS, BLOCK, MAGIC, Edges, Level, blocks
from previews.iiif.region import Box
from previews.limits.pixel_memory import image_bytes


class PyramidFile:
    """A pyramid opened for reading regions."""

    def __init__(self, file: BinaryIO) -> None:
        file.seek(len(MAGIC))
        described = json.loads(file.readline())
        self._file = file
        self._start = file.tell()
        self.mode: str = described["mode"]
        self.format: str = described["format"]
        self.levels = [Level(**level) for level in described["levels"]]
        self.width, self.height = self.levels[0].width, self.levels[0].height

    def level_for(self, box: Box, size: tuple[int, int]) -> Level:
        """The smallest level that still has at least `size`'s pixels over `box` (so it is only shrunk)."""
        fits = [level for level in self.levels
                if box[2] / level.factor >= size[0] and box[3] / level.factor >= size[1]]
        return fits[-1] if fits else self.levels[0]

    def region(self, box: Box, size: tuple[int, int]) -> Image.Image:
        """The region `box` (full-resolution pixels) at `size`: the blocks it covers in one level, resampled."""
        level = self.level_for(box, size)
        scale = level.width / self.width, level.height / self.height
        left, top = box[0] * scale[0], box[1] * scale[1]
        right, bottom = (box[0] + box[2]) * scale[0], (box[1] + box[3]) * scale[1]
        outer = (math.floor(left), math.floor(top), min(level.width, math.ceil(right)),
                 min(level.height, math.ceil(bottom)))
        cut = self._cut(level, outer)
        inner = (left - outer[0], top - outer[1], right - outer[0], bottom - outer[1])
        if cut.size == size and inner == (0, 0, *cut.size):
            return cut
        return cut.resize(size, Image.Resampling.LANCZOS, box=inner)

    def _cut(self, level: Level, outer: Edges) -> Image.Image:
        """The pixels of `outer` (left, top, right, bottom in the level), from the blocks over it."""
        bands = BANDS[self.mode]
        offset = self._start + level.offset
        placed: Image.Image | None = None
        for block in blocks(level.width, level.height):
            size = (block[2] - block[0], block[3] - block[1])
            overlaps = block[0] < outer[2] and outer[0] < block[2] and block[1] < outer[3] and outer[1] < block[3]
            if overlaps:
                self._file.seek(offset)
                pixels = Image.frombytes(self.mode, size, self._file.read(size[0] * size[1] * bands))
                if block == outer:
                    return pixels  # a viewer's tile: one block, as it is
                if placed is None:
                    placed = Image.new(self.mode, (outer[2] - outer[0], outer[3] - outer[1]))
                placed.paste(pixels, (block[0] - outer[0], block[1] - outer[1]))
            offset += size[0] * size[1] * bands
        assert placed is not None  # a region is never empty (previews.iiif.region)
        return placed

    def read_bytes(self, box: Box, size: tuple[int, int]) -> int:
        """What `region` holds at most: the region's blocks and their cut, and the result."""
        level = self.level_for(box, size)
        width = math.ceil(box[2] * level.width / self.width) + 2 * BLOCK
        height = math.ceil(box[3] * level.height / self.height) + 2 * BLOCK
        return 2 * image_bytes((width, height), "RGBA") + image_bytes(size, "RGBA")

"""Reading a region of a pyramid: the blocks it covers in the smallest level that still has its pixels,
cut and resampled to the size asked."""

import json
import math
from typing import BinaryIO

from PIL import Image

from previews.iiif.pyramid.layout import BANDS, BLOCK, MAGIC_1, Edges, Level, blocks
from previews.iiif.region import Box
from previews.limits.pixel_memory import image_bytes


class PyramidFile:
    """A pyramid opened for reading regions."""

    def __init__(self, file: BinaryIO) -> None:
        file.seek(0)
        if file.readline() == MAGIC_1:
            described = json.loads(file.readline())
            self._start = file.tell()
        else:
            index = int(file.readline())
            self._start = file.tell()
            file.seek(index)
            described = json.loads(file.readline())
        self._file = file
        self.mode: str = described["mode"]
        self.format: str = described["format"]
        self.ready_quality: int | None = described.get("ready_quality")
        self.levels = [Level(**{**level, "ready": tuple(tuple(span) for span in level.get("ready", ()))})
                       for level in described["levels"]]
        self.width, self.height = self.levels[0].width, self.levels[0].height

    def level_for(self, box: Box, size: tuple[int, int]) -> Level:
        """The smallest level that still has at least `size`'s pixels over `box` (so it is only shrunk;
        a level's last column and row, the mean of what the source had left, count whole)."""
        fits = [level for level in self.levels
                if self._pixels(box[0], box[2], self.width, level.factor) >= size[0]
                and self._pixels(box[1], box[3], self.height, level.factor) >= size[1]]
        return fits[-1] if fits else self.levels[0]

    @staticmethod
    def _pixels(start: int, length: int, full: int, factor: int) -> float:
        """How many pixels of a level of `factor` a span of the source covers."""
        return math.ceil(length / factor) if start + length == full else length / factor

    def region(self, box: Box, size: tuple[int, int]) -> Image.Image:
        """The region `box` (full-resolution pixels) at `size`: the blocks it covers in one level, resampled."""
        level, outer, inner = self._place(box, size)
        cut = self._cut(level, outer)
        if _as_it_is(level, outer, inner, size):
            return cut
        return cut.resize(size, Image.Resampling.LANCZOS, box=inner)

    def ready_tile(self, box: Box, size: tuple[int, int], quality: int) -> bytes | None:
        """The ready tile (layout.READY_FORMAT at `quality`) of the region `box` at `size`, when `region`
        would give one block as it is and the making encoded that block at this quality; else None."""
        span = self.ready_span(box, size, quality)
        if span is None:
            return None
        self._file.seek(span[0])
        return self._file.read(span[1])

    def ready_span(self, box: Box, size: tuple[int, int], quality: int) -> tuple[int, int] | None:
        """Where in the file `ready_tile` reads (offset, length), or None when there is no such tile."""
        if quality != self.ready_quality:
            return None
        level, outer, inner = self._place(box, size)
        if not level.ready or not _as_it_is(level, outer, inner, size):
            return None
        try:
            span = level.ready[blocks(level.width, level.height).index(outer)]
        except ValueError:
            return None  # not one block
        return self._start + span[0], span[1]

    def fileno(self) -> int:
        """The open file's descriptor (for reads at an offset, os.pread, that share no file position)."""
        return self._file.fileno()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def _place(self, box: Box, size: tuple[int, int]) -> tuple[Level, Edges, tuple[float, float, float, float]]:
        """The level `box` at `size` is read from, the whole pixels around it there, and its exact box
        within those."""
        level = self.level_for(box, size)
        # Each level pixel is the mean of `factor` x `factor` source pixels from the top left corner on
        # (Image.reduce): source x is level x / factor, up to the last, partial column and row.
        left, top = box[0] / level.factor, box[1] / level.factor
        right, bottom = (box[0] + box[2]) / level.factor, (box[1] + box[3]) / level.factor
        outer = (math.floor(left), math.floor(top), min(level.width, math.ceil(right)),
                 min(level.height, math.ceil(bottom)))
        return level, outer, (left - outer[0], top - outer[1], right - outer[0], bottom - outer[1])

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


def _as_it_is(level: Level, outer: Edges, inner: tuple[float, float, float, float], size: tuple[int, int]) -> bool:
    """Whether the whole pixels `outer` are the region at `size` as they are: the same size, and the exact
    box their own but for the level's last column or row (partial in the source, whole in the level)."""
    width, height = outer[2] - outer[0], outer[3] - outer[1]
    return ((width, height) == size and inner[0] == 0 and inner[1] == 0
            and (inner[2] == width or outer[2] == level.width) and (inner[3] == height or outer[3] == level.height))

"""A tile pyramid: an image decoded once, kept as raw 8-bit pixels at scale factors 1, 2, 4, ... so that
any tile later is a read of the rows it covers and a resample, never a decode of the original.

Deep zoom asks for hundreds of 512 px tiles of one image; Pillow decodes no region of a JPEG, so each
tile of a 50 MP original would decode all 50 MP again. The converter tier keeps one pyramid per image
version (made once across processes, purged with its original). The file is a header line, a JSON line
of the levels, then each level's pixels, uncompressed, in blocks of 512 x 512 (row by row of blocks,
each block's rows together): a viewer's tile at scale factor f is one block of level f, read in one
seek and one read of under a megabyte, with no decoder at all. Any other region reads the blocks it
covers.
"""

import json
import math
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from previews.config import RenderConfig
from previews.conversions.still import Converted
from previews.grammar.options import ProcessingOptions
from previews.iiif.info import scale_factors
from previews.iiif.region import Box
from previews.imaging.decode import decoder_bytes, load_pixels, open_source
from previews.imaging.formats import FORMATS
from previews.imaging.job import Job, SourceFacts
from previews.imaging.stages import Stages
from previews.limits.pixel_memory import ESTIMATE_MARGIN, JOB_OVERHEAD_BYTES, image_bytes
from previews.steps.colour import to_8bit, to_srgb

MAGIC = b"preview-proxy tile pyramid 1\n"
MEDIA_TYPE = "application/x-preview-proxy-pyramid"
# Smaller sources are decoded whole for each request: at 4 MP that is some 30 ms, less than a read
# of the pyramid costs to make.
MIN_PIXELS = 4_000_000
# A JPEG asked at a quarter of its scale or less decodes at 1/4 or 1/8 (DCT scaling): a sixteenth of
# its pixels at most, cheap enough without a pyramid. A gallery's thumbnails and a viewer's first,
# zoomed-out screen so never wait for one, and never make one.
DCT_SCALE = 0.25
DCT_FORMATS = frozenset({"jpeg"})
_BANDS = {"L": 1, "RGB": 3, "RGBA": 4}
BLOCK = 512  # the side of a block: info.json's tile size
Edges = tuple[int, int, int, int]  # left, top, right, bottom
PEAK_BYTES_PER_PIXEL = 4 + 4 + 2 + 6 + 6


@dataclass(frozen=True)
class Level:
    """One level: its scale factor, size and where its rows start in the file."""

    factor: int
    width: int
    height: int
    offset: int


@dataclass(frozen=True)
class PreparedPyramid:
    """A source opened and checked, whose pyramid is to be made by `run`."""

    image: Image.Image
    facts: SourceFacts
    deadline: float
    peak_bytes: int

    def run(self) -> Converted:
        """Decode once, into 8-bit sRGB (or grey); halve level after level; write the rows."""
        job = Job(ProcessingOptions(), self.facts, FORMATS["png"], 0, self.deadline)
        with Stages("converted", self.deadline) as stages:
            stages.enter("decode")
            picture = to_srgb(to_8bit(load_pixels(self.image), job), job)
            if picture.mode not in _BANDS:
                picture = picture.convert("RGB")
            stages.enter("levels")
            factors = scale_factors(picture.width, picture.height)
            images = [picture]
            for _ in factors[1:]:
                images.append(images[-1].reduce(2))  # a 2x2 box mean: what each halving needs, and fast
            levels, offset = [], 0
            for factor, level in zip(factors, images, strict=True):
                levels.append(Level(factor, level.width, level.height, offset))
                offset += level.width * level.height * _BANDS[picture.mode]
            header = json.dumps({"mode": picture.mode, "format": self.facts.format,
                                 "levels": [vars(level) for level in levels]}).encode() + b"\n"
            parts = [MAGIC, header]
            while images:
                stages.enter("blocks")
                level = images.pop(0)  # each level's pixels go once its blocks are out
                parts += [level.crop(box).tobytes() for box in _blocks(level.width, level.height)]
            del picture
            body = b"".join(parts)
        return Converted(body, MEDIA_TYPE, self.facts.format.lower(), levels[0].width, levels[0].height)

    def close(self) -> None:
        """Release the source (and its pixels, if decoded)."""
        self.image.close()


def prepare_pyramid(file: BinaryIO, config: RenderConfig, deadline: float) -> PreparedPyramid:
    """Open the source and check it against the source limit; nothing is decoded."""
    image, facts = open_source(file, config.max_src_resolution)
    # Per pixel of the source, at most: the decode and its 8-bit sRGB copy (4 bytes each), the smaller
    # levels (a third more), the rows as bytes and their join into one file (4 bytes and a third, each).
    working = PEAK_BYTES_PER_PIXEL * facts.width * facts.height + decoder_bytes(image, facts)
    return PreparedPyramid(image, facts, deadline, int(working * ESTIMATE_MARGIN) + JOB_OVERHEAD_BYTES)


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
        bands = _BANDS[self.mode]
        offset = self._start + level.offset
        placed: Image.Image | None = None
        for block in _blocks(level.width, level.height):
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


def _blocks(width: int, height: int) -> list[Edges]:
    """The blocks of a level as (left, top, right, bottom), in the file's order: row by row of blocks."""
    return [(left, top, min(left + BLOCK, width), min(top + BLOCK, height))
            for top in range(0, height, BLOCK) for left in range(0, width, BLOCK)]


def worth_a_pyramid(source_format: str, width: int, height: int, box: Box, size: tuple[int, int]) -> bool:
    """Whether a request of `size` from the region `box` of a `width` x `height` source (of the header's
    format name) is better read from the source's pyramid than decoded from the source itself."""
    if width * height < MIN_PIXELS:
        return False
    scale = max(size[0] / box[2], size[1] / box[3])
    return not (source_format in DCT_FORMATS and scale <= DCT_SCALE)


def is_pyramid(file: BinaryIO) -> bool:
    """Whether `file` holds a pyramid (read from its start; the position is put back to 0)."""
    file.seek(0)
    head = file.read(len(MAGIC))
    file.seek(0)
    return head == MAGIC

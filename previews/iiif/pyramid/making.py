"""Making a pyramid: the source decoded once into 8-bit sRGB (or grey), halved level after level (2 x 2 box
means) until it fits one block; each level's blocks written raw, and encoded as the viewer's tiles."""

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from previews.config import RenderConfig
from previews.conversions.still import Converted
from previews.grammar.options import ProcessingOptions
from previews.iiif.info import scale_factors
from previews.iiif.pyramid.layout import BANDS, MAGIC, MEDIA_TYPE, READY_FORMAT, READY_MODES, Level, blocks
from previews.iiif.render import output_job
from previews.imaging.decode import decoder_bytes, load_pixels, open_source
from previews.imaging.encode import encode
from previews.imaging.formats import FORMATS
from previews.imaging.job import Job, SourceFacts
from previews.imaging.stages import Stages
from previews.limits.pixel_memory import ESTIMATE_MARGIN, JOB_OVERHEAD_BYTES
from previews.steps.colour import to_8bit, to_srgb

# Per pixel of the source, at most: the decode and its 8-bit sRGB copy (4 bytes each; the decode goes
# first), the next level (1), the raw blocks (3 bytes and a third) and the file joined of them (as much).
PEAK_BYTES_PER_PIXEL = 4 + 4 + 1 + 4 + 4


@dataclass(frozen=True)
class PreparedPyramid:
    """A source opened and checked, whose pyramid is to be made by `run`."""

    image: Image.Image
    facts: SourceFacts
    config: RenderConfig
    deadline: float
    peak_bytes: int

    def run(self) -> Converted:
        """Decode once, into 8-bit sRGB (or grey); halve level after level, each level's blocks written
        raw and encoded as tiles as soon as it is made, and dropped once the next is made of it."""
        job = Job(ProcessingOptions(), self.facts, FORMATS["png"], 0, self.deadline)
        with Stages("converted", self.deadline) as stages:
            stages.enter("decode")
            picture = to_srgb(to_8bit(load_pixels(self.image), job), job)
            if picture.mode not in BANDS:
                picture = picture.convert("RGB")
            mode, bands = picture.mode, BANDS[picture.mode]
            factors = scale_factors(picture.width, picture.height)
            sizes = [(picture.width, picture.height)]
            for _ in factors[1:]:
                sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))  # as Image.reduce(2) rounds
            # The viewer's tiles, encoded as an IIIF image of them would be (same job, same bytes).
            tile_job = output_job(READY_FORMAT, SourceFacts(self.facts.format, *sizes[0], 1, None, None),
                                  self.config, self.deadline)
            raw: list[bytes] = []
            encoding: list[list[Future[bytes]]] = []
            level: Image.Image | None = picture
            if picture is not self.image:
                self.image.close()  # the decode, before its sRGB copy: gone at once
            del picture
            # The tiles are encoded on a thread of their own (the encoder lets go of the GIL) while this
            # one cuts the raw blocks and halves: the making is what a viewer's first tiles wait for.
            with ThreadPoolExecutor(1, thread_name_prefix="pyramid-tiles") as encoder:
                for index in range(len(sizes)):
                    assert level is not None
                    stages.enter("blocks")
                    pending = []
                    for box in blocks(*sizes[index]):
                        block = level.crop(box)
                        raw.append(block.tobytes())
                        if mode in READY_MODES:
                            pending.append(encoder.submit(encode, block, tile_job))
                    encoding.append(pending)
                    stages.enter("levels")
                    level = level.reduce(2) if index + 1 < len(sizes) else None  # a 2x2 box mean
                    self.image.close()  # the full-size pixels, once the first halving is made of them
                stages.enter("encode")
                ready = [[tile.result() for tile in pending] for pending in encoding]
            levels, raw_offset, ready_offset = [], 0, sum(map(len, raw))
            for factor, (width, height), tiles in zip(factors, sizes, ready, strict=True):
                spans = []
                for tile in tiles:
                    spans.append((ready_offset, len(tile)))
                    ready_offset += len(tile)
                levels.append(Level(factor, width, height, raw_offset, tuple(spans)))
                raw_offset += width * height * bands
            header = json.dumps({"mode": mode, "format": self.facts.format,
                                 "ready_quality": tile_job.quality if mode in READY_MODES else None,
                                 "levels": [vars(level) for level in levels]}, separators=(",", ":")).encode()
            data = b"".join([MAGIC, header, b"\n", *raw, *(tile for tiles in ready for tile in tiles)])
        return Converted(data, MEDIA_TYPE, self.facts.format.lower(), *sizes[0])

    def close(self) -> None:
        """Release the source (and its pixels, if decoded)."""
        self.image.close()


def prepare_pyramid(file: BinaryIO, config: RenderConfig, deadline: float) -> PreparedPyramid:
    """Open the source and check it against the source limit; nothing is decoded."""
    image, facts = open_source(file, config.max_src_resolution)
    working = PEAK_BYTES_PER_PIXEL * facts.width * facts.height + decoder_bytes(image, facts)
    return PreparedPyramid(image, facts, config, deadline, int(working * ESTIMATE_MARGIN) + JOB_OVERHEAD_BYTES)

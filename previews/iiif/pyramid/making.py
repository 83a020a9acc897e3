"""Making a pyramid: the source decoded once into 8-bit sRGB (or grey), halved level after level (2 x 2 box
means) until it fits one block, each level's blocks written in order."""

import json
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from previews.config import RenderConfig
from previews.conversions.still import Converted
from previews.grammar.options import ProcessingOptions
from previews.iiif.info import scale_factors
from previews.iiif.pyramid.layout import BANDS, MAGIC, MEDIA_TYPE, Level, blocks
from previews.imaging.decode import decoder_bytes, load_pixels, open_source
from previews.imaging.formats import FORMATS
from previews.imaging.job import Job, SourceFacts
from previews.imaging.stages import Stages
from previews.limits.pixel_memory import ESTIMATE_MARGIN, JOB_OVERHEAD_BYTES
from previews.steps.colour import to_8bit, to_srgb

# Per pixel of the source, at most: the decode and its 8-bit sRGB copy (4 bytes each), the smaller
# levels (a third more), the blocks as bytes and their join into one file (4 bytes and a third, each).
PEAK_BYTES_PER_PIXEL = 4 + 4 + 2 + 6 + 6


@dataclass(frozen=True)
class PreparedPyramid:
    """A source opened and checked, whose pyramid is to be made by `run`."""

    image: Image.Image
    facts: SourceFacts
    deadline: float
    peak_bytes: int

    def run(self) -> Converted:
        """Decode once, into 8-bit sRGB (or grey); halve level after level; write the blocks."""
        job = Job(ProcessingOptions(), self.facts, FORMATS["png"], 0, self.deadline)
        with Stages("converted", self.deadline) as stages:
            stages.enter("decode")
            picture = to_srgb(to_8bit(load_pixels(self.image), job), job)
            if picture.mode not in BANDS:
                picture = picture.convert("RGB")
            stages.enter("levels")
            factors = scale_factors(picture.width, picture.height)
            images = [picture]
            for _ in factors[1:]:
                images.append(images[-1].reduce(2))  # a 2x2 box mean: what each halving needs, and fast
            levels, offset = [], 0
            for factor, level in zip(factors, images, strict=True):
                levels.append(Level(factor, level.width, level.height, offset))
                offset += level.width * level.height * BANDS[picture.mode]
            header = json.dumps({"mode": picture.mode, "format": self.facts.format,
                                 "levels": [vars(level) for level in levels]}).encode() + b"\n"
            parts = [MAGIC, header]
            while images:
                stages.enter("blocks")
                level = images.pop(0)  # each level's pixels go once its blocks are out
                parts += [level.crop(box).tobytes() for box in blocks(level.width, level.height)]
            del picture
            body = b"".join(parts)
        return Converted(body, MEDIA_TYPE, self.facts.format.lower(), levels[0].width, levels[0].height)

    def close(self) -> None:
        """Release the source (and its pixels, if decoded)."""
        self.image.close()


def prepare_pyramid(file: BinaryIO, config: RenderConfig, deadline: float) -> PreparedPyramid:
    """Open the source and check it against the source limit; nothing is decoded."""
    image, facts = open_source(file, config.max_src_resolution)
    working = PEAK_BYTES_PER_PIXEL * facts.width * facts.height + decoder_bytes(image, facts)
    return PreparedPyramid(image, facts, deadline, int(working * ESTIMATE_MARGIN) + JOB_OVERHEAD_BYTES)

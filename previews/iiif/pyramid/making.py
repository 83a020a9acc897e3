"""Making a pyramid: the source decoded once into 8-bit sRGB (or grey), halved level after level (2 x 2 box
means) until it fits one block; each level's blocks written raw, and encoded as the viewer's tiles."""

import io
import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from previews.config import RenderConfig
from previews.conversions.still import Converted
from previews.grammar.options import ProcessingOptions
from previews.iiif.info import scale_factors
from previews.iiif.pyramid.layout import (
    BANDS,
    INDEX_DIGITS,
    MAGIC,
    MEDIA_TYPE,
    READY_FORMAT,
    READY_MODES,
    Level,
    blocks,
)
from previews.iiif.render import output_job
from previews.imaging.decode import decoder_bytes, load_pixels, open_source
from previews.imaging.encode import encode
from previews.imaging.formats import FORMATS
from previews.imaging.job import Job, SourceFacts
from previews.imaging.stages import Stages
from previews.limits.pixel_memory import ESTIMATE_MARGIN, JOB_OVERHEAD_BYTES
from previews.steps.colour import to_8bit, to_srgb

# Per pixel of the source, at most: the decode and its 8-bit sRGB copy (4 bytes each; the decode goes
# first), the next level (1), and the pyramid in memory when no part file is named (4, with its growth).
PEAK_BYTES_PER_PIXEL = 4 + 4 + 1 + 5
ENCODER_THREADS = 2


@dataclass(frozen=True)
class PreparedPyramid:
    """A source opened and checked, whose pyramid is to be made by `run`."""

    image: Image.Image
    facts: SourceFacts
    config: RenderConfig
    deadline: float
    peak_bytes: int
    part: Path | None  # the file to write, or None to return the pyramid's bytes

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
            encoding: list[list[Future[bytes]]] = []
            level: Image.Image | None = picture
            if picture is not self.image:
                self.image.close()  # the decode, before its sRGB copy: gone at once
            del picture
            out: BinaryIO = open(self.part, "xb") if self.part is not None else io.BytesIO()  # noqa: SIM115
            with out:
                out.write(MAGIC + b"0" * INDEX_DIGITS + b"\n")  # where the JSON line starts: known at the end
                start = out.tell()
                # The tiles are encoded on threads of their own (the encoder lets go of the GIL) while
                # this one writes the raw blocks and halves: the making is what a viewer's tiles wait for,
                # and the encoding is the larger half of its work after the decode.
                with ThreadPoolExecutor(ENCODER_THREADS, thread_name_prefix="pyramid-tiles") as encoder:
                    for index in range(len(sizes)):
                        assert level is not None
                        stages.enter("blocks")
                        pending = []
                        for box in blocks(*sizes[index]):
                            block = level.crop(box)
                            out.write(block.tobytes())
                            if mode in READY_MODES:
                                pending.append(encoder.submit(encode, block, tile_job))
                        encoding.append(pending)
                        stages.enter("levels")
                        level = level.reduce(2) if index + 1 < len(sizes) else None  # a 2x2 box mean
                        self.image.close()  # the full-size pixels, once the first halving is made of them
                    stages.enter("encode")
                    levels, raw_offset = [], 0
                    for factor, (width, height), pending in zip(factors, sizes, encoding, strict=True):
                        spans = []
                        for tile in pending:
                            spans.append((out.tell() - start, out.write(tile.result())))
                        levels.append(Level(factor, width, height, raw_offset, tuple(spans)))
                        raw_offset += width * height * bands
                index_at = out.tell()
                out.write(json.dumps({"mode": mode, "format": self.facts.format,
                                      "ready_quality": tile_job.quality if mode in READY_MODES else None,
                                      "levels": [vars(level) for level in levels]}, separators=(",", ":")).encode())
                out.write(b"\n")
                out.seek(len(MAGIC))
                out.write(b"%0*d" % (INDEX_DIGITS, index_at))
                data = out.getvalue() if isinstance(out, io.BytesIO) else None
        return Converted(data, MEDIA_TYPE, self.facts.format.lower(), *sizes[0], in_part=data is None)

    def close(self) -> None:
        """Release the source (and its pixels, if decoded)."""
        self.image.close()


def prepare_pyramid(file: BinaryIO, config: RenderConfig, deadline: float, part: Path | None = None) -> PreparedPyramid:
    """Open the source and check it against the source limit; nothing is decoded. The pyramid is written
    to `part` (a new file) when one is named, else returned in memory."""
    image, facts = open_source(file, config.max_src_resolution)
    working = PEAK_BYTES_PER_PIXEL * facts.width * facts.height + decoder_bytes(image, facts)
    return PreparedPyramid(image, facts, config, deadline, int(working * ESTIMATE_MARGIN) + JOB_OVERHEAD_BYTES,
                          part)

"""Render one preview: open, check, decode, run the steps in order, encode. Blocking; run it in a pool."""

import time
from dataclasses import dataclass
from typing import BinaryIO

from previews.config import RenderConfig
from previews.decode import load_pixels, open_source, shrink_on_load
from previews.encode import encode
from previews.formats import choose_format
from previews.job import Job
from previews.options import ProcessingOptions
from previews.pipeline import STEPS
from previews.stages import Stages


@dataclass(frozen=True)
class Rendered:
    """An encoded preview and what it is."""

    data: bytes
    media_type: str
    format: str
    width: int
    height: int


def render_preview(file: BinaryIO, options: ProcessingOptions, config: RenderConfig,
                   deadline: float) -> Rendered:
    """The preview `options` ask for, of the image in `file`. Raises PreviewError subclasses only."""
    image, facts = open_source(file, config.max_src_resolution)
    try:
        with Stages("processed", deadline) as stages:
            has_alpha = "A" in image.mode or "transparency" in image.info
            output = choose_format(options.format, facts.format, has_alpha)
            job = Job(options, facts, output, config.quality_for(output.name, options.quality), deadline)
            shrink_on_load(image, job)
            stages.enter("decode")
            picture = stages.run(load_pixels(image), STEPS, job)
            stages.enter("encode")
            data = encode(picture, job)
    finally:
        image.close()
    return Rendered(data, output.media_type, output.name, picture.width, picture.height)


def deadline_after(seconds: float) -> float:
    """A deadline `seconds` from now, on the clock Job.check_deadline reads."""
    return time.monotonic() + seconds

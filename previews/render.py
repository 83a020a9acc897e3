"""Render one preview: open, check, decode, run the steps in order, encode. Blocking; run it in a pool."""

import time
from dataclasses import dataclass
from typing import BinaryIO

from previews.config import RenderConfig
from previews.decode import load_pixels, open_source, shrink_on_load
from previews.encode import encode
from previews.errors import PreviewError, UnsupportedImage
from previews.formats import choose_format
from previews.job import Job
from previews.options import ProcessingOptions
from previews.pipeline import STEPS


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
    stage = "decode"
    try:
        has_alpha = "A" in image.mode or "transparency" in image.info
        output = choose_format(options.format, facts.format, has_alpha)
        job = Job(options, facts, output, config.quality_for(output.name, options.quality), deadline)
        shrink_on_load(image, job)
        job.check_deadline("decode")
        picture = load_pixels(image)
        for step in STEPS:
            stage = step.__name__
            job.check_deadline(stage)
            picture = step(picture, job)
        stage = "encode"
        job.check_deadline(stage)
        data = encode(picture, job)
    except PreviewError:
        raise
    except Exception as error:
        # Past the header, Pillow fails on what the image holds (an odd mode, a broken profile); the
        # step is named so that a failure of ours is told apart in the log and the body.
        raise UnsupportedImage(f"the image can't be processed ({stage}): {type(error).__name__}: {error}") from None
    finally:
        image.close()
    return Rendered(data, output.media_type, output.name, picture.width, picture.height)


def deadline_after(seconds: float) -> float:
    """A deadline `seconds` from now, on the clock Job.check_deadline reads."""
    return time.monotonic() + seconds

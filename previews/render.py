"""Render one preview: open, check, plan, decode, run the steps in order, encode. Blocking; run it in a pool.

It comes in two halves so that a caller can admit the render by its memory between them:
`prepare_render` reads the header, checks the limits and plans the canvases (nothing is decoded),
and `PreparedRender.run` does the pixel work.
"""

import time
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from previews.config import RenderConfig
from previews.errors import DecodeNotKept
from previews.grammar.options import ProcessingOptions
from previews.imaging.decode import decoder_bytes, load_pixels, open_source, shrink_on_load
from previews.imaging.decoded import DecodeKey, kept_decodes, source_identity
from previews.imaging.encode import encode
from previews.imaging.formats import choose_format
from previews.imaging.job import Job
from previews.imaging.pipeline import STEPS
from previews.imaging.stages import Stages
from previews.limits.render_plan import RenderPlan, plan_render
from previews.limits.result_bounds import check_result_bounds


@dataclass(frozen=True)
class Rendered:
    """An encoded preview and what it is."""

    data: bytes
    media_type: str
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class PreparedRender:
    """A source whose header is read and checked, and whose render is planned; nothing decoded yet."""

    image: Image.Image
    job: Job
    plan: RenderPlan
    decode_key: DecodeKey | None = None  # the decode's name, where the source is a regular file
    # The peak if the render starts from a kept decode, where that saves a decoder's own memory (0: it doesn't).
    from_kept_bytes: int = 0
    kept_only: bool = False  # start from a kept decode or not at all (DecodeNotKept)

    @property
    def peak_bytes(self) -> int:
        """The most memory the render is estimated to hold at once."""
        return self.from_kept_bytes if self.kept_only else self.plan.peak_bytes

    def run(self) -> Rendered:
        """Decode, run the steps, encode. Raises PreviewError subclasses only (and DecodeNotKept if kept_only)."""
        job = self.job
        kept_copy = self._kept_copy() if self.kept_only else None  # outside the stages, which name any error
        with Stages("processed", job.deadline) as stages:
            stages.enter("decode")
            picture = stages.run(kept_copy if kept_copy is not None else self._decoded(), STEPS, job)
            stages.enter("encode")
            data = encode(picture, job)
        return Rendered(data, job.output.media_type, job.output.name, picture.width, picture.height)

    def _decoded(self) -> Image.Image:
        """The source's pixels: a copy of a decode this process kept, or decoded now (and kept, if it keeps them)."""
        kept = kept_decodes()
        if kept is None or self.decode_key is None:
            return load_pixels(self.image)
        found = kept.copy_of(self.decode_key)
        if found is not None:
            return found
        started = time.thread_time()
        picture = load_pixels(self.image)
        kept.keep(self.decode_key, picture, time.thread_time() - started)
        return picture

    def _kept_copy(self) -> Image.Image:
        """A copy of the decode this process keeps, or DecodeNotKept: nothing is decoded, its memory not being
        reserved."""
        kept = kept_decodes()
        found = kept.copy_of(self.decode_key) if kept is not None and self.decode_key is not None else None
        if found is None:
            raise DecodeNotKept()
        return found

    def close(self) -> None:
        """Release the source (and its pixels, if decoded)."""
        self.image.close()


def prepare_render(file: BinaryIO, options: ProcessingOptions, config: RenderConfig,
                   deadline: float, kept_only: bool = False) -> PreparedRender:
    """Open the image in `file`, check the source and result limits, and plan the render. `kept_only`: the
    render will start from a kept decode of the source or raise DecodeNotKept, and never decode it.

    Raises TooManyPixels or ResultTooLarge (422) from the header and the options, before any decode.
    """
    identity = source_identity(file)  # the render host may keep the decode even where this process doesn't
    image, facts = open_source(file, config.max_src_resolution)
    try:
        with Stages("processed", deadline) as stages:
            has_alpha = "A" in image.mode or "transparency" in image.info
            output = choose_format(options.format, facts.format, has_alpha)
            job = Job(options, facts, output, config.quality_for(output.name, options.quality), deadline)
            # Sets the decoder's scale; image.size is now what it decodes.
            shrink_on_load(image, job, config.shared_decode_pixels)
            stages.enter("plan")
            decoder = decoder_bytes(image, facts)
            plan = plan_render(job, image.size, image.mode, decoder)
            check_result_bounds(plan, config)
            # Started from a kept decode, a render holds a copy of its pixels, and no decoder.
            from_kept = plan_render(job, image.size, image.mode, 0).peak_bytes if decoder else 0
    except BaseException:
        image.close()
        raise
    decode_key = (identity, image.width, image.height, image.mode) if identity is not None else None
    return PreparedRender(image, job, plan, decode_key, from_kept if decode_key else 0, kept_only)


def render_preview(file: BinaryIO, options: ProcessingOptions, config: RenderConfig,
                   deadline: float) -> Rendered:
    """The preview `options` ask for, of the image in `file`. Raises PreviewError subclasses only."""
    prepared = prepare_render(file, options, config, deadline)
    try:
        return prepared.run()
    finally:
        prepared.close()


def deadline_after(seconds: float) -> float:
    """A deadline `seconds` from now, on the clock Job.check_deadline reads."""
    return time.monotonic() + seconds

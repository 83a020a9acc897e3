"""One IIIF image: open, check, plan, decode (shrunk on load where the scale allows), then region and
size in one resample, mirror and rotation, quality, encode. Blocking; run it in the render pool.

Like previews.render it comes in two halves, so the pool can admit the work by its memory between them:
`IiifRecipe.prepare` reads the header, checks the source limit, works out the region and size (a 400
if the image can't give them) and estimates the peak memory; `PreparedIiif.run` does the pixel work.
Pixels are read as stored: EXIF orientation is not applied, so the coordinates match info.json's
width and height, which are the header's.
"""

import math
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from previews.config import RenderConfig
from previews.grammar.options import ProcessingOptions
from previews.iiif.errors import InvalidIiifRequest
from previews.iiif.output import FORMATS
from previews.iiif.pixels import KEEPS_COLOURS, NO_ROTATION, apply_quality, rotate, rotated_size
from previews.iiif.pyramid.layout import READY_FORMAT, is_pyramid
from previews.iiif.pyramid.reading import PyramidFile
from previews.iiif.region import Box
from previews.iiif.request import ImageRequest
from previews.iiif.size import size_limits
from previews.imaging.decode import decoder_bytes, load_pixels, open_source
from previews.imaging.encode import encode
from previews.imaging.formats import FORMATS as OUTPUTS
from previews.imaging.job import Job, SourceFacts
from previews.imaging.stages import Stages
from previews.limits.pixel_memory import (
    DEFAULT_CODEC_BYTES_PER_PIXEL,
    ENCODER_BYTES_PER_PIXEL,
    ESTIMATE_MARGIN,
    JOB_OVERHEAD_BYTES,
    image_bytes,
)
from previews.render import Rendered
from previews.steps.canvas import WHITE
from previews.steps.colour import to_8bit, to_srgb

# A rotated canvas may hold up to twice the pixels of the image it turns (at 45 degrees).
ROTATED_AREA_FACTOR = 2


@dataclass(frozen=True)
class IiifRecipe:
    """An IIIF image request as the previews tier renders it: its cache key text and its render."""

    request: ImageRequest
    key: str  # what names its pixels (previews.iiif.canonical.pixels_key)

    def canonical(self) -> str:
        """The request's text in the previews-tier key (never equal to an imgproxy options text)."""
        return self.key

    @property
    def format(self) -> str:
        """The renderer's name of the output format."""
        return FORMATS[self.request.format]

    def prepare(self, file: BinaryIO, config: RenderConfig, deadline: float) -> "PreparedIiif":
        """Open the image (or the tile pyramid made of it) in `file`, check it and plan the render;
        nothing is decoded."""
        if is_pyramid(file):
            return _plan_from_pyramid(PyramidFile(file), self.request, config, deadline)
        image, facts = open_source(file, config.max_src_resolution)
        try:
            with Stages("processed", deadline) as stages:
                stages.enter("plan")
                return _plan(image, facts, self.request, config, deadline)
        except BaseException:
            image.close()
            raise


@dataclass(frozen=True)
class PreparedIiif:
    """A source whose header is read and whose region, size and memory are worked out."""

    image: Image.Image | None  # the source, or None when the pixels come from a pyramid
    pyramid: PyramidFile | None
    job: Job
    request: ImageRequest
    box: Box  # the region in the full image's pixels
    size: tuple[int, int]  # the result before rotation
    peak_bytes: int
    ready: bytes | None = None  # the pyramid's own encoding of this very image, when it has one

    def run(self) -> Rendered:
        """Decode, cut and scale, turn, apply the quality, encode."""
        job, request = self.job, self.request
        keeps_alpha = job.output.keeps_alpha
        with Stages("processed", job.deadline) as stages:
            if self.pyramid is not None and self.ready is not None:
                stages.enter("encode")
                # The tile as the pyramid's making encoded it: the same pixels, the same encoder and
                # settings, so the same bytes the steps below would make.
                return Rendered(self.ready, job.output.media_type, job.output.name, *self.size)
            if self.pyramid is not None:
                stages.enter("region")
                picture = self.pyramid.region(self.box, self.size)
            else:
                assert self.image is not None
                stages.enter("decode")
                decoded = load_pixels(self.image)
                stages.enter("region")
                picture = _region_at_size(decoded, job, self.box, self.size)
            stages.enter("rotation")
            picture = rotate(picture, request.rotation, keeps_alpha)
            picture = apply_quality(picture, request.quality, keeps_alpha)
            if "A" in picture.mode and not keeps_alpha:
                flat = Image.new("RGB", picture.size, WHITE)
                flat.paste(picture, mask=picture.getchannel("A"))
                picture = flat
            if picture.mode == "1" and job.output.name in ("jpeg", "webp"):
                picture = picture.convert("L")  # their writers take no 1-bit pixels; still only black and white
            stages.enter("encode")
            data = encode(picture, job)
        return Rendered(data, job.output.media_type, job.output.name, picture.width, picture.height)

    def close(self) -> None:
        """Release the source (and its pixels, if decoded)."""
        if self.image is not None:
            self.image.close()


def _geometry(facts: SourceFacts, request: ImageRequest, config: RenderConfig,
              deadline: float) -> tuple[Box, tuple[int, int], tuple[int, int], Job]:
    """The region, the size, the rotated canvas and the job: 400s here cost no decode."""
    box = request.region.box(facts.width, facts.height)
    limits = size_limits(config)
    size = request.size.resolve(box[2], box[3], limits)
    canvas = rotated_size(*size, request.rotation)
    if limits.max_area and canvas[0] * canvas[1] > ROTATED_AREA_FACTOR * limits.max_area:
        raise InvalidIiifRequest(f"the rotation makes a {canvas[0]}x{canvas[1]} image, over the limits")
    return box, size, canvas, output_job(FORMATS[request.format], facts, config, deadline)


def output_job(format_name: str, facts: SourceFacts, config: RenderConfig, deadline: float) -> Job:
    """The job an IIIF image of the renderer's format `format_name` is encoded by (its quality, its
    metadata): the pyramid's ready tiles (previews.iiif.pyramid.making) are encoded by the same."""
    output = OUTPUTS[format_name]
    return Job(ProcessingOptions(format=output.name), facts, output, config.quality_for(output.name, 0), deadline)


def _later_bytes(job: Job, size: tuple[int, int], canvas: tuple[int, int]) -> int:
    """What the steps after the region hold: the rotated canvas and the encoder's working memory."""
    per_pixel = ENCODER_BYTES_PER_PIXEL.get(job.output.name, DEFAULT_CODEC_BYTES_PER_PIXEL)
    return image_bytes(size, "RGBA") + image_bytes(canvas, "RGBA") + per_pixel * canvas[0] * canvas[1]


def _plan_from_pyramid(pyramid: PyramidFile, request: ImageRequest, config: RenderConfig,
                       deadline: float) -> PreparedIiif:
    # The pyramid's pixels are 8-bit sRGB already: no profile, no metadata to carry.
    facts = SourceFacts(pyramid.format, pyramid.width, pyramid.height, 1, None, None)
    box, size, canvas, job = _geometry(facts, request, config, deadline)
    working = pyramid.read_bytes(box, size) + _later_bytes(job, size, canvas)
    ready = None
    if request.rotation == NO_ROTATION and request.quality in KEEPS_COLOURS and job.output.name == READY_FORMAT:
        ready = pyramid.ready_tile(box, size, job.quality)
    if ready is not None:
        working = len(ready)  # read already: a small job, done in the same trip to the pool
    return PreparedIiif(None, pyramid, job, request, box, size, int(working * ESTIMATE_MARGIN) + JOB_OVERHEAD_BYTES,
                        ready)


def _plan(image: Image.Image, facts: SourceFacts, request: ImageRequest, config: RenderConfig,
          deadline: float) -> PreparedIiif:
    box, size, canvas, job = _geometry(facts, request, config, deadline)
    scale = max(size[0] / box[2], size[1] / box[3])
    if image.format in ("JPEG", "MPO") and scale < 0.5:
        # DCT scaling: libjpeg decodes at 1/2, 1/4 or 1/8, the strongest that still covers the result.
        image.draft(image.mode, (max(1, math.ceil(facts.width * scale)), max(1, math.ceil(facts.height * scale))))
    decoded = image_bytes(image.size, image.mode) + decoder_bytes(image, facts)
    fx, fy = image.width / facts.width, image.height / facts.height
    region = image_bytes((math.ceil(box[2] * fx), math.ceil(box[3] * fy)), "RGBA")
    working = decoded + 2 * region + _later_bytes(job, size, canvas)
    return PreparedIiif(image, None, job, request, box, size, int(working * ESTIMATE_MARGIN) + JOB_OVERHEAD_BYTES)


def _region_at_size(image: Image.Image, job: Job, box: Box, size: tuple[int, int]) -> Image.Image:
    """The region, scaled to `size` in one resample from the decoded pixels (which shrink-on-load may have
    made smaller than the header says): cut to the whole pixels around it, then resampled from its exact box."""
    fx, fy = image.width / job.source.width, image.height / job.source.height
    left, top = box[0] * fx, box[1] * fy
    right, bottom = (box[0] + box[2]) * fx, (box[1] + box[3]) * fy
    outer = (math.floor(left), math.floor(top), min(image.width, math.ceil(right)),
             min(image.height, math.ceil(bottom)))
    # Into 8-bit sRGB (or grey) before the resample: Pillow resamples only those modes well.
    cut = to_srgb(to_8bit(image.crop(outer), job), job)
    inner = (left - outer[0], top - outer[1], right - outer[0], bottom - outer[1])
    if cut.size == size and inner == (0, 0, *cut.size):
        return cut
    return cut.resize(size, Image.Resampling.LANCZOS, box=inner)

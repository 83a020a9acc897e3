"""Convert a still image into one a browser shows: TIFF, JPEG 2000, BMP, 16-bit PNG, PSD, ICO...

Blocking: run it in the render pool. The conversion reuses the render pipeline's header checks,
decoder and colour steps; it never resizes. Sources browsers already show pass through untouched.
"""

from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from previews.config import RenderConfig
from previews.conversions.lossless import is_lossless_source
from previews.conversions.options import ConvertOptions
from previews.conversions.output import encode_for_browser
from previews.conversions.pages import select_page
from previews.grammar.options import ProcessingOptions
from previews.imaging.decode import decoder_bytes, load_pixels, open_source
from previews.imaging.formats import FORMATS
from previews.imaging.job import Job, SourceFacts
from previews.imaging.stages import Stages
from previews.limits.pixel_memory import image_bytes
from previews.limits.render_plan import plan_render
from previews.steps.colour import to_8bit, to_srgb
from previews.steps.orient import orient

__all__ = ["ConvertOptions", "Converted", "PreparedConversion", "convert_image", "encode_for_browser",
           "prepare_conversion"]

# Formats every browser shows, by Pillow's name, with the media type they are served as.
PASS_THROUGH = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
                "GIF": "image/gif"}
# An MPO is a JPEG with more pictures after the first; it is named for what browsers see.
SOURCE_NAMES = {"MPO": "jpeg"}
PNG_BIT_DEPTH_OFFSET = 24  # signature (8), IHDR length and type (8), width and height (8)
# The render pipeline's steps a conversion runs: upright, then 8-bit, then sRGB.
STEPS = (orient, to_8bit, to_srgb)
# What those steps read: orientation applied and profiles converted to sRGB, whatever IMGPROXY_*
# says for previews, because the converted file carries no metadata to say otherwise (convert_output).
CONVERSION_OPTIONS = ProcessingOptions(auto_rotate=True, strip_color_profile=True, strip_metadata=True)
# Multi-page formats whose pages each have a header of their own, read without decoding.
HEADER_PAGED = frozenset({"TIFF", "MPO"})


@dataclass(frozen=True)
class Converted:
    """A browser-ready image, or word that the source already is one."""

    data: bytes | None  # None: the source is browser-ready; serve the original untouched
    media_type: str  # of the result (the source's own when passed through)
    source_format: str  # for X-Converted-From: Pillow's format name in lower case, e.g. "tiff", "jpeg2000"
    width: int  # of the result (when passed through: as stored, before any EXIF orientation)
    height: int
    in_part: bool = False  # written to the part file the caller named, not held in `data` (a tile pyramid)


@dataclass(frozen=True)
class PreparedConversion:
    """A source opened and checked, its page chosen where that reads only headers, its memory estimated."""

    image: Image.Image
    file: BinaryIO
    facts: SourceFacts
    options: ConvertOptions
    source_format: str
    deadline: float
    max_pixels: int  # the source limit, which a page found in `run` is checked against too
    peak_bytes: int  # 0 for a pass-through
    passed_through: Converted | None  # set when the source is browser-ready: nothing to decode

    def run(self) -> Converted:
        """Decode the page, make it upright, 8-bit and sRGB, and encode it for browsers."""
        if self.passed_through is not None:
            return self.passed_through
        with Stages("converted", self.deadline) as stages:
            facts = self.facts
            if _seeks_by_decoding(self.image) and self.options.page:
                facts = select_page(self.image, self.options.page, facts, stages, self.max_pixels)
            # The steps read only the options and the source's facts; the output format is chosen
            # after them, from the pixels, so the job's is a placeholder.
            job = Job(CONVERSION_OPTIONS, facts, FORMATS["png"], self.options.quality, self.deadline)
            stages.enter("decode")
            lossless = is_lossless_source(self.image, self.file)
            picture = stages.run(load_pixels(self.image), STEPS, job)
            stages.enter("encode")
            data, media_type = encode_for_browser(picture, lossless, self.options)
        return Converted(data, media_type, self.source_format, picture.width, picture.height)

    def close(self) -> None:
        """Release the source (and its pixels, if decoded)."""
        self.image.close()


def prepare_conversion(file: BinaryIO, options: ConvertOptions, config: RenderConfig,
                       deadline: float) -> PreparedConversion:
    """Open the image in `file` (seekable), check it against config's source limits, estimate its memory.

    Raises PreviewError subclasses only: TooManyPixels (422) from the header, before any pixel is
    decoded; UnsupportedImage (415) for a damaged, unknown or missing page; RenderDeadlinePassed (504).
    """
    image, facts = open_source(file, config.max_src_resolution)
    source_format = SOURCE_NAMES.get(facts.format, facts.format.lower())
    try:
        with Stages("converted", deadline) as stages:
            if not _seeks_by_decoding(image):
                facts = select_page(image, options.page, facts, stages, config.max_src_resolution)
            passed = None
            if options.page == 0 and _browser_ready(facts.format, file):
                passed = Converted(None, PASS_THROUGH[facts.format], source_format, facts.width, facts.height)
            peak = 0 if passed else _peak_bytes(image, facts, options)
    except BaseException:
        image.close()
        raise
    return PreparedConversion(image, file, facts, options, source_format, deadline, config.max_src_resolution,
                              peak, passed)


def convert_image(file: BinaryIO, options: ConvertOptions, config: RenderConfig, deadline: float) -> Converted:
    """Convert the image in `file` (seekable), within config's source limits and by `deadline`."""
    prepared = prepare_conversion(file, options, config, deadline)
    try:
        return prepared.run()
    finally:
        prepared.close()


def _seeks_by_decoding(image: Image.Image) -> bool:
    """Animated formats reach page N by decoding the frames before it: that is left to `run`, after
    admission. A TIFF or MPO page is found by its header alone, and can differ in size from the first."""
    return image.format not in HEADER_PAGED and getattr(image, "n_frames", 1) > 1


def _peak_bytes(image: Image.Image, facts: SourceFacts, options: ConvertOptions) -> int:
    """The render plan of the steps a conversion runs, with the browser encoder's copies on top.

    A page reached by decoding is counted on the whole canvas in RGBA, twice (the frame and the one
    before it, which disposal may need).
    """
    job = Job(CONVERSION_OPTIONS, facts, FORMATS["webp"], options.quality, 0.0)  # WebP: the costliest output
    if _seeks_by_decoding(image) and options.page:
        size = (facts.width, facts.height)
        plan = plan_render(job, size, "RGBA", image_bytes(size, "RGBA"))
    else:
        plan = plan_render(job, image.size, image.mode, decoder_bytes(image, facts))
    # _browser_mode: one converted copy and the alpha band it reads.
    return plan.peak_bytes + image_bytes((facts.width, facts.height), "RGBA") + facts.width * facts.height


def _browser_ready(source_format: str, file: BinaryIO) -> bool:
    """A format browsers show, except a 16-bit PNG: the issue asks for those as 8-bit PNG."""
    if source_format not in PASS_THROUGH:
        return False
    return source_format != "PNG" or _png_bit_depth(file) <= 8


def _png_bit_depth(file: BinaryIO) -> int:
    """The bit depth in the PNG's IHDR chunk (ISO/IEC 15948, 11.2.2), which Pillow doesn't report."""
    position = file.tell()
    try:
        file.seek(PNG_BIT_DEPTH_OFFSET)
        depth = file.read(1)
    finally:
        file.seek(position)
    return depth[0] if depth else 0

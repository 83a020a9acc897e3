"""Convert a still image into one a browser shows (issue 5): TIFF, JPEG 2000, BMP, 16-bit PNG, PSD, ICO...

Blocking: run it in the render pool. The conversion reuses the render pipeline's header checks,
decoder and colour steps; it never resizes. Sources browsers already show pass through untouched.
"""

from dataclasses import dataclass
from typing import BinaryIO

from previews.config import RenderConfig
from previews.convert_options import ConvertOptions
from previews.convert_output import encode_for_browser
from previews.decode import load_pixels, open_source
from previews.formats import FORMATS
from previews.job import Job
from previews.lossless import is_lossless_source
from previews.options import ProcessingOptions
from previews.pages import select_page
from previews.stages import Stages
from previews.steps.colour import to_8bit, to_srgb
from previews.steps.orient import orient

__all__ = ["ConvertOptions", "Converted", "convert_image", "encode_for_browser"]

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


@dataclass(frozen=True)
class Converted:
    """A browser-ready image, or word that the source already is one."""

    data: bytes | None  # None: the source is browser-ready; serve the original untouched
    media_type: str  # of the result (the source's own when passed through)
    source_format: str  # for X-Converted-From: Pillow's format name in lower case, e.g. "tiff", "jpeg2000"
    width: int  # of the result (when passed through: as stored, before any EXIF orientation)
    height: int


def convert_image(file: BinaryIO, options: ConvertOptions, config: RenderConfig, deadline: float) -> Converted:
    """Convert the image in `file` (seekable), within config's source limits and by `deadline`.

    Raises PreviewError subclasses only: TooManyPixels (422) from the header, before any pixel is
    decoded; UnsupportedImage (415) for a damaged, unknown or missing page; RenderTimedOut (504).
    """
    image, facts = open_source(file, config.max_src_resolution)
    source_format = SOURCE_NAMES.get(facts.format, facts.format.lower())
    try:
        with Stages("converted", deadline) as stages:
            facts = select_page(image, options.page, facts, stages, config.max_src_resolution)
            if options.page == 0 and _browser_ready(facts.format, file):
                return Converted(None, PASS_THROUGH[facts.format], source_format, facts.width, facts.height)
            # The steps read only the options and the source's facts; the output format is chosen
            # after them, from the pixels, so the job's is a placeholder.
            job = Job(CONVERSION_OPTIONS, facts, FORMATS["png"], options.quality, deadline)
            stages.enter("decode")
            lossless = is_lossless_source(image, file)
            picture = stages.run(load_pixels(image), STEPS, job)
            stages.enter("encode")
            data, media_type = encode_for_browser(picture, lossless, options)
    finally:
        image.close()
    return Converted(data, media_type, source_format, picture.width, picture.height)


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

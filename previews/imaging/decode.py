"""Open a source, check its limits from the header alone, then decode it (shrunk on load if it can be).

Everything here runs before a single pixel is decoded, except `load_pixels`: a decompression bomb
is refused by its declared resolution, not after it has filled the memory.
"""

import math
import warnings
from typing import BinaryIO

from PIL import Image, ImageFile, UnidentifiedImageError

from previews.errors import PreviewError, TooManyPixels, UnsupportedImage
from previews.imaging.dc_scans import dc_scans_only
from previews.imaging.formats import INPUT_FORMATS
from previews.imaging.geometry import resize_scales
from previews.imaging.job import Job, SourceFacts
from previews.limits.pixel_memory import DECODER_BYTES_PER_PIXEL, progressive_jpeg_bytes

EXIF_ORIENTATION = 0x0112
# Pillow's TIFF plugin reports the upright size and turns the pixels upright as it loads them
# (ImageOps.exif_transpose in TiffImageFile.load_end): turning them again by the tag would undo it.
UPRIGHT_ON_LOAD = frozenset({"TIFF"})
# Bytes Pillow hands the decoder at a time (its own default is 64 KiB). The decoder runs without the
# interpreter lock, but takes it back after each block, and a render thread that asks for it while the
# event loop (or another thread) holds it waits for that thread's switch interval: a 6 MB JPEG read in
# 64 KiB blocks waited that way a hundred times, and with another thread busy took three times as long
# (1 MiB blocks: 1.3 times).
DECODE_BLOCK = 1024 * 1024  # read, then copied once: within the overhead a render plan counts (JOB_OVERHEAD_BYTES)
# The most a progressive JPEG cut to its DC scans may hold in memory, per pixel it decodes to (one per
# block: 1-3 bytes in the photos measured, 12 for 4:2:0 at quality 100, whose chroma keeps its AC
# scans) and in all (a 16 MP photo's cut: 450 KB). A larger cut is not made: the whole file is decoded.
DC_SCANS_BYTES_PER_PIXEL = 8
DC_SCANS_MOST_BYTES = 2 * 1024 * 1024
JPEG_SCALES = (8, 4, 2)  # the DCT scalings Pillow's draft() picks from, strongest first


def open_source(file: BinaryIO, max_pixels: int) -> tuple[Image.Image, SourceFacts]:
    """Identify the image and read its header; refuse it if it has too many pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file, formats=INPUT_FORMATS)
    except Image.DecompressionBombError as error:
        raise TooManyPixels(f"source resolution is too large: {error}") from None
    except UnidentifiedImageError:
        raise UnsupportedImage("the source is not an image in a supported format") from None
    except PreviewError:
        raise
    except Exception as error:  # Pillow's plugins raise many types for a damaged header
        raise UnsupportedImage(f"the source's header can't be read: {_describe(error)}") from None
    check_resolution(image, max_pixels)
    return image, read_facts(image)


def check_resolution(image: Image.Image, max_pixels: int) -> None:
    """Refuse the current frame if its declared size is over `max_pixels` (nothing is decoded)."""
    width, height = image.size
    if width * height > max_pixels:
        raise TooManyPixels(f"source is {width}x{height} ({width * height / 1e6:.1f} MP), over the limit of "
                            f"{max_pixels / 1e6:g} MP")


def read_facts(image: Image.Image) -> SourceFacts:
    """Format, size, orientation, ICC profile and EXIF of the current frame, read without decoding it."""
    try:
        # A PNG's getexif() decodes the whole image to look for an eXIf chunk after the pixels; only
        # one placed before them (already in info) is read, so nothing is decoded before the checks.
        png_without_exif = image.format == "PNG" and "exif" not in image.info
        exif = Image.Exif() if png_without_exif else image.getexif()
        orientation = 1 if image.format in UPRIGHT_ON_LOAD else int(exif.get(EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block is no reason to refuse the pixels
        exif, orientation = Image.Exif(), 1
    return SourceFacts(
        format=image.format or "",
        width=image.width,
        height=image.height,
        orientation=orientation if 1 <= orientation <= 8 else 1,
        icc_profile=image.info.get("icc_profile") or None,
        exif=exif if len(exif) else None,
    )


def shrink_on_load(image: Image.Image, job: Job, shared_pixels: int = 0) -> None:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 (DCT scaling) when the result is that much smaller.

    Pillow's draft() picks the strongest reduction that still leaves at least the requested size, so
    the resize that follows only ever shrinks. `shared_pixels`: a progressive JPEG is decoded at no
    smaller a scale than the one that leaves at most that many pixels (`shared_divisor`), so that its
    sizes share one decode; but not instead of 1/8, which reads only the DC scans (`reads_dc_scans_only`)
    in a third of the time of the whole file. Which scale a request decodes at depends on the request
    alone, never on what happens to be kept, so the same URL always renders the same bytes.
    """
    if image.format not in ("JPEG", "MPO"):
        return
    width, height = image.size
    scale = max(resize_scales(*job.region_size(), job.options))
    target = (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))) if scale < 0.5 else None
    eighth = target is not None and draft_scale(image.size, target) == 8
    if shared_pixels and image.info.get("progressive") and not eighth:
        divisor = shared_divisor(width, height, shared_pixels)
        if scale <= 1 / divisor:  # that decode is large enough for this request too
            # Rounded down: draft() divides the source's size by the target's, and ceil(1203 / 2) = 602 goes
            # into 1,203 once.
            target = (max(1, width // divisor), max(1, height // divisor))
    if target is not None:
        image.draft(image.mode, target)


def draft_scale(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The divisor Pillow's draft() decodes a JPEG of `size` at for a `target` (1 for none)."""
    most = min(size[0] // target[0], size[1] // target[1])
    return next((scale for scale in JPEG_SCALES if most >= scale), 1)


def reads_dc_scans_only(image: Image.Image) -> bool:
    """Whether the image is a progressive JPEG drafted to 1/8, whose decode needs only its DC scans."""
    return (isinstance(image, ImageFile.ImageFile) and image.format == "JPEG" and bool(image.info.get("progressive"))
            and image.decoderconfig[:1] == (8,) and len(image.tile) == 1 and image.tile[0][2] == 0)


def shared_divisor(width: int, height: int, pixels: int) -> int:
    """The finest of JPEG's decode scales (1/2, 1/4, 1/8) that leaves at most `pixels`, as its divisor (8 at most).

    A progressive JPEG's decode is mostly its entropy decode, which reads every coefficient whatever the
    scale: a 16 MP photo decodes in ~290 ms at 1/2, 1/4 or 1/8 alike, a 4 MP one in ~40 ms. Decoded at the
    scale of its largest common preview, one decode serves every size a page asks for up to that one
    (previews.imaging.decoded), and the smaller sizes pay only a resize from a few times more pixels.
    """
    for divisor in (2, 4):
        if math.ceil(width / divisor) * math.ceil(height / divisor) <= pixels:
            return divisor
    return 8


def decoder_bytes(image: Image.Image, facts: SourceFacts) -> int:
    """What the decoder allocates beside the image it fills, at the size it will decode (after draft)."""
    own = DECODER_BYTES_PER_PIXEL.get(image.format or "", 0) * image.width * image.height
    if image.format in ("JPEG", "MPO") and image.info.get("progressive"):
        # Pillow's JPEG plugin lists each component as (id, horizontal, vertical, quantisation table).
        sampling = [(layer[1], layer[2]) for layer in getattr(image, "layer", [])]
        own += progressive_jpeg_bytes((facts.width, facts.height), sampling)
    if reads_dc_scans_only(image):
        own += dc_scans_bound(image)
    return own


def dc_scans_bound(image: Image.Image) -> int:
    """The most the cut of an image drafted to 1/8 may hold (`DC_SCANS_BYTES_PER_PIXEL`)."""
    return min(DC_SCANS_MOST_BYTES, DC_SCANS_BYTES_PER_PIXEL * image.width * image.height)


def load_pixels(image: Image.Image) -> Image.Image:
    """Decode the first frame; a damaged or truncated file is an UnsupportedImage."""
    from_file = image if isinstance(image, ImageFile.ImageFile) else None
    source = None
    try:
        if from_file is not None:
            from_file.decodermaxblock = max(from_file.decodermaxblock, DECODE_BLOCK)
            if reads_dc_scans_only(from_file) and from_file.fp is not None:
                cut = dc_scans_only(from_file.fp, dc_scans_bound(from_file))
                if cut is not None:  # the decoder reads the cut; the file is given back below
                    source, from_file.fp = from_file.fp, cut
        image.load()  # the first frame: Image.open leaves every format there (PSD counts layers from 1)
    except Exception as error:
        raise UnsupportedImage(f"the source can't be decoded: {_describe(error)}") from None
    finally:
        if from_file is not None and source is not None:
            from_file.fp = source
    return image


def _describe(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

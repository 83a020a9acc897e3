"""One-call image conversion through previews.conversions.still, and TIFF files made in code for its tests."""

import io
import struct
from pathlib import Path

from PIL import Image

from previews.config import RenderConfig
from previews.conversions.still import Converted, ConvertOptions, convert_image
from previews.render import deadline_after
from tests.support.images import encoded

MEDIA_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


def convert(source: bytes | Path, config: RenderConfig | None = None, seconds: float = 30.0,
            **options: object) -> Converted:
    """Convert `source` (bytes or a file) as the converter route would, with ConvertOptions(**options)."""
    config = config or RenderConfig()
    convert_options = ConvertOptions(**options)
    if isinstance(source, Path):
        with source.open("rb") as file:
            return convert_image(file, convert_options, config, deadline_after(seconds))
    return convert_image(io.BytesIO(source), convert_options, config, deadline_after(seconds))


def result_image(converted: Converted) -> Image.Image:
    """The converted bytes opened with plain Pillow, checked to be the format the media type names."""
    assert converted.data is not None, "the source was passed through, not converted"
    image = Image.open(io.BytesIO(converted.data))
    assert image.format == MEDIA_FORMATS[converted.media_type]
    assert image.size == (converted.width, converted.height)
    image.load()
    return image


def tiff(image: Image.Image, **params: object) -> bytes:
    """`image` written by Pillow as a TIFF with save parameters (compression=..., big_tiff=True, ...)."""
    return encoded(image, "TIFF", **params)


def multipage_tiff(pages: list[Image.Image], **params: object) -> bytes:
    """A TIFF holding `pages` in order."""
    return encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:], **params)


def tiff_claiming(width: int, height: int) -> bytes:
    """A little-endian TIFF whose only directory declares an 8-bit grey `width` x `height` image, and
    whose one strip holds 16 bytes: the header lies, as a decompression bomb's would (TIFF 6.0, section 2).
    """
    tags = [  # (tag, type, value); type 3 is SHORT, 4 is LONG
        (256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
        (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, 16),
    ]
    ifd_offset = 8
    pixels_offset = ifd_offset + 2 + 12 * len(tags) + 4
    entries = b"".join(struct.pack("<HHII", tag, kind, 1, pixels_offset if tag == 273 else value)
                       if kind == 4 else struct.pack("<HHIHH", tag, kind, 1, value, 0)
                       for tag, kind, value in tags)
    return b"II*\0" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(tags)) + entries + bytes(4) + bytes(16)

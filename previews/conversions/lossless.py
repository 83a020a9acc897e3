"""Whether a source was stored without loss, which decides between PNG and JPEG (or WebP).

A lossless source becomes PNG so that converting it loses nothing; a lossy one becomes JPEG, as a
second generation of loss at a high quality costs little and the file is several times smaller.
When a source's coding can't be told, it counts as lossless: more bytes, never lost detail.
"""

from typing import BinaryIO

from PIL import Image

from previews.conversions.jpeg2000 import uses_reversible_wavelet

# Formats whose coding is lossy as a rule (they reach the converter for a page other than the first).
# A WebP can be lossless (VP8L), but the converter only sees its frames, and an animated WebP's
# frames are almost always lossy.
LOSSY_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "AVIF"})
# TIFF compressions (Pillow's names, from the page's Compression tag) that discard detail. Any other
# (none, LZW, Deflate, PackBits, CCITT fax, LZMA, Zstandard...) keeps every value. WebP inside a
# TIFF may be lossless, but GDAL, its main writer, defaults to lossy.
LOSSY_TIFF_COMPRESSIONS = frozenset({"jpeg", "tiff_jpeg", "webp"})


def is_lossless_source(image: Image.Image, file: BinaryIO) -> bool:
    """Whether the current page of `image` (opened from `file`) was coded without loss.

    JPEG 2000 counts as lossless when coded with the reversible 5/3 wavelet, which lossless coding
    requires and which encoders choose for it (OpenJPEG's and Pillow's default; Kakadu and GDAL use
    the 9/7 wavelet for lossy coding). A 5/3 stream cut short by rate control is lossy and still
    becomes PNG: the conversion adds no loss of its own.
    """
    source_format = image.format or ""
    if source_format == "TIFF":
        return image.info.get("compression") not in LOSSY_TIFF_COMPRESSIONS
    if source_format == "JPEG2000":
        return uses_reversible_wavelet(file) is not False
    return source_format not in LOSSY_FORMATS

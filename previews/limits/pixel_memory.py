"""How many bytes images take in memory while a render or a conversion holds them: data for estimates.

Pillow keeps one band in 1 byte (2 for 16-bit grey) and any image of 2 to 4 bands in 4 bytes a
pixel (its Storage.c pads RGB and LA to 32 bits); measured with Image.new on pillow-simd 12.1. The
codec tables are what a decoder or encoder allocates beside Pillow's buffer, per pixel it handles.
"""

import math
from collections.abc import Mapping, Sequence

_ONE_BYTE = frozenset({"1", "L", "P"})
_TWO_BYTES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

# Beside the decoded image, per decoded pixel. WebP (libwebp's RGBA canvas) and AVIF (libavif's YUV
# planes and RGB buffer) decode into their own memory first; OpenJPEG holds 32-bit integers per
# component (up to 4). A progressive JPEG's coefficients are counted apart (progressive_jpeg_bytes).
DECODER_BYTES_PER_PIXEL: Mapping[str, int] = {"WEBP": 4, "AVIF": 8, "JPEG2000": 16}

# Beside the final image, per output pixel: the encoder's working copy (libwebp's ARGB and YUV
# pictures, libavif's YUV planes, a palette or RGB copy for GIF and BMP) and the encoded bytes,
# which a BytesIO may hold twice as it grows.
ENCODER_BYTES_PER_PIXEL: Mapping[str, int] = {
    "jpeg": 2, "webp": 8, "avif": 10, "png": 5, "gif": 3, "tiff": 5, "bmp": 8,
}
DEFAULT_CODEC_BYTES_PER_PIXEL = 8  # any codec not in a table
COEFFICIENT_BLOCK_BYTES = 64 * 2  # libjpeg's JBLOCK: 64 JCOEF of 16 bits
# The images are most of a render's memory, not all: codec state, Python objects and the allocator's
# slack come on top. The model alone came within 1% of the measured peak of a 12 MP resize.
ESTIMATE_MARGIN = 1.1
JOB_OVERHEAD_BYTES = 4 * 1024 * 1024


def bytes_per_pixel(mode: str) -> int:
    """What one pixel of a Pillow image in `mode` takes."""
    if mode in _ONE_BYTE:
        return 1
    if mode in _TWO_BYTES:
        return 2
    return 4


def image_bytes(size: tuple[int, int], mode: str) -> int:
    """Bytes of a `size` image in `mode`."""
    return size[0] * size[1] * bytes_per_pixel(mode)


def progressive_jpeg_bytes(source_size: tuple[int, int], sampling: Sequence[tuple[int, int]]) -> int:
    """libjpeg keeps a progressive JPEG's coefficients, at the source's full resolution whatever the DCT
    scaling, until the last scan: 64 two-byte coefficients per 8x8 block of each component, whose size
    follows its sampling factors (`sampling`: each component's horizontal and vertical factor). So 6
    bytes a pixel for 4:4:4 colour, 3 for 4:2:0, 2 for grey: a 16 MP 4:4:4 source holds 96 MiB."""
    if not sampling:
        sampling = [(1, 1)] * 3  # a header without its components: count them as 4:4:4 colour
    most_h, most_v = max(h for h, _ in sampling), max(v for _, v in sampling)
    total = 0
    for h, v in sampling:
        # Each component's blocks, rounded up to whole multiples of its factors as libjpeg allocates them.
        across = _round_up(math.ceil(source_size[0] * h / (8 * most_h)), h)
        down = _round_up(math.ceil(source_size[1] * v / (8 * most_v)), v)
        total += across * down * COEFFICIENT_BLOCK_BYTES
    return total


def _round_up(count: int, multiple: int) -> int:
    return -(-count // multiple) * multiple

"""Which IIIF requests read a pyramid, and which decode the source itself."""

import math

from previews.iiif.info import TILE_SIZE, scale_factors
from previews.iiif.pixels import KEEPS_COLOURS, NO_ROTATION
from previews.iiif.region import Box
from previews.iiif.request import ImageRequest

# Smaller sources are decoded whole for each request: at 4 MP that is some 30 ms, less than a read
# of the pyramid costs to make.
MIN_PIXELS = 4_000_000
# A JPEG asked at a quarter of its scale or less decodes at 1/4 or 1/8 (DCT scaling): a sixteenth of
# its pixels at most, cheap enough without a pyramid for a gallery's thumbnail. Not for a viewer's
# tile: libjpeg still reads every coefficient of the file (some 40% of a whole decode), and a viewer
# asks several such tiles, then hundreds that need the pyramid anyway.
DCT_SCALE = 0.25
DCT_FORMATS = frozenset({"jpeg"})


def worth_a_pyramid(source_format: str, width: int, height: int, box: Box, size: tuple[int, int]) -> bool:
    """Whether a request of `size` from the region `box` of a `width` x `height` source (of the header's
    format name) is better read from the source's pyramid than decoded from the source itself."""
    if not wants_a_pyramid(width, height):
        return False
    if is_viewer_tile(width, height, box, size):
        return True
    scale = max(size[0] / box[2], size[1] / box[3])
    return not (source_format in DCT_FORMATS and scale <= DCT_SCALE)


def wants_a_pyramid(width: int, height: int) -> bool:
    """Whether deep zoom on a `width` x `height` source reads a pyramid at all (info.json starts it)."""
    return width * height >= MIN_PIXELS


def is_viewer_tile(width: int, height: int, box: Box, size: tuple[int, int]) -> bool:
    """Whether `box` at `size` is one of the tiles info.json announces: a cell of the 512 px grid at one of
    its scale factors, at that factor's size (the height may be rounded either way, as `w,` asks)."""
    for factor in scale_factors(width, height):
        span = TILE_SIZE * factor
        if box[0] % span or box[1] % span:
            continue
        fills_its_cell = box[2] == min(span, width - box[0]) and box[3] == min(span, height - box[1])
        if fills_its_cell and size[0] == math.ceil(box[2] / factor) and abs(size[1] - math.ceil(box[3] / factor)) <= 1:
            return True  # (an edge cell may fill its cell at two factors: each is tried)
    return False


def reads_a_ready_tile(request: ImageRequest, width: int, height: int, box: Box, size: tuple[int, int]) -> bool:
    """Whether the request is a viewer's tile as the pyramid's making encodes it (a JPEG of one of
    info.json's tiles, colours as they are, not turned): then it is its pyramid's ready tile, read
    in place, cheaper than the previews tier would keep it (a file and two index rows for each)."""
    return (request.format == "jpg" and request.quality in KEEPS_COLOURS and request.rotation == NO_ROTATION
            and wants_a_pyramid(width, height) and is_viewer_tile(width, height, box, size))

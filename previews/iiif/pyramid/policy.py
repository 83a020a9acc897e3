"""Which IIIF requests read a pyramid, and which decode the source itself."""

from previews.iiif.region import Box

# Smaller sources are decoded whole for each request: at 4 MP that is some 30 ms, less than a read
# of the pyramid costs to make.
MIN_PIXELS = 4_000_000
# A JPEG asked at a quarter of its scale or less decodes at 1/4 or 1/8 (DCT scaling): a sixteenth of
# its pixels at most, cheap enough without a pyramid. A gallery's thumbnails and a viewer's first,
# zoomed-out screen so never wait for one, and never make one.
DCT_SCALE = 0.25
DCT_FORMATS = frozenset({"jpeg"})


def worth_a_pyramid(source_format: str, width: int, height: int, box: Box, size: tuple[int, int]) -> bool:
    """Whether a request of `size` from the region `box` of a `width` x `height` source (of the header's
    format name) is better read from the source's pyramid than decoded from the source itself."""
    if width * height < MIN_PIXELS:
        return False
    scale = max(size[0] / box[2], size[1] / box[3])
    return not (source_format in DCT_FORMATS and scale <= DCT_SCALE)

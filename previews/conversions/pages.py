"""Pages of a multi-page source (TIFF pages, GIF/WebP/APNG frames, MPO pictures), counted from 0.

Pillow calls them frames. A PSD's frames are its layers, not pages: a PSD has one page, its composite.
"""

from PIL import Image

from previews.errors import UnsupportedImage
from previews.imaging.decode import check_resolution, read_facts
from previews.imaging.job import SourceFacts
from previews.imaging.stages import Stages

SINGLE_PAGE_FORMATS = frozenset({"PSD"})


def select_page(image: Image.Image, page: int, first: SourceFacts, stages: Stages, max_pixels: int) -> SourceFacts:
    """Make `page` the current frame of the opened `image`, check its size, and return its facts
    (`first`, read by open_source, for page 0).

    Raises UnsupportedImage (415) naming the page count when the page doesn't exist. Nothing is
    decoded for a TIFF (each page has its own header, checked against `max_pixels` like the first);
    animated formats decode the frames before `page`, which are no bigger than the checked canvas.
    """
    if page == 0:
        return first
    # One page at a time, with the deadline checked between: reaching page N of a TIFF reads N
    # directories, and of a GIF decodes N frames.
    for frame in range(1, page + 1):
        stages.enter(f"page {frame}")
        if not _seek(image, frame):
            pages = "1 page, page 0" if frame == 1 else f"{frame} pages, 0 to {frame - 1}"
            raise UnsupportedImage(f"page {page} doesn't exist: the source has {pages}")
    check_resolution(image, max_pixels)
    return read_facts(image)


def _seek(image: Image.Image, frame: int) -> bool:
    """Move to `frame`; False past the last page (a single-frame image has only frame 0)."""
    if image.format in SINGLE_PAGE_FORMATS:
        return False
    try:
        image.seek(frame)
    except EOFError:
        return False
    return True

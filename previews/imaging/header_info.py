"""What imgproxy's `/info` answers about a source, read from its header: width, height and format.

Pillow's `Image.open` reads the header and decodes nothing; a file Pillow does not know is tried as a
video, whose frame size PyAV reads from the container's header (previews/video/frame.py), as the
converter does before extracting a frame. Sizes are as stored (EXIF orientation is not applied).
"""

import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from previews.errors import PreviewError, TooManyPixels, UnsupportedImage
from previews.imaging.formats import INPUT_FORMATS

# Pillow's names where imgproxy's differ (imgproxy reports lower-case names, `jpeg` for JPEG).
_IMGPROXY_NAMES = {"MPO": "jpeg", "JPEG2000": "jp2"}


@dataclass(frozen=True)
class HeaderInfo:
    """A source's declared size and format (imgproxy's format names; a video's container type)."""

    width: int
    height: int
    format: str


def read_header_info(file: BinaryIO, video_format: str, max_pixels: int) -> HeaderInfo:
    """Blocking: the header's facts. `video_format` names the format should the file be a video.

    `max_pixels` bounds only what PyAV reads; Pillow's own bomb check refuses absurd image headers.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file, formats=INPUT_FORMATS) as image:
                name = image.format or "unknown"
                return HeaderInfo(image.width, image.height, _IMGPROXY_NAMES.get(name, name.lower()))
    except Image.DecompressionBombError as error:
        raise TooManyPixels(f"source resolution is too large: {error}") from None
    except UnidentifiedImageError:
        pass
    except PreviewError:
        raise
    except Exception as error:  # Pillow's plugins raise many types for a damaged header
        raise UnsupportedImage(f"the source's header can't be read: {type(error).__name__}") from None
    file.seek(0)
    # PyAV is loaded by the first video, not by every process that starts (as in the converter).
    from previews.video.frame import frame_size

    try:
        width, height = frame_size(file, 0, max_pixels)
    except UnsupportedImage:
        raise UnsupportedImage("the source is neither an image nor a video in a supported format") from None
    return HeaderInfo(width, height, video_format)

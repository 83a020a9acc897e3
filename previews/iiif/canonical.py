"""The canonical form of an image request (3.0 section 4.7, 2.1 section 4.7), for the `canonical` Link header,
and the text that names its pixels in the previews-tier key.

Both are worked out from the image's size, as the render does: the region in pixels (`full` when it is
the whole image), the size in pixels (`max` in 3.0, `full` in 2.1, when it is the region at full size;
else `w,h` in 3.0 and `w,` in 2.1), the rotation's shortest number, `default` for the default quality.
The key text is the same for every request that makes the same pixels, in any syntax and either version
(`512,`, `512,512` and `pct:50` of a 1024 px region are one entry).
"""

from previews.iiif.region import Box
from previews.iiif.request import ImageRequest
from previews.iiif.size import SizeLimits


def canonical_request(image: ImageRequest, width: int, height: int, limits: SizeLimits) -> str:
    """`region/size/rotation/quality.format` of `image` on a `width` x `height` image (its 400s first)."""
    box, size = resolved(image, width, height, limits)
    region = "full" if box == (0, 0, width, height) else ",".join(str(value) for value in box)
    if size == (box[2], box[3]):
        size_text = "max" if image.version == 3 else "full"
    else:
        size_text = f"{size[0]},{size[1]}" if image.version == 3 else f"{size[0]},"
    return f"{region}/{size_text}/{image.rotation.canonical()}/{image.quality}.{image.format}"


def pixels_key(image: ImageRequest, width: int, height: int, limits: SizeLimits) -> str:
    """The text of `image`'s pixels in the previews-tier key: region and size in pixels, rotation, quality,
    format. `color` is `default`: both keep the source's colours. Never equal to an imgproxy options text."""
    box, size = resolved(image, width, height, limits)
    quality = "default" if image.quality == "color" else image.quality
    region = ",".join(str(value) for value in box)
    return f"iiif:{region}/{size[0]},{size[1]}/{image.rotation.canonical()}/{quality}.{image.format}"


def resolved(image: ImageRequest, width: int, height: int, limits: SizeLimits) -> tuple[Box, tuple[int, int]]:
    """The region in pixels of a `width` x `height` image and the size it is made at (or a 400)."""
    box = image.region.box(width, height)
    return box, image.size.resolve(box[2], box[3], limits)

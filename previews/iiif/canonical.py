"""The canonical form of an image request (3.0 section 4.7, 2.1 section 4.7), for the `canonical` Link header.

Worked out from the image's size, as the render does: the region in pixels (`full` when it is the whole
image), the size in pixels (`max` in 3.0, `full` in 2.1, when it is the region at full size; else `w,h`
in 3.0 and `w,` in 2.1), the rotation's shortest number, `default` for the default quality.
"""

from previews.iiif.request import ImageRequest
from previews.iiif.size import SizeLimits


def canonical_request(image: ImageRequest, width: int, height: int, limits: SizeLimits) -> str:
    """`region/size/rotation/quality.format` of `image` on a `width` x `height` image (its 400s first)."""
    box = image.region.box(width, height)
    size = image.size.resolve(box[2], box[3], limits)
    region = "full" if box == (0, 0, width, height) else ",".join(str(value) for value in box)
    if size == (box[2], box[3]):
        size_text = "max" if image.version == 3 else "full"
    else:
        size_text = f"{size[0]},{size[1]}" if image.version == 3 else f"{size[0]},"
    return f"{region}/{size_text}/{image.rotation.canonical()}/{image.quality}.{image.format}"

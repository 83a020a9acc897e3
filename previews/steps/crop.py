"""Cropping: the `crop` option on the source, and the cut to the requested box after a fill."""

from PIL import Image

from previews.geometry import fill_down_box, position, result_size
from previews.job import Job
from previews.options import Gravity, GravityType, ResizingType
from previews.smart import most_detailed_position


def crop_source(image: Image.Image, job: Job) -> Image.Image:
    """`crop:w:h:gravity`: keep part of the (upright) source before it is resized."""
    crop = job.options.crop
    if crop is None:
        return image
    # Crop sizes and offsets are source pixels; shrink-on-load may have decoded fewer.
    loaded_scale = image.width / job.upright_size()[0]
    region_w, region_h = job.region_size()
    inner = (min(image.width, max(1, round(region_w * loaded_scale))),
             min(image.height, max(1, round(region_h * loaded_scale))))
    return cut(image, inner, crop.gravity or job.options.gravity, offset_scale=loaded_scale)


def crop_to_result(image: Image.Image, job: Job) -> Image.Image:
    """Cut the requested box out by gravity; only a covering resize (fill, fill-down, auto) exceeds it."""
    options = job.options
    box = result_size(options)
    if options.resizing_type is ResizingType.FILL_DOWN:
        box = fill_down_box(box, image.size)
    inner = (min(box[0] or image.width, image.width), min(box[1] or image.height, image.height))
    return cut(image, inner, options.gravity, offset_scale=options.dpr)


def cut(image: Image.Image, inner: tuple[int, int], gravity: Gravity, offset_scale: float) -> Image.Image:
    """The `inner`-sized part of `image` that `gravity` picks (no copy if it is the whole image)."""
    if inner == image.size:
        return image
    if gravity.type is GravityType.SMART:
        left, top = most_detailed_position(image, inner)
    else:
        left, top = position(image.size, inner, gravity, offset_scale)
    return image.crop((left, top, left + inner[0], top + inner[1]))

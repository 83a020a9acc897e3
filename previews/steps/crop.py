"""Cropping: the `crop` option on the source, and the cut to the requested box after a fill."""

from PIL import Image

from previews.grammar.options import Gravity, GravityType, ResizingType
from previews.imaging.geometry import fill_down_box, position, result_size
from previews.imaging.job import Job
from previews.steps.smart import most_detailed_position


def source_crop_size(loaded: tuple[int, int], job: Job) -> tuple[int, int]:
    """What `crop` keeps of the upright image as decoded (`loaded`: shrink-on-load may have made it smaller)."""
    loaded_scale = loaded[0] / job.upright_size()[0]
    region_w, region_h = job.region_size()
    return (min(loaded[0], max(1, round(region_w * loaded_scale))),
            min(loaded[1], max(1, round(region_h * loaded_scale))))


def crop_source(image: Image.Image, job: Job) -> Image.Image:
    """`crop:w:h:gravity`: keep part of the (upright) source before it is resized."""
    crop = job.options.crop
    if crop is None:
        return image
    # Crop sizes and offsets are source pixels; shrink-on-load may have decoded fewer.
    loaded_scale = image.width / job.upright_size()[0]
    inner = source_crop_size(image.size, job)
    return cut(image, inner, crop.gravity or job.options.gravity, offset_scale=loaded_scale)


def result_crop_size(resized: tuple[int, int], job: Job) -> tuple[int, int]:
    """The requested box within the `resized` image: smaller only after a covering resize (fill, fill-down, auto)."""
    options = job.options
    box = result_size(options)
    if options.resizing_type is ResizingType.FILL_DOWN:
        box = fill_down_box(box, resized)
    return min(box[0] or resized[0], resized[0]), min(box[1] or resized[1], resized[1])


def crop_to_result(image: Image.Image, job: Job) -> Image.Image:
    """Cut the requested box out by gravity."""
    return cut(image, result_crop_size(image.size, job), job.options.gravity, offset_scale=job.options.dpr)


def cut(image: Image.Image, inner: tuple[int, int], gravity: Gravity, offset_scale: float) -> Image.Image:
    """The `inner`-sized part of `image` that `gravity` picks (no copy if it is the whole image)."""
    if inner == image.size:
        return image
    if gravity.type is GravityType.SMART:
        left, top = most_detailed_position(image, inner)
    else:
        left, top = position(image.size, inner, gravity, offset_scale)
    return image.crop((left, top, left + inner[0], top + inner[1]))

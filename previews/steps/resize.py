"""Scaling with pillow-simd's SIMD Lanczos, by the factors imgproxy's rules give."""

from PIL import Image

from previews.imaging.geometry import resize_scales, scale_round
from previews.imaging.job import Job

# Pillow first reduces by a whole factor with a box filter while the image stays this many times
# larger than the target, then resamples; at 3 the result can't be told from a full Lanczos pass
# (Pillow's Image.resize documentation) and a 20 MP source is much cheaper.
REDUCING_GAP = 3.0


def resize_target(job: Job) -> tuple[int, int]:
    """The size `resize` makes, from the full-resolution region whatever shrink-on-load decoded."""
    width, height = job.region_size()
    x_scale, y_scale = resize_scales(width, height, job.options)
    return scale_round(width, x_scale), scale_round(height, y_scale)


def resize(image: Image.Image, job: Job) -> Image.Image:
    """Resize to the requested size; the crop to the box (for fill) comes after."""
    target = resize_target(job)
    if target == image.size:
        return image
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)

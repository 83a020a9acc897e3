"""The render pipeline: small pure steps in the order they run (imgproxy's processing/pipeline.go).

Decoding (with shrink-on-load) comes before and encoding after; the deadline is checked between steps.
"""

from collections.abc import Callable

from PIL import Image

from previews.imaging.job import Job
from previews.steps.canvas import extend, flatten, pad
from previews.steps.colour import to_8bit, to_srgb
from previews.steps.crop import crop_source, crop_to_result
from previews.steps.filters import blur_and_sharpen
from previews.steps.orient import orient
from previews.steps.resize import resize

Step = Callable[[Image.Image, Job], Image.Image]

STEPS: tuple[Step, ...] = (
    orient,            # EXIF orientation, rotate, flip
    to_8bit,           # 16-bit, float, palettes and odd modes to L, RGB or RGBA
    to_srgb,           # CMYK and ICC profiles to sRGB
    crop_source,       # the `crop` option, on the upright source
    resize,            # pillow-simd Lanczos
    crop_to_result,    # fill: cut the box out by gravity (compass, focus point or smart)
    blur_and_sharpen,
    extend,            # grow to the box when asked
    pad,               # padding around the result
    flatten,           # transparency onto the background where the format has no alpha
)

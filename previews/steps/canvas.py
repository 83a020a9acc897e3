"""Growing and flattening the canvas: `extend`, `padding`, and the background under transparency."""

from PIL import Image

from previews.geometry import position, result_size
from previews.job import Job

WHITE = (255, 255, 255)


def extend(image: Image.Image, job: Job) -> Image.Image:
    """`extend`: place a smaller result on a canvas the size of the requested box, by gravity."""
    options = job.options
    box_w, box_h = result_size(options)
    if not options.extend or not box_w or not box_h or (box_w <= image.width and box_h <= image.height):
        return image
    outer = (max(box_w, image.width), max(box_h, image.height))
    left, top = position(outer, image.size, options.extend_gravity, options.dpr)
    return _place(image, outer, (left, top), job)


def pad(image: Image.Image, job: Job) -> Image.Image:
    """`padding`: add space around the result, scaled by dpr."""
    padding = job.options.padding
    if padding is None:
        return image
    dpr = job.options.dpr
    top, right, bottom, left = (round(side * dpr) for side in
                                (padding.top, padding.right, padding.bottom, padding.left))
    if not any((top, right, bottom, left)):
        return image
    outer = (image.width + left + right, image.height + top + bottom)
    return _place(image, outer, (left, top), job)


def flatten(image: Image.Image, job: Job) -> Image.Image:
    """Lay transparency on the background: always for formats without alpha, or when `bg` is set."""
    if "A" not in image.mode:
        return image
    if job.output.keeps_alpha and job.options.background is None:
        return image
    background = Image.new("RGB", image.size, job.options.background or WHITE)
    background.paste(image, mask=image.getchannel("A"))
    return background


def _place(image: Image.Image, outer: tuple[int, int], at: tuple[int, int], job: Job) -> Image.Image:
    """`image` on a new canvas: the background colour, or transparent where the output keeps alpha."""
    color = job.options.background
    if color is None and job.output.keeps_alpha:
        canvas = Image.new("RGBA", outer, (0, 0, 0, 0))
        canvas.paste(image.convert("RGBA") if image.mode != "RGBA" else image, at)
        return canvas
    mode = "L" if image.mode == "L" and color is None else "RGB"
    canvas = Image.new(mode, outer, color or (WHITE if mode == "RGB" else 255))
    canvas.paste(image, at, mask=image.getchannel("A") if "A" in image.mode else None)
    return canvas

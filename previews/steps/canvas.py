"""Growing and flattening the canvas: `extend`, `padding`, and the background under transparency."""

from PIL import Image

from previews.imaging.geometry import position, result_size
from previews.imaging.job import Job

WHITE = (255, 255, 255)


def extended_size(size: tuple[int, int], job: Job) -> tuple[int, int] | None:
    """The canvas `extend` puts an image of `size` on, or None when it leaves the image as it is."""
    options = job.options
    box_w, box_h = result_size(options)
    if not options.extend or not box_w or not box_h or (box_w <= size[0] and box_h <= size[1]):
        return None
    return max(box_w, size[0]), max(box_h, size[1])


def extend(image: Image.Image, job: Job) -> Image.Image:
    """`extend`: place a smaller result on a canvas the size of the requested box, by gravity."""
    outer = extended_size(image.size, job)
    if outer is None:
        return image
    left, top = position(outer, image.size, job.options.extend_gravity, job.options.dpr)
    return _place(image, outer, (left, top), job)


def padding_pixels(job: Job) -> tuple[int, int, int, int]:
    """`padding` in output pixels (scaled by dpr): top, right, bottom, left."""
    padding, dpr = job.options.padding, job.options.dpr
    if padding is None:
        return 0, 0, 0, 0
    top, right, bottom, left = (round(side * dpr) for side in
                                (padding.top, padding.right, padding.bottom, padding.left))
    return top, right, bottom, left


def padded_size(size: tuple[int, int], job: Job) -> tuple[int, int] | None:
    """The canvas `pad` puts an image of `size` on, or None without padding."""
    top, right, bottom, left = padding_pixels(job)
    if not any((top, right, bottom, left)):
        return None
    return size[0] + left + right, size[1] + top + bottom


def pad(image: Image.Image, job: Job) -> Image.Image:
    """`padding`: add space around the result, scaled by dpr."""
    outer = padded_size(image.size, job)
    if outer is None:
        return image
    top, _, _, left = padding_pixels(job)
    return _place(image, outer, (left, top), job)


def needs_flatten(mode: str, job: Job) -> bool:
    """Whether `flatten` lays an image of `mode` on a new background canvas."""
    if "A" not in mode:
        return False
    return not (job.output.keeps_alpha and job.options.background is None)


def flatten(image: Image.Image, job: Job) -> Image.Image:
    """Lay transparency on the background: always for formats without alpha, or when `bg` is set."""
    if not needs_flatten(image.mode, job):
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

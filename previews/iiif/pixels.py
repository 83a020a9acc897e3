"""The pixel steps after the region and size (sections 4.3 and 4.4): mirror, rotate, then quality."""

import math

from PIL import Image

from previews.iiif.rotation import Rotation

# Clockwise quarter turns as Pillow's transposes (Pillow's ROTATE_* turn counter-clockwise).
_QUARTERS = {1: Image.Transpose.ROTATE_270, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_90}
WHITE = (255, 255, 255)
NO_ROTATION = Rotation()
KEEPS_COLOURS = frozenset({"default", "color"})  # the qualities that leave the pixels as they are


def rotate(image: Image.Image, rotation: Rotation, keeps_alpha: bool) -> Image.Image:
    """Mirror, then turn clockwise. An angle between quarter turns grows the canvas to hold the whole
    image; the corners are transparent where the format keeps alpha, else white."""
    if rotation.mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    turns = rotation.quarter_turns
    if turns == 0:
        return image
    if turns is not None:
        return image.transpose(_QUARTERS[turns])
    if keeps_alpha:
        image = image.convert("RGBA") if image.mode != "RGBA" else image
        fill: int | tuple[int, ...] = (0, 0, 0, 0)
    else:
        fill = 255 if image.mode == "L" else WHITE
    return image.rotate(-rotation.degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def apply_quality(image: Image.Image, quality: str, keeps_alpha: bool) -> Image.Image:
    """`default` and `color` keep the colours; `gray` makes grey; `bitonal` black and white only."""
    if quality == "gray":
        return image.convert("LA" if keeps_alpha and "A" in image.mode else "L")
    if quality == "bitonal":
        return image.convert("L").convert("1")
    return image


def rotated_size(width: int, height: int, rotation: Rotation) -> tuple[int, int]:
    """The canvas a rotation of a `width` x `height` image makes (for the limits, before any pixel)."""
    turns = rotation.quarter_turns
    if turns is not None:
        return (height, width) if turns % 2 else (width, height)
    radians = math.radians(rotation.degrees)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    return math.ceil(width * cos + height * sin), math.ceil(width * sin + height * cos)

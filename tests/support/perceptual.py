"""Perceptual comparison of images, so render tests compare what a viewer sees and never bytes.

Plain Pillow (ImageChops, ImageStat, ImageFilter) and pure Python; no numpy. Every measure works on
levels 0..255: 0 means "the same", and two unrelated photographs typically differ by 30 or more.
"""

from PIL import Image, ImageChops, ImageFilter, ImageStat

WHITE = (255, 255, 255)
# SSIM's stabilising constants for 8-bit data (Wang et al. 2004: K1 = 0.01, K2 = 0.03, L = 255).
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def flattened(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """`image` as opaque 8-bit RGB, any transparency laid over `background`."""
    if image.mode == "RGB":
        return image
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, background)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    if image.mode.startswith("I") or image.mode == "F":
        raise ValueError(f"compare 8-bit images only, not {image.mode}")
    return image.convert("RGB")


def mean_abs_diff(first: Image.Image, second: Image.Image, size: tuple[int, int] | None = None) -> float:
    """Mean absolute difference per RGB channel (0..255) of two images of one size, or both resized to `size`."""
    a, b = flattened(first), flattened(second)
    if size is not None:
        a, b = a.resize(size, Image.Resampling.BOX), b.resize(size, Image.Resampling.BOX)
    if a.size != b.size:
        raise ValueError(f"sizes differ: {a.size} and {b.size}; pass `size` to compare at one size")
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def grey_thumbnail(image: Image.Image, side: int = 64) -> Image.Image:
    """A `side` x `side` greyscale average of the image (area averaging, aspect ratio ignored)."""
    return flattened(image).convert("L").resize((side, side), Image.Resampling.BOX)


def ssim(first: Image.Image, second: Image.Image, side: int = 64, window: int = 8) -> float:
    """Structural similarity (-1..1, 1 for the same picture) of greyscale thumbnails, mean over windows."""
    a = list(grey_thumbnail(first, side).tobytes())
    b = list(grey_thumbnail(second, side).tobytes())
    scores = []
    for top in range(0, side - window + 1, window):
        for left in range(0, side - window + 1, window):
            xs = [a[(top + row) * side + left + col] for row in range(window) for col in range(window)]
            ys = [b[(top + row) * side + left + col] for row in range(window) for col in range(window)]
            scores.append(_window_ssim(xs, ys))
    return sum(scores) / len(scores)


def _window_ssim(xs: list[int], ys: list[int]) -> float:
    count = len(xs)
    mean_x, mean_y = sum(xs) / count, sum(ys) / count
    var_x = sum((x - mean_x) ** 2 for x in xs) / (count - 1)
    var_y = sum((y - mean_y) ** 2 for y in ys) / (count - 1)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / (count - 1)
    return ((2 * mean_x * mean_y + _C1) * (2 * cov + _C2)) / ((mean_x ** 2 + mean_y ** 2 + _C1) * (var_x + var_y + _C2))


def edge_energy(image: Image.Image) -> float:
    """Mean edge strength (0..255) of the greyscale image: higher when sharper or more detailed."""
    grey = flattened(image).convert("L")
    edges = grey.filter(ImageFilter.FIND_EDGES)
    # The filter's kernel runs off the image at its border: leave that 1-pixel frame out.
    inner = edges.crop((1, 1, max(2, edges.width - 1), max(2, edges.height - 1)))
    return ImageStat.Stat(inner).mean[0]


def mean_colour(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> tuple[float, float, float]:
    """Mean RGB of the image, or of `box` (left, top, right, bottom) in it."""
    rgb = flattened(image)
    if box is not None:
        rgb = rgb.crop(box)
    red, green, blue = ImageStat.Stat(rgb).mean
    return red, green, blue


def colour_distance(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    """Largest per-channel difference of two colours."""
    return max(abs(x - y) for x, y in zip(first, second, strict=True))


def brightness(image: Image.Image) -> float:
    """Mean grey level (0..255)."""
    return ImageStat.Stat(flattened(image).convert("L")).mean[0]

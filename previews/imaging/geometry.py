"""Pure arithmetic of sizes and positions, after imgproxy's processing/prepare.go and calc_position.go."""


from previews.grammar.options import Gravity, GravityType, ProcessingOptions, ResizingType


def scale_round(value: float, factor: float) -> int:
    """`value * factor` rounded, never below 1 for a non-zero value."""
    return max(1, round(value * factor)) if value else 0


def resize_scales(width: int, height: int, options: ProcessingOptions) -> tuple[float, float]:
    """Horizontal and vertical scale factors that take a `width` x `height` image to the request.

    The resizing type decides how the box is met (fit inside, fill it, force both sides); a 0 side
    follows the aspect ratio; dpr and zoom multiply; without `enlarge` nothing grows.
    """
    dst_w = options.width or width
    dst_h = options.height or height
    w_shrink = 1.0 if dst_w == width else width / dst_w
    h_shrink = 1.0 if dst_h == height else height / dst_h
    if w_shrink != 1 or h_shrink != 1:
        kind = options.resizing_type
        if kind is ResizingType.AUTO:
            # Same orientation (both landscape or both portrait): fill; otherwise fit.
            same = (width >= height) == (dst_w >= dst_h)
            kind = ResizingType.FILL if same else ResizingType.FIT
        if options.width == 0 and kind is not ResizingType.FORCE:
            w_shrink = h_shrink
        elif options.height == 0 and kind is not ResizingType.FORCE:
            h_shrink = w_shrink
        elif kind is ResizingType.FIT:
            w_shrink = h_shrink = max(w_shrink, h_shrink)
        elif kind in (ResizingType.FILL, ResizingType.FILL_DOWN):
            w_shrink = h_shrink = min(w_shrink, h_shrink)
    # Zoom and dpr come before the no-enlarge check (imgproxy's calcScale): neither may grow an image
    # unless `enlarge` is on.
    w_shrink /= options.dpr * options.zoom_x
    h_shrink /= options.dpr * options.zoom_y
    if not options.enlarge:
        smallest = min(w_shrink, h_shrink)
        if smallest < 1:
            w_shrink /= smallest
            h_shrink /= smallest
    if options.min_width and width / options.min_width < w_shrink:
        limit = width / options.min_width
        h_shrink /= w_shrink / limit
        w_shrink = limit
    if options.min_height and height / options.min_height < h_shrink:
        limit = height / options.min_height
        w_shrink /= h_shrink / limit
        h_shrink = limit
    return 1 / w_shrink, 1 / h_shrink


def result_size(options: ProcessingOptions) -> tuple[int, int]:
    """The box the request asks for in output pixels (0 where a side is free)."""
    return (scale_round(options.width, options.dpr * options.zoom_x),
            scale_round(options.height, options.dpr * options.zoom_y))


def fill_down_box(box: tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int]:
    """`fill-down`: a box larger than the image shrinks to the image, keeping its aspect ratio."""
    (box_w, box_h), (width, height) = box, image_size
    if not box_w or not box_h:
        return box
    over_w, over_h = box_w / width, box_h / height
    if over_w > over_h and over_w > 1:
        return width, round(width * box_h / box_w)
    if over_h > over_w and over_h > 1:
        return round(height * box_w / box_h), height
    return box


def position(outer: tuple[int, int], inner: tuple[int, int], gravity: Gravity,
             offset_scale: float = 1.0) -> tuple[int, int]:
    """Top-left of an `inner` box placed in an `outer` one by `gravity`, kept inside it."""
    (width, height), (inner_w, inner_h) = outer, inner
    kind = gravity.type
    if kind is GravityType.FOCUS_POINT:
        left = round(width * gravity.x) - inner_w // 2
        top = round(height * gravity.y) - inner_h // 2
    else:
        # Offsets below 1 are shares of the side (current imgproxy); larger ones are pixels.
        off_x = round(gravity.x * width) if abs(gravity.x) < 1 else round(gravity.x * offset_scale)
        off_y = round(gravity.y * height) if abs(gravity.y) < 1 else round(gravity.y * offset_scale)
        left = (width - inner_w + 1) // 2 + off_x
        top = (height - inner_h + 1) // 2 + off_y
        if kind in (GravityType.NORTH, GravityType.NORTH_EAST, GravityType.NORTH_WEST):
            top = off_y
        if kind in (GravityType.SOUTH, GravityType.SOUTH_EAST, GravityType.SOUTH_WEST):
            top = height - inner_h - off_y
        if kind in (GravityType.EAST, GravityType.NORTH_EAST, GravityType.SOUTH_EAST):
            left = width - inner_w - off_x
        if kind in (GravityType.WEST, GravityType.NORTH_WEST, GravityType.SOUTH_WEST):
            left = off_x
    left = max(0, min(left, width - inner_w))
    top = max(0, min(top, height - inner_h))
    return left, top


def crop_box_size(crop_w: float, crop_h: float, width: int, height: int) -> tuple[int, int]:
    """A crop option's size in pixels: fractions below 1 are shares of the side, 0 is the whole side."""
    def side(value: float, full: int) -> int:
        if value <= 0:
            return full
        pixels = round(value * full) if value < 1 else round(value)
        return max(1, min(pixels, full))
    return side(crop_w, width), side(crop_h, height)

"""Smart gravity: where a crop keeps the most detail (edges), found on a small grey thumbnail."""

from PIL import Image, ImageFilter

# Detail is judged at this size: cheap, and fine enough to place a crop.
PROBE_SIDE = 128


def most_detailed_position(image: Image.Image, inner: tuple[int, int]) -> tuple[int, int]:
    """Top-left of the `inner`-sized window of `image` holding the most edge energy."""
    width, height = image.size
    inner_w, inner_h = inner
    if inner_w >= width and inner_h >= height:
        return 0, 0
    ratio = min(1.0, PROBE_SIDE / max(width, height))
    probe_w, probe_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    edges = image.convert("L").resize((probe_w, probe_h), Image.Resampling.BILINEAR).filter(ImageFilter.FIND_EDGES)
    # BOX-resizing to one row (or column) gives each column's (row's) mean edge strength.
    columns = list(edges.resize((probe_w, 1), Image.Resampling.BOX).tobytes())
    rows = list(edges.resize((1, probe_h), Image.Resampling.BOX).tobytes())
    left = _best_window(columns, round(inner_w * ratio)) / ratio
    top = _best_window(rows, round(inner_h * ratio)) / ratio
    return max(0, min(round(left), width - inner_w)), max(0, min(round(top), height - inner_h))


def _best_window(weights: list[int], window: int) -> int:
    """Start of the `window`-long run of `weights` with the largest sum (the earliest on a tie)."""
    if window <= 0 or window >= len(weights):
        return 0
    total = best = sum(weights[:window])
    best_start = 0
    for start in range(1, len(weights) - window + 1):
        total += weights[start + window - 1] - weights[start - 1]
        if total > best:
            best, best_start = total, start
    return best_start

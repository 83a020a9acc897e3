"""The region parameter: `full`, `square`, `x,y,w,h` and `pct:x,y,w,h` (Image API 2.1 and 3.0, section 4.1).

A region that reaches past the image is cut to it; one that lies wholly outside it, or is empty, is a 400.
"""

from dataclasses import dataclass

from previews.iiif.errors import InvalidIiifRequest
from previews.iiif.numbers import decimal, shortest, whole

Box = tuple[int, int, int, int]  # left, top, width, height, in the full image's pixels


@dataclass(frozen=True)
class Region:
    """A parsed region: `kind` is full, square, pixels or percent; `values` are x, y, w, h when given."""

    kind: str
    values: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def canonical(self) -> str:
        """The region as one text per meaning, for cache keys."""
        if self.kind in ("full", "square"):
            return self.kind
        numbers = ",".join(shortest(value) for value in self.values)
        return f"pct:{numbers}" if self.kind == "percent" else numbers

    def box(self, width: int, height: int) -> Box:
        """The region in pixels of a `width` x `height` image, cut to it."""
        if self.kind == "full":
            return 0, 0, width, height
        if self.kind == "square":
            side = min(width, height)
            return (width - side) // 2, (height - side) // 2, side, side
        x, y, w, h = self.values
        if self.kind == "percent":
            x, w = x * width / 100, w * width / 100
            y, h = y * height / 100, h * height / 100
        left, top = round(x), round(y)
        right, bottom = min(width, round(x + w)), min(height, round(y + h))
        if left >= width or top >= height:
            raise InvalidIiifRequest(f"region {self.canonical()} lies outside the {width}x{height} image")
        if right <= left or bottom <= top:
            raise InvalidIiifRequest(f"region {self.canonical()} is empty")
        return left, top, right - left, bottom - top


def parse_region(text: str) -> Region:
    """The region parameter, or InvalidIiifRequest (400)."""
    if text in ("full", "square"):
        return Region(text)
    percent = text.startswith("pct:")
    parts = (text[4:] if percent else text).split(",")
    if len(parts) != 4:
        raise InvalidIiifRequest(f"region {text[:40]!r}: expected full, square, x,y,w,h or pct:x,y,w,h")
    if percent:
        x, y, w, h = (decimal(part, "region") for part in parts)
    else:
        x, y, w, h = (float(whole(part, "region")) for part in parts)
    if w <= 0 or h <= 0:
        raise InvalidIiifRequest(f"region {text[:40]!r}: width and height must be above 0")
    return Region("percent" if percent else "pixels", (x, y, w, h))

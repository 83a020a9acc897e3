"""The size parameter (section 4.2): `max`, `w,`, `,h`, `pct:n`, `w,h`, `!w,h`; `full` in 2.1; the `^` forms in 3.0.

In 2.1 a size may pass the region's (the `sizeAboveFull` feature); in 3.0 only a `^` form may, and any
other that would is a 400, as the validator expects (`!w,h` included). `max` (and `^max`) is the region
at full size, made smaller if it passes the server's limits; it is never made larger.
"""

import math
from dataclasses import dataclass

from previews.config import RenderConfig
from previews.iiif.errors import InvalidIiifRequest
from previews.iiif.numbers import decimal, shortest, whole


@dataclass(frozen=True)
class SizeLimits:
    """The server's limits on a result, as info.json's maxWidth, maxHeight and maxArea (0: none)."""

    max_width: int = 0
    max_height: int = 0
    max_area: int = 0


@dataclass(frozen=True)
class Size:
    """A parsed size: `kind` is max, width, height, percent, exact or confined."""

    kind: str
    upscale: bool  # may pass the region's size
    width: int = 0
    height: int = 0
    percent: float = 0.0

    def canonical(self) -> str:
        """The size as one text per meaning, for cache keys."""
        mark = "^" if self.upscale else ""
        text = {"max": "max", "width": f"{self.width},", "height": f",{self.height}",
                "percent": f"pct:{shortest(self.percent)}", "exact": f"{self.width},{self.height}",
                "confined": f"!{self.width},{self.height}"}[self.kind]
        return mark + text

    def resolve(self, region_width: int, region_height: int, limits: SizeLimits) -> tuple[int, int]:
        """The result's width and height for a region of that size, or InvalidIiifRequest (400)."""
        if self.kind == "max":
            return _within_limits(region_width, region_height, limits)
        width, height = self._asked(region_width, region_height)
        if width < 1 or height < 1:
            raise InvalidIiifRequest(f"size {self.canonical()} makes an empty image")
        if not self.upscale and (width > region_width or height > region_height):
            raise InvalidIiifRequest(f"size {self.canonical()} is larger than the {region_width}x{region_height}"
                                     " region: ask with ^ to upscale")
        _check_limits(width, height, limits)
        return width, height

    def _asked(self, region_width: int, region_height: int) -> tuple[int, int]:
        if self.kind == "width":
            return self.width, round(region_height * self.width / region_width)
        if self.kind == "height":
            return round(region_width * self.height / region_height), self.height
        if self.kind == "percent":
            return round(region_width * self.percent / 100), round(region_height * self.percent / 100)
        if self.kind == "exact":
            return self.width, self.height
        scale = min(self.width / region_width, self.height / region_height)
        return (min(self.width, max(1, round(region_width * scale))),
                min(self.height, max(1, round(region_height * scale))))


def parse_size(text: str, version: int) -> Size:
    """The size parameter of Image API `version` (2 or 3), or InvalidIiifRequest (400)."""
    upscale = version == 2  # 2.1 servers with sizeAboveFull scale up any form
    body = text
    if text.startswith("^"):
        if version == 2:
            raise InvalidIiifRequest("size: the ^ forms are Image API 3.0's")
        upscale, body = True, text[1:]
    if body == "max" or (body == "full" and version == 2):
        return Size("max", upscale)
    if body == "full":
        raise InvalidIiifRequest("size: Image API 3.0 has max in place of full")
    if body.startswith("pct:"):
        percent = decimal(body[4:], "size")
        if percent <= 0:
            raise InvalidIiifRequest("size: the percentage must be above 0")
        return Size("percent", upscale, percent=percent)
    confined = body.startswith("!")
    parts = (body[1:] if confined else body).split(",")
    if len(parts) != 2 or not any(parts):
        raise InvalidIiifRequest(f"size {text[:40]!r}: expected max, w,, ,h, pct:n, w,h or !w,h")
    width = whole(parts[0], "size") if parts[0] else 0
    height = whole(parts[1], "size") if parts[1] else 0
    if confined and not (parts[0] and parts[1]):
        raise InvalidIiifRequest("size: !w,h needs both a width and a height")
    if (parts[0] and width == 0) or (parts[1] and height == 0):
        raise InvalidIiifRequest("size: a width or height must be above 0")
    kind = "confined" if confined else "exact" if parts[0] and parts[1] else "width" if parts[0] else "height"
    return Size(kind, upscale, width, height)


def _within_limits(width: int, height: int, limits: SizeLimits) -> tuple[int, int]:
    """The size, made smaller (aspect kept) until it passes no limit."""
    scale = 1.0
    if limits.max_width:
        scale = min(scale, limits.max_width / width)
    if limits.max_height:
        scale = min(scale, limits.max_height / height)
    if limits.max_area:
        scale = min(scale, math.sqrt(limits.max_area / (width * height)))
    if scale >= 1.0:
        return width, height
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def _check_limits(width: int, height: int, limits: SizeLimits) -> None:
    if limits.max_width and width > limits.max_width:
        raise InvalidIiifRequest(f"size: {width} px wide is over maxWidth {limits.max_width}")
    if limits.max_height and height > limits.max_height:
        raise InvalidIiifRequest(f"size: {height} px high is over maxHeight {limits.max_height}")
    if limits.max_area and width * height > limits.max_area:
        raise InvalidIiifRequest(f"size: {width}x{height} is over maxArea {limits.max_area}")


def size_limits(config: RenderConfig) -> SizeLimits:
    """The limits a render already has (IMGPROXY_MAX_RESULT_DIMENSION a side, IMGPROXY_MAX_RESULT_RESOLUTION
    in pixels), as IIIF's maxWidth, maxHeight and maxArea."""
    side = config.max_result_dimension
    return SizeLimits(side, side, config.max_result_resolution)

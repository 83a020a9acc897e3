"""Processing options as frozen values: what a preview URL asks for, after presets and defaults.

Names and semantics are imgproxy's (https://docs.imgproxy.net/usage/processing). Parsing lives in
previews.grammar.option_table; nothing here does I/O.
"""

from dataclasses import dataclass, field, fields
from enum import StrEnum


class ResizingType(StrEnum):
    """How the image fits the requested box."""

    FIT = "fit"
    FILL = "fill"
    FILL_DOWN = "fill-down"
    FORCE = "force"
    AUTO = "auto"


class GravityType(StrEnum):
    """Which part of the image is kept when it is cropped, or where it sits when it is extended."""

    CENTER = "ce"
    NORTH = "no"
    SOUTH = "so"
    EAST = "ea"
    WEST = "we"
    NORTH_EAST = "noea"
    NORTH_WEST = "nowe"
    SOUTH_EAST = "soea"
    SOUTH_WEST = "sowe"
    SMART = "sm"
    FOCUS_POINT = "fp"


@dataclass(frozen=True)
class Gravity:
    """A gravity type and its offsets: pixels for compass points, fractions (0..1) for `fp`."""

    type: GravityType = GravityType.CENTER
    x: float = 0.0
    y: float = 0.0


@dataclass(frozen=True)
class Crop:
    """Crop of the source before resizing. Sizes below 1 are fractions of the source; 0 keeps it all."""

    width: float = 0.0
    height: float = 0.0
    gravity: Gravity | None = None  # None: the main gravity


@dataclass(frozen=True)
class Padding:
    """Space added around the result, in CSS order, before the dpr is applied."""

    top: int = 0
    right: int = 0
    bottom: int = 0
    left: int = 0


@dataclass(frozen=True)
class ProcessingOptions:
    """Everything a preview URL can set. Defaults are imgproxy's."""

    resizing_type: ResizingType = ResizingType.FIT
    width: int = 0
    height: int = 0
    min_width: int = 0
    min_height: int = 0
    zoom_x: float = 1.0
    zoom_y: float = 1.0
    dpr: float = 1.0
    enlarge: bool = False
    extend: bool = False
    extend_gravity: Gravity = field(default_factory=Gravity)
    gravity: Gravity = field(default_factory=Gravity)
    crop: Crop | None = None
    padding: Padding | None = None
    rotate: int = 0
    auto_rotate: bool = True
    flip_horizontal: bool = False
    flip_vertical: bool = False
    background: tuple[int, int, int] | None = None
    blur: float = 0.0
    sharpen: float = 0.0
    quality: int = 0
    format: str | None = None
    strip_metadata: bool = True
    strip_color_profile: bool = True
    cachebuster: str = ""
    expires: int | None = None
    filename: str | None = None
    return_attachment: bool = False

    def canonical(self) -> str:
        """A stable text of every option that changes the image's bytes: part of the previews-cache key.

        Expiry, filename and attachment only change response headers, so equal images share an entry.
        Nested values are frozen dataclasses, whose repr is stable too.
        """
        return repr(tuple(getattr(self, name) for name in _IMAGE_FIELDS))


# Every field but the trailing three (expires, filename, return_attachment), which don't touch pixels.
_IMAGE_FIELDS = tuple(f.name for f in fields(ProcessingOptions))[:-3]

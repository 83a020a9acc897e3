"""Where in a video to take a frame: the `<pos>` of `/image-converter/videoframe/<pos>/<source>`.

| form    | meaning                                   | example | notes                                        |
|---------|-------------------------------------------|---------|----------------------------------------------|
| `<N>p`  | N percent of the video stream's duration  | `33p`   | 0 to 100, decimals allowed; 100p is the last frame |
| `<X>s`  | X seconds from the stream's first frame   | `12.5s` | decimals allowed; the frame on screen at X s |
| `<N>f`  | the frame with index N, counted from 0     | `120f`  | whole numbers only; in display order         |

`p` and `s` pick the frame on screen at that instant: the last one whose presentation time is at or
before it. A position past the end (`200p`, `99s` in a 4 s video, `500f` in a 100-frame video) is
refused by the decoder (415), since only the file knows its length. A malformed position is a 400.
Parsing does no I/O.
"""

import re
from dataclasses import dataclass
from typing import Literal

from previews.errors import InvalidOption

PositionKind = Literal["percent", "seconds", "frame"]

_KINDS: dict[str, PositionKind] = {"p": "percent", "s": "seconds", "f": "frame"}
# Plain decimals only: no sign, exponent, `inf` or `nan` (float() would take them all).
_FORM = re.compile(r"(?P<number>\d{1,12}(?:\.\d{1,9})?)(?P<unit>[psf])")


@dataclass(frozen=True)
class FramePosition:
    """A parsed `<pos>`: percent of the duration, seconds from the start, or a frame index."""

    kind: PositionKind
    value: float

    def __str__(self) -> str:
        unit = {kind: unit for unit, kind in _KINDS.items()}[self.kind]
        return f"{int(self.value) if self.kind == 'frame' else f'{self.value:g}'}{unit}"


def parse_frame_position(text: str) -> FramePosition:
    """`33p`, `12.5s` or `120f` as a FramePosition; anything else is an InvalidOption (400)."""
    match = _FORM.fullmatch(text)
    if match is None:
        raise InvalidOption(f"invalid video position {text[:40]!r}: expected <percent>p, <seconds>s or <frame>f")
    number, kind = match["number"], _KINDS[match["unit"]]
    if kind == "frame" and "." in number:
        raise InvalidOption(f"invalid video position {text!r}: a frame index is a whole number")
    return FramePosition(kind, float(number))

"""The rotation parameter (section 4.3): degrees clockwise from 0 to 360, `!` first to mirror beforehand."""

from dataclasses import dataclass

from previews.iiif.errors import InvalidIiifRequest
from previews.iiif.numbers import decimal, shortest


@dataclass(frozen=True)
class Rotation:
    """Mirror (left to right) first, then turn `degrees` clockwise (0 <= degrees < 360)."""

    mirror: bool = False
    degrees: float = 0.0

    def canonical(self) -> str:
        """The rotation as one text per meaning (360 is 0), for cache keys."""
        return ("!" if self.mirror else "") + shortest(self.degrees)

    @property
    def quarter_turns(self) -> int | None:
        """How many quarter turns clockwise, or None for an angle between them."""
        turns = self.degrees / 90
        return int(turns) if turns.is_integer() else None


def parse_rotation(text: str) -> Rotation:
    """The rotation parameter, or InvalidIiifRequest (400)."""
    mirror = text.startswith("!")
    degrees = decimal(text[1:] if mirror else text, "rotation")
    if degrees > 360:
        raise InvalidIiifRequest(f"rotation {text[:20]!r}: expected 0 to 360 degrees")
    return Rotation(mirror, degrees % 360)

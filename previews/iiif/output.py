"""The quality and format parameters (sections 4.4 and 4.5): what colours and which file type come back."""

from previews.iiif.errors import IiifNotImplemented, InvalidIiifRequest

QUALITIES = ("default", "color", "gray", "bitonal")
# IIIF's format names and the renderer's (previews.imaging.formats).
FORMATS = {"jpg": "jpeg", "png": "png", "webp": "webp", "tif": "tiff", "gif": "gif"}
# Named by the Image API, not made here: a well-formed request for them is a 501, not a 400.
NOT_MADE = frozenset({"jp2", "pdf"})


def parse_quality(text: str) -> str:
    """One of QUALITIES, or InvalidIiifRequest (400)."""
    if text not in QUALITIES:
        raise InvalidIiifRequest(f"quality {text[:20]!r}: expected one of {', '.join(QUALITIES)}")
    return text


def parse_format(text: str) -> str:
    """The IIIF format name (a key of FORMATS), IiifNotImplemented (501) for jp2 and pdf, else a 400."""
    if text in FORMATS:
        return text
    if text in NOT_MADE:
        raise IiifNotImplemented(f"format {text} is not made here: ask for one of {', '.join(FORMATS)}")
    raise InvalidIiifRequest(f"format {text[:20]!r}: expected one of {', '.join(FORMATS)}")

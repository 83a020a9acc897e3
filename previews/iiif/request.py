"""An IIIF URL after `/iiif/`: `{version}/{identifier}[/info.json | /{region}/{size}/{rotation}/{quality}.{format}]`.

The identifier is one path segment, percent-encoded (`photos%2Fa.jpg` for `photos/a.jpg`); it is
decoded after the split, so an encoded `/` stays inside it. A path of any other shape names no IIIF
resource (404), as the validator expects of an unencoded `/` in an identifier. Parameters are parsed in
the spec's order, so the first bad one is the one named.
"""

from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from previews.iiif.errors import InvalidIiifRequest
from previews.iiif.output import parse_format, parse_quality
from previews.iiif.region import Region, parse_region
from previews.iiif.rotation import Rotation, parse_rotation
from previews.iiif.size import Size, parse_size

VERSIONS = {"2": 2, "3": 3}
INFO = "info.json"


class Resource(Enum):
    """What an IIIF URL asks for."""

    BASE = "base"  # the image's base URI: redirected to its info.json
    INFO = "info"
    IMAGE = "image"


@dataclass(frozen=True)
class ImageRequest:
    """The image parameters of one request, parsed."""

    version: int
    region: Region
    size: Size
    rotation: Rotation
    quality: str
    format: str  # IIIF's name: jpg, png, webp, tif or gif


@dataclass(frozen=True)
class IiifPath:
    """A parsed IIIF path: the version, the identifier (decoded), what is asked, and the image's parameters."""

    version: int
    identifier: str
    resource: Resource
    image: ImageRequest | None = None


def parse_iiif_path(tail: str) -> IiifPath | None:
    """The path after `/iiif/` (still percent-encoded, no query), or None when it is no IIIF URL (404).

    InvalidIiifRequest (400) for a malformed identifier or parameter.
    """
    segments = tail.split("/")
    version = VERSIONS.get(segments[0])
    if version is None or len(segments) not in (2, 3, 6) or not segments[1]:
        return None
    identifier = _identifier(segments[1])
    if len(segments) == 2:
        return IiifPath(version, identifier, Resource.BASE)
    if len(segments) == 3:
        return IiifPath(version, identifier, Resource.INFO) if segments[2] == INFO else None
    region, size, rotation, last = segments[2:]
    quality, dot, format_name = last.rpartition(".")
    if not dot:
        raise InvalidIiifRequest("expected {quality}.{format} as the last segment")
    image = ImageRequest(version, parse_region(region), parse_size(size, version), parse_rotation(rotation),
                         parse_quality(quality), parse_format(format_name))
    return IiifPath(version, identifier, Resource.IMAGE, image)


def _identifier(segment: str) -> str:
    try:
        decoded = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise InvalidIiifRequest("identifier is not valid UTF-8 after percent-decoding") from None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in decoded):
        raise InvalidIiifRequest("control characters are not allowed in an identifier")
    return decoded

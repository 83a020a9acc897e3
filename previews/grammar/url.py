"""The imgproxy path grammar: `/<signature>/<option>/.../plain/<source>[@<ext>]` or base64url chunks.

Pure text work, before any I/O (https://docs.imgproxy.net/usage/processing#source-url). The source
comes back decoded; which sources exist is the caller's business.
"""

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import unquote

from previews.errors import InvalidOption, InvalidSource
from previews.grammar.option_table import output_format

MAX_SOURCE_BYTES = 4096
# imgproxy decodes strictly (Go's RawURLEncoding): no standard-base64 `+` or `/`, no stray characters.
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


@dataclass(frozen=True)
class PreviewUrl:
    """A preview path split into its parts. `signed_path` is what the signature covers."""

    signature: str
    signed_path: str
    options: list[tuple[str, list[str]]]
    source: str
    extension: str | None
    query: str


def parse_preview_url(path: str, query: str = "") -> PreviewUrl:
    """Split `/<signature>/<options...>/<source>` (the part after the route prefix, raw, undecoded)."""
    if not path.startswith("/"):
        raise InvalidSource("expected /<signature>/<options>/<source>")
    signature, _, rest = path[1:].partition("/")
    segments = rest.split("/")
    options: list[tuple[str, list[str]]] = []
    for index, segment in enumerate(segments):
        if ":" not in segment:
            source, extension = _source(segments[index:])
            return PreviewUrl(signature, "/" + rest, options, source, extension, query)
        name, *args = segment.split(":")
        options.append((decode_segment(name), [decode_segment(arg) for arg in args]))
    raise InvalidSource("the URL has no source after its options")


def _source(segments: list[str]) -> tuple[str, str | None]:
    if segments[0] == "plain":
        plain = "/".join(segments[1:])
        body, at, extension = plain.rpartition("@")
        if not at:
            body, extension = plain, ""
        return checked_source(decode_segment(body)), _extension(extension)
    encoded = "".join(segments)
    body, dot, extension = encoded.partition(".")
    if not _BASE64URL.fullmatch(body):
        raise InvalidSource("the source is neither plain/... nor valid base64url")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidSource("the source is neither plain/... nor valid base64url") from None
    return checked_source(decoded), _extension(extension) if dot else None


def _extension(text: str) -> str | None:
    return output_format("extension", decode_segment(text)) if text else None


def checked_source(source: str) -> str:
    """`source`, refused when empty or longer than MAX_SOURCE_BYTES."""
    if not source:
        raise InvalidSource("the source is empty")
    if len(source.encode()) > MAX_SOURCE_BYTES:
        raise InvalidSource(f"the source is longer than {MAX_SOURCE_BYTES} bytes")
    return source


def decode_segment(text: str) -> str:
    """Percent-decoded `text`; InvalidOption when the result is not UTF-8."""
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidOption("the URL is not valid UTF-8 after percent-decoding") from None

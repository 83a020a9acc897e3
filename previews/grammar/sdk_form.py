"""Supervisely's older preview form: `/<width>x<height>,<format>,q<quality>/<source>`.

The SDK's `compress_image_url` builds it from an image's storage URL by putting
`/previews/<width>x<height>,jpeg,q<quality>` in front of its `/image-converter/...` part, with an
empty width or height when only the other is given. It means what imgproxy spells
`rs:fit:<width>:<height>/q:<quality>/f:<format>` (an empty side is 0: derived from the aspect ratio),
so it is parsed into that: both forms give the same options and share one cache entry.

The form carries no signature: with IMGPROXY_KEY set it is refused like any unsigned URL.
"""

import re

from previews.errors import InvalidOption
from previews.grammar.option_table import output_format
from previews.grammar.url import PreviewUrl, checked_source, decode_segment

# What marks the form: a first segment that starts `<digits>x<digits>,` (imgproxy's options have a
# `:`, and a bucket name no `,`, so no imgproxy URL starts this way).
_MARK = re.compile(r"\d*x\d*,")
_SPEC = re.compile(r"(\d{0,5})x(\d{0,5}),([A-Za-z0-9]{1,8}),q(\d{1,3})")


def parse_sdk_form(path: str, query: str = "") -> PreviewUrl | None:
    """The imgproxy equivalent of `/<w>x<h>,<format>,q<quality>/<source>` (after the route prefix,
    raw), or None when `path` is not of that form."""
    spec, slash, rest = path[1:].partition("/") if path.startswith("/") else ("", "", "")
    if not _MARK.match(spec):
        return None
    found = _SPEC.fullmatch(spec)
    if found is None:
        raise InvalidOption(f"{spec[:40]!r}: expected <width>x<height>,<format>,q<quality>")
    width, height, extension, quality = found.groups()
    if not slash or not rest:
        raise InvalidOption("the URL has no source after <width>x<height>,<format>,q<quality>")
    options = [("rs", ["fit", width or "0", height or "0"]), ("q", [quality])]
    return PreviewUrl(signature="", signed_path=path, options=options,
                      source=checked_source(decode_segment(rest)),
                      extension=output_format("format", extension), query=query)

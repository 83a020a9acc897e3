"""The options of imgproxy's `/info/<signature>/<options>/<source>`: which facts to answer.

`size`/`s`, `format`/`f` and `dimensions`/`d` take one boolean each (imgproxy's `1`, `t`, `true`, ...)
and are on by default. Other info options of imgproxy's (EXIF, IPTC, colours, ...) read more than the
header: they are refused with a 400 naming them, rather than silently answered without.
"""

from dataclasses import dataclass, replace

from previews.errors import InvalidOption
from previews.grammar.option_args import count_args, read_bool

_FIELDS = {"size": "size", "s": "size", "format": "format", "f": "format", "dimensions": "dimensions",
           "d": "dimensions"}


@dataclass(frozen=True)
class InfoFields:
    """Which facts an `/info` answer carries."""

    size: bool = True
    format: bool = True
    dimensions: bool = True


def parse_info_options(options: list[tuple[str, list[str]]]) -> InfoFields:
    """The facts asked for by the URL's options (later ones win, as in imgproxy)."""
    fields = InfoFields()
    for name, args in options:
        field = _FIELDS.get(name)
        if field is None:
            raise InvalidOption(f"unsupported info option {name[:40]!r} (use size, format or dimensions)")
        count_args(name, args, 1, 1)
        fields = replace(fields, **{field: read_bool(name, args[0])})
    return fields

"""The processing options imgproxy defines, by name and alias, each a small setter.

A setter reads its arguments (an empty argument keeps the current value, as in imgproxy) and writes
fields of the ProcessingOptions being built. `apply_options` is the one entry point.
"""

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from previews.errors import InvalidOption
from previews.grammar.option_args import (
    count_args,
    read_bool,
    read_color,
    read_float,
    read_gravity,
    read_int,
)
from previews.grammar.options import Crop, Padding, ProcessingOptions, ResizingType

Fields = dict[str, Any]
Setter = Callable[[Fields, list[str], str], None]
OptionList = Sequence[tuple[str, list[str]]]
OUTPUT_FORMATS = ("jpeg", "png", "webp", "avif", "gif", "tiff", "bmp")
FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
MAX_PRESET_DEPTH = 8


def output_format(option: str, text: str) -> str:
    """A format name or extension, normalised (`jpg` is `jpeg`)."""
    name = FORMAT_ALIASES.get(text.lower(), text.lower())
    if name not in OUTPUT_FORMATS:
        raise InvalidOption(f"{option}: unsupported format {text!r} (use one of {', '.join(OUTPUT_FORMATS)})")
    return name


def _resizing_type(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 1)
    try:
        fields["resizing_type"] = ResizingType(args[0])
    except ValueError:
        raise InvalidOption(f"{option}: unknown resizing type {args[0]!r}") from None


def _dimension(name: str) -> Setter:
    def set_dimension(fields: Fields, args: list[str], option: str) -> None:
        count_args(option, args, 1, 1)
        fields[name] = read_int(option, args[0])
    return set_dimension


def _flag(name: str) -> Setter:
    def set_flag(fields: Fields, args: list[str], option: str) -> None:
        count_args(option, args, 1, 1)
        fields[name] = read_bool(option, args[0])
    return set_flag


def _extend(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 4)
    fields["extend"] = read_bool(option, args[0])
    if len(args) > 1 and args[1]:
        fields["extend_gravity"] = read_gravity(option, args[1:], allow_smart=False)


def _size(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 7)
    setters: tuple[tuple[Setter, slice], ...] = (
        (_dimension("width"), slice(0, 1)), (_dimension("height"), slice(1, 2)),
        (_flag("enlarge"), slice(2, 3)), (_extend, slice(3, None)))
    for setter, part in setters:
        given = args[part]
        if given and given[0]:
            setter(fields, given, option)


def _resize(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 8)
    if args[0]:
        _resizing_type(fields, args[:1], option)
    if len(args) > 1:
        _size(fields, args[1:], option)


def _zoom(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 2)
    zoom = [read_float(option, a, 0.01, 100) for a in args]
    fields["zoom_x"], fields["zoom_y"] = zoom[0], zoom[-1]


def _number(name: str, low: float, high: float) -> Setter:
    def set_number(fields: Fields, args: list[str], option: str) -> None:
        count_args(option, args, 1, 1)
        fields[name] = read_float(option, args[0], low, high)
    return set_number


def _dpr(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 1)
    fields["dpr"] = read_float(option, args[0], 0.01, 8)


def _gravity(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 3)
    fields["gravity"] = read_gravity(option, args)


def _crop(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 5)
    width, height = (read_float(option, a or "0") for a in [*args, "0"][:2])
    gravity = read_gravity(option, args[2:]) if len(args) > 2 and args[2] else None
    fields["crop"] = Crop(width, height, gravity)


def _padding(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 4)
    current = fields["padding"] or Padding()
    top, right, bottom, left = current.top, current.right, current.bottom, current.left
    values = [read_int(option, a, 0, 4096) if a else None for a in [*args, "", "", ""][:4]]
    # CSS-like shorthand, as imgproxy reads it: top also sets the other sides, right also sets left;
    # an empty argument keeps what is there.
    if values[0] is not None:
        top = right = bottom = left = values[0]
    if values[1] is not None:
        right = left = values[1]
    if values[2] is not None:
        bottom = values[2]
    if values[3] is not None:
        left = values[3]
    fields["padding"] = Padding(top, right, bottom, left)


def _rotate(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 1)
    angle = read_int(option, args[0], -360, 360)
    if angle % 90:
        raise InvalidOption(f"{option}: the angle must be a multiple of 90")
    fields["rotate"] = angle % 360


def _flip(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 2)
    fields["flip_horizontal"] = read_bool(option, args[0]) if args[0] else False
    fields["flip_vertical"] = read_bool(option, args[1]) if len(args) > 1 and args[1] else False


def _background(fields: Fields, args: list[str], option: str) -> None:
    # `bg:` with no value turns the background off again, as in imgproxy.
    fields["background"] = None if args in ([], [""]) else read_color(option, args)


def _quality(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 1)
    fields["quality"] = read_int(option, args[0], 0, 100)


def _format(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 1)
    fields["format"] = output_format(option, args[0])


def _text(name: str) -> Setter:
    def set_text(fields: Fields, args: list[str], option: str) -> None:
        count_args(option, args, 1, 1)
        fields[name] = args[0]
    return set_text


def _expires(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 1)
    fields["expires"] = read_int(option, args[0], 0, 2**63 - 1)


def _filename(fields: Fields, args: list[str], option: str) -> None:
    count_args(option, args, 1, 2)
    name = args[0]
    if len(args) > 1 and read_bool(option, args[1]):
        try:
            name = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidOption(f"{option}: the filename is not valid base64url") from None
    if not name or any(c in name for c in '/\\"') or not name.isprintable():
        raise InvalidOption(f"{option}: the filename must be printable, without slashes or quotes")
    fields["filename"] = name


SETTERS: dict[str, Setter] = {
    "resize": _resize,
    "size": _size,
    "resizing_type": _resizing_type,
    "width": _dimension("width"),
    "height": _dimension("height"),
    "min-width": _dimension("min_width"),
    "min-height": _dimension("min_height"),
    "zoom": _zoom,
    "dpr": _dpr,
    "enlarge": _flag("enlarge"),
    "extend": _extend,
    "gravity": _gravity,
    "crop": _crop,
    "padding": _padding,
    "rotate": _rotate,
    "auto_rotate": _flag("auto_rotate"),
    "flip": _flip,
    "background": _background,
    "blur": _number("blur", 0, 100),
    "sharpen": _number("sharpen", 0, 100),
    "quality": _quality,
    "format": _format,
    "strip_metadata": _flag("strip_metadata"),
    "strip_color_profile": _flag("strip_color_profile"),
    "cachebuster": _text("cachebuster"),
    "expires": _expires,
    "filename": _filename,
    "return_attachment": _flag("return_attachment"),
}

ALIASES = {
    "rs": "resize", "s": "size", "rt": "resizing_type", "w": "width", "h": "height",
    "mw": "min-width", "min_width": "min-width", "mh": "min-height", "min_height": "min-height",
    "z": "zoom", "el": "enlarge", "ex": "extend", "g": "gravity", "c": "crop", "pd": "padding",
    "rot": "rotate", "ar": "auto_rotate", "fl": "flip", "bg": "background", "bl": "blur",
    "sh": "sharpen", "q": "quality", "f": "format", "ext": "format", "sm": "strip_metadata",
    "scp": "strip_color_profile", "cb": "cachebuster", "exp": "expires", "fn": "filename",
    "att": "return_attachment",
}
PRESET_NAMES = ("preset", "pr")


def apply_options(base: ProcessingOptions, options: OptionList,
                  presets: Mapping[str, OptionList]) -> ProcessingOptions:
    """Apply URL options in order over `base` (defaults plus the `default` preset)."""
    fields: Fields = {name: getattr(base, name) for name in base.__dataclass_fields__}
    _apply(fields, options, presets, depth=0)
    return ProcessingOptions(**fields)


def _apply(fields: Fields, options: OptionList, presets: Mapping[str, OptionList], depth: int) -> None:
    for name, args in options:
        if name in PRESET_NAMES:
            if depth >= MAX_PRESET_DEPTH:
                raise InvalidOption(f"{name}: presets nest deeper than {MAX_PRESET_DEPTH}")
            for preset in args:
                if preset not in presets:
                    raise InvalidOption(f"{name}: unknown preset {preset!r}")
                _apply(fields, presets[preset], presets, depth + 1)
            continue
        setter = SETTERS.get(ALIASES.get(name, name))
        if setter is None:
            raise InvalidOption(f"unknown option {name!r}")
        setter(fields, args, name)

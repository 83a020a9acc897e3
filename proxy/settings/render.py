"""Render settings from imgproxy's IMGPROXY_* variables, parsed once into previews' frozen RenderConfig."""

from collections.abc import Mapping

from previews.config import DEFAULT_MAX_RESULT_DIMENSION, DEFAULT_MAX_SRC_RESOLUTION, RenderConfig
from previews.errors import InvalidOption
from previews.grammar.option_table import FORMAT_ALIASES, OptionList, apply_options
from previews.grammar.options import ProcessingOptions
from previews.imaging.formats import FORMATS
from proxy.settings.env_values import read_count, read_flag, read_number
from proxy.settings.errors import ConfigError
from proxy.settings.units import read_size


def read_render_config(env: Mapping[str, str]) -> RenderConfig:
    """Read IMGPROXY_* settings; raise ConfigError naming the variable on a bad value."""
    presets = _read_presets(env.get("IMGPROXY_PRESETS", ""))
    base = ProcessingOptions(
        auto_rotate=read_flag(env, "IMGPROXY_AUTO_ROTATE", True),
        strip_metadata=read_flag(env, "IMGPROXY_STRIP_METADATA", True),
        strip_color_profile=read_flag(env, "IMGPROXY_STRIP_COLOR_PROFILE", True),
    )
    try:
        defaults = apply_options(base, presets.get("default", []), presets)
    except InvalidOption as error:
        raise ConfigError(f"IMGPROXY_PRESETS: the default preset is invalid: {error.reason}") from None
    megapixels = read_number(env, "IMGPROXY_MAX_SRC_RESOLUTION", DEFAULT_MAX_SRC_RESOLUTION / 1e6, 0.001, 1e5)
    result_megapixels = read_number(env, "IMGPROXY_MAX_RESULT_RESOLUTION", megapixels, 0.001, 1e5)
    return RenderConfig(
        max_src_resolution=int(megapixels * 1_000_000),
        max_src_file_size=_optional_size(env, "IMGPROXY_MAX_SRC_FILE_SIZE"),
        max_result_dimension=read_count(env, "IMGPROXY_MAX_RESULT_DIMENSION", DEFAULT_MAX_RESULT_DIMENSION),
        max_result_resolution=int(result_megapixels * 1_000_000),
        quality=read_quality(env, "IMGPROXY_QUALITY", 80),
        format_quality=_read_format_quality(env.get("IMGPROXY_FORMAT_QUALITY", "webp=79,avif=63")),
        presets=presets,
        defaults=defaults,
    )


def _read_presets(text: str) -> dict[str, OptionList]:
    """`name=opt:arg/opt:arg,name2=...` (imgproxy's IMGPROXY_PRESETS)."""
    presets: dict[str, OptionList] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, equals, body = entry.partition("=")
        if not equals or not name or not body:
            raise ConfigError(f"IMGPROXY_PRESETS: {entry!r} is not name=option/option")
        presets[name] = [(opt.split(":")[0], opt.split(":")[1:]) for opt in body.split("/") if opt]
    for name, options in presets.items():
        try:
            apply_options(ProcessingOptions(), options, presets)
        except InvalidOption as error:
            raise ConfigError(f"IMGPROXY_PRESETS: preset {name!r}: {error.reason}") from None
    return presets


def _read_format_quality(text: str) -> dict[str, int]:
    qualities: dict[str, int] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = entry.partition("=")
        name = FORMAT_ALIASES.get(name.lower(), name.lower())
        if name not in FORMATS or not value.isdigit() or not 1 <= int(value) <= 100:
            raise ConfigError(f"IMGPROXY_FORMAT_QUALITY: {entry!r} is not format=1..100")
        qualities[name] = int(value)
    return qualities


def read_quality(env: Mapping[str, str], name: str, default: int) -> int:
    """An encoder quality, 1..100."""
    quality = read_count(env, name, default)
    if not 1 <= quality <= 100:
        raise ConfigError(f"{name}={quality}: expected a whole number from 1 to 100")
    return quality


def _optional_size(env: Mapping[str, str], name: str) -> int:
    """A size, where 0 or nothing means no limit."""
    text = (env.get(name) or "").strip()
    return 0 if text in ("", "0") else read_size(env, name, text)

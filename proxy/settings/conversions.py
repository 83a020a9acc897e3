"""Image converter settings from IMAGE_CONVERTER_* variables, parsed once into previews' ConverterConfig."""

from collections.abc import Mapping

from previews.conversions.config import DEFAULT_QUALITY, DEFAULT_VIDEO_TIMEOUT, ConverterConfig
from proxy.settings.env_values import read_flag, read_number
from proxy.settings.render import read_quality


def read_converter_config(env: Mapping[str, str]) -> ConverterConfig:
    """Read IMAGE_CONVERTER_* settings; raise ConfigError naming the variable on a bad value."""
    return ConverterConfig(
        auto_webp=read_flag(env, "IMAGE_CONVERTER_AUTO_WEBP", False),
        quality=read_quality(env, "IMAGE_CONVERTER_QUALITY", DEFAULT_QUALITY),
        video_timeout=read_number(env, "IMAGE_CONVERTER_VIDEO_TIMEOUT", DEFAULT_VIDEO_TIMEOUT, 0.1, 3600),
    )

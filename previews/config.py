"""Render settings: limits, qualities, defaults and presets, as one frozen value.

proxy.settings.render reads them from the IMGPROXY_* variables.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from previews.grammar.option_table import OptionList
from previews.grammar.options import ProcessingOptions

DEFAULT_MAX_SRC_RESOLUTION = 50_000_000
# Longest side of any image a render makes from the resize on (imgproxy's IMGPROXY_MAX_RESULT_DIMENSION,
# whose default there is no limit): 8192 covers a 2x display of the widest screens.
DEFAULT_MAX_RESULT_DIMENSION = 8192


@dataclass(frozen=True)
class RenderConfig:
    """How previews are rendered: limits, qualities, defaults and presets."""

    max_src_resolution: int = DEFAULT_MAX_SRC_RESOLUTION
    max_src_file_size: int = 0  # 0: no limit (imgproxy's default)
    max_result_dimension: int = DEFAULT_MAX_RESULT_DIMENSION  # 0: no limit
    # Pixels of any image made from the resize on; by default the source limit, so a result is never
    # allowed more pixels than the largest source.
    max_result_resolution: int = DEFAULT_MAX_SRC_RESOLUTION
    quality: int = 80
    format_quality: Mapping[str, int] = field(default_factory=lambda: {"webp": 79, "avif": 63})
    presets: Mapping[str, OptionList] = field(default_factory=dict)
    defaults: ProcessingOptions = field(default_factory=ProcessingOptions)
    # A progressive JPEG is decoded at no smaller a scale than the one that leaves at most this many pixels,
    # so that its sizes share one decode where decodes are kept (previews.imaging.decode.shared_divisor).
    # 0: each render decodes at the scale its own size needs. Set by the server when it runs a render host.
    shared_decode_pixels: int = 0

    def quality_for(self, format_name: str, requested: int) -> int:
        """`q:0` (or no `q`) means the format's default quality."""
        if requested:
            return requested
        return self.format_quality.get(format_name, self.quality)

"""Output formats as data: Pillow's name, media type, whether alpha survives, default quality."""

from dataclasses import dataclass

# pillow-simd has no AVIF codec of its own: the plugin registers AVIF for reading and writing.
import pillow_avif  # noqa: F401


@dataclass(frozen=True)
class OutputFormat:
    """How one output format is written."""

    name: str
    pillow_name: str
    media_type: str
    keeps_alpha: bool
    default_quality: int | None  # None: the format has no quality setting


FORMATS: dict[str, OutputFormat] = {f.name: f for f in (
    # Qualities are imgproxy's defaults (IMGPROXY_QUALITY, IMGPROXY_FORMAT_QUALITY).
    OutputFormat("jpeg", "JPEG", "image/jpeg", keeps_alpha=False, default_quality=80),
    OutputFormat("webp", "WEBP", "image/webp", keeps_alpha=True, default_quality=79),
    OutputFormat("avif", "AVIF", "image/avif", keeps_alpha=True, default_quality=63),
    OutputFormat("png", "PNG", "image/png", keeps_alpha=True, default_quality=None),
    OutputFormat("gif", "GIF", "image/gif", keeps_alpha=True, default_quality=None),
    OutputFormat("tiff", "TIFF", "image/tiff", keeps_alpha=True, default_quality=None),
    OutputFormat("bmp", "BMP", "image/bmp", keeps_alpha=False, default_quality=None),
)}

# The formats a source keeps when the URL names none (imgproxy's IMGPROXY_PREFERRED_FORMATS);
# any other source becomes JPEG, or PNG when it has transparency.
PREFERRED_BY_SOURCE = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "AVIF": "avif"}

# The inputs previews read. Pillow guesses only among these, so an odd file can't reach a plugin
# nobody meant to expose (Pillow's `formats=` argument to Image.open).
# MPO files are opened by the JPEG plugin (Pillow registers no opener under "MPO").
INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "AVIF", "TIFF", "BMP", "JPEG2000", "PSD", "ICO", "TGA", "PPM")


def choose_format(requested: str | None, source_format: str, has_alpha: bool) -> OutputFormat:
    """The format to write: the requested one, else the source's if browsers show it, else JPEG or PNG."""
    if requested:
        return FORMATS[requested]
    kept = PREFERRED_BY_SOURCE.get(source_format)
    if kept:
        return FORMATS[kept]
    return FORMATS["png" if has_alpha else "jpeg"]

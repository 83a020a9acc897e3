"""What a conversion is asked for: which page, whether WebP may be sent, and the lossy quality."""

from dataclasses import dataclass

from previews.errors import InvalidOption


@dataclass(frozen=True)
class ConvertOptions:
    """One conversion's choices, decided by the caller from the URL, `Accept` and ConverterConfig."""

    # Which page of a multi-page source: a TIFF page, a GIF/WebP/APNG frame or an MPO picture,
    # counted from 0. A PSD has one page (its composite); an ICO is read at its largest size.
    page: int = 0
    allow_webp: bool = False  # the client accepts WebP AND the operator enabled it
    quality: int = 90  # JPEG and lossy WebP quality, 1..100

    def __post_init__(self) -> None:
        if self.page < 0:
            raise InvalidOption(f"page: {self.page} is below 0")
        if not 1 <= self.quality <= 100:
            raise InvalidOption(f"quality: {self.quality} is outside 1..100")

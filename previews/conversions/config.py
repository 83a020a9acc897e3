"""Image converter settings as one frozen value; proxy.settings.conversions reads the IMAGE_CONVERTER_* variables."""

from dataclasses import dataclass

DEFAULT_QUALITY = 90
DEFAULT_VIDEO_TIMEOUT = 30.0


@dataclass(frozen=True)
class ConverterConfig:
    """How /image-converter answers: WebP when clients accept it, lossy quality, video time limit."""

    # Send WebP instead of JPEG to clients whose Accept lists image/webp. Off by default: a WebP
    # costs about 30 times the CPU of a JPEG to encode, for a file about half as large.
    auto_webp: bool = False
    quality: int = DEFAULT_QUALITY  # JPEG and lossy WebP, 1..100
    video_timeout: float = DEFAULT_VIDEO_TIMEOUT  # seconds allowed for decoding a video frame

    def describe(self) -> dict[str, str]:
        """The effective settings, for `preview-proxy config`."""
        return {
            "IMAGE_CONVERTER_AUTO_WEBP": str(self.auto_webp).lower(),
            "IMAGE_CONVERTER_QUALITY": str(self.quality),
            "IMAGE_CONVERTER_VIDEO_TIMEOUT": f"{self.video_timeout:g}s",
        }

"""Pixels into 8-bit sRGB (or grey), with or without alpha: the only modes later steps handle."""

import functools
import io
from typing import cast

from PIL import Image, ImageCms

from previews.imaging.job import Job

# Modes later steps take as they are.
_READY = {"RGB", "RGBA", "L"}
_SRGB = ImageCms.createProfile("sRGB")


def to_8bit(image: Image.Image, job: Job) -> Image.Image:
    """16-bit and float grey to 8-bit, palettes and odd modes to RGB(A) or L."""
    mode = image.mode
    if mode in _READY or mode == "CMYK":
        return image
    if mode.startswith("I;16"):
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode == "I":
        # Pillow decodes 16-bit sources (PGM, some TIFFs) into 32-bit "I": scale by the 16-bit range,
        # whatever the values happen to be (a dark 16-bit image must stay dark).
        return image.point(lambda value: value * (1 / 256)).convert("L")
    if mode == "F":
        low, high = _band_extrema(image)
        span = (high - low) or 1.0
        return image.point(lambda value: (value - low) * (255 / span)).convert("L")
    if mode == "1":
        return image.convert("L")
    if mode in ("P", "PA") and ("transparency" in image.info or mode == "PA"):
        return image.convert("RGBA")
    if mode in ("LA", "La", "RGBa", "RGBX"):
        return image.convert("RGBA" if mode != "RGBX" else "RGB")
    return image.convert("RGB")


def to_srgb(image: Image.Image, job: Job) -> Image.Image:
    """Apply the embedded ICC profile (CMYK always; RGB unless the colour profile is to be kept)."""
    profile = job.source.icc_profile
    keep_profile = not job.options.strip_color_profile and image.mode != "CMYK"
    if profile is None or keep_profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image.convert("RGB") if image.mode == "CMYK" else image
    transform = _transform_to_srgb(profile, image.mode)
    if transform is None:
        return image.convert("RGB") if image.mode == "CMYK" else image
    return transform.apply(image)


@functools.lru_cache(maxsize=32)
def _transform_to_srgb(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A transform from the embedded profile to sRGB, built once per profile (building costs ms).

    NOCACHE: LittleCMS's one-pixel cache is not thread-safe, and renders share transforms.
    """
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    except (OSError, ImageCms.PyCMSError):
        return None  # a broken profile: use the pixels as they are
    if mode != "CMYK" and ImageCms.getProfileDescription(source).strip().lower().startswith("srgb"):
        return None  # already sRGB: skip a full pass over the pixels
    out_mode = "RGBA" if mode == "RGBA" else "RGB"
    try:
        return ImageCms.buildTransform(source, _SRGB, mode, out_mode,
                                       renderingIntent=ImageCms.Intent.PERCEPTUAL,
                                       flags=ImageCms.Flags.NOCACHE)
    except (OSError, ImageCms.PyCMSError):
        return None


def _band_extrema(image: Image.Image) -> tuple[float, float]:
    """(min, max) of a one-band image."""
    low, high = cast(tuple[float, float], image.getextrema())
    return low, high

"""Writing the result: format, quality, metadata and colour profile."""

import io

from PIL import Image

from previews.imaging.decode import EXIF_ORIENTATION
from previews.imaging.job import Job

# AVIF at libavif's speed 8 of 10: imgproxy's default trade (IMGPROXY_AVIF_SPEED) of a little size
# for several times less CPU.
AVIF_SPEED = 8


def profile_matches(profile: bytes, mode: str) -> bool:
    """Whether an ICC profile describes pixels of `mode` (a CMYK profile can't label converted RGB)."""
    space = profile[16:20]  # the profile header's data colour space (ICC.1:2022, section 7.2.6)
    return (space == b"RGB " and mode in ("RGB", "RGBA")) or (space == b"GRAY" and mode in ("L", "LA"))


def encode(image: Image.Image, job: Job) -> bytes:
    """The image in the job's output format, as bytes."""
    output = job.output
    params: dict[str, object] = {}
    if output.default_quality is not None:
        params["quality"] = job.quality
    if output.name == "avif":
        params["speed"] = AVIF_SPEED
    if output.name == "tiff":
        params["compression"] = "tiff_adobe_deflate"
    if output.name == "gif" and image.mode not in ("P", "L"):
        image = image.convert("P", palette=Image.Palette.ADAPTIVE) if image.mode == "RGB" else image
    if output.name == "bmp" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    if not job.options.strip_color_profile and job.source.icc_profile:
        if profile_matches(job.source.icc_profile, image.mode):
            params["icc_profile"] = job.source.icc_profile
    if not job.options.strip_metadata and job.source.exif and output.name in ("jpeg", "webp", "png", "avif", "tiff"):
        exif = job.source.exif
        exif[EXIF_ORIENTATION] = 1  # the pixels are upright now (a render owns its Exif object)
        params["exif"] = exif.tobytes()
    # Pillow's writers copy a profile (PNG, JPEG, WebP) and a JPEG comment from image.info when no
    # value is given, so stripping must say None explicitly.
    params.setdefault("icc_profile", None)
    if job.options.strip_metadata and output.name == "jpeg":
        params["comment"] = None
    buffer = io.BytesIO()
    image.save(buffer, output.pillow_name, **params)
    return buffer.getvalue()

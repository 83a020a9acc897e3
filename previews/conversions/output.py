"""Encode a converted image for browsers: PNG, JPEG or WebP, chosen by the source's coding and the client.

- PNG when the source was lossless (previews.conversions.lossless) or the image has transparency: nothing lost.
- JPEG otherwise: a lossy source loses little more at a high quality, and the file is much smaller.
- WebP, when allowed, in place of JPEG (also with transparency): at one nominal quality it was 45%
  smaller than JPEG on a 16 MP photo. Lossless sources stay PNG even then: lossless WebP was 25%
  smaller than PNG on that photo but took 4 to 17 times as long to encode (method 4, quality 0 to
  80; 7-17 s against PNG's 2.5 s), and at its fastest setting it was 50 times larger than PNG on
  flat, scan-like content.

Nothing but pixels is written: no EXIF, XMP, comment or ICC profile. The converter has already made
the pixels upright and sRGB, so an orientation tag would turn them twice and a profile would
misdescribe them (browsers take untagged images as sRGB); the rest is private (GPS, camera serials)
and adds bytes.
"""

import io

from PIL import Image

from previews.conversions.options import ConvertOptions

# zlib level 4 took half the time of the default 6 on a 16 MP photo (2.5 s against 4.7 s) for 4%
# more bytes; levels 1-3 (no lazy matching) made flat, scan-like images 2.5 times larger.
PNG_COMPRESS_LEVEL = 4
JPEG_MAX_SIDE = 65_500  # libjpeg-turbo's JPEG_MAX_DIMENSION
# libvips' rule (jpegsave's automatic subsample mode): full-resolution colour from quality 90 up. Halved
# chroma blurred red text on black from a CMYK TIFF (mean error 6 against 1.6 at quality 90); a
# photo's JPEG grows by about 40% without it, which an operator trades back with a lower quality.
FULL_CHROMA_QUALITY = 90
WEBP_MAX_SIDE = 16_383  # the WebP bitstream stores 14-bit dimensions
_READY_MODES = {"L", "LA", "RGB", "RGBA"}


def encode_for_browser(image: Image.Image, lossless_source: bool, options: ConvertOptions) -> tuple[bytes, str]:
    """The image as PNG, JPEG or WebP bytes, and that format's media type.

    `image` should be 8-bit L, LA, RGB or RGBA, as previews.steps.colour leaves it or a video
    decoder gives it; other 8-bit modes are converted to RGB(A). An alpha channel that is opaque
    everywhere is dropped, so an opaque image of a lossy source still becomes a JPEG.
    """
    image = _browser_mode(image)
    has_alpha = image.mode in ("LA", "RGBA")
    longest = max(image.size)
    if options.allow_webp and not lossless_source and longest <= WEBP_MAX_SIDE:
        return _saved(image, "WEBP", quality=options.quality), "image/webp"
    if lossless_source or has_alpha or longest > JPEG_MAX_SIDE:
        # Explicit Nones: Pillow's PNG writer otherwise copies a profile and tRNS from image.info.
        return _saved(image, "PNG", compress_level=PNG_COMPRESS_LEVEL, icc_profile=None, transparency=None), "image/png"
    subsampling = "4:4:4" if options.quality >= FULL_CHROMA_QUALITY else "4:2:0"
    return _saved(image, "JPEG", quality=options.quality, subsampling=subsampling, comment=None), "image/jpeg"


def _browser_mode(image: Image.Image) -> Image.Image:
    """L, LA, RGB or RGBA, with alpha only where some pixel is not opaque."""
    if image.mode not in _READY_MODES or "transparency" in image.info:
        # A transparent colour (PNG tRNS, GIF) becomes an alpha channel; Pillow's convert applies it.
        alpha_mode = "LA" if image.mode == "L" else "RGBA"
        image = image.convert(alpha_mode if image.has_transparency_data else "RGB")
    if image.mode in ("LA", "RGBA") and image.getchannel("A").getextrema() == (255, 255):
        return image.convert(image.mode[:-1])
    return image


def _saved(image: Image.Image, pillow_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, pillow_format, **params)
    return buffer.getvalue()

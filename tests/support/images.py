"""Test images built in code, and a one-call render through the real pipeline.

`render(source, "rs:fill:300:200/g:no")` runs previews.render.render_preview exactly as the server does,
with options written as in a URL. Synthetic images (quadrants, a photo crop) have known geometry, so a
test can say where each part must end up without trusting the code under test.
"""

import io
import itertools
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageCms, ImageOps

from previews.config import RenderConfig
from previews.grammar.option_table import apply_options
from previews.grammar.options import ProcessingOptions
from previews.render import Rendered, deadline_after, render_preview
from tests.support.perceptual import colour_distance, mean_colour

EXIF_ORIENTATION = 0x0112
EXIF_MAKE = 0x010F

# Four colours that stay far apart after JPEG, resizing and any of the eight EXIF transpositions.
QUADRANT_COLOURS = {
    "tl": (220, 30, 30),   # red
    "tr": (30, 180, 40),   # green
    "bl": (30, 40, 220),   # blue
    "br": (235, 225, 40),  # yellow
}


def options(spec: str = "", config: RenderConfig | None = None) -> ProcessingOptions:
    """ProcessingOptions from URL-style text: `rs:fill:300:200/g:no/q:80` (empty: the defaults)."""
    config = config or RenderConfig()
    parsed = [(name, args) for name, *args in (part.split(":") for part in spec.split("/") if part)]
    return apply_options(config.defaults, parsed, config.presets)


def render(source: bytes | Path, spec: str = "", config: RenderConfig | None = None,
           seconds: float = 30.0) -> Rendered:
    """Render `source` (bytes or a file) with the options in `spec`, as the server would."""
    config = config or RenderConfig()
    if isinstance(source, Path):
        with source.open("rb") as file:
            return render_preview(file, options(spec, config), config, deadline_after(seconds))
    return render_preview(io.BytesIO(source), options(spec, config), config, deadline_after(seconds))


def decoded(rendered: Rendered | bytes) -> Image.Image:
    """The rendered bytes opened and fully loaded with plain Pillow."""
    data = rendered if isinstance(rendered, bytes) else rendered.data
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def encoded(image: Image.Image, pillow_format: str, **params: object) -> bytes:
    """`image` saved in `pillow_format` (Pillow's name, e.g. "JPEG") with save parameters."""
    buffer = io.BytesIO()
    image.save(buffer, pillow_format, **params)
    return buffer.getvalue()


def exif_block(orientation: int | None = None, make: str | None = None) -> bytes:
    """An EXIF block with the given Orientation and Make tags."""
    exif = Image.Exif()
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    if make is not None:
        exif[EXIF_MAKE] = make
    return exif.tobytes()


def quadrants(size: tuple[int, int] = (240, 160)) -> Image.Image:
    """An RGB image split into four flat quadrants of QUADRANT_COLOURS: no symmetry maps it onto itself."""
    width, height = size
    image = Image.new("RGB", size)
    half_w, half_h = width // 2, height // 2
    boxes = {"tl": (0, 0, half_w, half_h), "tr": (half_w, 0, width, half_h),
             "bl": (0, half_h, half_w, height), "br": (half_w, half_h, width, height)}
    for name, box in boxes.items():
        image.paste(QUADRANT_COLOURS[name], box)
    return image


def quadrant_names(image: Image.Image) -> dict[str, str]:
    """Which QUADRANT_COLOURS name each quadrant of `image` shows, judged by the nearest mean colour.

    Only the middle half of each quadrant is measured, away from edges blurred by resizing or JPEG.
    """
    width, height = image.size
    names = {}
    for corner, (col, row) in {"tl": (0, 0), "tr": (1, 0), "bl": (0, 1), "br": (1, 1)}.items():
        left = col * width // 2 + width // 8
        top = row * height // 2 + height // 8
        seen = mean_colour(image, (left, top, left + width // 4, top + height // 4))
        names[corner] = min(QUADRANT_COLOURS, key=lambda name: colour_distance(seen, QUADRANT_COLOURS[name]))
    return names


def named_photo(photos: list[Path], name: str) -> Path:
    """The corpus photo called `name` (tests/corpus/make_photos.sh names them), failing clearly if absent."""
    found = [path for path in photos if path.name == name]
    assert found, f"{name} is not in the photo corpus (tests/corpus/make_photos.sh)"
    return found[0]


def upright_photo(path: Path, longest_side: int | None = None) -> Image.Image:
    """A photo decoded in full with plain Pillow, made upright, as RGB, optionally shrunk (Lanczos)."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    if longest_side and max(upright.size) > longest_side:
        upright.thumbnail((longest_side, longest_side), Image.Resampling.LANCZOS)
    return upright


def cmyk_profile(ink_to_srgb: Callable[[int, int, int, int], tuple[int, int, int]], name: str = "Test CMYK") -> bytes:
    """A small ICC v2 CMYK printer profile: its A2B0 table maps each ink corner (0 or 1 of C, M, Y, K) to the
    Lab value of `ink_to_srgb(c, m, y, k)`, and LittleCMS interpolates between corners.

    None of Pillow's test images is a CMYK JPEG with a profile, so the test makes one whose colours
    differ from Pillow's naive CMYK->RGB formula (ICC.1:2001-04, lut8Type and textDescriptionType).
    """
    srgb_to_lab = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    clut = b""
    for corner in itertools.product((0, 1), repeat=4):
        lightness, a_byte, b_byte = srgb_to_lab.apply(Image.new("RGB", (1, 1), ink_to_srgb(*corner))).getpixel((0, 0))
        clut += bytes((lightness, a_byte, b_byte))  # Pillow's LAB bytes are the lut8 Lab encoding: L*255/100, a+128
    ramp = bytes(range(256))
    identity = b"".join(_s15(value) for value in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    a2b0 = b"mft1" + bytes(4) + bytes((4, 3, 2, 0)) + identity + ramp * 4 + clut + ramp * 3
    text = name.encode() + b"\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8) + bytes(3) + bytes(67)
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    tags = [(b"desc", desc), (b"wtpt", b"XYZ " + bytes(4) + d50), (b"A2B0", a2b0),
            (b"cprt", b"text" + bytes(4) + b"none\0")]
    offset = 128 + 4 + 12 * len(tags)
    table = body = b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    header = (struct.pack(">I", offset + len(body)) + b"lcms" + struct.pack(">I", 0x02100000) + b"prtr" + b"CMYK"
              + b"Lab " + bytes(12) + b"acsp" + bytes(28) + d50 + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + body


def _s15(value: float) -> bytes:
    """ICC s15Fixed16Number."""
    return struct.pack(">i", round(value * 65536))


def png_file(width: int, height: int, row: bytes | None, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A PNG written chunk by chunk (PNG spec, ISO/IEC 15948): every row is `row`, or no pixel data at all.

    With a zero row it makes decompression bombs: 12000x12000 at 1 bit is an 18 KB file that Pillow
    would decode into 144 MB. With `row=None` the file has a header and nothing to decode.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    pixels = b""
    if row is not None:
        compressor = zlib.compressobj(9)
        filtered_row = b"\0" + row  # filter type 0 (None) before each scanline
        pixels = chunk(b"IDAT", b"".join(compressor.compress(filtered_row) for _ in range(height)) + compressor.flush())
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")

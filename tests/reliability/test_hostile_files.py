"""Hostile files through a real server: every file of Pillow's test suite (corrupt, truncated, odd
modes, animations, decompression bombs) and files made here to lie about themselves, as previews and
as conversions, many at a time.

Every answer must be a one-line 4xx or an image that decodes whole, the server's peak resident memory
stays under 1 GiB, its log has no traceback, and it still serves an ordinary preview afterwards.
"""

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

from tests.conftest import StartServer
from tests.support.previews_kit import assert_log_clean, assert_one_line, decoded, fetch_all, place
from tests.support.server import ServerProcess

BUCKET = "hostile"
BATCH = 24  # requests in flight at once: enough to crowd the render threads and the memory budget
PEAK_RSS_LIMIT = 1024**3
PREVIEW = "/previews/q/rs:fit:64:64/plain/{bucket}/{key}"
CONVERSION = "/image-converter/convert/{bucket}/{key}"


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header over a few zero bytes of pixels: a decoder would allocate width x height."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + chunk(b"IEND", b""))


def _tiff_claiming(width: int, height: int) -> bytes:
    """A little-endian TIFF whose one strip claims width x height RGB pixels and holds 16 bytes."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 2), (273, 4, 8 + 2 + 12 * 9 + 4),
               (277, 3, 3), (278, 4, height), (279, 4, min(width * height * 3, 0xFFFFFFFF))]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", tag, kind, 1, value)
                                                    for tag, kind, value in entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\0" * 16


def _made_here() -> dict[str, bytes]:
    """Files that lie: huge declared sizes, a truncated photo, a wrong magic, nothing at all."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((640, 480)).convert("RGB").save(buffer, "JPEG", quality=90)
    photo = buffer.getvalue()
    return {
        "png-40000.png": _png_claiming(40_000, 40_000),
        "png-7000.png": _png_claiming(7_000, 7_000),  # under the source limit: decoded, a few MB of zeros
        "tiff-60000.tif": _tiff_claiming(60_000, 60_000),
        "tiff-7000.tif": _tiff_claiming(7_000, 7_000),
        "truncated.jpg": photo[: len(photo) // 3],
        "jpeg-magic-noise.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64,
        "empty.png": b"",
        "text.tif": b"not an image at all\n" * 100,
    }


def _check(server: ServerProcess, route: str, files: dict[str, bytes]) -> dict[int, int]:
    """Ask for every file by `route`, BATCH at a time; return how many answers had each status.

    A 200 is an image that decodes whole, or (the converter's pass-through of a format browsers
    show) the file's own bytes, untouched.
    """
    statuses: dict[int, int] = {}
    keys = list(files)
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        answers = fetch_all(server, [route.format(bucket=BUCKET, key=key) for key in batch], timeout=60)
        for key, answer in zip(batch, answers, strict=True):
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
            if answer.status == 200:
                if answer.body != files[key]:
                    try:
                        image = decoded(answer.body)  # loads every pixel: a short or broken body fails here
                    except Exception as error:
                        raise AssertionError(f"{answer.path}: {answer.headers.get('Content-Type')} {error}") from None
                    assert image.width > 0 and image.height > 0, answer.path
            else:
                assert 400 <= answer.status < 500, (answer.path, answer.status, answer.body[:300])
                assert_one_line(answer.body)
    return statuses


def test_hostile_files_get_a_4xx_or_a_whole_image_with_bounded_memory(
        start_server: StartServer, data_path: Path, pillow_images: Path) -> None:
    files: dict[str, bytes] = {}
    for index, path in enumerate(sorted(p for p in pillow_images.iterdir() if p.is_file())):
        files[f"pillow/{index:04d}{path.suffix.lower()}"] = path.read_bytes()
    for name, content in _made_here().items():
        files[f"made/{name}"] = content
    for key, content in files.items():
        place(data_path, BUCKET, key, content)
    place(data_path, BUCKET, "fine.jpg", pillow_images / "hopper.jpg")
    server = start_server()

    previews = _check(server, PREVIEW, files)
    conversions = _check(server, CONVERSION, files)
    keys = list(files)

    print(f"{len(keys)} files; previews {sorted(previews.items())}; conversions {sorted(conversions.items())}")
    # Both outcomes occur: most of Pillow's files are fine images, the made ones are all refused.
    assert previews.get(200, 0) > len(keys) // 2 and conversions.get(200, 0) > len(keys) // 2
    assert sum(count for status, count in previews.items() if status >= 400) >= len(_made_here()) - 1
    peak = server.peak_rss_bytes()
    print(f"peak RSS {peak / 2**20:.0f} MiB")
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
    fine = fetch_all(server, [PREVIEW.format(bucket=BUCKET, key="fine.jpg")])[0]
    assert fine.status == 200 and max(decoded(fine.body).size) == 64
    assert_log_clean(server)

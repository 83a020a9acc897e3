"""Limits before decoding, through a real server: resolution (422), file size (413), bad input (415), bombs.

Never a 500, every error body one line, and the server's peak RSS bounded on decompression bombs.
"""

import io
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.previews_kit import (
    assert_log_clean,
    assert_one_line,
    decoded,
    fetch_all,
    place,
    running_server,
    smallest_file,
)
from tests.support.s3 import MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

BUCKET = "limits"
KIB = 1024
MIB = 1024 * KIB
RSS_BOUND = 300 * MIB


def preview(key: str, options: str = "rs:fit:100:100") -> str:
    """A preview path for `key` in BUCKET."""
    return f"/previews/q/{options}/plain/{BUCKET}/{key}"


def jpeg(width: int, height: int, quality: int = 75) -> bytes:
    """A real JPEG of that size (a gradient, so it compresses to a few KiB)."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    """A PNG with the given header and one IDAT chunk, whatever the IDAT holds."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png_bomb(side: int) -> bytes:
    """A complete, valid 1-bit PNG of side x side black pixels: ~100 KiB that decode to side² bytes."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte 0, then the packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return png(side, side, 1, 0, idat)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) claims width x height."""
    data = bytearray(jpeg(16, 16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def assert_limit_holds(server: ServerProcess, refused: tuple[str, ...], status: int, served: str) -> None:
    """Previews of `refused` keys get `status` with a one-line text body; the one at the limit is served."""
    for key in refused:
        answer, headers, body = fetch(server, preview(key))
        assert answer == status, (key, answer, body)
        assert headers["Content-Type"].startswith("text/plain")
        assert_one_line(body)
    answer, _, body = fetch(server, preview(served))
    assert answer == 200 and max(decoded(body).size) == 100
    assert_log_clean(server)


# --- resolution and file size -----------------------------------------------------------------------------

def test_a_source_over_imgproxy_max_src_resolution_is_422(start_server: StartServer, data_path: Path,
                                                          photos: list[Path]) -> None:
    photo = smallest_file(photos)
    place(data_path, BUCKET, "photo.jpg", photo)
    place(data_path, BUCKET, "exactly-1mp.jpg", jpeg(1000, 1000))
    place(data_path, BUCKET, "just-over.jpg", jpeg(1001, 1000))
    server = start_server(IMGPROXY_MAX_SRC_RESOLUTION="1")

    assert_limit_holds(server, refused=("photo.jpg", "just-over.jpg"), status=422, served="exactly-1mp.jpg")


def test_a_source_over_imgproxy_max_src_file_size_is_413(start_server: StartServer, data_path: Path,
                                                         photos: list[Path]) -> None:
    photo = min((p for p in photos if p.stat().st_size > 150 * KIB), key=lambda p: p.stat().st_size)
    small = jpeg(400, 300)
    assert len(small) < 100 * KIB
    place(data_path, BUCKET, "photo.jpg", photo)
    # Bytes after a JPEG's end marker are ignored by decoders: pad to sizes either side of the limit.
    place(data_path, BUCKET, "at-limit.jpg", small + b"\0" * (100 * KIB - len(small)))
    place(data_path, BUCKET, "one-over.jpg", small + b"\0" * (100 * KIB + 1 - len(small)))
    server = start_server(IMGPROXY_MAX_SRC_FILE_SIZE="100k")

    assert_limit_holds(server, refused=("photo.jpg", "one-over.jpg"), status=413, served="at-limit.jpg")


def test_an_s3_source_over_the_size_limit_is_413_without_fetching_its_body(
        start_server: StartServer, moto: MotoS3, bucket: str, photos: list[Path]) -> None:
    photo = min((p for p in photos if p.stat().st_size > 150 * KIB), key=lambda p: p.stat().st_size)
    moto.put(bucket, "big/photo.jpg", photo.read_bytes(), "image/jpeg")
    moto.put(bucket, "small/photo.jpg", jpeg(400, 300), "image/jpeg")
    with TcpProxy(("127.0.0.1", moto.port)) as proxy:
        server = start_server(**s3_env(proxy.endpoint), IMGPROXY_MAX_SRC_FILE_SIZE="100k")

        status, _, body = fetch(server, f"/previews/q/rs:fit:100:100/plain/{bucket}/big/photo.jpg")
        small = fetch(server, f"/previews/q/rs:fit:100:100/plain/{bucket}/small/photo.jpg")

        assert status == 413, body
        assert_one_line(body)
        assert proxy.gets("/big/photo.jpg") == [], "the provider must not be asked for the body"
        assert small[0] == 200 and max(decoded(small[2]).size) == 100
        assert len(proxy.gets("/small/photo.jpg")) == 1  # the counting works: the small one was fetched
    assert_log_clean(server)


# --- unreadable input -------------------------------------------------------------------------------------

PILLOW_BROKEN = {  # Pillow's own test files, each unreadable in its own way
    "broken.png": "broken.png",
    "broken_data_stream.png": "broken_data_stream.png",
    "truncated_image.png": "truncated_image.png",
    "truncated_end_chunk.png": "truncated_end_chunk.png",
    "truncated_jpeg.jpg": "truncated_jpeg.jpg",
    "bad-signature.png": "pngtest_bad.png.bin",
    "crash.j2k": "crash-4fb027452e6988530aa5dabee76eecacb3b79f8a.j2k",
    "truncated.tga": "cross_scan_line_truncated.tga",
}
MADE_BROKEN = ["noise.jpg", "error-page.png", "half-a-photo.jpg", "empty.jpg", "drawing.svg", "header-only.png"]


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory, pillow_images: Path, photos: list[Path]) -> Path:
    """DATA_PATH holding unreadable sources under BUCKET."""
    data_path = tmp_path_factory.mktemp("previews-limits") / "data"
    for key, name in PILLOW_BROKEN.items():
        place(data_path, BUCKET, key, pillow_images / name)
    photo = smallest_file(photos).read_bytes()
    made = {
        "noise.jpg": os.urandom(20_000),
        "error-page.png": b"<html><body>502 Bad Gateway</body></html>\n",
        "half-a-photo.jpg": photo[: len(photo) * 2 // 5],
        "empty.jpg": b"",
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "header-only.png": png(64, 64, 8, 2, b""),
    }
    for key, content in made.items():
        place(data_path, BUCKET, key, content)
    return data_path


@pytest.fixture(scope="module")
def broken_server(broken_site: Path) -> Iterator[ServerProcess]:
    """A default server over the unreadable sources."""
    with running_server(broken_site) as server:
        yield server


@pytest.mark.parametrize("key", [*PILLOW_BROKEN, *MADE_BROKEN])
def test_corrupt_truncated_or_unsupported_input_is_415_with_a_reason(broken_server: ServerProcess,
                                                                     key: str) -> None:
    status, headers, body = fetch(broken_server, preview(key))

    assert status == 415, (status, body)
    assert headers["Content-Type"].startswith("text/plain")
    reason = assert_one_line(body)
    assert len(reason) > 10
    assert_log_clean(broken_server)


# --- valid input of each kind (the control for the cases above and below) ------------------------------

def encoded(image: Image.Image, pillow_format: str) -> bytes:
    """`image` saved in `pillow_format`."""
    buffer = io.BytesIO()
    image.save(buffer, pillow_format)
    return buffer.getvalue()


INPUT_FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "TGA", "PPM", "JPEG2000"]


@pytest.fixture(scope="module")
def formats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A default server over one valid 320x240 image in each input format (keys without extensions)."""
    data_path = tmp_path_factory.mktemp("previews-formats") / "data"
    image = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    for pillow_format in INPUT_FORMATS:
        place(data_path, BUCKET, f"source-{pillow_format}", encoded(image, pillow_format))
    with running_server(data_path) as server:
        yield server


@pytest.mark.parametrize("pillow_format", INPUT_FORMATS)
def test_a_valid_source_of_each_input_format_renders(formats_server: ServerProcess, pillow_format: str) -> None:
    status, _, body = fetch(formats_server, preview(f"source-{pillow_format}", "rs:fit:80:80/f:png"))

    assert status == 200, body
    assert decoded(body).size == (80, 60)


# --- decompression bombs ----------------------------------------------------------------------------------

def bombs(pillow_images: Path) -> dict[str, bytes]:
    """Small files that claim far more pixels than the default limit of 50 MP."""
    return {
        "png-30000.png": png_bomb(30000),  # 900 MP, valid to the last byte
        "png-12000.png": png(12000, 12000, 8, 2, zlib.compress(b"\0" * 1000)),  # 144 MP: Pillow only warns
        "png-8000.png": png(8000, 8000, 8, 6, zlib.compress(b"\0" * 1000)),  # 64 MP: under Pillow's guard
        "jpeg-30000.jpg": jpeg_claiming(30000, 30000),
        "jpeg-8000.jpg": jpeg_claiming(8000, 8000),
        "gif.gif": (pillow_images / "decompression_bomb.gif").read_bytes(),
        "ico.ico": (pillow_images / "decompression_bomb.ico").read_bytes(),
    }


BOMB_KEYS = ["png-30000.png", "png-12000.png", "png-8000.png", "jpeg-30000.jpg", "jpeg-8000.jpg", "gif.gif",
             "ico.ico"]


@pytest.fixture(scope="module")
def bomb_server(tmp_path_factory: pytest.TempPathFactory, pillow_images: Path) -> Iterator[ServerProcess]:
    """A default server over the bombs and one fine JPEG."""
    data_path = tmp_path_factory.mktemp("previews-bombs") / "data"
    made = bombs(pillow_images)
    assert sorted(made) == sorted(BOMB_KEYS)
    for key, content in made.items():
        assert len(content) < 200 * KIB, key
        place(data_path, BUCKET, key, content)
    place(data_path, BUCKET, "fine.jpg", jpeg(640, 480))
    with running_server(data_path) as server:
        yield server


@pytest.mark.parametrize("key", BOMB_KEYS)
def test_a_decompression_bomb_is_422(bomb_server: ServerProcess, key: str) -> None:
    status, headers, body = fetch(bomb_server, preview(key))

    assert status == 422, (status, body)
    assert headers["Content-Type"].startswith("text/plain")
    assert_one_line(body)


def test_bombs_leave_peak_rss_bounded_and_the_server_serving(bomb_server: ServerProcess) -> None:
    paths = [preview(key, f"rs:fit:{100 + n}:{100 + n}") for key in BOMB_KEYS for n in range(4)]

    answers = [*(fetch(bomb_server, path) for path in paths[::4])]
    answers_at_once = fetch_all(bomb_server, paths)

    assert all(400 <= status < 500 for status, _, _ in answers), [status for status, _, _ in answers]
    assert all(400 <= a.status < 500 for a in answers_at_once), [(a.path, a.status) for a in answers_at_once]
    peak = bomb_server.peak_rss_bytes()
    assert peak < RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB"
    status, _, body = fetch(bomb_server, preview("fine.jpg"))
    assert status == 200 and max(decoded(body).size) == 100
    assert_log_clean(bomb_server)

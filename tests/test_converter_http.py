"""`/image-converter/...` through a real server: routes, pass-through, the converter tier, bad input.

Sources are made in the tests: Pillow writes the TIFFs, PyAV the videos (each frame shows its index as
a binary counter, so the right frame can be checked).
"""

import io
import random
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.previews_kit import assert_log_clean, assert_one_line, decoded, metric, place, poll
from tests.support.server import ServerProcess
from tests.support.video import VideoSpec, make_video, read_counter

CONVERTS = "preview_proxy_render_duration_seconds_count"
BUCKET = "media"


def tiff_bytes(colours: list[tuple[int, ...]], size: tuple[int, int] = (120, 80), mode: str = "RGB",
               **params: object) -> bytes:
    """A TIFF with one page per colour."""
    pages = [Image.new(mode, size, colour) for colour in colours]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:], **params)
    return out.getvalue()


@pytest.fixture
def server(start_server: StartServer, data_path: Path) -> ServerProcess:
    """A server over local storage holding a TIFF, a JPEG, a video and damaged files."""
    place(data_path, BUCKET, "scan.tif", tiff_bytes([(200, 30, 30), (30, 200, 30), (30, 30, 200)],
                                                     compression="tiff_lzw"))
    place(data_path, BUCKET, "alpha.tif", tiff_bytes([(10, 20, 30, 100)], mode="RGBA"))
    place(data_path, BUCKET, "photo.tif", tiff_bytes([(90, 120, 150)], compression="jpeg"))
    jpeg = io.BytesIO()
    Image.new("RGB", (50, 40), (1, 2, 3)).save(jpeg, "JPEG")
    place(data_path, BUCKET, "plain.jpg", jpeg.getvalue())
    video = make_video(VideoSpec(frames=75, fps=25, size=(320, 240), gop=12))
    place(data_path, BUCKET, "clip.mp4", video)
    place(data_path, BUCKET, "cut.mp4", video[: len(video) // 2])
    place(data_path, BUCKET, "corrupt.tif", tiff_bytes([(1, 1, 1)])[:60] + b"\x00garbage" * 50)
    return start_server()


def pixel(body: bytes) -> tuple[int, ...]:
    """The colour at the centre of an encoded image."""
    image = decoded(body).convert("RGB")
    return image.getpixel((image.width // 2, image.height // 2))


def close(first: tuple[int, ...], second: tuple[int, ...], tolerance: int = 6) -> bool:
    """Colours equal within a lossy codec's error."""
    return all(abs(a - b) <= tolerance for a, b in zip(first, second, strict=True))


def test_a_lossless_tiff_becomes_a_png_once_then_comes_from_the_converter_tier(server: ServerProcess) -> None:
    status, headers, body = fetch(server, f"/image-converter/convert/{BUCKET}/scan.tif")
    assert status == 200, body
    assert (headers["Content-Type"], headers["X-Converted-From"], headers["X-Cache"]) == ("image/png", "tiff", "MISS")
    assert decoded(body).size == (120, 80)
    assert pixel(body) == (200, 30, 30)
    status, again, second = fetch(server, f"/image-converter/convert/{BUCKET}/scan.tif")
    assert (status, again["X-Cache"], second, again["ETag"]) == (200, "HIT", body, headers["ETag"])
    assert metric(server, CONVERTS, operation="convert") == 1
    status, _, _ = fetch(server, f"/image-converter/convert/{BUCKET}/scan.tif",
                         headers={"If-None-Match": headers["ETag"]})
    assert status == 304


@pytest.mark.parametrize(("page", "colour"), [(0, (200, 30, 30)), (1, (30, 200, 30)), (2, (30, 30, 200))])
def test_page_picks_the_page_of_a_multi_page_tiff(server: ServerProcess, page: int, colour: tuple[int, ...]) -> None:
    status, _, body = fetch(server, f"/image-converter/convert/{BUCKET}/scan.tif?page={page}")
    assert status == 200, body
    assert pixel(body) == colour


def test_alpha_gives_png_and_a_jpeg_compressed_tiff_gives_jpeg(server: ServerProcess) -> None:
    status, headers, body = fetch(server, f"/image-converter/convert/{BUCKET}/alpha.tif")
    assert (status, headers["Content-Type"]) == (200, "image/png"), body
    assert decoded(body).mode == "RGBA"
    assert decoded(body).getpixel((5, 5)) == (10, 20, 30, 100)
    status, headers, body = fetch(server, f"/image-converter/convert/{BUCKET}/photo.tif")
    assert (status, headers["Content-Type"]) == (200, "image/jpeg"), body
    assert close(pixel(body), (90, 120, 150))


def test_a_browser_ready_source_passes_through_untouched(server: ServerProcess, data_path: Path) -> None:
    status, headers, body = fetch(server, f"/image-converter/convert/{BUCKET}/plain.jpg")
    assert status == 200, body
    assert body == (data_path / "storage" / BUCKET / "plain.jpg").read_bytes()
    assert (headers["Content-Type"], headers["X-Converted-From"]) == ("image/jpeg", "jpeg")
    # Nothing was stored for it: the converter tier holds no copy of an original.
    assert metric(server, "preview_proxy_cache_entries", tier="image-converter") == 0


def test_webp_only_when_the_operator_enables_it_and_the_client_accepts_it(
        start_server: StartServer, data_path: Path) -> None:
    # WebP stands in for JPEG (a lossy source); a lossless source stays PNG whatever the client takes.
    place(data_path, BUCKET, "photo.tif", tiff_bytes([(200, 30, 30)], compression="jpeg"))
    place(data_path, BUCKET, "scan.tif", tiff_bytes([(200, 30, 30)]))
    server = start_server(IMAGE_CONVERTER_AUTO_WEBP="1")
    path = f"/image-converter/convert/{BUCKET}/photo.tif"
    status, headers, body = fetch(server, path, headers={"Accept": "image/webp,*/*"})
    assert (status, headers["Content-Type"], headers["Vary"]) == (200, "image/webp", "Accept"), body
    assert close(pixel(body), (200, 30, 30))
    status, headers, _ = fetch(server, path, headers={"Accept": "image/png,*/*"})
    assert (status, headers["Content-Type"], headers["Vary"]) == (200, "image/jpeg", "Accept")
    status, headers, _ = fetch(server, f"/image-converter/convert/{BUCKET}/scan.tif", headers={"Accept": "image/webp"})
    assert (status, headers["Content-Type"]) == (200, "image/png")


@pytest.mark.parametrize(("position", "frame"), [("0f", 0), ("10f", 10), ("74f", 74), ("2s", 50), ("50p", 37)])
def test_videoframe_gives_the_frame_at_the_position(server: ServerProcess, position: str, frame: int) -> None:
    status, headers, body = fetch(server, f"/image-converter/videoframe/{position}/{BUCKET}/clip.mp4")
    assert status == 200, body
    assert (headers["Content-Type"], headers["X-Converted-From"]) == ("image/jpeg", "video")
    assert read_counter(decoded(body)) == frame


def test_the_client_video_thumbnail_url_renders_a_preview_of_the_frame(server: ServerProcess) -> None:
    path = (f"/previews/q/ext:jpeg/resize:fill:300:0:0/q:70/plain/image-converter/videoframe/33p/"
            f"{BUCKET}/clip.mp4?videoStreamIndex=0")
    status, headers, body = fetch(server, path)
    assert status == 200, body
    assert headers["Content-Type"] == "image/jpeg"
    image = decoded(body)
    assert image.size == (300, 225)  # 64x48 scaled to a width of 300 (fill with height 0, enlarged? no:)


def test_a_preview_of_a_converted_tiff(server: ServerProcess) -> None:
    status, headers, body = fetch(server, f"/previews/q/rs:fit:60:60/plain/image-converter/convert/{BUCKET}/scan.tif")
    assert status == 200, body
    assert headers["Content-Type"] == "image/png"  # the converted source is a PNG, so the preview keeps it
    assert decoded(body).size == (60, 40)
    assert pixel(body) == (200, 30, 30)


@pytest.mark.parametrize(("path", "status", "words"), [
    (f"/image-converter/convert/{BUCKET}/corrupt.tif", 415, "supported format"),
    (f"/image-converter/videoframe/10f/{BUCKET}/cut.mp4", 415, ""),
    (f"/image-converter/videoframe/10f/{BUCKET}/clip.mp4?videoStreamIndex=5", 415, "stream"),
    (f"/image-converter/videoframe/200p/{BUCKET}/clip.mp4", 415, "past the end"),
    (f"/image-converter/videoframe/99s/{BUCKET}/clip.mp4", 415, ""),
    (f"/image-converter/videoframe/500f/{BUCKET}/clip.mp4", 415, ""),
    (f"/image-converter/videoframe/soon/{BUCKET}/clip.mp4", 400, "soon"),
    (f"/image-converter/convert/{BUCKET}/scan.tif?page=9", 415, "page"),
    (f"/image-converter/convert/{BUCKET}/scan.tif?page=x", 400, "page"),
    (f"/image-converter/convert/{BUCKET}/scan.tif?pgae=1", 400, "pgae"),
    (f"/image-converter/resize/{BUCKET}/scan.tif", 400, "resize"),
    (f"/image-converter/convert/{BUCKET}/missing.tif", 404, ""),
])
def test_bad_input_is_a_one_line_4xx(server: ServerProcess, path: str, status: int, words: str) -> None:
    answer, _, body = fetch(server, path)
    assert answer == status, body
    reason = assert_one_line(body)
    assert words.lower() in reason.lower()
    assert_log_clean(server)


def test_a_tiff_over_the_pixel_limit_is_422_before_decoding(start_server: StartServer, data_path: Path) -> None:
    place(data_path, BUCKET, "big.tif", tiff_bytes([(5, 5, 5)], size=(1500, 1000)))
    server = start_server(IMGPROXY_MAX_SRC_RESOLUTION="1")
    status, _, body = fetch(server, f"/image-converter/convert/{BUCKET}/big.tif")
    assert status == 422, body
    assert_one_line(body)


def test_the_converter_tier_is_bounded_by_its_size(start_server: StartServer, data_path: Path) -> None:
    # Noise compresses badly, so each PNG is about as big as its pixels (360 KiB): three of them pass
    # what a 1m tier keeps for entries once its SQLite files are reserved out of the bound.
    for seed, name in enumerate(("a", "b", "c")):
        out = io.BytesIO()
        Image.frombytes("RGB", (350, 350), random.Random(seed).randbytes(350 * 350 * 3)).save(out, "TIFF")
        place(data_path, BUCKET, f"{name}.tif", out.getvalue())
    server = start_server(CACHE_IMAGE_CONVERTER_SIZE="1m")
    for name in ("a", "b", "c"):
        assert fetch(server, f"/image-converter/convert/{BUCKET}/{name}.tif")[0] == 200
    poll(lambda: metric(server, "preview_proxy_cache_evictions_total", tier="image-converter") >= 1,
         "an eviction from the converter tier")
    assert metric(server, "preview_proxy_cache_size_bytes", tier="image-converter") <= 1024 * 1024

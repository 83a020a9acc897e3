"""imgproxy's `/info/<signature>/<options>/<source>` through a real server: width, height, format and size
as JSON, read from the source's header only, signed like previews, cached, and refused in one line.
"""

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.previews_kit import assert_one_line, metric, place, sign
from tests.support.s3 import MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy
from tests.support.video import VideoSpec, make_video

BUCKET = "media"
REQUESTS = "preview_proxy_requests_total"


def encoded(image: Image.Image, pillow_format: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, pillow_format, **params)
    return out.getvalue()


def answer(server: ServerProcess, path: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    status, _, body = fetch(server, path, headers)
    assert status == 200, body
    facts = json.loads(body)
    assert isinstance(facts, dict)
    return facts


@pytest.fixture
def files(data_path: Path) -> dict[str, bytes]:
    """Sources of each kind, placed in local storage."""
    made = {
        "photo.jpg": encoded(Image.new("RGB", (321, 123), (9, 8, 7)), "JPEG"),
        "alpha.png": encoded(Image.new("RGBA", (64, 48), (1, 2, 3, 4)), "PNG"),
        "scan.tif": encoded(Image.new("RGB", (77, 55), (5, 5, 5)), "TIFF"),
        "still.webp": encoded(Image.new("RGB", (30, 31), (5, 5, 5)), "WEBP"),
        "clip.mp4": make_video(VideoSpec(frames=10, fps=10, size=(160, 96), gop=5)),
        "notes.txt": b"not an image, not a video\n" * 20,
    }
    # A whole JPEG header over a body cut short: its facts are there, its pixels are not.
    whole = encoded(Image.effect_noise((400, 300), 64).convert("RGB"), "JPEG", quality=95)
    made["cut.jpg"] = whole[: len(whole) // 3]
    for key, content in made.items():
        place(data_path, BUCKET, key, content)
    return made


@pytest.fixture
def server(start_server: StartServer, files: dict[str, bytes]) -> ServerProcess:
    return start_server()


@pytest.mark.parametrize(("key", "width", "height", "kind"), [
    ("photo.jpg", 321, 123, "jpeg"), ("alpha.png", 64, 48, "png"), ("scan.tif", 77, 55, "tiff"),
    ("still.webp", 30, 31, "webp"), ("clip.mp4", 160, 96, "mp4"), ("cut.jpg", 400, 300, "jpeg"),
])
def test_info_answers_the_facts_under_imgproxys_names(server: ServerProcess, files: dict[str, bytes], key: str,
                                                      width: int, height: int, kind: str) -> None:
    facts = answer(server, f"/info/_/plain/{BUCKET}/{key}")
    assert facts == {"width": width, "height": height, "format": kind, "size": len(files[key])}


def test_a_header_without_its_body_is_enough(server: ServerProcess) -> None:
    # The preview of the cut JPEG has to decode it and fails; the info never decodes, so it answers.
    assert fetch(server, f"/previews/_/rs:fit:50:50/plain/{BUCKET}/cut.jpg")[0] == 415
    assert answer(server, f"/info/_/plain/{BUCKET}/cut.jpg")["width"] == 400


def test_the_base64_source_form_and_options(server: ServerProcess, files: dict[str, bytes]) -> None:
    source = base64.urlsafe_b64encode(f"{BUCKET}/photo.jpg".encode()).decode().rstrip("=")
    assert answer(server, f"/info/_/{source[:7]}/{source[7:]}")["height"] == 123
    assert answer(server, f"/info/_/size:0/plain/{BUCKET}/photo.jpg") == {"width": 321, "height": 123,
                                                                          "format": "jpeg"}
    assert answer(server, f"/info/_/d:f/f:0/plain/{BUCKET}/photo.jpg") == {"size": len(files["photo.jpg"])}
    assert answer(server, f"/info/_/s:0/s:1/d:0/plain/{BUCKET}/photo.jpg") == {
        "format": "jpeg", "size": len(files["photo.jpg"])}


@pytest.mark.parametrize(("path", "status", "reason"), [
    (f"/info/_/exif:1/plain/{BUCKET}/photo.jpg", 400, "unsupported info option 'exif'"),
    (f"/info/_/size:maybe/plain/{BUCKET}/photo.jpg", 400, "not a boolean"),
    (f"/info/_/size/plain/{BUCKET}/photo.jpg", 400, ""),
    (f"/info/_/plain/{BUCKET}/photo.jpg@png", 400, "takes no output format"),
    (f"/info/_/plain/image-converter/convert/{BUCKET}/scan.tif", 400, "info reads originals"),
    (f"/info/_/plain/{BUCKET}/missing.jpg", 404, ""),
    (f"/info/_/plain/{BUCKET}/notes.txt", 415, "neither an image nor a video"),
    ("/info/_/plain/", 400, "source"),
    ("/info/_/plain/local:///a.jpg", 404, "IMGPROXY_LOCAL_FILESYSTEM_ROOT"),
    ("/info/_/!!!notbase64", 400, "base64url"),
])
def test_bad_input_is_a_one_line_4xx(server: ServerProcess, path: str, status: int, reason: str) -> None:
    got, _, body = fetch(server, path)
    assert got == status, body
    assert reason in assert_one_line(body)


def test_validators_and_caching_headers(server: ServerProcess) -> None:
    status, headers, body = fetch(server, f"/info/_/plain/{BUCKET}/photo.jpg")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert fetch(server, f"/info/_/plain/{BUCKET}/photo.jpg", {"If-None-Match": headers["ETag"]})[0] == 304
    # Other fields are another answer: another validator.
    _, fewer, _ = fetch(server, f"/info/_/size:0/plain/{BUCKET}/photo.jpg")
    assert fewer["ETag"] != headers["ETag"]
    assert fetch(server, f"/info/_/plain/{BUCKET}/photo.jpg", method="HEAD")[1]["Content-Length"] == str(len(body))


def test_info_is_counted_under_its_own_route(server: ServerProcess) -> None:
    for _ in range(3):
        fetch(server, f"/info/_/plain/{BUCKET}/photo.jpg")
    fetch(server, f"/info/_/plain/{BUCKET}/missing.jpg")
    assert metric(server, REQUESTS, route="info", status="200") == 3
    assert metric(server, REQUESTS, route="info", status="404") == 1


def test_signatures_are_checked_like_the_previews(start_server: StartServer, files: dict[str, bytes]) -> None:
    key, salt = "736563726574", "68656C6C6F"
    server = start_server(IMGPROXY_KEY=key, IMGPROXY_SALT=salt)
    path = f"/plain/{BUCKET}/photo.jpg"
    assert answer(server, f"/info/{sign(key, salt, path)}{path}")["width"] == 321
    for signature in ("_", sign(key, salt, "/size:0" + path)):
        status, _, body = fetch(server, f"/info/{signature}{path}")
        assert status == 403
        assert "signature" in assert_one_line(body)


def test_a_remote_original_is_read_by_its_header_once(moto: MotoS3, bucket: str, s3_proxy: TcpProxy,
                                                       start_server: StartServer, photos: list[Path]) -> None:
    photo = max(photos, key=lambda path: path.stat().st_size)  # megabytes, of which a header is a sliver
    moto.put(bucket, "big.jpg", photo.read_bytes(), "image/jpeg")
    server = start_server(**s3_env(s3_proxy.endpoint))
    with Image.open(photo) as image:
        expected = {"width": image.width, "height": image.height, "format": "jpeg", "size": photo.stat().st_size}
    assert answer(server, f"/info/_/plain/{bucket}/big.jpg") == expected
    gets = s3_proxy.gets(f"/{bucket}/big.jpg")
    assert gets and all("range" in seen.headers for seen in gets)
    assert s3_proxy.bytes_down < photo.stat().st_size / 10
    # Known for this version now: a second answer asks the provider for the version only.
    assert answer(server, f"/info/_/plain/{bucket}/big.jpg") == expected
    assert len(s3_proxy.gets(f"/{bucket}/big.jpg")) == len(gets)

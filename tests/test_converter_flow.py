"""How a conversion's miss flows on S3: previews tier -> converter tier -> storage tier -> provider.

moto is the provider; a counting TCP proxy in front of it sees every request that leaves.
"""

import io
import random
import time

from PIL import Image

from tests.conftest import StartServer
from tests.support.http import fetch
from tests.support.previews_kit import assert_one_line, decoded, fetch_all, scrape, total
from tests.support.s3 import MotoS3, s3_env
from tests.support.tcp_proxy import TcpProxy
from tests.support.video import VideoSpec, make_video, read_counter
from tests.support.workers import served_by, wait_for_workers

RENDERS = "preview_proxy_render_duration_seconds_count"


def test_three_preview_sizes_of_one_tiff_make_one_fetch_and_one_conversion(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy) -> None:
    out = io.BytesIO()
    Image.new("RGB", (600, 400), (40, 160, 90)).save(out, "TIFF", compression="tiff_deflate")
    moto.put(bucket, "scans/plate.tif", out.getvalue(), "image/tiff")
    server = start_server(**s3_env(s3_proxy.endpoint))
    for width in (300, 150, 75):
        status, headers, body = fetch(
            server, f"/previews/q/ext:jpeg/rs:fit:{width}:0/plain/image-converter/convert/{bucket}/scans/plate.tif")
        assert status == 200, body
        assert headers["X-Cache"] == "MISS"
        assert decoded(body).width == width
    samples = scrape(server)
    assert len(s3_proxy.gets("scans/plate.tif")) == 1
    assert total(samples, RENDERS, operation="convert") == 1
    assert total(samples, RENDERS, operation="preview") == 3
    assert total(samples, "preview_proxy_cache_requests_total", tier="image-converter", result="miss") == 1
    assert total(samples, "preview_proxy_cache_requests_total", tier="image-converter", result="hit") == 2
    assert total(samples, "preview_proxy_cache_requests_total", tier="storage", result="miss") == 1
    assert total(samples, "preview_proxy_cache_requests_total", tier="previews", result="miss") == 3


def test_a_video_frame_from_s3_reads_ranges_not_the_whole_video(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy) -> None:
    # Noise makes a big file; PyAV writes the moov at the end, so the reader must seek there first.
    video = make_video(VideoSpec(frames=100, fps=25, size=(320, 240), gop=25, noise=True, crf=10))
    assert len(video) > 2_000_000
    moto.put(bucket, "clips/long.mp4", video, "video/mp4")
    server = start_server(**s3_env(s3_proxy.endpoint))
    status, headers, body = fetch(server, f"/image-converter/videoframe/10f/{bucket}/clips/long.mp4")
    assert status == 200, body
    assert read_counter(decoded(body)) == 10
    fetched = total(scrape(server), "preview_proxy_upstream_bytes_total")
    assert 0 < fetched < len(video) * 0.5
    assert len(s3_proxy.gets("clips/long.mp4")) >= 2  # ranges, not one whole GET
    # The frame is now in the converter tier: no provider GET the second time.
    before = len(s3_proxy.gets("clips/long.mp4"))
    status, headers, _ = fetch(server, f"/image-converter/videoframe/10f/{bucket}/clips/long.mp4")
    assert (status, headers["X-Cache"], len(s3_proxy.gets("clips/long.mp4"))) == (200, "HIT", before)


def test_a_video_frame_past_its_time_limit_is_504_and_images_keep_theirs(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy) -> None:
    moto.put(bucket, "clips/slow.mp4", make_video(VideoSpec(frames=50, fps=25, size=(320, 240))), "video/mp4")
    out = io.BytesIO()
    Image.new("RGB", (60, 40), (9, 9, 9)).save(out, "TIFF")
    moto.put(bucket, "scans/small.tif", out.getvalue(), "image/tiff")
    server = start_server(**s3_env(s3_proxy.endpoint), IMAGE_CONVERTER_VIDEO_TIMEOUT="0.1")
    # 20 KB/s: one 64 KiB range takes over 3 s, thirty times the video's limit.
    s3_proxy.faults.bytes_per_second = 20_000
    started = time.monotonic()
    status, _, body = fetch(server, f"/image-converter/videoframe/10f/{bucket}/clips/slow.mp4")
    assert status == 504, body
    assert_one_line(body)
    assert time.monotonic() - started < 5
    # The limit is the video's own: an image conversion on the same server has IMGPROXY_TIMEOUT.
    s3_proxy.faults.bytes_per_second = 0
    assert fetch(server, f"/image-converter/convert/{bucket}/scans/small.tif")[0] == 200


def test_a_cold_conversion_is_made_once_for_all_workers(
        start_server: StartServer, moto: MotoS3, bucket: str, s3_proxy: TcpProxy) -> None:
    out = io.BytesIO()
    Image.frombytes("RGB", (400, 300), random.Random(7).randbytes(400 * 300 * 3)).save(out, "TIFF")
    moto.put(bucket, "scans/shared.tif", out.getvalue(), "image/tiff")
    s3_proxy.faults.bytes_per_second = 200_000  # the fetch takes a few seconds: every request finds it cold
    server = start_server(workers=2, **s3_env(s3_proxy.endpoint))
    workers = wait_for_workers(server, 2)
    path = f"/image-converter/convert/{bucket}/scans/shared.tif"
    answers = fetch_all(server, [path] * 12)
    assert {a.status for a in answers} == {200}
    assert len({a.body for a in answers}) == 1
    assert set(served_by(server, path, 12)) == workers, "both workers must have served some"
    samples = scrape(server)
    assert total(samples, RENDERS, operation="convert") == 1, "one conversion for the whole server"
    assert len(s3_proxy.gets("scans/shared.tif")) == 1
    assert sorted(a.headers["X-Cache"] for a in answers).count("MISS") == 1
    assert total(samples, "preview_proxy_cache_requests_total", tier="image-converter", result="miss") == 1

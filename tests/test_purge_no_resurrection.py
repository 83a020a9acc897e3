"""No resurrection: a fill, or a render, that began before a purge of its original never makes the old
version visible after the purge has answered, even in the same worker process, where a later request
would otherwise join the fill in flight.

The provider is moto behind the counting TCP proxy, throttled so the old fill takes seconds.
"""

import io
import json
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from tests.conftest import StartServer
from tests.support.http import request
from tests.support.previews_kit import metric, poll
from tests.support.s3 import s3_env

TOKEN = "the-admin-token-0123456789"
FILL_SECONDS = 4.0  # how long the throttled old fill takes


def noise_jpeg(width: int, height: int) -> bytes:
    """A JPEG of noise: large for its size, and its size tells versions apart."""
    out = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def test_a_fill_begun_before_a_purge_is_not_kept_and_the_new_version_is_served(moto, bucket, s3_proxy,
                                                                              start_server: StartServer):
    old, new = noise_jpeg(800, 600), noise_jpeg(200, 400)
    moto.put(bucket, "a.jpg", old, "image/jpeg")
    server = start_server(ADMIN_TOKENS=TOKEN, **s3_env(s3_proxy.endpoint))
    original, preview = f"/{bucket}/a.jpg", f"/previews/q/rs:fit:100:0/plain/{bucket}/a.jpg@png"
    s3_proxy.faults.bytes_per_second = len(old) / FILL_SECONDS

    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(request, server.url(original), timeout=60)
        poll(lambda: s3_proxy.bytes_down > 64 * 1024 or None, "the old fill to be under way")
        # A render of the old version, waiting for that fill.
        slow_preview = pool.submit(request, server.url(preview), timeout=60)
        poll(lambda: metric(server, "preview_proxy_singleflight_waiters_total", tier="storage") or None,
             "the render to join the fill")
        purged = request(server.url(original), "PURGE", {"Authorization": f"Bearer {TOKEN}"})
        assert purged.status == 200
        assert json.loads(purged.body)["removed"]["storage"] == 0  # nothing committed yet
        moto.put(bucket, "a.jpg", new, "image/jpeg")  # straight to moto, as a user overwriting the file

        # Same worker, old fill still running: this request must not join it.
        after = request(server.url(original))
        assert (after.status, after.body) == (200, new)
        assert slow.done() is False, "the old fill ended too soon to prove anything; throttle harder"
        assert Image.open(io.BytesIO(request(server.url(preview)).body)).size == (100, 200)
        assert slow.result().body == old  # asked before the purge: it may have the old version
        assert Image.open(io.BytesIO(slow_preview.result().body)).size == (100, 75)

    server.wait_for_log("tier storage: not kept, a purge came after it began", timeout=30)
    server.wait_for_log("tier previews: not kept, a purge came after it began", timeout=30)
    again = request(server.url(original))
    assert (again.status, again.headers["X-Cache"], again.body) == (200, "HIT", new)
    hit = request(server.url(preview))
    assert (hit.headers["X-Cache"], Image.open(io.BytesIO(hit.body)).size) == ("HIT", (100, 200))
    assert len(s3_proxy.gets(f"/{bucket}/a.jpg")) == 2  # the old fill and one new one, nothing more

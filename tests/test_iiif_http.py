"""The IIIF Image API through a real server: closed by default, open to the buckets IIIF_BUCKETS lists
(never to a private one), info.json with the request's host, images on the previews tier (X-Cache,
validators, purged with their original), links as identifiers, the spec's statuses in one line, the
route's own metrics label, and IMGPROXY_PATH_PREFIX in the ids."""

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import StartServer
from tests.support.http import fetch, request
from tests.support.images import encoded, quadrant_names, quadrants
from tests.support.previews_kit import assert_one_line, metric, place, poll, running_server
from tests.support.server import ServerProcess

ADMIN_TOKEN = "iiif-admin-token-0123456789abcdef"
READ_TOKEN = "iiif-read-token-0123456789abcdef"
PHOTO = encoded(quadrants((1200, 800)), "JPEG", quality=92)
ID = "gallery%2Fphoto.jpg"
IMAGE = f"/iiif/3/{ID}/full/300,/0/default.jpg"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_path = tmp_path_factory.mktemp("iiif") / "data"
    for bucket in ("gallery", "other", "secret-public"):
        place(data_path, bucket, "photo.jpg", PHOTO)
    datasets = data_path.parent / "datasets"
    datasets.mkdir()
    (datasets / "scan.png").write_bytes(encoded(quadrants((640, 480)), "PNG"))
    (data_path / "remote_links.yml").write_text(f"datasets: {{provider: fs, path: {datasets}}}\n")
    return data_path


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[ServerProcess]:
    with running_server(site, IIIF_BUCKETS="gallery, datasets, *-public", PRIVATE_BUCKETS="secret-*",
                        READ_TOKENS=READ_TOKEN, ADMIN_TOKENS=ADMIN_TOKEN, CORS_ALLOW_ORIGINS="*",
                        # No previews in memory: a HIT is then an entry on disk, in the purge index.
                        CACHE_PREVIEWS_MEMORY="0") as started:
        yield started


def decoded(body: bytes) -> Image.Image:
    return Image.open(io.BytesIO(body))


def test_iiif_is_closed_until_iiif_buckets_lists_a_bucket(data_path: Path, start_server: StartServer) -> None:
    place(data_path, "gallery", "photo.jpg", PHOTO)
    server = start_server()
    for path in (f"/iiif/3/{ID}/info.json", IMAGE, f"/iiif/2/{ID}/full/full/0/default.jpg"):
        status, _, body = fetch(server, path)
        assert status == 404
        assert "IIIF_BUCKETS" in assert_one_line(body)


def test_only_listed_buckets_are_served_and_never_a_private_one(server: ServerProcess) -> None:
    status, _, body = fetch(server, "/iiif/3/other%2Fphoto.jpg/info.json")
    assert status == 404 and "IIIF_BUCKETS" in assert_one_line(body)
    # Listed by the glob, but private: no IIIF URL can carry what would open it, a token included.
    status, _, body = fetch(server, "/iiif/3/secret-public%2Fphoto.jpg/full/max/0/default.jpg",
                            {"Authorization": f"Bearer {READ_TOKEN}"})
    assert status == 403 and "private" in assert_one_line(body)
    assert fetch(server, "/iiif/3/gallery%2Fmissing.jpg/info.json")[0] == 404
    assert fetch(server, "/iiif/3/just-a-name/info.json")[0] == 404


def test_info_json_describes_the_image_at_the_requests_host(server: ServerProcess) -> None:
    status, headers, body = fetch(server, f"/iiif/3/{ID}/info.json", {"Host": "images.example.org:8443"})
    assert status == 200
    assert headers["Content-Type"] == "application/json" and "Accept" in headers["Vary"]
    info = json.loads(body)
    assert info["id"] == f"http://images.example.org:8443/iiif/3/{ID}"
    assert (info["width"], info["height"], info["type"], info["profile"]) == (1200, 800, "ImageService3", "level2")
    assert info["tiles"] == [{"width": 512, "height": 512, "scaleFactors": [1, 2, 4]}]
    assert "cors" in info["extraFeatures"]
    status, headers, body = fetch(server, f"/iiif/2/{ID}/info.json", {"Accept": "application/ld+json"})
    assert status == 200
    assert headers["Content-Type"] == 'application/ld+json;profile="http://iiif.io/api/image/2/context.json"'
    info = json.loads(body)
    assert info["@id"] == f"{server.base_url}/iiif/2/{ID}"
    assert info["profile"][0] == "http://iiif.io/api/image/2/level2.json"


def test_the_base_uri_redirects_to_info_json(server: ServerProcess) -> None:
    status, headers, _ = fetch(server, f"/iiif/3/{ID}")
    assert status == 303
    assert headers["Location"] == f"{server.base_url}/iiif/3/{ID}/info.json"


def test_images_come_from_the_previews_tier_with_their_validators(server: ServerProcess) -> None:
    path = f"/iiif/3/{ID}/600,0,600,400/150,/90/default.png"
    first = request(server.url(path))
    assert first.status == 200, first.body
    assert first.headers["X-Cache"] == "MISS"
    assert first.headers["Link"] == ('<http://iiif.io/api/image/3/level2.json>;rel="profile", '
                                     f'<{server.base_url}/iiif/3/{ID}/600,0,600,400/150,100/90/default.png>;rel="canonical"')
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    image = decoded(first.body)
    assert (image.format, image.size) == ("PNG", (100, 150))  # the top-right quadrant, turned a quarter
    assert set(quadrant_names(image.convert("RGB")).values()) == {"tr"}
    # The answer goes out before its entry is written: a request meanwhile joins the render (a HIT too).
    second = poll(lambda: (reply := request(server.url(path))).headers["Cache-Status"].endswith("hit") and reply,
                  "the image read from the previews tier")
    assert (second.status, second.headers["X-Cache"], second.body) == (200, "HIT", first.body)
    assert second.headers["ETag"] == first.headers["ETag"]
    assert request(server.url(path), headers={"If-None-Match": first.headers["ETag"]}).status == 304
    assert metric(server, "preview_proxy_requests_total", route="iiif", status="200") >= 2
    assert metric(server, "preview_proxy_render_duration_seconds_count", operation="iiif", format="png") >= 1


def test_a_link_is_an_identifier_too(server: ServerProcess) -> None:
    identifier = "fs%3A%2F%2Fdatasets%2Fscan.png"
    status, _, body = fetch(server, f"/iiif/3/{identifier}/info.json")
    assert status == 200, body
    assert (json.loads(body)["width"], json.loads(body)["height"]) == (640, 480)
    status, _, body = fetch(server, f"/iiif/3/{identifier}/full/max/0/default.jpg")
    assert status == 200 and decoded(body).size == (640, 480)


@pytest.mark.parametrize(("path", "status"), [
    (f"/iiif/3/{ID}/full/max/0/default.jp2", 501),
    (f"/iiif/3/{ID}/full/max/0/default.xyz", 400),
    (f"/iiif/3/{ID}/nowhere/max/0/default.jpg", 400),
    (f"/iiif/3/{ID}/2000,0,10,10/max/0/default.jpg", 400),  # outside the image
    (f"/iiif/3/{ID}/full/1300,/0/default.jpg", 400),  # an upscale without ^ in 3.0
    (f"/iiif/3/{ID}/full/full/0/default.jpg", 400),  # 2.1's name
    (f"/iiif/3/{ID}/full/max/400/default.jpg", 400),
    (f"/iiif/3/{ID}/full/max/0/grey.jpg", 400),
    (f"/iiif/3/{ID}/full/^100000,/0/default.jpg", 400),  # over maxWidth
    (f"/iiif/3/{ID}/full/max/0/default", 400),
])
def test_refusals_carry_the_specs_status_in_one_line(server: ServerProcess, path: str, status: int) -> None:
    got, _, body = fetch(server, path)
    assert got == status, body
    assert_one_line(body)


def test_version_2_scales_up_where_version_3_needs_the_caret(server: ServerProcess) -> None:
    status, _, body = fetch(server, f"/iiif/2/{ID}/full/1300,/0/default.jpg")
    assert status == 200 and decoded(body).size == (1300, 867)
    status, _, body = fetch(server, f"/iiif/3/{ID}/full/^1300,/0/default.jpg")
    assert status == 200 and decoded(body).size == (1300, 867)


def test_a_purge_of_the_original_removes_its_iiif_images(server: ServerProcess, site: Path) -> None:
    place(site, "gallery", "purged.jpg", PHOTO)
    paths = [f"/iiif/3/gallery%2Fpurged.jpg/full/{width},/0/default.jpg" for width in (64, 96)]
    for path in paths:
        assert request(server.url(path)).headers["X-Cache"] == "MISS"
    # A render is answered before its entry is written: wait for both entries to be on disk.
    poll(lambda: all(request(server.url(path)).headers["X-Cache"] == "HIT" for path in paths) or None,
         "both IIIF images stored")
    reply = request(server.url("/gallery/purged.jpg"), "PURGE", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.status == 200, reply.body
    assert json.loads(reply.body)["removed"]["previews"] == 2
    assert all(request(server.url(path)).headers["X-Cache"] == "MISS" for path in paths)


def test_the_path_prefix_moves_the_routes_and_the_ids(data_path: Path, start_server: StartServer) -> None:
    place(data_path, "gallery", "photo.jpg", PHOTO)
    server = start_server(IIIF_BUCKETS="gallery", IMGPROXY_PATH_PREFIX="/img")
    status, _, body = fetch(server, f"/img/iiif/3/{ID}/info.json")
    assert status == 200, body
    assert json.loads(body)["id"] == f"{server.base_url}/img/iiif/3/{ID}"
    assert fetch(server, f"/iiif/3/{ID}/info.json")[0] == 404

"""Absolute-form request targets (`GET http://host:port/photos/a.jpg HTTP/1.1`), which RFC 9112 section
3.2.2 says a server must accept, are served exactly like their origin-form twins (`GET /photos/a.jpg`):
originals, links, conversions and previews, signed or not, with the hot lane in front of aiohttp and
without it. A preview's signature covers its path only, so the host in the target changes nothing.

Requests go out on raw sockets (http.client would rewrite the target); each answer is compared with
the origin-form one, Date aside.
"""

import io
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.support.previews_kit import decoded, metric, place, running_server, sign
from tests.support.previews_site import BUCKET, KEY, VECTOR_KEY, VECTOR_SALT, Site, buster
from tests.support.server import ServerProcess

HOT = "preview_proxy_hot_answers_total"
LINK = "local-datasets"
RED, BLUE = (200, 30, 30), (30, 30, 200)
Answer = tuple[int, list[tuple[str, str]], bytes]


@dataclass(frozen=True)
class Servers:
    """One lane setting: a server with no signature key and one with DESIGN.md's test-vector key."""

    lane: bool
    unsigned: ServerProcess
    signed: ServerProcess


@pytest.fixture(scope="module")
def data(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's DATA_PATH with a two-page TIFF beside the photo, and a links file naming a folder."""
    pages = [Image.new("RGB", (60, 40), colour) for colour in (RED, BLUE)]
    scan = io.BytesIO()
    pages[0].save(scan, "TIFF", save_all=True, append_images=pages[1:])
    place(site.data_path, BUCKET, "scan.tif", scan.getvalue())
    folder = tmp_path_factory.mktemp("datasets")
    (folder / "a").mkdir()
    (folder / "a" / "photo.jpg").write_bytes((site.data_path / "storage" / BUCKET / KEY).read_bytes())
    (site.data_path / "remote_links.yml").write_text(f"{LINK}: {{provider: fs, path: {folder}}}\n")
    return site.data_path


@pytest.fixture(scope="module", params=[True, False], ids=["lane", "no-lane"])
def servers(data: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Servers]:
    """Both servers with the lane on, or both with it off."""
    settings = {"ACCESS_LOG": "0", "HOT_LANE": "1" if request.param else "0", "CACHE_SOURCE_INFO_TTL": "1h"}
    with running_server(data, CACHE_PATH=str(tmp_path_factory.mktemp("cache")), **settings) as unsigned, \
            running_server(data, CACHE_PATH=str(tmp_path_factory.mktemp("signed-cache")), IMGPROXY_KEY=VECTOR_KEY,
                           IMGPROXY_SALT=VECTOR_SALT, **settings) as signed:
        yield Servers(request.param, unsigned, signed)


def authority(server: ServerProcess) -> str:
    """`host:port` of the server."""
    return server.base_url.removeprefix("http://")


def exchange(server: ServerProcess, target: str, method: str = "GET") -> Answer:
    """One request with `target` sent verbatim, on a keep-alive connection: status, headers in order, body."""
    host, port = authority(server).rsplit(":", 1)
    received = b""
    deadline = time.monotonic() + 15
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        while b"\r\n\r\n" not in received:
            assert time.monotonic() < deadline, "no response head in time"
            chunk = sock.recv(65536)
            assert chunk, f"closed with {received[:200]!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]
        length = 0 if method == "HEAD" else int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
        while len(body) < length:
            assert time.monotonic() < deadline, "body not complete in time"
            chunk = sock.recv(65536)
            assert chunk, "closed mid-body"
            body += chunk
    return int(status_line.split(" ")[1]), headers, body


def without_date(answer: Answer) -> Answer:
    """The answer minus what changes from one request to the next: Date, Age (a second may tick
    between two answers) and X-Request-ID (made anew for each request)."""
    status, headers, body = answer
    per_request = ("date", "age", "x-request-id")
    return status, [(name, value) for name, value in headers if name.lower() not in per_request], body


def assert_served_alike(server: ServerProcess, path: str, status: int = 200) -> Answer:
    """`path` in absolute-form (two hosts) gets the answer its origin-form gets once warm; returns it."""
    exchange(server, path)  # the first may fill a cache (X-Cache: MISS); the comparison is of steady answers
    origin = without_date(exchange(server, path))
    for _ in range(50):  # one that joined a fill still running says so (Cache-Status: fwd=miss; collapsed)
        if "fwd=" not in dict(origin[1]).get("Cache-Status", ""):
            break
        origin = without_date(exchange(server, path))
    for target in (f"http://{authority(server)}{path}", f"http://images.example.org{path}"):
        assert without_date(exchange(server, target)) == origin, target
    assert origin[0] == status, origin[2][:200]
    return origin


def test_an_original(servers: Servers, data: Path) -> None:
    _, _, body = assert_served_alike(servers.unsigned, f"/{BUCKET}/{KEY}")
    assert body == (data / "storage" / BUCKET / KEY).read_bytes()


def test_a_linked_original(servers: Servers, data: Path) -> None:
    _, _, body = assert_served_alike(servers.unsigned, f"/links/fs/{LINK}/a/photo.jpg")
    assert body == (data / "storage" / BUCKET / KEY).read_bytes()


@pytest.mark.parametrize(("query", "colour"), [("", RED), ("?page=1", BLUE)])
def test_a_conversion_and_its_query(servers: Servers, query: str, colour: tuple[int, int, int]) -> None:
    _, headers, body = assert_served_alike(servers.unsigned, f"/image-converter/convert/{BUCKET}/scan.tif{query}")
    assert ("X-Converted-From", "tiff") in headers
    image = decoded(body).convert("RGB")
    assert image.getpixel((30, 20)) == colour


def test_an_unsigned_preview(servers: Servers) -> None:
    path = f"/previews/q/{buster()}/rs:fit:100:100/plain/{BUCKET}/{KEY}"
    _, _, body = assert_served_alike(servers.unsigned, path)
    assert max(decoded(body).size) == 100


def test_a_signed_preview_and_a_wrong_signature(servers: Servers) -> None:
    signed_path = f"/{buster()}/rs:fit:90:90/plain/{BUCKET}/{KEY}"
    signature = sign(VECTOR_KEY, VECTOR_SALT, signed_path)
    _, _, body = assert_served_alike(servers.signed, f"/previews/{signature}{signed_path}")
    assert max(decoded(body).size) == 90

    # The host is not signed, but the path is: another path under this signature is refused, not 400.
    assert_served_alike(servers.signed, f"/previews/{signature}{signed_path.replace('90', '91')}", status=403)


def test_a_hot_preview_in_absolute_form_is_answered_from_memory_by_aiohttp(servers: Servers) -> None:
    """The lane reads origin-form only: it hands absolute-form to aiohttp, whose handler finds the
    same hot answer (the same key: the path and query), so the bytes are the lane's."""
    server = servers.unsigned
    path = f"/previews/q/{buster()}/rs:fit:80:80/plain/{BUCKET}/{KEY}"
    hot_by = "lane" if servers.lane else "handler"
    for _ in range(10):
        before = metric(server, HOT, by=hot_by)
        origin = without_date(exchange(server, path))
        if metric(server, HOT, by=hot_by) == before + 1:
            break
    else:
        raise AssertionError("the preview never became hot")

    lane_before, handler_before = metric(server, HOT, by="lane"), metric(server, HOT, by="handler")
    absolute = without_date(exchange(server, f"http://{authority(server)}{path}"))
    assert absolute == origin and origin[0] == 200
    assert (metric(server, HOT, by="lane"), metric(server, HOT, by="handler")) == (lane_before, handler_before + 1)


@pytest.mark.parametrize("target", ["http://images.example.org", "http://images.example.org?x=1"])
def test_an_absolute_form_target_with_no_path_is_the_root(servers: Servers, target: str) -> None:
    absolute = without_date(exchange(servers.unsigned, target))
    origin = without_date(exchange(servers.unsigned, "/" + target.partition("?")[1] + target.partition("?")[2]))
    assert absolute == origin
    assert 400 <= absolute[0] < 500 and absolute[2].count(b"\n") == 1

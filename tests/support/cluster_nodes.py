"""A preview-proxy cluster on loopback: N nodes over one S3 endpoint, small originals, and a client.

Each node is a real `preview-proxy serve` process with its own DATA_PATH (so its own disk caches), as
on separate hosts. Originals are real photographs shrunk to small JPEGs, so renders stay cheap and
the run measures routing, not pillow.
"""

import asyncio
import io
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from PIL import Image
from yarl import URL

from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parents[2]
REQUEST_TIMEOUT = 60.0


def preview_path(source: str, width: int) -> str:
    """An unsigned preview (no IMGPROXY_KEY: any placeholder passes) of `plain/<source>`, `width` px wide."""
    return f"/previews/insecure/rs:fit:{width}:0/q:70/plain/{source}"


def object_gets(counting: TcpProxy, bucket: str, keys: Sequence[str]) -> int:
    """GET requests for one of the objects (not the bucket, not a readiness probe), as seen on the wire."""
    objects = {f"/{bucket}/{key}" for key in keys}
    return sum(1 for request in counting.gets() if request.target.split("?", 1)[0] in objects)


@contextmanager
def cluster_nodes(root: Path, count: int, env: dict[str, str]) -> Iterator[list[ServerProcess]]:
    """`count` nodes started at once, node i with DATA_PATH `root`/node-i; all stopped on the way out."""
    paths = [root / f"node-{index}" for index in range(count)]
    for path in paths:
        (path / "storage").mkdir(parents=True)
    started: list[ServerProcess] = []
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(ServerProcess, {**env, "DATA_PATH": str(path), "ACCESS_LOG": "false"}, REPO)
                   for path in paths]
        errors = []
        for future in futures:
            try:
                started.append(future.result())
            except RuntimeError as error:
                errors.append(error)
    try:
        if errors:
            raise errors[0]
        yield started
    finally:
        for node in started:
            node.stop()


def small_originals(photos: Sequence[Path], count: int, long_side: int = 480) -> list[bytes]:
    """`count` distinct JPEGs made from the photos: photo i % len, each variant a few pixels smaller."""
    shrunk: list[Image.Image] = []
    for photo in photos:
        with Image.open(photo) as image:
            image.draft("RGB", (long_side, long_side))  # DCT scaling on load: a 20 MP photo decodes fast
            copy = image.convert("RGB")
        copy.thumbnail((long_side, long_side))
        shrunk.append(copy)
    bodies = []
    for index in range(count):
        picture = shrunk[index % len(shrunk)]
        variant = index // len(shrunk)
        if variant:
            picture = picture.resize((picture.width - 8 * variant, picture.height - 8 * variant))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=85)
        bodies.append(buffer.getvalue())
    return bodies


@dataclass(frozen=True)
class Answer:
    """What the front said to one request."""

    path: str
    status: int
    content_type: str
    body: bytes
    node: str  # X-Upstream: the node nginx passed the request to
    cache: str  # X-Cache: where the node found the bytes


def fetch_all(base_url: str, paths: Sequence[str], concurrency: int = 6) -> list[Answer]:
    """GET every path through `base_url`, `concurrency` at a time, in order of `paths`."""
    return asyncio.run(_fetch_all(base_url, paths, concurrency))


async def _fetch_all(base_url: str, paths: Sequence[str], concurrency: int) -> list[Answer]:
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(path: str) -> Answer:
            # encoded=True: the path goes out byte for byte (`%2F`, `@`, `//` as written), as routing sees it.
            async with gate, session.get(URL(base_url + path, encoded=True)) as response:
                return Answer(path, response.status, response.headers.get("Content-Type", ""), await response.read(),
                              response.headers.get("X-Upstream", ""), response.headers.get("X-Cache", ""))

        return await asyncio.gather(*(one(path) for path in paths))

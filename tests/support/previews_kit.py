"""Helpers for the previews integration tests: placing images, decoding answers, signing, metrics, polling.

Everything here talks to a real server through its port; nothing reaches into the product's code, so the
tests check the product against an independent reading of imgproxy's rules (the signature is computed
here from its definition, not with proxy.http.access.signature).
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import io
import math
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiohttp
import pillow_avif  # noqa: F401 - registers AVIF with Pillow, so AVIF answers can be decoded
from PIL import Image, ImageChops, ImageStat
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from tests.support.http import fetch
from tests.support.server import ServerProcess

REPO = Path(__file__).resolve().parent.parent.parent
T = TypeVar("T")
Samples = list[tuple[str, dict[str, str], float]]


def place(data_path: Path, bucket: str, key: str, content: bytes | Path, mtime: float | None = None) -> Path:
    """Put `content` (bytes or a file to copy) at DATA_PATH/storage/<bucket>/<key>."""
    path = data_path / "storage" / bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        shutil.copyfile(content, path)
    else:
        path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def image_size(path: Path) -> tuple[int, int]:
    """Width and height from an image file's header."""
    with Image.open(path) as image:
        return image.size


def by_pixels(photos: Sequence[Path]) -> list[Path]:
    """Photos, largest resolution first."""
    return sorted(photos, key=lambda p: math.prod(image_size(p)), reverse=True)


def smallest_file(photos: Sequence[Path]) -> Path:
    """The photo with the fewest bytes (quick to render)."""
    return min(photos, key=lambda p: p.stat().st_size)


def decoded(body: bytes) -> Image.Image:
    """An HTTP body decoded by Pillow (fails the test if it isn't an image)."""
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute difference per channel (0 to 255) of two same-sized images: a perceptual distance."""
    assert first.size == second.size, (first.size, second.size)
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    return sum(ImageStat.Stat(difference).mean) / 3


def assert_one_line(body: bytes) -> str:
    """Error bodies are one line of text, never a traceback; returns the line."""
    text = body.decode("utf-8")
    assert text.endswith("\n") and text.count("\n") == 1 and text.strip(), repr(text)
    assert "Traceback" not in text and 'File "' not in text, text
    return text.strip()


def assert_log_clean(server: ServerProcess) -> None:
    """No traceback and no unexpected error in the server's log, up to a request made now."""
    marker = f"/healthz?log-check-{uuid.uuid4().hex}"
    assert fetch(server, marker)[0] == 200
    server.wait_for_log(marker)  # lines arrive in order: everything before the marker is in
    log = server.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert "unexpected error" not in log, log[-3000:]


def sign(key_hex: str, salt_hex: str, path: str, size: int = 32) -> str:
    """imgproxy's signature: base64url_nopad(HMAC_SHA256(unhex(key), unhex(salt) + path)[:size])."""
    digest = hmac.new(bytes.fromhex(key_hex), bytes.fromhex(salt_hex) + path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:size]).rstrip(b"=").decode()


def b64_source(source: str, chunk: int = 0) -> str:
    """A source as base64url without padding, optionally split into `/`-separated chunks."""
    encoded = base64.urlsafe_b64encode(source.encode()).rstrip(b"=").decode()
    if not chunk:
        return encoded
    return "/".join(encoded[i:i + chunk] for i in range(0, len(encoded), chunk))


def scrape(server: ServerProcess) -> Samples:
    """Every sample of /metrics as (name, labels, value)."""
    status, _, body = fetch(server, "/metrics")
    assert status == 200
    return [(sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample named `name` whose labels include `labels` (0 when there is none)."""
    return sum(value for sample_name, sample_labels, value in samples
               if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()))


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    """One scrape, summed as `total` does."""
    return total(scrape(server), name, **labels)


def poll(probe: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds. Returns that value."""
    deadline = time.monotonic() + timeout
    for _ in range(100_000):  # bounded in count as well as in time
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)  # pause between probes of a condition, not a wait for an event
    raise AssertionError(f"no {what} within {timeout}s")


def raw_exchange(server: ServerProcess, method: str, path: str, extra_headers: Mapping[str, str] | None = None,
                 ) -> tuple[str, dict[str, str], bytes]:
    """One request with `Connection: close`, everything read to EOF (bounded): status line, headers, rest.

    http.client never reads a body after HEAD or 304, so only the raw bytes show whether one was sent.
    """
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (extra_headers or {}).items()]
    received = b""
    deadline = time.monotonic() + 15
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while time.monotonic() < deadline and (chunk := sock.recv(65536)):
            received += chunk
    head, separator, rest = received.partition(b"\r\n\r\n")
    assert separator, f"no complete response head in {received[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in header_lines)}
    return status_line, headers, rest


@dataclass
class Answer:
    """One response of a concurrent batch, and when it ended (time.monotonic())."""

    path: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    finished: float


def fetch_all(server: ServerProcess, paths: Sequence[str], headers: Mapping[str, str] | None = None,
              on_answer: Callable[[Answer], None] = lambda answer: None, timeout: float = 60) -> list[Answer]:
    """GET every path at once, each on its own connection; answers in the order of `paths`."""

    async def run() -> list[Answer]:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async def one(path: str) -> Answer:
                async with session.get(URL(server.url(path), encoded=True), headers=headers) as response:
                    body = await response.read()
                    answer = Answer(path, response.status, response.headers.copy(), body, time.monotonic())
                on_answer(answer)
                return answer

            return list(await asyncio.gather(*(one(path) for path in paths)))

    return asyncio.run(run())


@contextlib.contextmanager
def running_server(data_path: Path, **env: str) -> Iterator[ServerProcess]:
    """A server over `data_path` for the duration of a `with` block (for module-scoped fixtures)."""
    server = ServerProcess({"DATA_PATH": str(data_path), **env}, cwd=REPO)
    try:
        yield server
    finally:
        server.stop()

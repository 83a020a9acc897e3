"""One DATA_PATH with a photo under three keys, and the servers the previews HTTP tests share (module scope).

Tests keep their cache entries apart with a cachebuster (`cb:`) or their own key.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.previews_kit import decoded, place, running_server, smallest_file
from tests.support.server import ServerProcess

BUCKET = "photos"
KEY = "2024/cat.jpg"
HEAD_KEY = "2024/cat-head.jpg"  # only ever asked with HEAD first, so its previews start cold
ODD_KEY = "odd/a cat@home é+1.jpg"  # needs imgproxy's escaping: space, @, non-ASCII, +
MTIME = 1_700_000_000
DEFAULT_CACHE_CONTROL = "public, max-age=31536000, immutable"
# DESIGN.md's test vector, plus a second pair: both must be accepted.
VECTOR_KEY, VECTOR_SALT = "736563726574", "68656C6C6F"
OTHER_KEY, OTHER_SALT = "0123456789abcdef0123456789abcdef", "fedcba9876543210"
VECTOR_PATH = "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png"
VECTOR_SIGNATURE = "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8"


@dataclass(frozen=True)
class Site:
    """The module's DATA_PATH and the source photo's size."""

    data_path: Path
    width: int
    height: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, photos: list[Path]) -> Site:
    """One photo under three keys, with a fixed mtime."""
    data_path = tmp_path_factory.mktemp("previews-http") / "data"
    photo = smallest_file(photos)
    for key in (KEY, HEAD_KEY, ODD_KEY):
        place(data_path, BUCKET, key, photo, mtime=MTIME)
    width, height = decoded(photo.read_bytes()).size
    return Site(data_path, width, height)


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[ServerProcess]:
    """A server with default settings (no signature keys)."""
    with running_server(site.data_path) as running:
        yield running


@pytest.fixture(scope="module")
def signed_server(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with two key/salt pairs."""
    cache = tmp_path_factory.mktemp("signed-cache")
    with running_server(site.data_path, CACHE_PATH=str(cache), IMGPROXY_KEY=f"{VECTOR_KEY},{OTHER_KEY}",
                        IMGPROXY_SALT=f"{VECTOR_SALT},{OTHER_SALT}") as running:
        yield running


def buster() -> str:
    """A cachebuster option that makes a URL's cache entry this test's own."""
    return f"cb:{uuid.uuid4().hex[:12]}"

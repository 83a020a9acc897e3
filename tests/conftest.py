"""Fixtures that start real peers on random loopback ports: the server, moto's S3, Azurite, fake-gcs-server."""

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.azurite import Azurite
from tests.support.fake_gcs import FakeGCS
from tests.support.s3 import MotoS3
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

# The previews HTTP tests' shared site and servers (module-scoped fixtures: site, server, signed_server).
pytest_plugins = ["tests.support.previews_site"]

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / ".cache" / "corpus"

StartServer = Callable[..., ServerProcess]
FUZZ_SEED = 20261203  # fixed, so a failure in CI reproduces; --fuzz-seed picks another


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options of tests/reliability/ (here, in the root conftest, so pytest honours them from anywhere)."""
    group = parser.getgroup("reliability")
    group.addoption("--fuzz-cases", type=int, default=2000,
                    help="generated URLs per run of tests/reliability/test_fuzz_urls.py (default 2000)")
    group.addoption("--fuzz-seed", type=int, default=FUZZ_SEED,
                    help=f"hypothesis seed of the URL fuzzing (default {FUZZ_SEED})")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoS3]:
    """One moto S3 server for the session; tests use their own buckets."""
    server = MotoS3()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite Blob service for the session, in memory; tests use their own containers."""
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGCS]:
    """One fake-gcs-server for the session, in memory; tests use their own buckets."""
    server = FakeGCS()
    yield server
    server.close()


@pytest.fixture
def s3_proxy(moto: MotoS3) -> Iterator[TcpProxy]:
    """A counting, fault-injecting TCP proxy in front of the session's moto (tests point the server at it)."""
    with TcpProxy(("127.0.0.1", moto.port)) as proxy:
        yield proxy


@pytest.fixture
def bucket(moto: MotoS3) -> str:
    """A fresh bucket on moto."""
    return moto.create_bucket(f"pp-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    """DATA_PATH for one test, with an empty local storage root."""
    (tmp_path / "data" / "storage").mkdir(parents=True)
    return tmp_path / "data"


@pytest.fixture
def start_server(data_path: Path) -> Iterator[StartServer]:
    """Start preview-proxy processes with extra env (and `workers`, 1 unless given); all are stopped at teardown."""
    started: list[ServerProcess] = []

    def start(workers: int = 1, **env: str) -> ServerProcess:
        server = ServerProcess({"DATA_PATH": str(data_path), **env}, cwd=REPO, workers=workers)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    # Every server a test did not kill must shut down cleanly on SIGTERM: exit 0, within the time
    # stop() allows, with no abort in the interpreter's teardown.
    unclean = [(s.process.returncode, s.log_lines[-5:]) for s in started if not s.killed and s.process.returncode != 0]
    assert not unclean, f"server(s) did not exit cleanly: {unclean}"


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """Real JPEG photographs, 1.3 to 20 MP (deploy/dev.sh test fetches them)."""
    found = sorted((CORPUS / "photos").glob("*.jpg"))
    assert found, f"no photos in {CORPUS}/photos: run `bash deploy/dev.sh test` (it fetches them)"
    return found


@pytest.fixture(scope="session")
def pillow_images() -> Path:
    """Pillow's own test images: odd formats, CMYK, 16-bit, EXIF orientations, animations, corrupt files."""
    folder = CORPUS / "pillow-tests"
    assert folder.is_dir(), f"no {folder}: run `bash deploy/dev.sh test` (it fetches them)"
    return folder

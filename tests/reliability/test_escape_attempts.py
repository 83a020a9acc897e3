"""Traversal and SSRF, generated wide: through every route, nothing outside the roots and the links file.

tests/test_path_safety.py sends a hand-written list through `/<bucket>/<key>`. Here the spellings
of `..` and of the separator are crossed (tests/reliability/escape_payloads.py) and sent through
originals, previews (plain, escaped, base64), conversions and `fs` links, with symlinks pointing out
of local storage and of the linked folder; and link and URL sources aim at unlisted buckets, at
loopback (a tripwire port that counts connections), at metadata addresses and at files.

Every answer is a 4xx whose one-line body carries no secret; the tripwire sees no connection, the
TCP proxy in front of moto no request for the unlisted bucket, and the log neither a secret nor a
traceback. The controls show each route does serve what it may.
"""

from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.reliability.escape_payloads import ROUTES, Route, one_offs, source_forms, ssrf_sources, traversals
from tests.reliability.raw_client import RawAnswer, RawClient
from tests.reliability.site import Site, Tripwire, build_site
from tests.support.previews_kit import assert_log_clean
from tests.support.s3 import MotoS3
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, moto: MotoS3) -> Iterator[Site]:
    with TcpProxy(("127.0.0.1", moto.port)) as s3_proxy:
        yield build_site(tmp_path_factory.mktemp("escape"), moto, s3_proxy)


@pytest.fixture(scope="module")
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    wire.close()


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[ServerProcess]:
    process = ServerProcess(site.env(), cwd=REPO)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[RawClient]:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    with RawClient(host, int(port)) as raw:
        yield raw


@pytest.mark.parametrize("route", ROUTES, ids=[route[0] for route in ROUTES])
def test_traversals_through_each_route_are_refused(
        route: Route, client: RawClient, site: Site, server: ServerProcess) -> None:
    _, depth, build = route
    attempts = [build(path) for target in ("secret.txt", "secret.jpg") for path in traversals(depth, target)]
    attempts += [build(path) for path in one_offs(depth, str(site.root).lstrip("/"))]

    leaks = _leaks(client, site, attempts)

    assert len(attempts) >= 100
    assert leaks == []
    _assert_log_has_no_secret(server, site)


def test_link_and_url_sources_reach_nothing_outside_the_links_file(
        client: RawClient, site: Site, tripwire: Tripwire, server: ServerProcess) -> None:
    sources = ssrf_sources(site.listed, site.unlisted, tripwire.port, str(site.root))
    attempts = [f"/previews/insecure/rs:fit:32:32/{form}" for source in sources for form in source_forms(source)]
    attempts += [f"/image-converter/convert/{source}" for source in sources]
    attempts += [f"/links/{link}" for link in (
        f"s3/{site.unlisted}/img.jpg", f"minio/{site.unlisted}/img.jpg", f"s3/{site.listed}/../{site.unlisted}/img.jpg",
        f"s3/{site.listed}/%2e%2e/{site.unlisted}/img.jpg", f"s3/{site.listed}%2f..%2f{site.unlisted}/img.jpg",
        f"s3/127.0.0.1:{tripwire.port}/img.jpg", "s3/169.254.169.254/latest/meta-data", f"azure/{site.listed}/img.jpg",
        f"http/127.0.0.1:{tripwire.port}/img.jpg", f"https/localhost:{tripwire.port}/img.jpg", "fs/local/../secret.txt",
        "fs/../secret.txt", "fs/local/up/secret.jpg", "fs/local/escape.jpg", "fs/b/img.jpg", "file/etc/passwd")]

    leaks = _leaks(client, site, attempts)

    assert len(attempts) >= 100
    assert leaks == []
    assert tripwire.connections == 0, "a source reached the loopback tripwire"
    assert site.s3_proxy.gets(f"/{site.unlisted}") == [], "a request for the unlisted bucket reached S3"
    _assert_log_has_no_secret(server, site)


def test_each_route_serves_what_it_may(client: RawClient, site: Site) -> None:
    """The control: the refusals above come from the paths, not from routes that refuse everything."""
    preview = "/previews/insecure/rs:fit:32:32/plain"
    allowed = ["/b/img.jpg", "/b/sub/img.png", "/links/fs/local/img.jpg", f"/links/s3/{site.listed}/img.jpg",
               f"{preview}/b/img.jpg", f"{preview}/fs://local/img.jpg", f"{preview}/s3://{site.listed}/img.jpg",
               "/image-converter/convert/b/img.jpg"]

    statuses = {path: client.send(path.encode()).status for path in allowed}

    assert statuses == {path: 200 for path in allowed}


def _leaks(client: RawClient, site: Site, attempts: list[str]) -> list[tuple[str, int, bytes]]:
    """Attempts whose answer is not a one-line 4xx free of the secret token."""
    found = []
    for attempt in attempts:
        answer = client.send(attempt.encode())
        if not _refused_cleanly(answer, site):
            found.append((attempt, answer.status, answer.body[:120]))
    return found


def _refused_cleanly(answer: RawAnswer, site: Site) -> bool:
    one_line = answer.body.endswith(b"\n") and answer.body.count(b"\n") == 1
    secret = site.token.encode() in answer.body or site.token in answer.headers
    return 400 <= answer.status < 500 and one_line and not secret


def _assert_log_has_no_secret(server: ServerProcess, site: Site) -> None:
    assert_log_clean(server)
    assert site.token not in server.log_text()

"""The consistent-hash front of deploy/cluster/ on loopback: Debian's nginx before real nodes over moto.

- The routing key (routing.conf) of every URL form, read back from nginx itself, and checked against
  the source the server's own grammar parses from the same URL.
- 100 originals x 3 preview sizes through the example front (nginx.conf) before three
  `preview-proxy serve` nodes with their own DATA_PATHs, over moto behind the counting TCP proxy:
  provider GETs per original with the consistent hash (at most 1.05), and with round robin beside it.
  Then one node stops: only its originals are fetched again, by the nodes that take its keys.
- One of four nodes removed: the share of keys that move (about 1/4), asked of nginx.

tests/benchmarks/cluster.py runs a bigger version (more originals and sizes, base64 sources).
"""

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from previews.conversions.request import SOURCE_PREFIX, parse_conversion
from previews.grammar.url import parse_preview_url
from tests.support.cluster_nodes import Answer, cluster_nodes, fetch_all, object_gets, preview_path, small_originals
from tests.support.nginx_front import (
    HASH_LINE,
    ROUND_ROBIN,
    free_port,
    free_ports,
    loopback_front,
    nginx_missing,
    ring_placement,
    run_nginx,
)
from tests.support.s3 import MotoS3, s3_env
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(nginx_missing() is not None, reason=str(nginx_missing()))

ORIGINALS = 100
SIZES = (50, 300, 1024)
NODES = 3
MAX_GETS_PER_ORIGINAL = 1.05
REMAP_KEYS = 400
REMAP_BAND = (0.15, 0.40)  # one of four nodes holds about 1/4 of the ring; 160 points each leave some spread


# --- the routing key, from nginx itself ---------------------------------------------------------------

ROUTE_KEYS = [
    ("/photos/2024/a.jpg", "photos/2024/a.jpg"),
    ("/photos/a%20b.jpg?download=1", "photos/a%20b.jpg"),
    ("/previews/q/ext:jpeg/resize:fill:512:256:0/q:70/plain/photos/2024/a.jpg", "photos/2024/a.jpg"),
    ("/previews/insecure/rs:fit:50:0/plain/photos/2024/a.jpg@webp", "photos/2024/a.jpg"),
    ("/previews/_/w:1024/plain/photos/a%40b.jpg@png", "photos/a%40b.jpg"),
    ("/previews/q/rs:fit:300:0/plain/s3://linked/x/y.jpg", "s3://linked/x/y.jpg"),
    ("/previews/q/rs:fill:300:0:0/q:70/plain/image-converter/videoframe/33p/videos/v.mp4?videoStreamIndex=0",
     "videos/v.mp4"),
    ("/previews/q/w:300/plain/image-converter/convert/scans/page.tif@jpg?page=2", "scans/page.tif"),
    ("/previews/insecure/rs:fill:300:200:0/g:ce/c2FtcGxlLXB1YmxpYy9pbWFnZXMvc2FtcGxlLmpwZw.webp",
     "c2FtcGxlLXB1YmxpYy9pbWFnZXMvc2FtcGxlLmpwZw"),
    ("/previews/insecure/rs:fit:50:0/cGhvdG9zL2E/uanBn", "cGhvdG9zL2E/uanBn"),
    ("/previews/insecure/rs:fit:50:0/cGhvdG9zL2EuanBn==.png", "cGhvdG9zL2EuanBn"),
    ("/links/s3/linked/x/y.jpg", "s3://linked/x/y.jpg"),
    ("/links/gs/bucket/k.png?x=1", "gs://bucket/k.png"),
    ("/links/notascheme/k.jpg", "links/notascheme/k.jpg"),
    ("/image-converter/convert/scans/page.tif?page=2", "scans/page.tif"),
    ("/image-converter/videoframe/12.5s/s3://linked/v.mp4", "s3://linked/v.mp4"),
    ("/healthz", "/healthz"),
    ("/metrics", "/metrics"),
]


@pytest.fixture(scope="module")
def key_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """routing.conf in an nginx whose every answer is the request's routing key. Yields its base URL."""
    directory = tmp_path_factory.mktemp("route-key")
    port, backend = free_ports(2)
    conf = loopback_front(directory, port, [f"127.0.0.1:{backend}"], backends=[backend])
    # The stand-in node answers with the key nginx computed for the request it was passed.
    conf.write_text(conf.read_text().replace(f"listen 127.0.0.1:{backend}; return 204;",
                                             f"listen 127.0.0.1:{backend}; return 200 $preview_proxy_route_key;"))
    with run_nginx(conf, port):
        yield f"http://127.0.0.1:{port}"


def test_route_key_names_the_original_behind_every_url_form(key_echo: str) -> None:
    answers = fetch_all(key_echo, [path for path, _ in ROUTE_KEYS])
    got = {answer.path: answer.body.decode() for answer in answers}
    assert got == {path: key for path, key in ROUTE_KEYS}


def test_every_preview_size_of_one_source_shares_the_original_s_key(key_echo: str) -> None:
    paths = ["/photos/2024/a.jpg", "/previews/q/rs:fit:50:0/plain/photos/2024/a.jpg",
             "/previews/q/rs:fit:300:0/q:70/plain/photos/2024/a.jpg@webp",
             "/previews/q/rs:fill:1024:768:1/g:sm/plain/photos/2024/a.jpg@avif?cb=2",
             "/previews/q/rs:fit:300:0/plain/image-converter/convert/photos/2024/a.jpg"]
    assert {answer.body.decode() for answer in fetch_all(key_echo, paths)} == {"photos/2024/a.jpg"}


def test_route_key_of_a_preview_names_the_source_the_server_parses(key_echo: str) -> None:
    previews = [path for path, _ in ROUTE_KEYS if path.startswith("/previews/")]
    for answer in fetch_all(key_echo, previews):
        raw_path, _, query = answer.path.partition("?")
        url = parse_preview_url(raw_path[len("/previews"):], query)
        source = url.source
        if source.startswith(SOURCE_PREFIX):
            source = parse_conversion(source[len(SOURCE_PREFIX):], query)[1]
        key = answer.body.decode()
        if "/plain/" in raw_path:
            assert unquote(key) == source, answer.path
        else:  # base64url: the key's chunks, joined and decoded, are the source
            text = key.replace("/", "")
            assert base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode() == source, answer.path


# --- provider GETs per original through the front ----------------------------------------------------

@dataclass(frozen=True)
class ClusterRun:
    """One run of the workload through the front, and the provider GETs it cost on the wire."""

    previews: list[Answer]
    originals: list[Answer]
    gets_after_previews: int
    gets_after_originals: int
    lost_node: str = ""
    after_loss: tuple[Answer, ...] = ()
    gets_after_loss: int = 0

    def per_original(self) -> float:
        """Provider GETs of the previews phase, per original."""
        return self.gets_after_previews / ORIGINALS


@pytest.fixture(scope="module")
def corpus_bucket(moto: MotoS3, photos: list[Path]) -> tuple[str, list[str]]:
    """A fresh bucket holding ORIGINALS small, distinct JPEGs made from the photos; its name and keys."""
    bucket = moto.create_bucket(f"cluster-{uuid.uuid4().hex[:10]}")
    keys = [f"gallery/photo-{index:03d}.jpg" for index in range(ORIGINALS)]
    for key, body in zip(keys, small_originals(photos, ORIGINALS), strict=True):
        moto.put(bucket, key, body, "image/jpeg")
    return bucket, keys


def _run(root: Path, moto: MotoS3, bucket: str, keys: list[str], balancing: str) -> ClusterRun:
    """Previews of every size, then every original, through a fresh front before fresh nodes."""
    with TcpProxy(("127.0.0.1", moto.port)) as counting, \
            cluster_nodes(root / "nodes", NODES, s3_env(counting.endpoint)) as nodes:
        port = free_port()
        addresses = [node.base_url.removeprefix("http://") for node in nodes]
        conf = loopback_front(root / "front", port, addresses, balancing)
        base = f"http://127.0.0.1:{port}"
        with run_nginx(conf, port):
            # Sizes of one original one after another, several originals at once: a gallery page.
            previews = fetch_all(base, [preview_path(f"{bucket}/{key}", width) for key in keys for width in SIZES])
            gets_after_previews = object_gets(counting, bucket, keys)
            originals = fetch_all(base, [f"/{bucket}/{key}" for key in keys])
            run = ClusterRun(previews, originals, gets_after_previews, object_gets(counting, bucket, keys))
            if balancing != HASH_LINE:
                return run
            # A node goes: its keys move to the next node on the ring, which fetches those originals again.
            lost = nodes[-1]
            lost.stop()
            after_loss = fetch_all(base, [preview_path(f"{bucket}/{key}", SIZES[1]) for key in keys])
            return ClusterRun(previews, originals, gets_after_previews, run.gets_after_originals,
                              lost.base_url.removeprefix("http://"), tuple(after_loss),
                              object_gets(counting, bucket, keys))


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory, moto: MotoS3,
           corpus_bucket: tuple[str, list[str]]) -> ClusterRun:
    """The workload through the example front as shipped: `hash $preview_proxy_route_key consistent`."""
    return _run(tmp_path_factory.mktemp("hashed"), moto, *corpus_bucket, HASH_LINE)


@pytest.fixture(scope="module")
def round_robin(tmp_path_factory: pytest.TempPathFactory, moto: MotoS3,
                corpus_bucket: tuple[str, list[str]]) -> ClusterRun:
    """The same workload with the hash line removed (nginx's round robin), on fresh nodes and caches."""
    return _run(tmp_path_factory.mktemp("round-robin"), moto, *corpus_bucket, ROUND_ROBIN)


def _all_images(answers: list[Answer] | tuple[Answer, ...]) -> None:
    bad = [(a.path, a.status, a.content_type) for a in answers if a.status != 200 or a.content_type != "image/jpeg"]
    assert not bad, f"{len(bad)} answers were not JPEGs: {bad[:5]}"


def test_consistent_hash_fetches_each_original_about_once(hashed: ClusterRun) -> None:
    _all_images(hashed.previews)
    # Every original is fetched at least once (else the wire count would be counting nothing).
    assert ORIGINALS <= hashed.gets_after_previews <= MAX_GETS_PER_ORIGINAL * ORIGINALS
    nodes_per_original: dict[str, set[str]] = {}
    for answer in hashed.previews:
        source = answer.path.split("/plain/", 1)[1]
        nodes_per_original.setdefault(source, set()).add(answer.node)
    assert all(len(nodes) == 1 for nodes in nodes_per_original.values()), "an original's sizes went to two nodes"
    assert len(set().union(*nodes_per_original.values())) == NODES, "the ring left a node without keys"


def test_originals_land_on_the_node_their_previews_filled(hashed: ClusterRun) -> None:
    _all_images(hashed.originals)
    node_of = {answer.path.split("/plain/", 1)[1]: answer.node for answer in hashed.previews}
    assert all(answer.node == node_of[answer.path[1:]] for answer in hashed.originals)
    assert {answer.cache for answer in hashed.originals} == {"HIT"}
    assert hashed.gets_after_originals == hashed.gets_after_previews


def test_round_robin_fetches_more_than_the_consistent_hash(hashed: ClusterRun, round_robin: ClusterRun,
                                                           record_property: Callable[[str, object], None],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _all_images(round_robin.previews)
    record_property("gets_per_original_hash", hashed.per_original())
    record_property("gets_per_original_round_robin", round_robin.per_original())
    with capsys.disabled():
        print(f"\ncluster: provider GETs per original, {ORIGINALS} originals x {len(SIZES)} sizes on {NODES} nodes: "
              f"consistent hash {hashed.per_original():.2f}, round robin {round_robin.per_original():.2f}")
    assert round_robin.gets_after_previews > hashed.gets_after_previews


def test_a_lost_node_costs_one_fetch_per_original_it_held(hashed: ClusterRun) -> None:
    _all_images(hashed.after_loss)  # every request failed over to a live node
    assert hashed.lost_node not in {answer.node.split(", ")[-1] for answer in hashed.after_loss}
    node_of = {answer.path.split("/plain/", 1)[1]: answer.node for answer in hashed.previews}
    moved = sum(1 for node in node_of.values() if node == hashed.lost_node)
    assert moved > 0
    # The other nodes still hold their originals and previews; the lost node's originals are fetched
    # once more each, by whichever node took their keys.
    assert moved <= hashed.gets_after_loss - hashed.gets_after_originals <= MAX_GETS_PER_ORIGINAL * moved


# --- the share of keys that move when one of four nodes goes ------------------------------------------

def test_removing_one_of_four_nodes_moves_about_a_quarter_of_the_keys(
        tmp_path_factory: pytest.TempPathFactory, record_property: Callable[[str, object], None],
        capsys: pytest.CaptureFixture[str]) -> None:
    stand_ins = free_ports(4)
    paths = [preview_path(f"photos/album-{index // 10}/photo-{index:04d}.jpg", 300) for index in range(REMAP_KEYS)]
    before, after = (ring_placement(tmp_path_factory.mktemp(f"ring-of-{len(nodes)}"), nodes, stand_ins, paths)
                     for nodes in (stand_ins, stand_ins[:3]))
    removed = f"127.0.0.1:{stand_ins[3]}"
    moved = [path for path in paths if before[path] != after[path]]
    # Consistency: the keys that move are exactly those the removed node held; no other key moves.
    assert moved == [path for path in paths if before[path] == removed]
    share = len(moved) / REMAP_KEYS
    record_property("share_moved_4_to_3", share)
    with capsys.disabled():
        print(f"\ncluster: removing one of 4 nodes moved {len(moved)} of {REMAP_KEYS} keys ({share:.1%})")
    assert REMAP_BAND[0] <= share <= REMAP_BAND[1]

"""Benchmark: provider fetches of a preview-proxy cluster behind deploy/cluster/nginx.conf, by routing rule.

Loopback only: Debian's nginx runs the example front (its host lines swapped for loopback ones,
tests/support/nginx_front.py) before N `preview-proxy serve` nodes, each with its own DATA_PATH,
over moto behind the counting TCP proxy. Every figure is provider GETs of objects, counted on the
wire, per original, from fresh nodes with empty caches. Each rule runs the same phases in order:

1. plain: every original at every size, `plain/<bucket>/<key>` (the form Supervisely's SDK builds);
2. base64: the same previews again with the source as unsplit base64url (another key for nginx);
3. base64, split: once more, the base64url split into 16-character chunks (yet another key).

Rules: the shipped `hash $preview_proxy_route_key consistent`; `hash $request_uri consistent`
(the whole URI: each size is its own key); round robin (no hash). Then node loss under the shipped rule:
one node stops and every preview is asked again. Then the ring alone (stand-in
nodes answering 204): the share of keys that move when one of 4 nodes is removed, and one of 8.

Run:  cd /work/main && .venv/bin/python -m tests.benchmarks.cluster [--originals 300] [--nodes 3]
The report is printed and written to tests/benchmarks/results/cluster.md (git-ignored).
"""

import argparse
import base64
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.benchmarks.harness import REPO, BenchmarkError, machine
from tests.support.cluster_nodes import Answer, cluster_nodes, fetch_all, object_gets, preview_path, small_originals
from tests.support.nginx_front import (
    HASH_LINE,
    ROUND_ROBIN,
    free_port,
    free_ports,
    loopback_front,
    nginx_missing,
    nginx_version,
    ring_placement,
    run_nginx,
)
from tests.support.s3 import MotoS3, s3_env
from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

RESULTS = REPO / "tests" / "benchmarks" / "results" / "cluster.md"
CORPUS = REPO / ".cache" / "corpus" / "photos"
SIZES = (50, 150, 300, 640, 1024)
RULES = {"route key (shipped)": HASH_LINE, "whole URI": "hash $request_uri consistent;", "round robin": ROUND_ROBIN}
RING_SIZES = (4, 8)
CHUNK = 16  # imgproxy's own examples split base64url sources into 16-character chunks


@dataclass
class RuleFigures:
    """GETs per original after each phase (cumulative) under one rule, and the run's wall time."""

    rule: str
    phases: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def base64_source(source: str, chunk: int = 0) -> str:
    """`source` as unpadded base64url, split into `chunk`-character pieces by `/` when `chunk` is given."""
    text = base64.urlsafe_b64encode(source.encode()).decode().rstrip("=")
    if not chunk:
        return text
    return "/".join(text[start:start + chunk] for start in range(0, len(text), chunk))


def base64_preview(source: str, width: int, chunk: int = 0) -> str:
    """The preview of `source` at `width` px, its source in base64url."""
    return f"/previews/insecure/rs:fit:{width}:0/q:70/{base64_source(source, chunk)}"


def run_rule(root: Path, moto: MotoS3, bucket: str, keys: list[str], nodes: int, rule: str) -> RuleFigures:
    """The three phases under one routing rule, on fresh nodes; GETs per original after each phase."""
    figures = RuleFigures(rule)
    sources = [f"{bucket}/{key}" for key in keys]
    phases = {
        "plain": [preview_path(source, width) for source in sources for width in SIZES],
        "+ base64": [base64_preview(source, width) for source in sources for width in SIZES],
        "+ base64 split": [base64_preview(source, width, CHUNK) for source in sources for width in SIZES],
    }
    started = time.perf_counter()
    with _front(root, moto, nodes, RULES[rule]) as (base, counting, _):
        for name, paths in phases.items():
            _check(fetch_all(base, paths), name)
            figures.phases[name] = object_gets(counting, bucket, keys) / len(keys)
    figures.seconds = time.perf_counter() - started
    return figures


def node_loss(root: Path, moto: MotoS3, bucket: str, keys: list[str], nodes: int) -> tuple[int, int]:
    """Under the shipped rule: how many originals the last node held, and how many provider GETs it
    takes when it stops and every preview is asked again (the next node on the ring fetches them)."""
    sources = [f"{bucket}/{key}" for key in keys]
    paths = [preview_path(source, width) for source in sources for width in SIZES]
    with _front(root, moto, nodes, HASH_LINE) as (base, counting, servers):
        first = fetch_all(base, paths)
        _check(first, "before the loss")
        before = object_gets(counting, bucket, keys)
        lost = servers[-1]
        held = {answer.path.split("/plain/", 1)[1] for answer in first
                if answer.node == lost.base_url.removeprefix("http://")}
        lost.stop()
        _check(fetch_all(base, paths), "after the loss")
        refetched = object_gets(counting, bucket, keys) - before
    return len(held), refetched


@contextmanager
def _front(root: Path, moto: MotoS3, nodes: int, balancing: str) -> Iterator[tuple[str, TcpProxy, list[ServerProcess]]]:
    """Fresh nodes over moto behind a counting proxy, and the example front with `balancing` before them."""
    with TcpProxy(("127.0.0.1", moto.port)) as counting, \
            cluster_nodes(root / "nodes", nodes, s3_env(counting.endpoint)) as servers:
        port = free_port()
        conf = loopback_front(root / "front", port, [s.base_url.removeprefix("http://") for s in servers], balancing)
        with run_nginx(conf, port):
            yield f"http://127.0.0.1:{port}", counting, servers


def share_moved(root: Path, keys: int, nodes: int) -> float:
    """The share of `keys` preview keys that change node when one of `nodes` stand-in nodes is removed."""
    stand_ins = free_ports(nodes)
    paths = [preview_path(f"photos/album-{index // 10}/photo-{index:05d}.jpg", 300) for index in range(keys)]
    before = ring_placement(root / f"ring-{nodes}", stand_ins, stand_ins, paths)
    after = ring_placement(root / f"ring-{nodes}-less-one", stand_ins[:-1], stand_ins, paths)
    moved = [path for path in paths if before[path] != after[path]]
    if moved != [path for path in paths if before[path] == f"127.0.0.1:{stand_ins[-1]}"]:
        raise BenchmarkError("keys moved between nodes that stayed: the ring is not consistent")
    return len(moved) / keys


def _check(answers: list[Answer], phase: str) -> None:
    bad = [(a.path, a.status) for a in answers if a.status != 200 or a.content_type != "image/jpeg"]
    if bad:
        raise BenchmarkError(f"{phase}: {len(bad)} answers were not JPEGs, e.g. {bad[:3]}")


def report(args: argparse.Namespace, rules: list[RuleFigures], loss: tuple[int, int],
           removed: dict[int, float]) -> str:
    """The markdown report."""
    phases = list(rules[0].phases)
    lines = [
        "# Cluster: provider GETs per original, by routing rule",
        "",
        f"{machine()}; {nginx_version()}.",
        f"{args.originals} originals (real photos shrunk to 480 px JPEGs) x {len(SIZES)} sizes {SIZES}, "
        f"{args.nodes} nodes, 6 requests in flight. Cumulative provider GETs per original after each phase:",
        "",
        "| rule | " + " | ".join(phases) + " | seconds |",
        "|---|" + "---:|" * (len(phases) + 1),
    ]
    for figures in rules:
        cells = " | ".join(f"{figures.phases[name]:.2f}" for name in phases)
        lines.append(f"| {figures.rule} | {cells} | {figures.seconds:.0f} |")
    held, refetched = loss
    lines += ["", f"Node loss (shipped rule, plain sources): the stopped node held {held} of the {args.originals} "
              f"originals; asking every preview again, all answered 200, cost {refetched} provider GETs "
              f"({refetched / max(1, held):.2f} per original it held)."]
    shares = "; ".join(f"one of {nodes} nodes: {share:.1%} (1/{nodes} = {1 / nodes:.1%})"
                       for nodes, share in removed.items())
    lines += ["", f"Ring alone ({args.remap_keys} keys, stand-in nodes), keys that move when a node is removed: "
              f"{shares}. Only the removed node's keys move."]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every rule, the ring measurement, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--originals", type=int, default=300)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--remap-keys", type=int, default=4000)
    args = parser.parse_args()
    missing = nginx_missing()
    if missing:
        raise SystemExit(missing)
    photos = sorted(CORPUS.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no photos in {CORPUS}: run `bash deploy/dev.sh test` (it fetches them)")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    moto = MotoS3()
    try:
        bucket = moto.create_bucket(f"cluster-{uuid.uuid4().hex[:10]}")
        keys = [f"gallery/photo-{index:04d}.jpg" for index in range(args.originals)]
        for key, body in zip(keys, small_originals(photos, args.originals), strict=True):
            moto.put(bucket, key, body, "image/jpeg")
        with tempfile.TemporaryDirectory(prefix="cluster-bench-") as temp:
            root = Path(temp)
            rules = [run_rule(root / f"rule-{index}", moto, bucket, keys, args.nodes, rule)
                     for index, rule in enumerate(RULES)]
            loss = node_loss(root / "loss", moto, bucket, keys, args.nodes)
            removed = {nodes: share_moved(root, args.remap_keys, nodes) for nodes in RING_SIZES}
    finally:
        moto.stop()
    text = report(args, rules, loss, removed)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

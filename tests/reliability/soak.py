"""Soak: a mixed workload for minutes, with every process's RSS and the tiers' disk use against their bounds.

Run from the repository root (not collected by pytest; tests/reliability/test_soak_smoke.py runs it
for a few seconds so that it keeps working):

    .venv/bin/python -m tests.reliability.soak --minutes 10 [--workers 2] [--concurrency 8] [--json out.json]
    .venv/bin/python -m tests.reliability.soak --url http://127.0.0.1:8080 --source bucket/key.jpg ... \\
        [--pid <server pid>] [--cache-path DATA_PATH/cache --bound storage=10g --bound previews=1g]

Without --url it starts moto (S3) with photographs from the corpus (or generated images), and a
server over S3 with small tier bounds, so that eviction runs all the time. The workload mixes
preview hits, cold previews of many sizes and formats, whole originals (sha256 checked) and ranges
(checked against the bytes), with a bounded loop: until the time is up or --max-requests are sent.
It exits 1 when any request failed or a tier ended above its bound (plus --bound-slack).
"""

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from PIL import Image

from proxy.settings.units import parse_size
from tests.reliability.soak_probes import MIB, RssSampler, RssTrack, tier_sizes

REPO = Path(__file__).resolve().parent.parent.parent
CORPUS = REPO / ".cache" / "corpus" / "photos"
OWN_BOUNDS = {"storage": "2m", "previews": "8m", "image-converter": "8m"}  # below the sources: eviction all the time
KINDS = {"hit": 40, "cold-preview": 25, "original": 20, "range": 15}  # weights of the request mix
HIT_WIDTHS = (96, 160)
FORMATS = ("jpeg", "png", "webp")


@dataclass
class Tally:
    """Requests and failures, by kind."""

    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def fail(self, kind: str, what: str) -> None:
        """Count a failure and keep the first few for the report."""
        self.errors[kind] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {what}")


@dataclass(frozen=True)
class Workload:
    """The sources (path -> their bytes) and how to pick requests over them."""

    base_url: str
    sources: dict[str, bytes]

    def pick(self, rng: random.Random) -> tuple[str, str, dict[str, str], bytes | None]:
        """(kind, path, headers, the exact body expected or None for a preview)."""
        kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
        keys = sorted(self.sources)
        if kind == "hit":
            width, key = rng.choice(HIT_WIDTHS), rng.choice(keys[:4])
            return kind, f"/previews/q/rs:fit:{width}:{width}/plain/{key}", {}, None
        if kind == "cold-preview":
            width, fmt = rng.randint(16, 1200), rng.choice(FORMATS)
            return kind, f"/previews/q/rs:fit:{width}:0/f:{fmt}/plain/{rng.choice(keys)}", {}, None
        key = rng.choice(keys)
        body = self.sources[key]
        if kind == "original":
            return kind, f"/{key}", {}, body
        start = rng.randrange(len(body))
        end = min(len(body) - 1, start + rng.randint(0, 256 * 1024))
        return kind, f"/{key}", {"Range": f"bytes={start}-{end}"}, body[start:end + 1]


async def drive(workload: Workload, seconds: float, concurrency: int, max_requests: int, seed: int) -> Tally:
    """`concurrency` loops of requests until the time or the request budget is spent."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    budget = iter(range(max_requests))
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def loop(rng: random.Random) -> None:
            while time.monotonic() < deadline and next(budget, None) is not None:
                await one(session, workload, rng, tally)

        await asyncio.gather(*(loop(random.Random(seed + index)) for index in range(concurrency)))
    return tally


async def one(session: aiohttp.ClientSession, workload: Workload, rng: random.Random, tally: Tally) -> None:
    """One request, checked: the status, and the body against the bytes (or decoded, for a preview)."""
    kind, path, headers, expected = workload.pick(rng)
    tally.requests[kind] += 1
    try:
        async with session.get(workload.base_url + path, headers=headers) as response:
            body = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        tally.fail(kind, f"{path}: {type(error).__name__}: {error}")
        return
    wanted = 206 if "Range" in headers else 200
    if status != wanted:
        tally.fail(kind, f"{path} {headers}: {status} {body[:100]!r}")
    elif expected is not None and hashlib.sha256(body).digest() != hashlib.sha256(expected).digest():
        tally.fail(kind, f"{path} {headers}: {len(body)} bytes, not the {len(expected)} expected")
    elif expected is None and (problem := _undecodable(body)):
        tally.fail(kind, f"{path}: {problem}")


def _undecodable(body: bytes) -> str:
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        return f"preview does not decode: {error}"
    return ""


def corpus_images(count: int) -> list[tuple[str, bytes]]:
    """Photographs from the corpus, or generated images when it is absent."""
    photos = sorted(CORPUS.glob("*.jpg"), key=lambda p: p.stat().st_size)[:count] if CORPUS.is_dir() else []
    if photos:
        return [(photo.name, photo.read_bytes()) for photo in photos]
    made = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.effect_noise((400 + 100 * index, 300 + 80 * index), 40 + index).convert("RGB").save(buffer, "JPEG")
        made.append((f"generated-{index}.jpg", buffer.getvalue()))
    return made


@contextlib.contextmanager
def own_server(workers: int) -> Iterator[tuple[str, int, Path, dict[str, str], dict[str, bytes]]]:
    """moto with the images, and a server over it: (url, pid, cache path, bounds, sources)."""
    from tests.support.s3 import MotoS3, s3_env
    from tests.support.server import ServerProcess

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log would bury the report
    moto = MotoS3()
    try:
        bucket = moto.create_bucket("soak")
        sources = {}
        for name, body in corpus_images(12):
            moto.put(bucket, f"photos/{name}", body, "image/jpeg")
            sources[f"{bucket}/photos/{name}"] = body
        with tempfile.TemporaryDirectory(prefix="soak-") as data_path:
            bounds = {f"CACHE_{tier.upper().replace('-', '_')}_SIZE": size for tier, size in OWN_BOUNDS.items()}
            # A soak looks for errors and leaks, not latency: a loaded machine's slow render is no 504 here.
            env = {"DATA_PATH": data_path, **s3_env(moto.endpoint), **bounds, "IMGPROXY_TIMEOUT": "60"}
            server = ServerProcess(env, cwd=REPO, workers=workers)
            try:
                yield server.base_url, server.pid, Path(data_path) / "cache", dict(OWN_BOUNDS), sources
            finally:
                server.stop()
                print(f"server exited with status {server.process.returncode}", file=sys.stderr)
    finally:
        moto.stop()


async def _fetch_sources(base_url: str, keys: list[str]) -> dict[str, bytes]:
    async with aiohttp.ClientSession() as session:
        sources = {}
        for key in keys:
            async with session.get(f"{base_url}/{key}") as response:
                if response.status != 200:
                    raise SystemExit(f"--source {key}: the server answered {response.status}")
                sources[key] = await response.read()
        return sources


def report(tally: Tally, tracks: list[RssTrack], sizes: dict[str, int], bounds: dict[str, str],
           seconds: float, slack: float) -> dict[str, object]:
    """The summary, as a dict (for --json) with a `passed` verdict."""
    limits = {tier: parse_size(text) for tier, text in bounds.items()}
    over = [tier for tier, size in sizes.items() if tier in limits and size > limits[tier] * (1 + slack)]
    return {
        "seconds": round(seconds, 1), "requests": dict(tally.requests), "errors": dict(tally.errors),
        "error_examples": tally.examples,
        "processes": [{"pid": t.pid, "role": t.role, "samples": t.samples, "rss_first_mib": t.first / MIB,
                       "rss_after_warm_up_mib": t.warm / MIB, "rss_last_mib": t.last / MIB,
                       "rss_peak_mib": t.peak / MIB, "growth_after_warm_up_mib": t.growth_after_warm_up() / MIB}
                      for t in tracks],
        "tiers": {tier: {"bytes": size, "bound": limits.get(tier)} for tier, size in sizes.items()},
        "tiers_over_bound": over,
        "passed": not tally.errors and not over and sum(tally.requests.values()) > 0,
    }


def print_report(summary: dict[str, object]) -> None:
    """The summary for a human."""
    print(f"soak: {summary['seconds']} s, requests {summary['requests']}, errors {summary['errors']}")
    for example in summary["error_examples"]:  # type: ignore[attr-defined]
        print(f"  error: {example}")
    for p in summary["processes"]:  # type: ignore[attr-defined]
        print(f"  {p['role']:<16} pid {p['pid']:>7}: RSS {p['rss_first_mib']:.0f} -> {p['rss_last_mib']:.0f} MiB "
              f"(peak {p['rss_peak_mib']:.0f}, after warm-up {p['growth_after_warm_up_mib']:+.1f} MiB, "
              f"{p['samples']} samples)")
    for tier, info in summary["tiers"].items():  # type: ignore[attr-defined]
        bound = f"{info['bound'] / MIB:.0f} MiB" if info["bound"] else "no bound given"
        print(f"  tier {tier:<16} {info['bytes'] / MIB:7.1f} MiB on disk, bound {bound}")
    print("PASSED" if summary["passed"] else f"FAILED (tiers over bound: {summary['tiers_over_bound']})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=10.0)
    length.add_argument("--seconds", type=float)
    parser.add_argument("--url", help="a running server (default: start moto and a server)")
    parser.add_argument("--source", action="append", default=[], help="bucket/key of an image on --url (repeat)")
    parser.add_argument("--pid", type=int, help="the --url server's pid, to sample its RSS and its workers'")
    parser.add_argument("--cache-path", type=Path, help="the --url server's CACHE_PATH, to measure the tiers")
    parser.add_argument("--bound", action="append", default=[], help="tier=size for --cache-path (repeat)")
    parser.add_argument("--bound-slack", type=float, default=0.10, help="fraction a tier may exceed its bound")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=5_000_000)
    parser.add_argument("--sample-every", type=float, default=3.0, help="seconds between RSS samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when it passed."""
    args = parse_args(argv)
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    with contextlib.ExitStack() as stack:
        if args.url:
            if not args.source:
                raise SystemExit("--url needs at least one --source bucket/key")
            base_url, pid, cache_path = args.url.rstrip("/"), args.pid, args.cache_path
            bounds = dict(item.split("=", 1) for item in args.bound)
            sources = asyncio.run(_fetch_sources(base_url, args.source))
        else:
            base_url, pid, cache_path, bounds, sources = stack.enter_context(own_server(args.workers))
        sampler = RssSampler(pid, args.sample_every, warm_up=min(30.0, seconds / 5)).start() if pid else None
        started = time.monotonic()
        tally = asyncio.run(drive(Workload(base_url, sources), seconds, args.concurrency, args.max_requests, args.seed))
        elapsed = time.monotonic() - started
        tracks = sampler.stop() if sampler else []
        sizes = tier_sizes(cache_path) if cache_path else {}
    summary = report(tally, tracks, sizes, bounds, elapsed, args.bound_slack)
    print_report(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

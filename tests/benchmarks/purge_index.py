"""Benchmark: what the purge index adds to a commit, what a prefix purge costs, what a generation read costs.

One thread, 8 KB bodies, fresh tiers in a temporary folder: a tier's own commit (DiskTier.store_bytes)
against the same commit checked and indexed (PurgeIndex.store_bytes), then a prefix purge of about
half the entries, then reads of the shared purge generation.

Run:  cd /work/main && .venv/bin/python -m tests.benchmarks.purge_index [--entries 2000]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from cache.config import TierConfig
from cache.disk_tier import DiskTier
from cache.entry import EntryMeta, ObjectInfo
from cache.purge.index import PREFIX, PurgeIndex
from cache.startup import prepare_tiers

BODY = os.urandom(8000)
META = EntryMeta(ObjectInfo(len(BODY), '"v1"', 0.0, "image/png"))
READS = 100_000


class _Quiet:
    def cache_error(self, tier: str, operation: str, error: BaseException) -> None:
        """Not counted here."""

    def cache_evicted(self, tier: str) -> None:
        """Not counted here."""


def main() -> None:
    """Print commits per second without and with the index, a prefix purge's time and a generation read's."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=2000)
    entries = parser.parse_args().entries
    root = Path(tempfile.mkdtemp(prefix="purge-bench-"))
    configs = {name: TierConfig(name, root / name, 1 << 30, 3600.0) for name in ("plain", "indexed")}
    prepare_tiers(tuple(configs.values()))
    index = PurgeIndex(root / "index")
    for name, config in configs.items():
        tier = DiskTier(config, _Quiet())
        started = time.perf_counter()
        for number in range(entries):
            key, source = f"options\nns\nbucket\nk{number}\n\"v1\"\npng", f"ns\nbucket\nk{number}"
            if name == "plain":
                tier.store_bytes(key, BODY, META)
            else:
                index.store_bytes(tier, key, BODY, META, source, index.generation.read())
        seconds = time.perf_counter() - started
        print(f"{name}: {entries / seconds:.0f} commits/s, {seconds / entries * 1e6:.0f} µs each")
    started = time.perf_counter()
    removed = index.purge({"indexed": tier}, PREFIX, "ns\nbucket\nk1")
    print(f"prefix purge: {removed['indexed']} entries in {time.perf_counter() - started:.3f} s")
    started = time.perf_counter()
    for _ in range(READS):
        index.generation.read()
    print(f"generation read: {(time.perf_counter() - started) / READS * 1e9:.0f} ns")


if __name__ == "__main__":
    main()

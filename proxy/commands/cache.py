"""`preview-proxy cache stats | purge <target> | verify [--fix]`: the cache folders, directly, while a server may run.

They open the tiers and the purge index the way each worker does, so they take the same locks and
transactions: a purge here is the same purge as a PURGE request (the generation moves, every worker
drops its memory at its next lookup), and `verify --fix` removes entries through diskcache.
"""

import argparse
import datetime
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from cache.disk_tier import DiskTier
from cache.purge import audit
from cache.purge.index import PREFIX, SOURCE, PurgeIndex
from previews.errors import PublicError
from proxy.config import Config
from proxy.http.object_path import parse_source_ref
from proxy.settings.errors import ConfigError
from proxy.storage.links.config import LinksConfig
from proxy.storage.links.sources import SCHEMES, LinkTable
from proxy.storage.provider import ObjectRef
from proxy.tiers.keys import link_namespace, main_storage_namespace, original_key

log = logging.getLogger(__name__)
TARGET_HELP = "<bucket>/<key>, <bucket>/<prefix>* or links/<scheme>/<bucket>/<key>[*]"


def add_cache_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `cache` and its three subcommands on the CLI's subparsers."""
    cache = commands.add_parser("cache", help="inspect, purge or verify the disk caches (safe while serving)")
    actions = cache.add_subparsers(dest="cache_command", required=True)
    actions.add_parser("stats", help="per tier: entries, bytes, capacity, oldest entry")
    purge = actions.add_parser("purge", help="remove originals with their previews and conversions")
    purge.add_argument("target", help=TARGET_HELP)
    verify = actions.add_parser("verify", help="check every entry's length; report orphan files and index rows")
    verify.add_argument("--fix", action="store_true", help="remove what does not check out")


def run_cache_command(args: argparse.Namespace, config: Config) -> int:
    """Run `cache <subcommand>`; the exit status."""
    with _opened(config) as (tiers, index):
        if args.cache_command == "stats":
            return _stats(tiers)
        if args.cache_command == "purge":
            try:
                kind, target = _purge_target(args.target, config)
            except (ValueError, ConfigError, PublicError) as error:  # a bad target, an unknown link bucket
                print(f"preview-proxy cache purge: {getattr(error, 'reason', None) or error}")
                return 2
            removed = index.purge({tier.name: tier for tier in tiers}, kind, target)
            print(" ".join(f"{name}={count}" for name, count in removed.items()))
            return 0
        return _verify(tiers, index, args.fix)


@contextmanager
def _opened(config: Config) -> Iterator[tuple[tuple[DiskTier, ...], PurgeIndex]]:
    tiers = tuple(DiskTier(tier_config, _LogOnly()) for tier_config in config.cache.tiers())
    index = PurgeIndex(config.cache.previews.path.parent)
    try:
        yield tiers, index
    finally:
        for tier in tiers:
            tier.close()
        index.close()


def _stats(tiers: tuple[DiskTier, ...]) -> int:
    for tier in tiers:
        size, entries = tier.stats()
        oldest = audit.oldest_entry(tier.config.path)
        when = datetime.datetime.fromtimestamp(oldest, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if oldest else "-"
        print(f"{tier.name}: entries={entries} bytes={size} capacity={tier.config.size_limit} oldest={when}")
    return 0


def _purge_target(text: str, config: Config) -> tuple[str, str]:
    """(index kind, target) of a CLI purge target; ValueError with the reason for a bad one."""
    namespace = main_storage_namespace(config.storage)
    scheme, _, rest = text.removeprefix("links/").partition("/")
    if text.startswith("links/") and scheme in SCHEMES:
        links = config.links or LinksConfig(config.data_path / "remote_links.yml", required=False)
        namespace = link_namespace(LinkTable(links).find(scheme, rest.partition("/")[0]))
        text = rest
    prefix = text.endswith("*")
    bucket, _, key = text.removesuffix("*").partition("/")
    if prefix and not key:
        raise ValueError("a whole bucket is refused: name a prefix, <bucket>/<prefix>*")
    # Checked as an object name (stand-in last character: a prefix may end with '/').
    ref = parse_source_ref(f"{bucket}/{key}x" if prefix else f"{bucket}/{key}")
    ref = ObjectRef(ref.bucket, ref.key[:-1]) if prefix else ref
    return (PREFIX if prefix else SOURCE), original_key(namespace, ref)


def _verify(tiers: tuple[DiskTier, ...], index: PurgeIndex, fix: bool) -> int:
    problems = 0
    for tier in tiers:
        named = set()
        for row in audit.entry_rows(tier.config.path):
            named.add(row.path)
            reason = audit.bad_length(row)
            if reason is not None:
                problems += 1
                print(f"{tier.name}: entry {_shown(row.key)}: {reason}")
                if fix:
                    tier.remove(row.key)
        for path in audit.orphan_files(tier.config.path, named):
            problems += 1
            print(f"{tier.name}: orphan file {path}")
            if fix:
                audit.remove_orphan(path)
    by_name = {tier.name: tier for tier in tiers}
    for tier_name, key, _source in index.rows():
        holder = by_name.get(tier_name)
        if holder is None or not holder.holds(key):
            problems += 1
            print(f"index: orphan row {tier_name} {_shown(key)}")
            if fix:
                index.forget(tier_name, key)
    print(f"verify: {problems} problem(s){', fixed' if fix and problems else ''}")
    return 0 if fix or not problems else 1


def _shown(key: str) -> str:
    return key.replace("\n", " | ")


class _LogOnly:
    """A TierObserver for the CLI: the tier logs errors itself, and there are no metrics to count."""

    def cache_error(self, tier: str, operation: str, error: BaseException) -> None:
        """Logged by the tier already."""

    def cache_evicted(self, tier: str) -> None:
        """Nothing to count."""

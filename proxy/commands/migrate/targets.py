"""Where a migration goes: the entry `--to` names, and which source bucket lands in which of its buckets.

Checked whole before any copy: an unknown entry, a folder entry, a bucket the entry does not list, or
two sources into one bucket stop the command with one line (MigrateUsageError). A destination bucket
must be one the entry lists, so what is copied is reachable through the links afterwards, and a typo
can't spill objects into a bucket nobody named.
"""

import re
from dataclasses import dataclass

from proxy.commands.migrate.errors import MigrateUsageError
from proxy.config import Config
from proxy.storage.config import LOCAL_DISK
from proxy.storage.links.entry import NAME, LinkEntry
from proxy.storage.provider import StorageProvider
from proxy.storage.registry import build_provider

BUCKET_MAPPING = re.compile(r"(?P<source>[^=]+)(?:=(?P<dest>[^=]+))?")


@dataclass(frozen=True)
class Route:
    """One source bucket and the destination bucket its objects go to."""

    source: str
    dest: str


def find_entry(config: Config, name: str) -> LinkEntry:
    """The links file's entry called `name`, which must be an object store (not a folder)."""
    entries = config.links.entries if config.links is not None else ()
    for entry in entries:
        if entry.name == name:
            if entry.provider == "fs":
                raise MigrateUsageError(f"--to {name}: a folder entry (provider fs); migrate copies into an "
                                        "object store (minio, azure or google)")
            return entry
    known = ", ".join(entry.name for entry in entries) or "none"
    where = config.links.path if config.links is not None else "the links file"
    raise MigrateUsageError(f"--to {name}: no such entry in {where} (its entries: {known})")


def plan_routes(mappings: list[str], entry: LinkEntry, config: Config, local_buckets: list[str] | None) -> list[Route]:
    """The routes `--bucket SRC[=DST]` give, or, with none given, every local bucket into its namesake.

    `local_buckets` lists the main storage's buckets when it is local disk; None for a cloud, whose
    buckets can't all be listed with per-bucket credentials, so they must be named.
    """
    if not mappings:
        if local_buckets is None:
            raise MigrateUsageError(f"the main storage is {config.storage.provider}: name its buckets with "
                                    "--bucket SRC[=DST]")
        if not local_buckets:
            raise MigrateUsageError(f"no bucket folders in {config.storage.root}: nothing to migrate")
        mappings = local_buckets
    routes = list(dict.fromkeys(_route(text, local_buckets, config) for text in mappings))  # a repeat is one route
    for route in routes:
        if route.dest not in entry.buckets:
            raise MigrateUsageError(f"--bucket {route.source}={route.dest}: entry {entry.name!r} does not list "
                                    f"bucket {route.dest!r} (its buckets: {', '.join(entry.buckets)})")
    dests = [route.dest for route in routes]
    if len(set(dests)) != len(dests):
        twice = sorted({dest for dest in dests if dests.count(dest) > 1})
        raise MigrateUsageError(f"--bucket: several source buckets go into {', '.join(twice)}; keys could collide")
    return routes


def destination_provider(entry: LinkEntry) -> StorageProvider:
    """The provider the entry describes (its credentials, endpoint, timeouts and retries)."""
    return build_provider(entry.storage)


def _route(text: str, local_buckets: list[str] | None, config: Config) -> Route:
    matched = BUCKET_MAPPING.fullmatch(text.strip())
    if matched is None:
        raise MigrateUsageError(f"--bucket {text!r}: expected SRC or SRC=DST")
    source, dest = matched["source"].strip(), (matched["dest"] or matched["source"]).strip()
    for name in (source, dest):
        if not NAME.fullmatch(name):
            raise MigrateUsageError(f"--bucket {text!r}: {name!r} is not a bucket name")
    if local_buckets is not None and source not in local_buckets:
        raise MigrateUsageError(f"--bucket {text!r}: no bucket folder {source!r} in {config.storage.root}")
    return Route(source, dest)


def is_local(config: Config) -> bool:
    """Whether the main storage is local disk (DATA_PATH/storage)."""
    return config.storage.provider == LOCAL_DISK

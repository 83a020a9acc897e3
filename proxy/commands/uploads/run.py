"""`uploads list|abort`: which storage (the main one or a links-file entry), and what applies to its provider."""

import argparse
import asyncio
from dataclasses import dataclass

from proxy.commands.uploads.local_parts import run_local
from proxy.commands.uploads.report import Tally, complain
from proxy.commands.uploads.s3_uploads import run_s3
from proxy.config import Config
from proxy.storage.config import LOCAL_DISK, StorageConfig

# Providers that leave nothing for this command to find or abort, and why.
NOTHING_TO_ABORT = {
    "azure": "Azure: uncommitted blocks are discarded by the service after 7 days; there is no upload to abort.",
    "google": "Google Cloud Storage: this command does not list its XML-API multipart uploads; a lifecycle rule "
              "with the AbortIncompleteMultipartUpload action removes those a crash left.",
}


@dataclass(frozen=True)
class Target:
    """The storage to search: its provider kind (minio, azure, google, local), settings and buckets."""

    kind: str
    storage: StorageConfig
    buckets: tuple[str, ...]


def run_uploads_command(args: argparse.Namespace, config: Config) -> int:
    """Run `uploads list` or `uploads abort`; 0 done, 1 a provider refused or failed, 2 wrong arguments."""
    target = _target(args, config)
    if target is None:
        return 2
    if target.kind in NOTHING_TO_ABORT:
        print(NOTHING_TO_ABORT[target.kind])
        return 0
    older_than = args.older_than if args.uploads_command == "abort" else None
    dry_run = bool(getattr(args, "dry_run", False))
    if target.kind == "local":
        roots = [target.storage.root / bucket for bucket in target.buckets] or [target.storage.root]
        return run_local([root for root in roots if root.is_dir()], older_than, dry_run, Tally())
    return asyncio.run(run_s3(target.storage, target.buckets, older_than, dry_run, Tally()))


def _target(args: argparse.Namespace, config: Config) -> Target | None:
    """The main storage, or the links-file entry --link names (None, after one line on stderr, if there is none)."""
    buckets = tuple(dict.fromkeys(args.bucket))
    if any(not bucket or "/" in bucket or bucket in (".", "..") for bucket in buckets):
        complain("--bucket: expected a bucket name")
        return None
    if not args.link:
        kind = "local" if config.storage.provider == LOCAL_DISK else config.storage.provider
        return Target(kind, config.storage, buckets)
    entries = {entry.name: entry for entry in (config.links.entries if config.links else ())}
    entry = entries.get(args.link)
    if entry is None:
        known = ", ".join(entries) or "none"
        complain(f"--link {args.link!r}: no such entry in the links file (entries: {known})")
        return None
    if entry.provider == "fs":  # an fs entry is one folder, named after the entry: it has no buckets of its own
        return Target("local", entry.storage, ())
    return Target(entry.provider, entry.storage, buckets or entry.buckets)



"""Local disk: the part files of writes a crash cut short (proxy.storage.local_write), listed and removed by age.

A write in progress touches its part file with every chunk, so one untouched for longer than the
age asked for belongs to a process that is gone; a live write's file is never that old.
"""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from proxy.commands.uploads.report import Tally, plural
from proxy.storage.local_write import PART_PREFIX, PART_SUFFIX

# `.<name>.<pid>.<8 hex>.upload`, as local_write.part_path names them.
PART_NAME = re.compile(rf"{re.escape(PART_PREFIX)}(?P<name>.+)\.\d+\.[0-9a-f]{{8}}{re.escape(PART_SUFFIX)}")


@dataclass(frozen=True)
class PartFile:
    """A part file: the object it was to become (bucket and key under the root), and when it was last written."""

    path: Path
    bucket: str
    key: str
    modified: datetime


def part_files(root: Path) -> Iterator[PartFile]:
    """Every part file under `root` (symlinked folders are not followed)."""
    for folder, _, names in os.walk(root):
        for name in names:
            match = PART_NAME.fullmatch(name)
            if match is None:
                continue
            path = Path(folder, name)
            try:
                modified = datetime.fromtimestamp(path.lstat().st_mtime, UTC)
            except FileNotFoundError:
                continue  # renamed into place (or removed) since the walk saw it
            target = path.with_name(match["name"]).relative_to(root)
            bucket, _, key = target.as_posix().partition("/")
            yield PartFile(path, bucket if key else root.name, key or bucket, modified)


def run_local(roots: list[Path], older_than: float | None, dry_run: bool, tally: Tally) -> int:
    """List the part files under `roots`, or remove those older than `older_than`; the exit status."""
    failed = False
    for root in roots:
        for part in part_files(root):
            if older_than is None:
                tally.row("open", part.bucket, part.key, part.path.name, part.modified)
            elif tally.age(part.modified) < older_than:
                tally.count("kept", part.modified)
            elif dry_run:
                tally.row("would abort", part.bucket, part.key, part.path.name, part.modified)
            else:
                try:
                    part.path.unlink()
                    tally.row("removed", part.bucket, part.key, part.path.name, part.modified)
                except FileNotFoundError:
                    tally.row("gone", part.bucket, part.key, part.path.name, part.modified)
                except OSError:
                    failed = True
                    tally.row("failed", part.bucket, part.key, part.path.name, part.modified)
    print(tally.summary("part files of unfinished writes", plural(len(roots), "folder")), file=tally.out)
    return 1 if failed else 0

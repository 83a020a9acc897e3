"""The sources of a warm run: Supervisely's links format, one source a line.

`s3://bucket/key`, `azure://container/key`, `google://bucket/key`, `fs://<storage id>/<path>` or
`bucket/key` for the main storage; blank lines and `#` comments are skipped. A line is checked the
way a preview's source is (no I/O), so a bad one is known, with its number, before anything is fetched.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

from previews.errors import PublicError
from proxy.http.object_path import parse_source_ref
from proxy.storage.links.sources import parse_link_source


@dataclass(frozen=True)
class WarmSource:
    """One checked line: its number in the file and the source as a preview URL's `plain/` part names it."""

    line: int
    source: str


@dataclass(frozen=True)
class BadLine:
    """A line that names no source, and why."""

    line: int
    reason: str


def read_lines(file: str) -> list[str]:
    """The file's lines (`-`: standard input); OSError if it can't be read."""
    if file == "-":
        return sys.stdin.read().splitlines()
    return Path(file).read_text(encoding="utf-8", errors="replace").splitlines()


def parse_sources(lines: list[str]) -> list[WarmSource | BadLine]:
    """Every line that is not blank or a comment, checked, in file order."""
    parsed: list[WarmSource | BadLine] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            link = parse_link_source(text)
            if link is None:
                parse_source_ref(text)
        except PublicError as error:  # an unknown scheme, a bad bucket name, `..` in the key, ...
            parsed.append(BadLine(number, error.reason))
            continue
        parsed.append(WarmSource(number, text))
    return parsed

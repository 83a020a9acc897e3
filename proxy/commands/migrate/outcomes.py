"""What one object's migration came to, and why."""

import enum
from dataclasses import dataclass

from proxy.commands.migrate.listing import SourceObject


class Outcome(enum.Enum):
    """One object's result; the last four only in --dry-run and --verify-only."""

    COPIED = "copied"
    SKIPPED = "skipped"  # already at the destination with the same bytes
    FAILED = "failed"
    WOULD_COPY = "would copy"  # --dry-run
    VERIFIED = "verified"  # --verify-only: read back, same sha256
    MISMATCH = "mismatch"  # --verify-only: read back, another sha256 (or size)
    MISSING = "missing"  # --verify-only: not at the destination


# Outcomes that make the run exit non-zero.
BAD = frozenset({Outcome.FAILED, Outcome.MISMATCH, Outcome.MISSING})


@dataclass(frozen=True)
class ObjectResult:
    """An object, where it went, what came of it and why (one line), and the bytes copied for it."""

    item: SourceObject
    dest_bucket: str
    outcome: Outcome
    why: str
    copied: int = 0

"""What `uploads list|abort` prints: one line per upload (where, id, initiated, age) and one summary line."""

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from proxy.secrets.registry import SECRETS

AGE_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def describe_age(seconds: float) -> str:
    """`2d3h`, `3h12m`, `45s`: the two largest units, enough to compare with --older-than."""
    whole = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in AGE_UNITS:
        if whole >= size or (unit == "s" and not parts):
            parts.append(f"{whole // size}{unit}")
            whole %= size
        if len(parts) == 2:
            break
    return "".join(parts)


def complain(message: str) -> None:
    """One line on stderr, with any configured secret masked (a provider's message is not ours to trust)."""
    print(f"preview-proxy uploads: {SECRETS.redact(message)}", file=sys.stderr)


@dataclass
class Tally:
    """Counts what a run found and did, and prints each upload as it goes."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    out: TextIO = field(default_factory=lambda: sys.stdout)
    counts: dict[str, int] = field(default_factory=dict)
    oldest: float = 0.0

    def age(self, initiated: datetime) -> float:
        """Seconds since `initiated`."""
        return (self.now - initiated).total_seconds()

    def row(self, outcome: str, bucket: str, key: str, upload_id: str, initiated: datetime) -> None:
        """Print one upload and count it under `outcome` (open, aborted, would abort, kept, gone, failed)."""
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        age = self.age(initiated)
        self.oldest = max(self.oldest, age)
        print(f"{outcome:<11} {bucket}/{key}  {upload_id}  {initiated:%Y-%m-%dT%H:%M:%SZ}  {describe_age(age)}",
              file=self.out)

    def count(self, outcome: str, initiated: datetime) -> None:
        """Count an upload without printing it (one kept for being too young)."""
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.oldest = max(self.oldest, self.age(initiated))

    def summary(self, what: str, searched: str) -> str:
        """`3 open multipart uploads (5 buckets searched; oldest 2d3h)`, then an abort's outcomes."""
        total = sum(self.counts.values())
        oldest = f"; oldest {describe_age(self.oldest)}" if self.oldest else ""
        outcomes = ", ".join(f"{number} {outcome}" for outcome, number in sorted(self.counts.items()))
        return f"{total} {what} ({searched} searched{oldest})" + (f": {outcomes}" if outcomes else "")


def plural(number: int, noun: str) -> str:
    """`1 bucket`, `2 buckets`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"

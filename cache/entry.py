"""What a tier stores beside each entry's bytes, and what a lookup hands back."""

import json
from dataclasses import asdict, dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class EntryMeta:
    """The headers a cached body is served with. `version` is the origin's ETag when it has one."""

    size: int
    etag: str
    last_modified: float
    content_type: str
    # What a converted entry was made from (X-Converted-From); empty for originals and previews.
    # Rows written before this field existed read back with the default.
    origin_format: str = ""

    def to_json(self) -> str:
        """Serialise for the diskcache `value` column."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "EntryMeta":
        """Inverse of `to_json`."""
        return cls(**json.loads(text))


@dataclass
class CachedEntry:
    """A hit: an open file (the entry stays readable even if it is evicted meanwhile) and its metadata.

    The caller owns `file` and must close it.
    """

    meta: EntryMeta
    file: BinaryIO
    path: str
    stale: bool = False  # idle past the tier's idle period, kept only for stale-if-error

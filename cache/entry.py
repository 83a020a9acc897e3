"""What a tier stores beside each entry's bytes, and what a lookup hands back."""

import json
from dataclasses import asdict, dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class ObjectInfo:
    """One description of an object, whoever tells it: a provider's HEAD or GET, or a tier's entry.

    Size, ETag (quoted), modification time (epoch seconds) and media type: what responses, conditional
    requests and ranges need. It lives here, in cache/, so that providers (proxy/storage/) and tiers share it.
    """

    size: int
    etag: str
    last_modified: float
    content_type: str


@dataclass(frozen=True)
class EntryMeta:
    """The headers a cached body is served with: the body's `info` (its ETag is the origin's when it
    has one), and what only a conversion carries beside it."""

    info: ObjectInfo
    # What a converted entry was made from (X-Converted-From); empty for originals and previews.
    # Rows written before this field existed read back with the default.
    origin_format: str = ""

    def to_json(self) -> str:
        """Serialise for the diskcache `value` column: one flat object, as rows have always been written."""
        return json.dumps({**asdict(self.info), "origin_format": self.origin_format}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "EntryMeta":
        """Inverse of `to_json`."""
        fields = json.loads(text)
        origin_format = fields.pop("origin_format", "")
        return cls(ObjectInfo(**fields), origin_format)


@dataclass
class CachedEntry:
    """A hit: an open file (the entry stays readable even if it is evicted meanwhile) and its metadata.

    The caller owns `file` and must close it.
    """

    meta: EntryMeta
    file: BinaryIO
    path: str
    stale: bool = False  # idle past the tier's idle period, kept only for stale-if-error
    # When the entry was written (its file's mtime, epoch seconds): what an answer's Age counts from.
    stored_at: float = 0.0

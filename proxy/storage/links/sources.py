"""Link sources (`s3://bucket/key`, `azure://container/blob`, `fs://<storage id>/<path>`, ...) and the
table that says which entry of the links file opens which bucket.

Only buckets the file lists are reachable; any other link is "not found", so the proxy never
relays to a bucket an operator did not name.
"""

from dataclasses import dataclass, field

from proxy.http.object_path import parse_source_ref
from proxy.storage.errors import ObjectNotFound
from proxy.storage.links.config import LinksConfig
from proxy.storage.links.entry import LinkEntry
from proxy.storage.provider import ObjectRef

# Link scheme -> the links file's provider that serves it (DESIGN.md, "Links"). `abs` is imgproxy's
# name for Azure Blob Storage.
SCHEMES = {"s3": "minio", "minio": "minio", "azure": "azure", "abs": "azure", "google": "google", "gs": "google",
           "gcs": "google", "fs": "fs"}


@dataclass(frozen=True)
class LinkRef:
    """A checked link: its scheme and the bucket and key it names."""

    scheme: str
    ref: ObjectRef


def parse_link_source(source: str) -> LinkRef | None:
    """A preview source of the form `<scheme>://<bucket>/<key>`, checked; None if it has no `://`.

    An unknown scheme (`http://`, say) is "not found": the proxy fetches from nowhere but the file.
    """
    scheme, separator, rest = source.partition("://")
    if not separator:
        return None
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ObjectNotFound(f"unknown link scheme {scheme[:20]!r} (expected one of {', '.join(SCHEMES)})")
    return LinkRef(scheme, parse_source_ref(rest))


@dataclass(frozen=True)
class LinkTable:
    """(provider, bucket) -> the entry that lists it, for one version of the links file."""

    config: LinksConfig
    _by_bucket: dict[tuple[str, str], LinkEntry] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for entry in self.config.entries:
            for bucket in entry.buckets:
                self._by_bucket[(entry.provider, bucket)] = entry

    def find(self, scheme: str, bucket: str) -> LinkEntry:
        """The entry that lists `bucket` for `scheme`'s provider, or ObjectNotFound (404)."""
        provider = SCHEMES.get(scheme)
        entry = self._by_bucket.get((provider, bucket)) if provider else None
        if entry is None:
            raise ObjectNotFound("no such link: the bucket is not in the links file")
        return entry

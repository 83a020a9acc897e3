"""IIIF_BUCKETS: the buckets the IIIF Image API routes may serve (names or globs; none by default).

The IIIF routes take no signature (viewers build their URLs from info.json), so which buckets they open
is said here, once: unset, every IIIF request is refused. A name matches a bucket of the main storage or
a link's bucket (`s3://photos/...` is bucket `photos`), case-insensitively, as PRIVATE_BUCKETS does; a
private bucket is never served over IIIF, listed or not.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from proxy.settings.errors import ConfigError

# Bucket names hold letters, digits, '.', '_' and '-' (proxy.http.object_path); a glob adds * ? [ ] !.
_PATTERN = re.compile(r"[A-Za-z0-9._\-*?\[\]!]{1,255}")


@dataclass(frozen=True)
class IiifConfig:
    """The bucket patterns IIIF may serve; none (the default) turns the IIIF routes into refusals."""

    buckets: tuple[str, ...] = ()

    def serves(self, bucket: str) -> bool:
        """Whether IIIF may serve `bucket` (a main-storage bucket or a link's, as the identifier names it)."""
        name = bucket.lower()
        return any(fnmatchcase(name, pattern) for pattern in self.buckets)

    def describe(self) -> dict[str, str]:
        """For `preview-proxy config`."""
        return {"IIIF_BUCKETS": ", ".join(self.buckets) or "(none: IIIF refused)"}


def read_iiif_config(env: Mapping[str, str]) -> IiifConfig:
    """Read and check IIIF_BUCKETS; ConfigError names the variable and the bad pattern."""
    patterns = tuple(part.lower() for part in re.split(r"[,\s]+", env.get("IIIF_BUCKETS") or "") if part)
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern):
            raise ConfigError(f"IIIF_BUCKETS: {pattern[:40]!r} is not a bucket name or glob "
                              "(letters, digits, '.', '_', '-', and * ? [ ])")
    return IiifConfig(patterns)

"""Settings of the URL forms kept for imgproxy's clients: `local://` sources and a path prefix.

IMGPROXY_LOCAL_FILESYSTEM_ROOT is the folder `local:///<path>` sources are read from (unset: such
sources are refused). IMGPROXY_PATH_PREFIX puts every route but the operational ones (health,
readiness, metrics) under a prefix, `/img` making `/img/previews/...`, as imgproxy does.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from proxy.settings.errors import ConfigError

# One or more `/segment`s of unreserved characters: a prefix is compared with the raw request path,
# so it must read the same percent-encoded or not.
_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")


@dataclass(frozen=True)
class UrlFormsConfig:
    """Where `local://` sources live (None: refused) and the routes' path prefix ("" for none)."""

    local_root: Path | None = None
    path_prefix: str = ""

    def describe(self) -> dict[str, str]:
        """For `preview-proxy config`."""
        return {"IMGPROXY_LOCAL_FILESYSTEM_ROOT": str(self.local_root) if self.local_root else "(local:// refused)",
                "IMGPROXY_PATH_PREFIX": self.path_prefix or "(none)"}


def read_url_forms_config(env: Mapping[str, str]) -> UrlFormsConfig:
    """Read and check both settings; ConfigError names the variable."""
    root_text = (env.get("IMGPROXY_LOCAL_FILESYSTEM_ROOT") or "").strip()
    local_root = None
    if root_text:
        local_root = Path(root_text).absolute()
        if not local_root.is_dir():
            raise ConfigError(f"IMGPROXY_LOCAL_FILESYSTEM_ROOT={root_text!r}: not a folder")
    prefix = (env.get("IMGPROXY_PATH_PREFIX") or "").strip().rstrip("/")
    if prefix and not _PREFIX.fullmatch(prefix):
        raise ConfigError(f"IMGPROXY_PATH_PREFIX={prefix!r}: expected /segment[/segment...] of letters, digits"
                          " and . _ ~ -")
    return UrlFormsConfig(local_root, prefix)

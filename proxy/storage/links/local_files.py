"""imgproxy's `local:///<path>` sources: files under IMGPROXY_LOCAL_FILESYSTEM_ROOT.

The folder is served like an `fs` entry of the links file (storage/local.py's FolderProvider), so the
same checks hold: no `..` or empty segment in the path, and no symlink out of the folder.
"""

from proxy.http.object_path import parse_source_ref
from proxy.storage.provider import ObjectRef

LOCAL_SCHEME = "local://"
# The one bucket of the folder provider: the folder itself.
LOCAL_BUCKET = "local"


def is_local_source(source: str) -> bool:
    """Whether `source` is a `local://` source (the scheme in any case, as imgproxy reads it)."""
    return source[:len(LOCAL_SCHEME)].lower() == LOCAL_SCHEME


def parse_local_source(source: str) -> ObjectRef:
    """The object `local:///<path>` names in the folder (`local://<path>` reads the same), checked."""
    path = source[len(LOCAL_SCHEME):].lstrip("/")
    return parse_source_ref(f"{LOCAL_BUCKET}/{path}")

"""The cache keys of every tier family, each built here and nowhere else.

Keys are stored as they are (diskcache rows, key locks, the purge index), so a recipe that changes
orphans every entry on disk: the strings these functions produce must stay byte for byte the same
(tests/test_cache_keys.py holds them to the recipes they replaced).
"""

from pathlib import Path

from previews.conversions.request import SOURCE_PREFIX
from proxy.storage.config import StorageConfig
from proxy.storage.links.entry import LinkEntry
from proxy.storage.provider import ObjectRef

# The storage tier: (provider namespace, bucket, key).


def main_storage_namespace(storage: StorageConfig) -> str:
    """The storage-tier key prefix of the main storage: its provider kind and endpoint."""
    return f"{storage.provider}:{storage.endpoint or ''}"


def link_namespace(entry: LinkEntry) -> str:
    """The storage-tier key prefix of a links entry: its name, provider kind and endpoint (or folder)."""
    where = str(entry.storage.root) if entry.provider == "fs" else entry.storage.endpoint or ""
    return f"link:{entry.name}:{entry.provider}:{where}"


def local_files_namespace(root: Path) -> str:
    """The storage-tier key prefix of IMGPROXY_LOCAL_FILESYSTEM_ROOT's folder (`local://` sources)."""
    return f"local-files:{root}"


def original_key(namespace: str, ref: ObjectRef) -> str:
    """An original's storage-tier key; also its identity as a source of previews and conversions."""
    return f"{namespace}\n{ref.bucket}\n{ref.key}"


# The converter tier: (operation, source, output choice, source version).


def conversion_identity(operation_key: str, source_key: str, allow_webp: bool) -> str:
    """Everything but the source's version that names a conversion."""
    return "\n".join((operation_key, source_key, f"webp={allow_webp}"))


def conversion_key(identity: str, source_etag: str) -> str:
    """A conversion's converter-tier key (its ETag is a digest of it)."""
    return f"{identity}\n{source_etag}"


# The previews tier: (canonical options, source, source version, output format).


def converted_source_key(identity: str) -> str:
    """A conversion's identity as the source of a preview (`plain/image-converter/...`)."""
    return f"{SOURCE_PREFIX}\n{identity}"


def preview_source_id(source_key: str, query: str) -> str:
    """A preview's source in its key: the source's identity and the query that belongs to it."""
    return source_key + (f"?{query}" if query else "")


def preview_key(canonical_options: str, source_id: str, source_etag: str, format_key: str) -> str:
    """A preview's previews-tier key (its ETag is a digest of it)."""
    return "\n".join((canonical_options, source_id, source_etag, format_key))


def preview_key_prefix(canonical_options: str, source_id: str) -> str:
    """What the keys of every version and format of one preview start with (a purge of its URL)."""
    return "\n".join((canonical_options, source_id, ""))


def source_header_key(source_key: str, etag: str) -> str:
    """The in-memory key of a source's header facts (`/info`): the source and its version."""
    return f"header\n{source_key}\n{etag}"

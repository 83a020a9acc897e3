"""The cache keys stay byte for byte what the recipes they replaced produced, so entries on disk stay valid.

Each expected value is computed here from the old recipe's own text (the f-strings and joins that were
spread through proxy/), not written down as an opaque string.
"""

import hashlib
from pathlib import Path

from previews.conversions.request import SOURCE_PREFIX, Conversion
from previews.grammar.options import ProcessingOptions
from previews.video.position import parse_frame_position
from proxy.storage.config import StorageConfig
from proxy.storage.links.entry import parse_entry
from proxy.storage.provider import ObjectRef
from proxy.tiers import keys
from proxy.tiers.conversions import conversion_etag

BASE = StorageConfig(provider="http", root=Path("/srv/data/storage"), connect_timeout=2.0, read_timeout=7.0,
                     retries=1, metadata_endpoint="http://127.0.0.1:1")
MINIO = StorageConfig(provider="minio", root=Path("/srv/data/storage"), endpoint="http://minio:9000")
REF = ObjectRef("photos", "2024/cars/a b+c.tiff")
ETAG = '"9b2cf535f27731c974343645a3985328"'


def test_main_storage_namespace() -> None:
    for storage in (BASE, MINIO):
        assert keys.main_storage_namespace(storage) == f"{storage.provider}:{storage.endpoint or ''}"


def test_link_namespaces(tmp_path: Path) -> None:
    folder = parse_entry("local-datasets", {"provider": "fs", "path": str(tmp_path)}, BASE)
    bucket = parse_entry("my-cars", {"provider": "minio", "endpoint": "http://minio:9000", "access_key": "a",
                                     "secret_key": "s", "buckets": ["cars"]}, BASE)
    for entry in (folder, bucket):
        where = str(entry.storage.root) if entry.provider == "fs" else entry.storage.endpoint or ""
        assert keys.link_namespace(entry) == f"link:{entry.name}:{entry.provider}:{where}"
    assert keys.link_namespace(folder) == f"link:local-datasets:fs:{tmp_path}"


def test_original_key() -> None:
    namespace = keys.main_storage_namespace(MINIO)
    assert keys.original_key(namespace, REF) == f"{namespace}\n{REF.bucket}\n{REF.key}"


def test_conversion_keys_and_etag() -> None:
    source_key = keys.original_key("minio:http://minio:9000", REF)
    for conversion in (Conversion("convert", 2), Conversion("videoframe", 1, parse_frame_position("33p"))):
        for allow_webp in (False, True):
            identity = keys.conversion_identity(conversion.key(), source_key, allow_webp)
            assert identity == "\n".join((conversion.key(), source_key, f"webp={allow_webp}"))
            key = keys.conversion_key(identity, ETAG)
            assert key == f"{identity}\n{ETAG}"
            old_etag = '"' + hashlib.sha256(f"{identity}\n{ETAG}".encode()).hexdigest()[:32] + '"'
            assert conversion_etag(identity, ETAG) == old_etag


def test_preview_keys() -> None:
    source_key = keys.original_key("http:", REF)
    identity = keys.conversion_identity(Conversion("convert").key(), source_key, False)
    assert keys.converted_source_key(identity) == f"{SOURCE_PREFIX}\n{identity}"
    options = ProcessingOptions().canonical()
    for query in ("", "videoStreamIndex=0"):
        source_id = keys.preview_source_id(source_key, query)
        assert source_id == source_key + (f"?{query}" if query else "")
        for format_key in ("auto", "webp"):
            assert (keys.preview_key(options, source_id, ETAG, format_key)
                    == "\n".join((options, source_id, ETAG, format_key)))

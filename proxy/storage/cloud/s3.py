"""S3 and S3-compatible stores (MinIO) through obstore's S3Store: static keys or an IAM role."""

from __future__ import annotations

from typing import TYPE_CHECKING

from obstore.store import S3Store

from proxy.storage.cloud.obstore_provider import ObstoreProvider, client_options, retry_config
from proxy.storage.config import StorageConfig

if TYPE_CHECKING:  # obstore's option types exist only in its stubs, not at run time
    from obstore.store import S3Config


class S3Provider(ObstoreProvider):
    """One S3Store per bucket, path-style, as MinIO needs."""

    provider_id = "s3"

    def new_store(self, bucket: str) -> S3Store:
        """The S3Store for `bucket`; building one does no I/O."""
        return S3Store(bucket, config=s3_settings(self.config), client_options=client_options(self.config),
                       retry_config=retry_config(self.config))


def s3_settings(config: StorageConfig) -> S3Config:
    """S3Config for obstore: region, endpoint with path-style addressing, and keys or IAM role."""
    settings: S3Config = {"region": config.region, "virtual_hosted_style_request": False}
    if config.endpoint:
        settings["endpoint"] = config.endpoint
    if config.access_key and config.secret_key:
        settings["access_key_id"] = config.access_key
        settings["secret_access_key"] = config.secret_key
    if config.metadata_endpoint:
        settings["metadata_endpoint"] = config.metadata_endpoint
    return settings

"""Google Cloud Storage through obstore's GCSStore, signed with a service-account key file.

STORAGE_CREDENTIALS_PATH is read once at start-up (StorageConfig); the store gets the text, not
the path, so what was checked is what is used. STORAGE_ENDPOINT overrides the base URL, which
otherwise comes from the file (`gcs_base_url`) or is https://storage.googleapis.com.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from obstore.store import GCSStore

from proxy.storage.cloud.obstore_provider import ObstoreProvider, client_options, retry_config
from proxy.storage.config import StorageConfig
from proxy.storage.errors import ObjectNotFound

if TYPE_CHECKING:  # obstore's option types exist only in its stubs, not at run time
    from obstore.store import GCSConfig

# https://cloud.google.com/storage/docs/buckets#naming (dotted names may be up to 222 characters)
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


class GCSProvider(ObstoreProvider):
    """One GCSStore per bucket."""

    provider_id = "gcs"

    def new_store(self, bucket: str) -> GCSStore:
        """The GCSStore for `bucket`; building one does no I/O."""
        if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
            raise ObjectNotFound("no such bucket")
        return GCSStore(bucket, config=gcs_settings(self.config), client_options=client_options(self.config),
                        retry_config=retry_config(self.config))


def gcs_settings(config: StorageConfig) -> GCSConfig:
    """GCSConfig for obstore: the service-account key and the base URL when one is set."""
    settings: GCSConfig = {}
    if config.credentials:
        settings["service_account_key"] = config.credentials
    if config.endpoint:
        settings["base_url"] = config.endpoint
    return settings

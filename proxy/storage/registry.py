"""Providers by STORAGE_PROVIDER name: the one table the composition root builds from."""

from collections.abc import Callable

from proxy.storage.cloud.azure import AzureProvider
from proxy.storage.cloud.gcs import GCSProvider
from proxy.storage.cloud.s3 import S3Provider
from proxy.storage.config import LOCAL_DISK, StorageConfig
from proxy.storage.local import LocalProvider
from proxy.storage.provider import StorageProvider

PROVIDER_FACTORIES: dict[str, Callable[[StorageConfig], StorageProvider]] = {
    LOCAL_DISK: lambda config: LocalProvider(config.root),
    "minio": S3Provider,
    "azure": AzureProvider,
    "google": GCSProvider,
}


def build_provider(config: StorageConfig) -> StorageProvider:
    """The provider STORAGE_PROVIDER names (already validated by StorageConfig)."""
    return PROVIDER_FACTORIES[config.provider](config)

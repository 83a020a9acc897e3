"""Azure Blob Storage through obstore's AzureStore: an account key or a SAS token, one store per container.

STORAGE_ACCESS_KEY is the account name and STORAGE_SECRET_KEY its key or a SAS token. Without
STORAGE_ENDPOINT, obstore uses `https://<account>.blob.core.windows.net`; Azurite's endpoint is
`http://127.0.0.1:<port>/<account>` (the account is the first path segment there).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from obstore.store import AzureStore

from proxy.storage.cloud.credentials import sas_token
from proxy.storage.cloud.obstore_provider import ObstoreProvider, client_options, retry_config
from proxy.storage.config import StorageConfig
from proxy.storage.errors import ObjectNotFound, ProviderAccessDenied
from proxy.storage.provider import ByteSpan, NotModified, ObjectRef, ObjectStream, absolute_span

if TYPE_CHECKING:  # obstore's option types exist only in its stubs, not at run time
    from obstore.store import AzureConfig

# https://learn.microsoft.com/en-us/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata
CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


class AzureProvider(ObstoreProvider):
    """Buckets are containers of one storage account."""

    provider_id = "azure"

    def new_store(self, bucket: str) -> AzureStore:
        """The AzureStore for container `bucket`; building one does no I/O."""
        if not CONTAINER_NAME.fullmatch(bucket):
            # No container can have this name, so nothing is asked of Azure (which would answer 400).
            raise ObjectNotFound("no such container")
        return AzureStore(bucket, config=azure_settings(self.config), client_options=client_options(self.config),
                          retry_config=retry_config(self.config))

    async def get(
        self, ref: ObjectRef, span: ByteSpan | None = None, if_none_match: str | None = None
    ) -> ObjectStream | NotModified:
        """As the base, but a suffix range becomes an absolute one: Azure's Get Blob has no `bytes=-n`."""
        if span is None or span.suffix is None:
            return await super().get(ref, span, if_none_match)
        info = await self.head(ref)
        if if_none_match is not None and if_none_match == info.etag:
            return NotModified(info.etag)
        start, end = absolute_span(span, info.size)
        if start == end:  # an empty object or a zero suffix: obstore refuses an empty range
            return ObjectStream(info, start, end, _no_chunks())
        # If-Match pins the version whose size we used; a blob replaced in between fails (502), never
        # mixes the end of one version with the size of another.
        return await self.get_with(ref, {"range": (start, end), "if_match": info.etag})

    async def check(self) -> None:
        """As the base; but with a SAS token and no container answered yet, a refusal only shows that Azure
        answered. A token is often scoped to one container, and the probe can't know which (a token
        doesn't name it), so a bad token shows up as 502s on requests until a container has answered.
        """
        try:
            await super().check()
        except ProviderAccessDenied:
            if sas_token(self.config.secret_key) is None or self.answered_bucket is not None:
                raise


def azure_settings(config: StorageConfig) -> AzureConfig:
    """AzureConfig for obstore: the account, its key or SAS token, and the endpoint if not Azure's own."""
    settings: AzureConfig = {"account_name": config.access_key or ""}
    token = sas_token(config.secret_key)
    if token is not None:
        settings["sas_key"] = token
    elif config.secret_key:
        settings["account_key"] = config.secret_key.strip()
    if config.endpoint:
        settings["endpoint"] = config.endpoint
    return settings


async def _no_chunks() -> AsyncIterator[bytes]:
    empty: tuple[bytes, ...] = ()
    for chunk in empty:
        yield chunk

"""Azure's suffix ranges, which Azure can't serve itself: HEAD for the size, then an absolute range pinned
by If-Match. Against Azurite; the only stand-in is a stale HEAD, to play a blob replaced in between.
"""

import asyncio
import os
from pathlib import Path

import pytest

from proxy.storage.azure import AzureProvider
from proxy.storage.errors import ProviderFailure
from proxy.storage.provider import ByteSpan, ObjectInfo, ObjectRef, ObjectStream
from tests.support.backends import Backend, make_backend


@pytest.fixture
def azure(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh container on Azurite, reached with the account key."""
    return make_backend("azure-key", request, tmp_path)


def test_suffix_of_an_empty_blob_is_an_empty_stream(azure: Backend) -> None:
    azure.seed("empty.bin", b"", "application/octet-stream")

    async def scenario() -> None:
        stream = await azure.provider().get(ObjectRef(azure.bucket, "empty.bin"), ByteSpan(suffix=10))
        assert isinstance(stream, ObjectStream)
        assert (stream.start, stream.end, stream.info.size) == (0, 0, 0)
        assert [chunk async for chunk in stream.chunks] == []

    asyncio.run(scenario())


def test_blob_replaced_between_head_and_get_fails_rather_than_mixing_versions(azure: Backend) -> None:
    ref = ObjectRef(azure.bucket, "replaced.bin")
    azure.seed(ref.key, os.urandom(1000), "application/octet-stream")
    provider = azure.provider()
    assert isinstance(provider, AzureProvider)

    async def scenario() -> None:
        stale = await provider.head(ref)
        azure.seed(ref.key, os.urandom(5000), "application/octet-stream")

        async def stale_head(_: ObjectRef) -> ObjectInfo:
            return stale

        provider.head = stale_head  # type: ignore[method-assign]
        with pytest.raises(ProviderFailure):
            await provider.get(ref, ByteSpan(suffix=100))

    asyncio.run(scenario())

"""What only the Azure provider does, against Azurite: suffix ranges, which Azure can't serve itself (HEAD
for the size, then an absolute range pinned by If-Match), and readiness with a container SAS.
The only stand-in is a stale HEAD, to play a blob replaced in between.
"""

import asyncio
import os
from pathlib import Path

import pytest

from proxy.storage.cloud.azure import AzureProvider
from proxy.storage.errors import ObjectNotFound, ProviderAccessDenied, ProviderFailure
from proxy.storage.provider import ByteSpan, ObjectInfo, ObjectRef, ObjectStream
from tests.support.azurite import ACCOUNT
from tests.support.backends import Backend, make_backend
from tests.support.tcp_proxy import TcpProxy


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


def test_container_sas_is_ready_before_any_container_answered(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    backend = make_backend("azure-sas", request, tmp_path)
    # The probe's own container is outside the token's scope: Azure refuses it, which still shows it answered.
    asyncio.run(backend.provider().check())


def test_wrong_account_key_is_not_ready(azure: Backend) -> None:
    provider = azure.provider(secret_key="d3JvbmcgYnV0IHdlbGwtZm9ybWVkIGFjY291bnQga2V5IGZvciBhenVyaXRl")
    with pytest.raises(ProviderAccessDenied):
        asyncio.run(provider.check())


def test_readiness_probes_the_container_that_last_answered(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    backend = make_backend("azure-sas", request, tmp_path)
    with TcpProxy(backend.upstream) as proxy:
        provider = backend.provider(endpoint=backend.endpoint_via(proxy.endpoint))

        async def scenario() -> None:
            with pytest.raises(ProviderAccessDenied):  # outside the token's scope: answers nothing
                await provider.head(ObjectRef("pp-someone-elses", "x.jpg"))
            with pytest.raises(ObjectNotFound):  # in scope: Azure answered for this container
                await provider.head(ObjectRef(backend.bucket, "missing.jpg"))
            await provider.check()

        asyncio.run(scenario())
        probe = proxy.requests[-1]
    assert (probe.method, probe.target.split("?")[0]) == (
        "HEAD", f"/{ACCOUNT}/{backend.bucket}/.preview-proxy-readiness")

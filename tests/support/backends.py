"""Each provider against its real server, in one shape, for the shared contract suite.

A Backend is a fresh bucket on a running server, the STORAGE_* environment that reaches it (so a
child process can build the same provider), and a way to seed objects through the server's own
API, independent of the provider under test.
"""

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from proxy.storage.config import StorageConfig
from proxy.storage.provider import StorageProvider
from proxy.storage.registry import build_provider
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY, Azurite, container_sas
from tests.support.fake_gcs import FakeGCS, write_service_account
from tests.support.s3 import MotoS3, s3_env

BACKENDS = ("local", "s3", "azure-key", "azure-sas", "gcs")
Seed = Callable[[str, bytes | Path, str], None]


@dataclass
class Backend:
    """One provider's real server with an empty bucket."""

    name: str
    env: dict[str, str]
    bucket: str
    seed: Seed  # (key, bytes or a file to stream, content type), through the server's own API
    writes: bool = True  # False where the provider's own put can't run against this server

    @property
    def config(self) -> StorageConfig:
        """The configuration `env` parses to, exactly as the server would read it."""
        return StorageConfig.from_env(self.env, Path(self.env["DATA_PATH"]))

    def provider(self, **changes: Any) -> StorageProvider:
        """A provider for this backend, with config fields changed (an endpoint through a proxy, say)."""
        return build_provider(replace(self.config, **changes))

    def endpoint_via(self, proxy_endpoint: str) -> str:
        """This backend's endpoint with host and port swapped for a proxy's, path kept."""
        return proxy_endpoint + urlsplit(self.env["STORAGE_ENDPOINT"]).path

    @property
    def upstream(self) -> tuple[str, int]:
        """Host and port of the server, for a TCP proxy to forward to."""
        parts = urlsplit(self.env["STORAGE_ENDPOINT"])
        return parts.hostname or "127.0.0.1", parts.port or 80


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The backend `name` (one of BACKENDS), starting its session server on first use."""
    data_path = tmp_path / "data"
    (data_path / "storage").mkdir(parents=True, exist_ok=True)
    bucket = f"pp-contract-{uuid.uuid4().hex[:10]}"
    if name == "local":
        return Backend(name, {"DATA_PATH": str(data_path)}, bucket, _local_seed(data_path / "storage" / bucket))
    if name == "s3":
        moto: MotoS3 = request.getfixturevalue("moto")
        moto.create_bucket(bucket)
        return Backend(name, {"DATA_PATH": str(data_path), **s3_env(moto.endpoint)}, bucket,
                       lambda key, body, content_type: _moto_seed(moto, bucket, key, body, content_type))
    if name in ("azure-key", "azure-sas"):
        azurite: Azurite = request.getfixturevalue("azurite")
        azurite.create_container(bucket)
        # The SAS form is given with its leading `?`, as the portal copies it.
        secret = f"?{container_sas(bucket)}" if name == "azure-sas" else ACCOUNT_KEY
        env = {"DATA_PATH": str(data_path), "STORAGE_PROVIDER": "azure", "STORAGE_ENDPOINT": azurite.endpoint,
               "STORAGE_ACCESS_KEY": ACCOUNT, "STORAGE_SECRET_KEY": secret}
        return Backend(name, env, bucket, lambda key, body, content_type: azurite.put(bucket, key, body, content_type))
    if name == "gcs":
        fake_gcs: FakeGCS = request.getfixturevalue("fake_gcs")
        fake_gcs.create_bucket(bucket)
        credentials = tmp_path / "service-account.json"
        write_service_account(credentials)
        env = {"DATA_PATH": str(data_path), "STORAGE_PROVIDER": "google", "STORAGE_ENDPOINT": fake_gcs.endpoint,
               "STORAGE_CREDENTIALS_PATH": str(credentials)}
        # obstore writes through GCS's XML API (PUT /bucket/key, POST ?uploads), which fake-gcs-server
        # does not serve: it answers 400 "invalid uploadType". Reads are the XML API too, and work.
        return Backend(name, env, bucket, lambda key, body, content_type: fake_gcs.put(bucket, key, body, content_type),
                       writes=False)
    raise ValueError(f"unknown backend {name!r}")


def _local_seed(bucket_dir: Path) -> Seed:
    bucket_dir.mkdir()

    def seed(key: str, body: bytes | Path, content_type: str) -> None:
        target = bucket_dir / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, Path):
            shutil.copyfile(body, target)
        else:
            target.write_bytes(body)

    return seed


def _moto_seed(moto: MotoS3, bucket: str, key: str, body: bytes | Path, content_type: str) -> None:
    if isinstance(body, Path):
        moto.put_file(bucket, key, str(body))
    else:
        moto.put(bucket, key, body, content_type)

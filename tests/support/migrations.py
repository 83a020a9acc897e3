"""`preview-proxy migrate` as its tests drive it: local storage's bucket `photos` migrated into a fresh bucket on
moto or Azurite, reached through a counting TCP proxy, with what the journal and the destination hold read
straight from them."""

import asyncio
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import obstore
import pytest

from proxy.storage.cloud.obstore_provider import ObstoreProvider
from proxy.storage.provider import ObjectRef, ObjectStream
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY
from tests.support.backends import Backend, make_backend
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY
from tests.support.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parent.parent.parent
# The smallest threshold and part S3 allows: files of a few MiB already go up in parts.
SETTINGS = {"STORAGE_MULTIPART_THRESHOLD": "5m", "STORAGE_PART_SIZE": "5m"}
SUMMARY = re.compile(r"migrate(?: --\S+)?: (\d+) object\(s\) in [\d.]+ s: (.*?)(?:;|$)", re.M)
ENTRY = "target"


@dataclass
class Migration:
    """A source tree in DATA_PATH/storage/photos, a destination bucket on a real server reached through a
    counting proxy, and the links file that names it."""

    backend: Backend
    proxy: TcpProxy
    data_path: Path
    files: dict[str, bytes]

    @property
    def journal(self) -> Path:
        return self.data_path / "migrate" / f"{ENTRY}.db"

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """`preview-proxy migrate --to target --bucket photos=<bucket> <args>`, output piped, bounded in time."""
        return subprocess.run(self.command(*args), cwd=REPO, env=self.env(**env), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def run_together(self, *commands: list[str], timeout: float = 60) -> list[subprocess.CompletedProcess[str]]:
        """Several runs at once (read-only ones), each like `run`."""
        processes = [subprocess.Popen(self.command(*args), cwd=REPO, env=self.env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for args in commands]
        done = []
        try:
            for args, process in zip(commands, processes, strict=True):
                stdout, stderr = process.communicate(timeout=timeout)
                done.append(subprocess.CompletedProcess(self.command(*args), process.returncode, stdout, stderr))
        finally:
            for process in processes:
                process.kill()
        return done

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "proxy.runtime.cli", "migrate", "--to", ENTRY, "--bucket",
                f"photos={self.backend.bucket}", *args]

    def env(self, **extra: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "AWS_"))}
        return {**clean, "DATA_PATH": str(self.data_path), **SETTINGS, **extra}

    def target(self, key: str) -> str:
        """The request target of `key` at the destination, as the proxy sees it (Azurite's path names the account)."""
        return ("/" + ACCOUNT if self.backend.name.startswith("azure") else "") + f"/{self.backend.bucket}/{key}"

    def written_keys(self, since: int = 0) -> list[str]:
        """Keys the proxy saw written (PUT or POST: single puts, parts, blocks, completions) since request #`since`."""
        prefix = self.target("")
        return [seen.target.split("?")[0].removeprefix(prefix) for seen in self.proxy.requests[since:]
                if seen.method in ("PUT", "POST") and seen.target.startswith(prefix)]

    def journaled(self) -> set[str]:
        """Keys with a row in the journal (read while a run may be writing it: WAL allows that)."""
        if not self.journal.exists():
            return set()
        try:
            with sqlite3.connect(f"{self.journal.as_uri()}?mode=ro", uri=True, timeout=5) as connection:
                return {key for (key,) in connection.execute("SELECT key FROM objects")}
        except sqlite3.OperationalError:  # made, but its table not yet
            return set()

    def etags(self) -> dict[str, str]:
        """Every object at the destination and its ETag, listed straight from the server."""
        provider = cast(ObstoreProvider, self.backend.provider())

        async def listed() -> dict[str, str]:
            pages = obstore.list(provider.store(self.backend.bucket), chunk_size=1000)
            return {meta["path"]: str(meta["e_tag"]) async for page in pages for meta in page}

        return asyncio.run(listed())

    def hashes(self, keys: list[str] | None = None) -> dict[str, str]:
        """The sha256 of every object at the destination (or of `keys`), read straight from the server."""
        provider = self.backend.provider()

        async def read(key: str, slots: asyncio.Semaphore) -> str:
            async with slots:
                stream = await provider.get(ObjectRef(self.backend.bucket, key))
                assert isinstance(stream, ObjectStream)
                digest = hashlib.sha256()
                async for chunk in stream.chunks:
                    digest.update(chunk)
                return digest.hexdigest()

        async def read_all(keys: list[str]) -> dict[str, str]:
            slots = asyncio.Semaphore(8)
            found = await asyncio.gather(*(read(key, slots) for key in keys))
            return dict(zip(keys, found, strict=True))

        return asyncio.run(read_all(keys if keys is not None else sorted(self.etags())))

    def sources(self) -> dict[str, str]:
        return {key: hashlib.sha256(body).hexdigest() for key, body in self.files.items()}


def counts(output: str) -> dict[str, int]:
    """The summary's counts by name: {'copied': 3, 'skipped': 299, 'failed': 0}, and 'objects'."""
    found = SUMMARY.search(output)
    assert found, output
    parsed = {name: int(number) for number, name in re.findall(r"(\d+) ([a-z ]+?)(?:,|$)", found[2])}
    return {"objects": int(found[1]), **parsed}


def links_entry(backend: Backend, endpoint: str) -> str:
    if backend.name == "s3":
        return (f'{ENTRY}: {{provider: minio, endpoint: "{endpoint}", access_key: {ACCESS_KEY}, '
                f'secret_key: {SECRET_KEY}, region: {REGION}, buckets: [{backend.bucket}]}}\n')
    return (f'{ENTRY}: {{provider: azure, endpoint: "{endpoint}/{ACCOUNT}", access_key: {ACCOUNT}, '
            f'secret_key: "{ACCOUNT_KEY}", buckets: [{backend.bucket}]}}\n')


def make_migration(name: str, request: pytest.FixtureRequest, tmp_path: Path, files: dict[str, bytes]) -> Migration:
    """`files` in local storage's bucket `photos`, and a links entry for a fresh bucket on backend `name`."""
    backend = make_backend(name, request, tmp_path)
    proxy = TcpProxy(backend.upstream)
    request.addfinalizer(proxy.close)
    data_path = Path(backend.env["DATA_PATH"])
    for key, body in files.items():
        path = data_path / "storage" / "photos" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    (data_path / "remote_links.yml").write_text(links_entry(backend, proxy.endpoint))
    return Migration(backend, proxy, data_path, files)


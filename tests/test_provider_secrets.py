"""Azure account keys, SAS tokens and Google credential files never leave the process.

A real server runs against Azurite or fake-gcs-server, once with good credentials (hits, misses,
ranges, not-found, readiness) and once with credentials the server refuses or can't use (so obstore's
error text reaches the log). Every secret piece is then looked for in the server's whole log, every
response body, /metrics, and `preview-proxy config`. The pieces are listed here from the secrets
themselves, not from StorageConfig.secrets(), so a piece that code forgot is still looked for.

Then an upstream of the test's own that echoes the signed request and quotes the secret in every
wire form (percent-encoded in either case, `+` for a space, base64 in either alphabet, with or
without padding): the log filter must mask all of them, in one worker or two, and for a links file
reloaded on SIGHUP. The forms are made here, independently of proxy.secrets.forms.
"""

import base64
import io
import json
import logging
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

import pytest

from proxy.config import Config
from proxy.http.middleware import error_response
from proxy.runtime.log_redaction import RedactingFilter, register_config_secrets
from proxy.secrets.registry import MASK, SECRETS, SecretRegistry
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


# An upstream that quotes the request it got (Azure and S3 error bodies do, and so do proxies in
# front of them): whatever the provider signed its request with comes back inside obstore's error
# text. The test's own upstream also quotes the secret in every form it could take on the wire, as a
# careless gateway might, so each form has its chance to reach the log.
SAS_SIGNATURE = "pLus+Slash/" + base64.b64encode(os.urandom(31)).decode()  # with +, / and a trailing =
END_OF_BODY = f"end-of-upstream-body-{uuid.uuid4().hex}"


def wire_forms(secret: str) -> list[str]:
    """The forms a secret can take in text, made here independently of the product's code."""
    encoded = quote(secret, safe="")
    forms = [secret, encoded, lower_escapes(encoded),
             unquote(secret), unquote_plus(secret), quote_plus(secret), secret.replace("+", " ")]
    try:
        raw = base64.b64decode(secret, validate=True)
    except ValueError:
        raw = b""
    if len(raw) >= 16:  # a base64 key: its other alphabet and paddings, and the hex of its bytes
        for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
            forms += [text, text.rstrip("="), quote(text, safe=""), lower_escapes(quote(text, safe=""))]
        forms += [raw.hex(), raw.hex().upper()]
    return list(dict.fromkeys(forms))


def lower_escapes(text: str) -> str:
    """`%2F` as `%2f`: the hex digits of percent-escapes in lowercase, as some encoders write them."""
    return re.sub("%[0-9A-F]{2}", lambda escape: escape.group().lower(), text)


class EchoingUpstream:
    """A loopback HTTP server that refuses every request (403, or 500 for keys with `five`) with a
    body quoting the request line, then `quoted`, then END_OF_BODY; it counts the requests per path."""

    def __init__(self, quoted: list[str]) -> None:
        self.requests: dict[str, int] = {}
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(b"")

            def do_GET(self) -> None:
                body = "\n".join([f"<Error><Message>Request was: {self.requestline}</Message>",
                                  *quoted, END_OF_BODY, "</Error>"])
                self._answer(body.encode())

            def _answer(self, body: bytes) -> None:
                path = urlsplit(self.path).path
                upstream.requests[path] = upstream.requests.get(path, 0) + 1
                self.send_response(500 if "five" in path else 403)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def echoing() -> Iterator[Callable[[list[str]], EchoingUpstream]]:
    started: list[EchoingUpstream] = []

    def start(quoted: list[str]) -> EchoingUpstream:
        started.append(EchoingUpstream(quoted))
        return started[-1]

    yield start
    for upstream in started:
        upstream.close()


def sas_token(signature: str) -> str:
    return f"sp=r&sv=2022-11-02&se=2030-01-01T00%3A00%3A00Z&sr=c&sig={quote(signature, safe='')}"


def secret_env(name: str) -> tuple[dict[str, str], str]:
    """STORAGE_* for provider `name` (but its endpoint), and the secret in it that must not leak."""
    if name == "azure-sas":
        return {"STORAGE_PROVIDER": "azure", "STORAGE_ACCESS_KEY": "acct",
                "STORAGE_SECRET_KEY": "?" + sas_token(SAS_SIGNATURE)}, SAS_SIGNATURE
    if name == "azure-key":
        key = base64.b64encode(b"+/" + os.urandom(62)).decode()  # 64 bytes, as Azure's, with + and /
        return {"STORAGE_PROVIDER": "azure", "STORAGE_ACCESS_KEY": "acct", "STORAGE_SECRET_KEY": key}, key
    secret = "s3 secret+with/odd=chars~" + uuid.uuid4().hex
    return {"STORAGE_PROVIDER": "minio", "STORAGE_ACCESS_KEY": "AKIDEXAMPLE", "STORAGE_SECRET_KEY": secret}, secret


@pytest.mark.parametrize("name", ["azure-sas", "azure-key", "s3"])
def test_an_upstream_that_echoes_the_request_gets_no_secret_into_logs_bodies_or_metrics(
        name: str, start_server: StartServer, echoing: Callable[[list[str]], EchoingUpstream]) -> None:
    env, secret = secret_env(name)
    forms = wire_forms(secret)
    upstream = echoing(forms)
    prefix = "/acct" if name.startswith("azure") else ""  # Azurite-style endpoints name the account
    server = start_server(**env, STORAGE_ENDPOINT=upstream.endpoint + prefix, STORAGE_RETRIES="2",
                          STORAGE_BREAKER_FAILURES="0")

    bodies = []
    for key in ("denied.jpg", "five.jpg"):
        status, _, body = fetch(server, f"/cont/{key}")
        assert status in (403, 502), (key, status, body)
        bodies.append(body.decode("latin-1"))
    bodies.append(fetch(server, "/metrics")[2].decode())
    server.wait_for_log("five.jpg failed:")
    server.stop()
    log = server.log_text()

    # The failures reached the log with the upstream's whole body (no cut), once per request though
    # the 500 was tried three times, and with every secret masked.
    assert upstream.requests.get(f"{prefix}/cont/five.jpg") == 3, upstream.requests
    # The object requests' failures; the /metrics scrape runs the readiness check, whose own failed
    # call is a line of its own (checked for leaks with the whole log below).
    failures = [line for line in log.splitlines() if " failed: " in line and " of cont/" in line]
    assert len([line for line in failures if "five.jpg" in line]) == 1, failures
    assert failures
    assert all(END_OF_BODY in line and "Request was: GET /" in line and "********" in line for line in failures)
    leaks = [(where, form) for where, text in [("log", log), *(("body/metrics", b) for b in bodies)]
             for form in forms if form in text]
    assert leaks == [], f"{name}: secret forms leaked: {leaks}"
    # S3's whole objects come by a presigned GET (proxy.storage.cloud.spliced_get): the upstream echoes
    # its signed query, which must be masked wherever the answer is quoted.
    assert "X-Amz-Signature" not in log and "X-Amz-Credential" not in log


def test_secrets_of_a_links_file_reloaded_on_sighup_are_masked_in_every_worker(
        tmp_path: Path, start_server: StartServer, echoing: Callable[[list[str]], EchoingUpstream]) -> None:
    upstream = echoing(wire_forms(SAS_SIGNATURE))
    links = tmp_path / "remote_links.yml"
    (tmp_path / "datasets").mkdir()
    links.write_text(f"local: {{provider: fs, path: {tmp_path / 'datasets'}}}\n")
    server = start_server(workers=2, REMOTE_LINKS_PATH=str(links), STORAGE_RETRIES="0", STORAGE_BREAKER_FAILURES="0")

    links.write_text(links.read_text() + f"boats: {{provider: azure, endpoint: '{upstream.endpoint}/acct', "
                     f"access_key: acct, secret_key: '?{sas_token(SAS_SIGNATURE)}', buckets: [cont]}}\n")
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while sum("reloaded: 2 entries" in line for line in list(server.log_lines)) < 2:
        assert time.monotonic() < deadline, "both workers must reload the file"
        time.sleep(0.05)
    # The kernel spreads connections over the workers: ask until both have failed (bounded).
    bodies: list[str] = []
    while len(bodies) < 40 and len(failing_workers(server.log_lines)) < 2:
        bodies.append(fetch(server, f"/links/azure/cont/key{len(bodies)}.jpg")[2].decode("latin-1"))
        server.wait_for_log(f"key{len(bodies) - 1}.jpg failed:")
    server.stop()
    log = server.log_text()

    assert len(failing_workers(log.splitlines())) == 2, "both workers must have met the upstream"
    assert all("********" in line for line in log.splitlines() if " failed: " in line)
    leaks = [form for form in wire_forms(SAS_SIGNATURE) for text in (log, *bodies) if form in text]
    assert leaks == [], f"secret forms leaked: {leaks}"


def failing_workers(lines: list[str]) -> set[str]:
    """The pids (`[1234]` in a worker's lines) that logged a provider failure."""
    return {line.split("[", 1)[1].split("]", 1)[0] for line in list(lines) if " failed: " in line and "[" in line}


KINDS = {
    "sas signature": SAS_SIGNATURE,
    "azure account key": base64.b64encode(b"+/?" + os.urandom(61)).decode(),
    "s3 secret with a space": "s3 secret+with/odd=chars~" + uuid.uuid4().hex,
    "links secret": "links-secret-do-not-print-" + uuid.uuid4().hex[:8],
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_wire_form_of_a_secret_is_masked_and_the_text_around_it_kept(kind: str) -> None:
    secret = KINDS[kind]
    registry = SecretRegistry([secret])
    for form in wire_forms(secret):
        line = f"GET /acct/cont/x.jpg?sp=r&sig={form}&se=2030 HTTP/1.1"
        assert registry.redact(line) == f"GET /acct/cont/x.jpg?sp=r&sig={MASK}&se=2030 HTTP/1.1", form


def test_signature_keys_and_salts_are_masked_in_hex_of_either_case_and_base64() -> None:
    key, salt = os.urandom(32), os.urandom(16)
    config = Config.from_env({"DATA_PATH": "/srv/none", "IMGPROXY_KEY": key.hex().upper(), "IMGPROXY_SALT": salt.hex()})
    registry = SecretRegistry()
    register_config_secrets(config, registry)
    for raw in (key, salt):
        for form in (raw.hex(), raw.hex().upper(), base64.urlsafe_b64encode(raw).decode().rstrip("="),
                     quote(base64.b64encode(raw).decode(), safe="")):
            assert registry.redact(f"key={form};") == f"key={MASK};", form
    # The test vector's key is the bytes of `secret`: the word itself is not masked, only encodings.
    registry.add_keys(bytes.fromhex("736563726574"))
    assert registry.redact("the secret_key field, 736563726574") == f"the secret_key field, {MASK}"


def test_with_no_secret_nothing_is_scanned() -> None:
    registry = SecretRegistry()
    line = "GET /x?sig=anything HTTP/1.1"
    assert registry.empty and registry.redact(line) is line
    registry.add("ab")  # too short to look for: it would mask every "ab" in the log
    assert registry.empty


def test_the_log_filter_masks_messages_arguments_and_tracebacks() -> None:
    secret = KINDS["azure account key"]
    registry = SecretRegistry([secret])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(registry))
    logger = logging.getLogger(f"test.redaction.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(secret)).decode().rstrip("=")
    try:
        raise ValueError(f"upstream said: bad key {quote(secret, safe='')}")
    except ValueError:
        logger.exception("failed with %s and %r", secret, {"key": urlsafe})
    logger.warning("arguments that don't fit: %s %s", secret)  # logging would print them raw to stderr
    text = stream.getvalue()
    assert "Traceback" in text and "upstream said: bad key" in text and text.count(MASK) == 4, text
    assert "arguments that don't fit" in text
    assert not [form for form in wire_forms(secret) if form in text]


def test_error_bodies_are_masked() -> None:
    SECRETS.add(KINDS["links secret"])
    response = error_response(400, f"bad option {quote(KINDS['links secret'])}", {})
    assert response.text == f"bad option {MASK}\n"

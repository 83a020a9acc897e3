"""STORAGE_PROVIDER=azure and =google: their settings, checked at start-up, and the secrets they carry.

Unit level (no server): what the env parses to, the one-line errors, what obstore is given, and
which pieces of each secret are redacted. tests/test_providers.py runs the providers themselves.
"""

import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from proxy.config import Config
from proxy.secrets.registry import redact
from proxy.settings.errors import ConfigError
from proxy.storage.cloud.azure import azure_settings
from proxy.storage.cloud.gcs import gcs_settings
from proxy.storage.config import StorageConfig
from tests.support.azurite import ACCOUNT, ACCOUNT_KEY, container_sas
from tests.support.fake_gcs import write_service_account
from tests.test_cli import cli_env, run_cli

DATA = Path("/srv/data")


def storage(**env: str) -> StorageConfig:
    return StorageConfig.from_env(env, DATA)


def azure(secret: str, **env: str) -> StorageConfig:
    return storage(STORAGE_PROVIDER="azure", STORAGE_ACCESS_KEY=ACCOUNT, STORAGE_SECRET_KEY=secret, **env)


def assert_one_line_naming(excinfo: pytest.ExceptionInfo[ConfigError], variable: str, *hidden: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message and variable in message, message
    for secret in hidden:
        assert secret not in message, message


# --- azure -------------------------------------------------------------------------------------


def test_azure_account_key_goes_to_obstore_as_account_key() -> None:
    config = azure(ACCOUNT_KEY, STORAGE_ENDPOINT="http://127.0.0.1:10000/devstoreaccount1")
    assert config.endpoint == "http://127.0.0.1:10000/devstoreaccount1"  # the account path is kept
    assert azure_settings(config) == {"account_name": ACCOUNT, "account_key": ACCOUNT_KEY,
                                      "endpoint": "http://127.0.0.1:10000/devstoreaccount1"}


@pytest.mark.parametrize("form", ["question-mark", "portal-order", "sv-first"])
def test_azure_sas_token_in_any_form_goes_to_obstore_as_sas_key(form: str) -> None:
    token = container_sas("photos")  # sp=...&se=...&sv=...&sr=c&sig=..., the portal's order
    parts = token.split("&")
    secret = {"question-mark": f"?{token}", "portal-order": token,
              "sv-first": "&".join(sorted(parts, key=lambda part: not part.startswith("sv=")))}[form]
    settings = azure_settings(azure(secret))
    assert "account_key" not in settings and settings["account_name"] == ACCOUNT
    assert settings["sas_key"] == secret.removeprefix("?")
    assert "endpoint" not in settings  # obstore's https://<account>.blob.core.windows.net


@pytest.mark.parametrize(("env", "variable"), [
    ({"STORAGE_SECRET_KEY": ACCOUNT_KEY}, "STORAGE_ACCESS_KEY"),
    ({"STORAGE_ACCESS_KEY": "Not-An-Account", "STORAGE_SECRET_KEY": ACCOUNT_KEY}, "STORAGE_ACCESS_KEY"),
    ({"STORAGE_ACCESS_KEY": ACCOUNT}, "STORAGE_SECRET_KEY"),
    ({"STORAGE_ACCESS_KEY": ACCOUNT, "STORAGE_SECRET_KEY": "not base64 & not a sas!"}, "STORAGE_SECRET_KEY"),
    ({"STORAGE_ACCESS_KEY": ACCOUNT, "STORAGE_SECRET_KEY": "sv=2021-08-06&sp=r"}, "STORAGE_SECRET_KEY"),
], ids=["no-account", "bad-account", "no-secret", "neither-key-nor-sas", "sas-without-signature"])
def test_azure_bad_settings_stop_start_up_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        storage(STORAGE_PROVIDER="azure", **env)
    assert_one_line_naming(excinfo, variable, env.get("STORAGE_SECRET_KEY", ACCOUNT_KEY))


def test_azure_secrets_cover_the_key_the_token_and_its_signature_alone() -> None:
    assert azure(ACCOUNT_KEY).secrets() == (ACCOUNT_KEY,)
    token = container_sas("photos")
    signature = token.split("sig=")[1]  # as sent: percent-encoded
    assert "%" in signature and unquote(signature) != signature
    secrets = azure(f"?{token}").secrets()
    assert token in secrets and f"?{token}" in secrets
    assert unquote(signature) in secrets and signature in secrets
    # A log line that quotes only the signature, either way, is still redacted.
    line = f"GET /c/x?sig={signature} and decoded {unquote(signature)}"
    assert unquote(signature) not in redact(line, secrets) and signature not in redact(line, secrets)


# --- google ------------------------------------------------------------------------------------


@pytest.fixture
def credentials(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A service-account file with a fresh private key."""
    path = tmp_path / "sa.json"
    return path, write_service_account(path)


def test_google_reads_the_credential_file_once_and_gives_obstore_its_text(
        credentials: tuple[Path, dict[str, str]]) -> None:
    path, fields = credentials
    config = storage(STORAGE_PROVIDER="google", STORAGE_CREDENTIALS_PATH=str(path))
    assert (config.credentials_path, config.endpoint) == (path, None)
    assert config.credentials == path.read_text()
    assert gcs_settings(config) == {"service_account_key": path.read_text()}
    assert fields["private_key"] not in repr(config)
    with_endpoint = storage(STORAGE_PROVIDER="google", STORAGE_CREDENTIALS_PATH=str(path),
                            STORAGE_ENDPOINT="http://127.0.0.1:4443")
    assert gcs_settings(with_endpoint)["base_url"] == "http://127.0.0.1:4443"


@pytest.mark.parametrize(("content", "expected"), [
    (None, "required"),
    ("missing", "No such file"),
    ("directory", "Is a directory"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "missing client_email, private_key"),
    ('{"client_email": "a@b", "private_key_id": "k"}', "missing private_key"),
    (b"\xff\xfe\x00", "not readable UTF-8 text"),
], ids=["unset", "missing", "directory", "not-json", "not-an-object", "no-private-key", "binary"])
def test_google_bad_credential_file_stops_start_up_naming_the_variable(
        tmp_path: Path, content: str | bytes | None, expected: str) -> None:
    env = {"STORAGE_PROVIDER": "google"}
    path = tmp_path / "sa.json"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None and content != "missing":
        path.write_text(content)
    if content is not None:
        env["STORAGE_CREDENTIALS_PATH"] = str(path)
    with pytest.raises(ConfigError) as excinfo:
        storage(**env)
    assert_one_line_naming(excinfo, "STORAGE_CREDENTIALS_PATH", '"k"')
    assert expected in str(excinfo.value)


def test_google_secrets_cover_the_file_its_key_and_each_key_line(credentials: tuple[Path, dict[str, str]]) -> None:
    path, fields = credentials
    secrets = storage(STORAGE_PROVIDER="google", STORAGE_CREDENTIALS_PATH=str(path)).secrets()
    assert path.read_text() in secrets and fields["private_key"] in secrets and fields["private_key_id"] in secrets
    body_lines = [line for line in fields["private_key"].splitlines() if not line.startswith("-----")]
    assert all(line in secrets for line in body_lines if len(line) >= 16)
    assert fields["client_email"] not in secrets  # not a secret: it names the account in errors
    # One line of the key, quoted on its own, is redacted.
    assert body_lines[3] not in redact(f"key line: {body_lines[3]}", secrets)
    assert secrets == tuple(sorted(secrets, key=len, reverse=True))  # whole before its parts


def test_describe_shows_the_credential_path_never_its_contents(credentials: tuple[Path, dict[str, str]]) -> None:
    path, fields = credentials
    described = Config.from_env({"DATA_PATH": "/srv/x", "STORAGE_PROVIDER": "google",
                                 "STORAGE_CREDENTIALS_PATH": str(path)}).describe()
    everything = "\n".join(f"{name}={value}" for name, value in described.items())
    assert described["STORAGE_CREDENTIALS_PATH"] == str(path)
    for field in ("private_key", "private_key_id"):
        assert fields[field] not in everything
    assert json.dumps(fields) not in everything


@pytest.mark.parametrize("case", ["google-not-json", "azure-bad-secret"])
def test_bad_cloud_setting_stops_the_cli_with_one_line(case: str, tmp_path: Path) -> None:
    secret_text = '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC'
    (tmp_path / "sa.json").write_text(secret_text)  # cut short: not valid JSON
    env = ({"STORAGE_PROVIDER": "google", "STORAGE_CREDENTIALS_PATH": str(tmp_path / "sa.json")}
           if case == "google-not-json" else
           {"STORAGE_PROVIDER": "azure", "STORAGE_ACCESS_KEY": ACCOUNT, "STORAGE_SECRET_KEY": "!!" + ACCOUNT_KEY})
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    result = run_cli(["config"], workdir, cli_env(tmp_path / "data", **env))
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("preview-proxy: STORAGE_"), result.stderr
    assert "MIIEvQ" not in result.stderr and ACCOUNT_KEY not in result.stderr

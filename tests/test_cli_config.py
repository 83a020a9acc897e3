"""The installed `preview-proxy` console script, run as a subprocess: --version, the report of unknown
variables and --strict-config, one-line start-up errors, and `config [--json]` with no secret in any form."""

import base64
import json
import os
import secrets
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from urllib.parse import quote

import pytest

from proxy.secrets.registry import MASK, SecretRegistry
from proxy.settings.environment.catalogue import OWNED_PREFIXES
from tests.test_cli import cli_env, described

SCRIPT = Path(sys.executable).parent / "preview-proxy"
BAD_START_SECONDS = 20.0


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The console script itself, bounded in time (TimeoutExpired fails the test)."""
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=BAD_START_SECONDS, check=False)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def clean_env(data_path: Path, **extra: str) -> dict[str, str]:
    """cli_env without any inherited variable under our prefixes (so only `extra` can be reported), plus `extra`."""
    inherited = {k: v for k, v in cli_env(data_path).items() if not k.startswith(OWNED_PREFIXES) or k == "DATA_PATH"}
    return {**inherited, **extra}


def test_the_console_script_is_the_one_under_test() -> None:
    assert SCRIPT.is_file() and os.access(SCRIPT, os.X_OK)


def test_version_names_the_package_and_pillow_simd(workdir: Path, data_path: Path) -> None:
    result = run(["--version"], workdir, cli_env(data_path))
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(f"preview-proxy {version('preview-proxy')} ")
    assert f"pillow-simd {version('pillow-simd')}" in line


def test_unknown_names_are_warnings_naming_the_closest_setting(workdir: Path, data_path: Path) -> None:
    env = clean_env(data_path, CACHE_PREVIEW_SIZE="2g", IMGPROXY_USE_ETAG="true")
    result = run(["config"], workdir, env)
    assert result.returncode == 0, result.stderr
    assert "CACHE_PREVIEW_SIZE (environment) is not a preview-proxy setting" in result.stderr
    assert "did you mean CACHE_PREVIEWS_SIZE?" in result.stderr
    assert "IMGPROXY_USE_ETAG (environment) is an imgproxy setting preview-proxy does not support" in result.stderr
    assert described(result.stdout)["CACHE_PREVIEWS_SIZE"] == str(1024**3)  # the typo changed nothing


README_STRICT = "preview-proxy --strict-config serve"  # as the README gives it


def test_strict_config_refuses_with_one_line_per_unknown_name(workdir: Path, data_path: Path) -> None:
    (workdir / ".env").write_text("STORAGE_REGON=eu-west-1\n")
    env = clean_env(data_path, CACHE_PREVIEW_SIZE="2g")
    result = run([*shlex.split(README_STRICT)[1:], "--port", "0"], workdir, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(" is ")[0] for line in lines] == ["preview-proxy: CACHE_PREVIEW_SIZE (environment)",
                                                        "preview-proxy: STORAGE_REGON (env file)"]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_strict_config_starts_when_every_name_is_known(workdir: Path, data_path: Path) -> None:
    env = clean_env(data_path, CACHE_PREVIEWS_SIZE="2g", STORAGE_JUPYTER_SYNC="true")
    result = run(["--strict-config", "config"], workdir, env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("case", ["missing env file", "DATA_PATH is a file"])
def test_start_up_mistakes_are_one_line_naming_the_culprit(workdir: Path, data_path: Path, case: str) -> None:
    a_file = workdir / "a-file"
    a_file.write_text("")
    if case == "missing env file":
        args, env, culprit = ["--env-file", "prod.env", "serve"], cli_env(data_path), "--env-file 'prod.env'"
    else:
        args, env, culprit = ["serve"], cli_env(a_file), "DATA_PATH="
    result = run(args, workdir, env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and culprit in result.stderr, result.stderr


def test_config_json_gives_each_setting_its_value_text_and_source(workdir: Path, data_path: Path) -> None:
    (workdir / ".env").write_text("CACHE_STORAGE_SIZE=1.5GiB\nCACHE_PREVIEWS_EXPIRES=90m\n")
    env = clean_env(data_path, CACHE_PREVIEWS_SIZE="512m", IMGPROXY_ALLOW_ORIGIN="*")
    result = run(["config", "--json"], workdir, env)
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings["CACHE_PREVIEWS_SIZE"] == {"value": str(512 * 1024**2), "given": "512m", "source": "environment"}
    assert settings["CACHE_STORAGE_SIZE"] == {"value": str(3 * 1024**3 // 2), "given": "1.5GiB", "source": "env file"}
    assert settings["CACHE_PREVIEWS_EXPIRES"] == {"value": "5400s", "given": "90m", "source": "env file"}
    assert settings["CACHE_IMAGE_CONVERTER_SIZE"]["source"] == "default"
    assert settings["CORS_ALLOW_ORIGINS"]["source"] == "environment (IMGPROXY_ALLOW_ORIGIN)"
    # The text form holds the same, one line each.
    text = run(["config"], workdir, env).stdout
    assert f"CACHE_STORAGE_SIZE = 1.5GiB  # {3 * 1024**3 // 2}; env file\n" in text
    assert described(text).keys() == settings.keys()


def secret_values() -> dict[str, str]:
    """A fresh value for each kind of secret a deployment sets, with characters that encoders change."""
    account_key = base64.b64encode(secrets.token_bytes(64)).decode()
    while "+" not in account_key or "/" not in account_key:
        account_key = base64.b64encode(secrets.token_bytes(64)).decode()
    return {
        "STORAGE_SECRET_KEY": account_key,
        "IMGPROXY_KEY": secrets.token_hex(32),
        "IMGPROXY_SALT": secrets.token_hex(32),
        "ADMIN_TOKENS": f"admin-{secrets.token_urlsafe(24)},second-{secrets.token_urlsafe(24)}",
        "UPLOAD_TOKENS": f"upload-{secrets.token_urlsafe(24)}",
        "UPLOAD_SIGNING_KEYS": secrets.token_urlsafe(40),
    }


@pytest.mark.parametrize("args", [["config"], ["config", "--json"]], ids=["text", "json"])
def test_no_secret_appears_in_config_in_any_wire_form(workdir: Path, data_path: Path, args: list[str]) -> None:
    values = secret_values()
    env = clean_env(data_path, STORAGE_PROVIDER="azure", STORAGE_ACCESS_KEY="devstoreaccount1",
                                        STORAGE_ENDPOINT="http://127.0.0.1:9/devstoreaccount1", **values)
    result = run(args, workdir, env)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    pieces = [piece for value in values.values() for piece in value.split(",")]
    finder = SecretRegistry(pieces)
    finder.add_keys(*(bytes.fromhex(values[name]) for name in ("IMGPROXY_KEY", "IMGPROXY_SALT")))
    # The finder sees every form (control: it masks a percent-encoded key), and the output holds none.
    assert finder.redact(quote(values["STORAGE_SECRET_KEY"], safe="")) == MASK
    assert finder.redact(output) == output
    shown = json.loads(result.stdout) if "--json" in args else None
    if shown is not None:
        assert shown["STORAGE_SECRET_KEY"]["value"] == MASK and shown["STORAGE_SECRET_KEY"]["given"] is None

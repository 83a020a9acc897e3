"""`preview-proxy config | serve | sample` run as real subprocesses with a controlled environment.

Each command runs in a temporary working directory (so only the .env a test writes is read) with
STORAGE_*, CACHE_* and AWS_* removed from the inherited environment.
"""

import http.client
import io
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import StartServer

SERVER_SETTINGS = ("DATA_PATH", "ORIGINALS_CACHE_CONTROL", "SENDFILE", "ACCESS_LOG")
BAD_START_SECONDS = 10.0  # a bad setting must stop `serve` well within this


def cli_env(data_path: Path, **extra: str) -> dict[str, str]:
    """The inherited environment without any preview-proxy setting, plus DATA_PATH and `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STORAGE_", "CACHE_", "AWS_")) and k not in SERVER_SETTINGS}
    env.update(DATA_PATH=str(data_path), PYTHONUNBUFFERED="1", **extra)
    return env


def run_cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`python -m proxy.runtime.cli <args>`, bounded by `timeout` (TimeoutExpired fails the test)."""
    return subprocess.run([sys.executable, "-m", "proxy.runtime.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def described(stdout: str) -> dict[str, str]:
    """`config` output (`name = value  # source` lines) as a dict of the values."""
    pairs = (line.split("  # ", 1)[0].split(" = ", 1) for line in stdout.splitlines() if " = " in line)
    return {name: value for name, value in pairs}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory for the command."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.mark.parametrize("provider_env", [{}, {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": "127.0.0.1:9"}],
                         ids=["http", "minio"])
def test_config_prints_settings_with_storage_keys_masked(workdir: Path, data_path: Path,
                                                         provider_env: dict[str, str]) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    access = f"AKIA{uuid.uuid4().hex[:16].upper()}"
    result = run_cli(["config"], workdir, cli_env(data_path, STORAGE_ACCESS_KEY=access, STORAGE_SECRET_KEY=secret,
                                                  **provider_env))
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout and secret not in result.stderr
    assert access not in result.stdout and access not in result.stderr
    settings = described(result.stdout)
    for name in ("STORAGE_ACCESS_KEY", "STORAGE_SECRET_KEY"):
        assert settings[name] not in ("", "(unset)"), f"{name} should show that it is set"
    assert settings["DATA_PATH"] == str(data_path)
    assert settings["STORAGE_PROVIDER"] == provider_env.get("STORAGE_PROVIDER", "http")


def test_config_shows_unset_keys_as_unset(workdir: Path, data_path: Path) -> None:
    settings = described(run_cli(["config"], workdir, cli_env(data_path)).stdout)
    assert settings["STORAGE_SECRET_KEY"] == "(unset)"
    assert settings["STORAGE_ACCESS_KEY"] == "(unset)"


BAD_VALUES = [
    ("CACHE_STORAGE_SIZE", "lots", {}),
    ("STORAGE_PORT", "99999", {}),
    ("STORAGE_PORT", "99999", {"STORAGE_ENDPOINT": "minio.example.com"}),
    ("CACHE_PREVIEWS_EXPIRES", "soon", {}),
    ("STORAGE_PROVIDER", "ftp", {}),
    ("SENDFILE", "maybe", {}),
]


BAD_VALUE_IDS = [f"{name}={bad}{'+endpoint' if context else ''}" for name, bad, context in BAD_VALUES]


@pytest.mark.parametrize(("name", "bad", "context"), BAD_VALUES, ids=BAD_VALUE_IDS)
def test_bad_setting_stops_serve_with_one_line_naming_it(workdir: Path, data_path: Path, name: str, bad: str,
                                                         context: dict[str, str]) -> None:
    started = time.monotonic()
    result = run_cli(["serve", "--port", "0"], workdir, cli_env(data_path, **{name: bad}, **context),
                     timeout=BAD_START_SECONDS)
    assert time.monotonic() - started < BAD_START_SECONDS
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] and bad in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "listening" not in result.stdout


def test_dotenv_in_working_directory_is_read(workdir: Path, data_path: Path) -> None:
    (workdir / ".env").write_text("CACHE_STORAGE_SIZE=2g\nORIGINALS_CACHE_CONTROL=private, max-age=5\n")
    result = run_cli(["config"], workdir, cli_env(data_path))
    assert result.returncode == 0, result.stderr
    settings = described(result.stdout)
    assert settings["CACHE_STORAGE_SIZE"] == "2g"
    assert settings["ORIGINALS_CACHE_CONTROL"] == "private, max-age=5"


def test_real_environment_variable_overrides_dotenv(workdir: Path, data_path: Path) -> None:
    (workdir / ".env").write_text("CACHE_STORAGE_SIZE=2g\nCACHE_PREVIEWS_SIZE=100m\n")
    result = run_cli(["config"], workdir, cli_env(data_path, CACHE_STORAGE_SIZE="3g"))
    assert result.returncode == 0, result.stderr
    settings = described(result.stdout)
    assert settings["CACHE_STORAGE_SIZE"] == "3g"
    assert settings["CACHE_PREVIEWS_SIZE"] == "100m"  # the rest of the file still counts


def test_env_file_option_names_another_file(workdir: Path, data_path: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "production.env"
    elsewhere.write_text("CACHE_STORAGE_SIZE=5g\n")
    (workdir / ".env").write_text("CACHE_STORAGE_SIZE=2g\n")
    result = run_cli(["--env-file", str(elsewhere), "config"], workdir, cli_env(data_path))
    assert result.returncode == 0, result.stderr
    assert described(result.stdout)["CACHE_STORAGE_SIZE"] == "5g"


def test_bad_value_in_dotenv_is_reported_like_an_environment_variable(workdir: Path, data_path: Path) -> None:
    (workdir / ".env").write_text("CACHE_STORAGE_SIZE=plenty\n")
    result = run_cli(["serve", "--port", "0"], workdir, cli_env(data_path), timeout=BAD_START_SECONDS)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "CACHE_STORAGE_SIZE" in result.stderr


def test_sample_is_served_at_the_printed_try_url(workdir: Path, data_path: Path, start_server: StartServer) -> None:
    result = run_cli(["sample"], workdir, cli_env(data_path))
    assert result.returncode == 0, result.stderr
    placed = data_path / "storage" / "sample-public" / "images" / "sample.jpg"
    assert placed.is_file()
    assert Image.open(placed).format == "JPEG"

    server = start_server()
    line = server.wait_for_log("try: http://")
    url = line.split("try: ", 1)[1].strip()
    assert url.startswith(server.base_url + "/")
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", url.removeprefix(server.base_url))
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert body == placed.read_bytes()

    preview_url = server.wait_for_log("and a preview: http://").split(": ", 1)[1].strip()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", preview_url.removeprefix(server.base_url))
        response = connection.getresponse()
        preview = Image.open(io.BytesIO(response.read()))
    finally:
        connection.close()
    assert (response.status, preview.format, preview.width) == (200, "JPEG", 300)
    image = Image.open(io.BytesIO(body))
    image.load()
    assert image.format == "JPEG" and image.width > 0 and image.height > 0


def test_no_try_line_without_a_sample(start_server: StartServer) -> None:
    server = start_server()
    marker = f"/healthz?probe={uuid.uuid4().hex}"
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", marker)
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    # The try line is printed before the server handles anything, so by the time this request is
    # logged it would be there.
    server.wait_for_log(marker)
    assert not any("try: " in line for line in server.log_lines)

"""Where `serve` listens: flags over SERVER_HOST/SERVER_PORT over IMGPROXY_BIND, and a taken port in one line."""

import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.settings.errors import ConfigError
from proxy.settings.listen_address import read_listen_address, read_metrics_bind
from tests.support.server import ServerProcess
from tests.test_cli import cli_env, run_cli

BAD_START_SECONDS = 20.0


@pytest.mark.parametrize(("env", "flags", "expected"), [
    ({}, (None, None), ("127.0.0.1", 8080)),
    ({"SERVER_HOST": "0.0.0.0", "SERVER_PORT": "9000"}, (None, None), ("0.0.0.0", 9000)),
    ({"IMGPROXY_BIND": ":8081"}, (None, None), ("0.0.0.0", 8081)),
    ({"IMGPROXY_BIND": "10.0.0.5:8081"}, (None, None), ("10.0.0.5", 8081)),
    ({"IMGPROXY_BIND": "[::1]:8081"}, (None, None), ("::1", 8081)),
    ({"IMGPROXY_BIND": ":8081", "SERVER_PORT": "9000"}, (None, None), ("0.0.0.0", 9000)),
    ({"IMGPROXY_BIND": "10.0.0.5:8081", "SERVER_HOST": "::"}, (None, None), ("::", 8081)),
    ({"SERVER_HOST": "0.0.0.0", "SERVER_PORT": "9000"}, ("127.0.0.2", 0), ("127.0.0.2", 0)),
], ids=["defaults", "server-vars", "bind-port-only", "bind-host-port", "bind-v6", "server-port-wins",
        "server-host-wins", "flags-win"])
def test_listen_address_sources_in_order(env: dict[str, str], flags: tuple[str | None, int | None],
                                         expected: tuple[str, int]) -> None:
    assert read_listen_address(env, *flags) == expected


@pytest.mark.parametrize(("env", "named"), [
    ({"SERVER_PORT": "http"}, "SERVER_PORT"),
    ({"SERVER_PORT": "70000"}, "SERVER_PORT"),
    ({"IMGPROXY_BIND": "8080"}, "IMGPROXY_BIND"),
    ({"IMGPROXY_BIND": "host:port"}, "IMGPROXY_BIND"),
])
def test_bad_listen_setting_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=f"^{named}="):
        read_listen_address(env)


@pytest.mark.parametrize("source", ["server-vars", "imgproxy-bind"])
def test_serve_listens_where_the_environment_says(tmp_path: Path, data_path: Path, source: str) -> None:
    port = _free_port()
    env = {"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port)} if source == "server-vars" else {
        "IMGPROXY_BIND": f"127.0.0.1:{port}"}
    process = subprocess.Popen([sys.executable, "-m", "proxy.runtime.cli", "serve", "--workers", "1"],
                               cwd=tmp_path, env=cli_env(data_path, **env), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        assert _first_line_with(process, "listening on", BAD_START_SECONDS) == (
            f"preview-proxy listening on http://127.0.0.1:{port}")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_bad_port_setting_stops_serve_with_one_line(tmp_path: Path, data_path: Path) -> None:
    result = _serve_briefly(tmp_path, data_path, {"SERVER_PORT": "70000"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("preview-proxy: SERVER_PORT='70000': expected a port number from 0 to 65535")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on loopback that another socket listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_taken_port_is_one_line_and_status_1(tmp_path: Path, data_path: Path, taken_port: int, workers: str) -> None:
    result = _serve_briefly(tmp_path, data_path, {"SERVER_PORT": str(taken_port), "SERVER_WORKERS": workers})
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"preview-proxy: can't listen on 127.0.0.1:{taken_port}: Address already in use"


def test_second_multi_worker_server_does_not_share_the_port(tmp_path: Path, data_path: Path) -> None:
    """Workers share their port by SO_REUSEPORT; a second server of the same user must not slip in beside them."""
    first = ServerProcess({"DATA_PATH": str(data_path)}, cwd=Path(__file__).parents[1], workers=2)
    try:
        port = int(first.base_url.rsplit(":", 1)[1])
        result = _serve_briefly(tmp_path, tmp_path / "second-data", {"SERVER_PORT": str(port), "SERVER_WORKERS": "2"})
        assert result.returncode == 1, result.stderr
        assert "Address already in use" in result.stderr
    finally:
        first.stop()
    assert first.process.returncode == 0


def _serve_briefly(tmp_path: Path, data_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    workdir = tmp_path / "cwd"
    workdir.mkdir(exist_ok=True)
    return run_cli(["serve"], workdir, cli_env(data_path, SERVER_HOST="127.0.0.1", **env), timeout=BAD_START_SECONDS)


def _first_line_with(process: subprocess.Popen[str], needle: str, timeout: float) -> str:
    """The first output line containing `needle`, read with a deadline."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            line = process.stdout.readline()
            if not line:
                break
            if needle in line:
                return line.strip()
    raise AssertionError(f"no line with {needle!r} within {timeout} s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("value", "expected"), [
    ("", None), ("127.0.0.1:9090", ("127.0.0.1", 9090)), (":9090", ("0.0.0.0", 9090)),
    ("[::1]:9090", ("::1", 9090)), (" 10.0.0.5:0 ", ("10.0.0.5", 0)), ("127.0.0.1:0", ("127.0.0.1", 0))])
def test_metrics_bind_takes_the_forms_of_imgproxy_bind(value: str, expected: tuple[str, int] | None) -> None:
    assert read_metrics_bind({"METRICS_BIND": value}, ("127.0.0.1", 0)) == expected


@pytest.mark.parametrize("value", ["9090", "host:", "h:99999", "127.0.0.1:8080"])
def test_metrics_bind_refuses_what_is_not_an_address_of_its_own(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^METRICS_BIND="):
        read_metrics_bind({"METRICS_BIND": value}, ("127.0.0.1", 8080))


"""deploy/cluster/nginx.conf run for real on loopback: the example front, its host lines swapped for ours.

The example is read as shipped and only the lines that name a host's paths, port and nodes are
replaced, each replacement checked to apply exactly where expected, so a change to the example that
the test no longer understands fails loudly instead of testing something else. routing.conf is
copied byte for byte beside the config, as an operator would. nginx runs in the foreground in its
own process group (never as a service); every path it writes is in the test's directory.
"""

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.support.cluster_nodes import fetch_all
from tests.support.processes import stop_process_group

NGINX = "/usr/sbin/nginx"
CLUSTER = Path(__file__).resolve().parents[2] / "deploy" / "cluster"
EXAMPLE = CLUSTER / "nginx.conf"
ROUTING = CLUSTER / "routing.conf"
HASH_LINE = "hash $preview_proxy_route_key consistent;"
ROUND_ROBIN = ""
START_TIMEOUT = 10.0
# The example's nodes: `server 10.0.0.x:8080 <parameters>;` lines in the upstream block.
_EXAMPLE_NODE = re.compile(r"^( *)server 10\.0\.0\.\d+:8080( [^;]*)?;\n", re.MULTILINE)
# nginx writes temp files for request bodies and spilled responses under these; keep them here.
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_missing() -> str | None:
    """Why nginx can't run here, or None."""
    return None if os.access(NGINX, os.X_OK) else f"{NGINX} is not installed (bash deploy/dev.sh setup installs it)"


def loopback_front(directory: Path, port: int, nodes: Sequence[str], balancing: str = HASH_LINE,
                   backends: Sequence[int] = ()) -> Path:
    """Write the example front for `nodes` (`127.0.0.1:port`) listening on `port`; return the config's path.

    `balancing` replaces the example's hash line: ROUND_ROBIN (nothing: nginx's default over the same
    nodes), or another `hash ...;` line. Every answer carries `X-Upstream: <node>` (which node served
    it). `backends` adds stand-in nodes in the same nginx, each answering 204 on its port: enough to
    see where the ring sends a key.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROUTING, directory / "routing.conf")
    text = EXAMPLE.read_text()
    user = "user root;" if os.geteuid() == 0 else ""  # as root, the workers must read the test's 0700 dirs
    text = _once(text, r"^user www-data;$", user)
    text = _once(text, r"^pid /run/nginx\.pid;$", f"pid {directory}/nginx.pid;")
    text = _once(text, r"^error_log /var/log/nginx/error\.log", f"error_log {directory}/error.log")
    text = _once(text, r"access_log /var/log/nginx/preview-proxy\.access\.log",
                 f"access_log {directory}/access.log")
    temp = "".join(f"    {name}_temp_path {directory}/{name};\n" for name in _TEMP_PATHS)
    stand_ins = "".join(f"    server {{ listen 127.0.0.1:{backend}; return 204; }}\n" for backend in backends)
    text = _once(text, r"^http \{\n", "http {\n" + temp + stand_ins)
    text = _once(text, r"^( *)listen 80;$",
                 rf"\1listen 127.0.0.1:{port};\n\1add_header X-Upstream $upstream_addr always;")
    found = _EXAMPLE_NODE.findall(text)
    assert len(found) >= 2, "the example's upstream block has no `server 10.0.0.x:8080 ...;` lines"
    indent, parameters = found[0]
    ours = iter(["".join(f"{indent}server {node}{parameters};\n" for node in nodes)])
    text = _EXAMPLE_NODE.sub(lambda _: next(ours, ""), text)  # ours where the example's first node was
    if balancing != HASH_LINE:
        text = _once(text, r"^( *)" + re.escape(HASH_LINE) + r"\n",
                     lambda match: match.group(1) + balancing + "\n" if balancing else "")
    conf = directory / "nginx.conf"
    conf.write_text(text)
    return conf


@contextmanager
def run_nginx(conf: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """nginx -c `conf` in the foreground until the block exits; yields once `port` accepts connections."""
    directory = conf.parent
    log = (directory / "stdout.log").open("ab")
    process = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(directory), "-e", str(directory / "error.log"),
                                "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, process, directory)
        yield process
    finally:
        _stop_group(process)
        log.close()


def ring_placement(directory: Path, nodes: Sequence[int], stand_ins: Sequence[int],
                   paths: Sequence[str]) -> dict[str, str]:
    """The node the example front's ring picks for each path, with `nodes` (of the `stand_ins`) in it."""
    # Distinct ports, so at least one is none of the stand-ins' (which are not listening yet).
    port = next(port for port in free_ports(len(stand_ins) + 1) if port not in stand_ins)
    conf = loopback_front(directory, port, [f"127.0.0.1:{node}" for node in nodes], backends=stand_ins)
    with run_nginx(conf, port):
        answers = fetch_all(f"http://127.0.0.1:{port}", paths)
    assert {answer.status for answer in answers} == {204}, "a stand-in node did not answer"
    return {answer.path: answer.node for answer in answers}


def nginx_version() -> str:
    """`nginx/1.22.1`, from `nginx -v`."""
    return subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=True).stderr.strip().split(": ")[-1]


def free_port() -> int:
    """A loopback port that was free a moment ago (nginx can't be told to pick one)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (all held at once while picked)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _once(text: str, pattern: str, replacement: str | Callable[[re.Match[str]], str]) -> str:
    new, count = re.subn(pattern, replacement, text, count=2, flags=re.MULTILINE)
    assert count == 1, f"the example nginx.conf has {count} matches for {pattern!r}, expected exactly one"
    return new


def _wait_for_port(port: int, process: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}: "
                               + (directory / "error.log").read_text(errors="replace")[-2000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nginx did not listen on {port} within {START_TIMEOUT:g} s")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the master's group (its workers too), then SIGKILL if any is left after 10 s."""
    stop_process_group(process, grace=10.0)

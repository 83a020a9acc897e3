"""A multi-worker server says it is ready (/healthz 200) only once every worker listens (proxy.runtime.readiness).

Real processes on loopback. Which sockets listen is read from the kernel (/proc/net/tcp and each
worker's /proc/<pid>/fd); which worker answered, from the access log.
"""

import contextlib
import http.client
import os
import re
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, StartServer
from tests.support.http import fetch
from tests.support.previews_kit import poll
from tests.support.server import START_TIMEOUT, ServerProcess
from tests.support.workers import kill_worker, served_by, wait_for_workers

LISTEN = "0A"  # the TCP state column of /proc/net/tcp
STARTING = re.compile(r"starting: [0-2] of 2 workers listening\n")
PROBE_PAUSE = 0.005  # between probes of a server that is starting, so they don't take a core from it


@dataclass
class Probe:
    """One /healthz attempt while the server starts, and the listening sockets seen as soon as it was answered."""

    status: int | None  # None: the connection was refused (no worker listened yet)
    body: bytes
    listening_after: set[int]


def listening_sockets(port: int) -> set[int]:
    """Inodes of the sockets in LISTEN state on `port` (the supervisor's reserved socket is bound, not listening)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == LISTEN:
            found.add(int(fields[9]))
    return found


def sockets_of(pid: int) -> set[int]:
    """Inodes of the sockets process `pid` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def free_port() -> int:
    """A loopback port nobody listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def probe_healthz(port: int, path: str) -> tuple[int | None, bytes]:
    """One GET on a fresh connection: (status, body), or (None, b"") if the connection is refused."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except ConnectionRefusedError:
        return None, b""
    finally:
        connection.close()


def probe(port: int, path: str) -> Probe:
    """/healthz on a fresh connection, and the sockets listening on the port as soon as it answered."""
    status, body = probe_healthz(port, path)
    return Probe(status, body, listening_sockets(port))


def processes_with(needles: tuple[bytes, ...], parent: int | None = None) -> set[int]:
    """Running processes whose command line holds every needle (and whose parent is `parent`, if given)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            # Field 4 of stat, after the command name in parentheses (which may hold spaces).
            parent_ok = parent is None or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent
        except OSError:
            continue  # gone meanwhile
        if parent_ok and all(needle in command for needle in needles):
            found.add(int(entry.name))
    return found


def test_healthz_answers_200_only_once_every_worker_listens(data_path: Path) -> None:
    port = free_port()
    token = uuid.uuid4().hex
    started: list[ServerProcess] = []
    # ServerProcess returns once the server has printed its "listening" line: start it aside, and
    # probe from before any worker listens.
    starter = threading.Thread(target=lambda: started.append(
        ServerProcess({"DATA_PATH": str(data_path)}, cwd=REPO, workers=2, args=["--port", str(port)])))
    starter.start()
    held: int | None = None
    try:
        # The fault: one worker is stopped (SIGSTOP) as soon as it is spawned, long before it can listen
        # (it has Pillow, aiohttp and obstore to import first), so the other one surely listens alone.
        supervisor = poll(lambda: processes_with((b"proxy.runtime.cli", f"--port\0{port}\0".encode())),
                          "the supervisor")
        spawned = poll(lambda: processes_with((b"spawn_main",), parent=min(supervisor)), "a worker")
        held = min(spawned)
        os.kill(held, signal.SIGSTOP)
        assert not sockets_of(held) & listening_sockets(port)

        alone: list[Probe] = []
        for index in range(int(START_TIMEOUT / PROBE_PAUSE)):  # bounded: until the free worker answered a few
            alone.append(probe(port, f"/healthz?alone={token}-{index}"))
            if len([answer for answer in alone if answer.status is not None]) >= 5:
                break
            time.sleep(PROBE_PAUSE)  # pause between probes of a condition, not a wait for an event
        # One worker listens and answers, and says it waits for the other: never 200.
        answered = [answer for answer in alone if answer.status is not None]
        assert len(answered) == 5 and all(len(answer.listening_after) == 1 for answer in answered)
        assert all(answer.status == 503 and STARTING.fullmatch(answer.body.decode()) for answer in answered), answered

        os.kill(held, signal.SIGCONT)
        resumed: list[Probe] = []
        for index in range(int(START_TIMEOUT / PROBE_PAUSE)):  # bounded: until the first 200
            resumed.append(probe(port, f"/healthz?resumed={token}-{index}"))
            if resumed[-1].status == 200:
                break
            time.sleep(PROBE_PAUSE)  # pause between probes of a condition, not a wait for an event
        starter.join(START_TIMEOUT)
        assert started, "the server did not start"
        server = started[0]
        workers = wait_for_workers(server, 2)

        first_ready = resumed[-1]
        assert first_ready.status == 200 and first_ready.body == b"ok\n", resumed[-3:]
        assert all(answer.status == 503 for answer in resumed[:-1]), resumed[:-1]
        # Each worker's own socket listened when the first 200 came back (read just after it: read
        # before the request, a worker could start listening, and be counted, while the request travels).
        assert len(first_ready.listening_after) == 2 and held in workers
        assert all(len(sockets_of(pid) & first_ready.listening_after) == 1 for pid in workers)
        # So a client that waits for 200 before it opens its connections gets both workers.
        spread = [f"/healthz?spread={token}-{index}" for index in range(20)]
        assert all(fetch(server, path)[0] == 200 for path in spread)
        assert {pid for path in spread for pid in served_by(server, path, 1)} == workers  # one worker: 2**-19
    finally:
        if held is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(held, signal.SIGCONT)  # never leave a stopped worker behind, whatever failed
        starter.join(START_TIMEOUT)
        for server in started:
            server.stop()
    assert [server.process.returncode for server in started] == [0]


def test_a_restarted_worker_leaves_the_server_ready(start_server: StartServer) -> None:
    server = start_server(workers=2)
    victim, survivor = sorted(wait_for_workers(server, 2))
    token = uuid.uuid4().hex

    kill_worker(server, victim)
    answers: list[tuple[int, bytes]] = []
    for index in range(2_000):  # bounded: until the replacement has answered a probe itself
        path = f"/healthz?restart={token}-{index}"
        status, _, body = fetch(server, path)
        answers.append((status, body))
        replacement = server.live_worker_pids() - {survivor}
        if replacement and any(pid in replacement for pid in served_by(server, path, 1)):
            break
        time.sleep(PROBE_PAUSE)  # pause between probes of a condition, not a wait for an event

    assert replacement and victim not in replacement, "a replacement started and answered"
    # The survivor answered ready all along, and the replacement answered ready from its first request.
    assert set(answers) == {(200, b"ok\n")}, [answer for answer in answers if answer != (200, b"ok\n")][:3]
    assert fetch(server, f"/readyz?restart={token}")[0] == 200

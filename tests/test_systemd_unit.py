"""The systemd unit (deploy/systemd/): `systemd-analyze verify` finds nothing to say about it, its reload
is the SIGHUP the server re-reads the links file on, its hardening is in place and the server runs
under the strictest part of it (no writable and executable memory), and the files shipped beside it work.
"""

import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from proxy.settings.environment.catalogue import OWNED_PREFIXES
from tests.conftest import REPO, StartServer
from tests.support.http import request
from tests.support.processes import stop_process
from tests.support.video import VideoSpec, make_video

UNIT = REPO / "deploy" / "systemd" / "preview-proxy.service"
ENV_EXAMPLE = REPO / "deploy" / "systemd" / "preview-proxy.env.example"
SYSUSERS = REPO / "deploy" / "systemd" / "preview-proxy.sysusers"
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0

HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes", "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native", "CapabilityBoundingSet": "", "LimitNOFILE": "65536",
}


def _settings(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> every value given, in order (systemd allows a key more than once)."""
    found: dict[tuple[str, str], list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault((section, key.strip()), []).append(value.strip())
    return found


SETTINGS = _settings(UNIT.read_text())


def _one(section: str, key: str) -> str:
    [value] = SETTINGS[(section, key)]
    return value


# --- systemd-analyze verify --------------------------------------------------------------------------

def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    return found


def _verify(unit_text: str, folder: Path) -> list[str]:
    """systemd-analyze verify on a copy named like the unit; the lines it prints about that copy."""
    copy = folder / UNIT.name
    copy.write_text(unit_text)
    result = subprocess.run([_systemd_analyze(), "verify", str(copy)], capture_output=True, text=True, timeout=60,
                            cwd=folder)
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 0 or any(UNIT.name in line for line in lines), "\n".join(lines)
    return [line for line in lines if UNIT.name in line]


def _with_real_exec_start(text: str) -> str:
    # verify checks that ExecStart's program exists; the unit names the install path, /opt/preview-proxy.
    installed = "ExecStart=/opt/preview-proxy/bin/preview-proxy serve"
    assert installed in text
    return text.replace(installed, f"ExecStart={VENV_BIN / 'preview-proxy'} serve")


def test_systemd_analyze_verify_says_nothing_about_the_unit(tmp_path: Path):
    assert _verify(_with_real_exec_start(UNIT.read_text()), tmp_path) == []


def test_systemd_analyze_verify_would_report_a_mistake(tmp_path: Path):
    # The same check on a unit with a misspelt key: verify does speak up, so its silence above means something.
    broken = _with_real_exec_start(UNIT.read_text()).replace("ProtectHome=yes", "ProtectHomes=yes")
    assert any("ProtectHomes" in line for line in _verify(broken, tmp_path))


# --- what the unit says ------------------------------------------------------------------------------

def test_the_hardening_is_in_place():
    assert {key: _one("Service", key) for key in HARDENING} == HARDENING
    assert SETTINGS[("Service", "SystemCallFilter")] == ["@system-service", "~@privileged @resources"]
    assert ("Service", "ProcSubset") not in SETTINGS  # the process metrics read /proc/stat


def test_it_runs_the_installed_server_as_its_own_user_with_its_own_directories():
    assert _one("Service", "ExecStart") == "/opt/preview-proxy/bin/preview-proxy serve"
    assert _one("Service", "EnvironmentFile") == "/etc/preview-proxy/preview-proxy.env"
    assert (_one("Service", "User"), _one("Service", "Group")) == ("preview-proxy", "preview-proxy")
    assert (_one("Service", "StateDirectory"), _one("Service", "CacheDirectory")) == ("preview-proxy",) * 2
    assert _one("Service", "Environment").split() == ["DATA_PATH=/var/lib/preview-proxy",
                                                      "CACHE_PATH=/var/cache/preview-proxy"]


def test_type_exec_because_the_server_does_not_notify_systemd():
    # Type=notify would need sd_notify(READY=1); nothing in the server sends it.
    assert _one("Service", "Type") == "exec"
    sources = [path for package in ("proxy", "previews", "cache") for path in (REPO / package).rglob("*.py")]
    assert sources and not [path for path in sources if "NOTIFY_SOCKET" in path.read_text()]


def test_the_sysusers_entry_creates_the_units_user(tmp_path: Path):
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        pytest.skip("systemd-sysusers is not installed (Debian's systemd package)")
    (tmp_path / "etc").mkdir()
    subprocess.run([sysusers, f"--root={tmp_path}", "-"], input=SYSUSERS.read_text(), capture_output=True, text=True,
                   timeout=60, check=True)
    [user] = [line.split(":") for line in (tmp_path / "etc" / "passwd").read_text().splitlines()]
    assert (user[0], user[5], user[6]) == (_one("Service", "User"), "/var/lib/preview-proxy", "/usr/sbin/nologin")
    assert [line.split(":")[0] for line in (tmp_path / "etc" / "group").read_text().splitlines()] == [
        _one("Service", "Group")]


def test_the_example_environment_file_is_a_valid_configuration(tmp_path: Path):
    # Every name it mentions, set or commented out, is a setting the server reads by that name or the
    # README documents (the cache bounds' names are built from the tiers' names).
    names = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M))
    known = (REPO / "README.md").read_text() + "".join(
        path.read_text() for package in ("proxy", "cache", "previews") for path in (REPO / package).rglob("*.py"))
    assert names and sorted(name for name in names if not re.search(rf"[`\"]{name}[`\"]", known)) == []
    # Strict: every name the example sets is a setting; nothing inherited under our prefixes is passed on.
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWNED_PREFIXES)}
    strict = [str(VENV_BIN / "preview-proxy"), "--strict-config", "--env-file", str(ENV_EXAMPLE), "config"]
    result = subprocess.run(strict,
                            env={**env, "DATA_PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- ExecReload: the links file is re-read -----------------------------------------------------------

def test_exec_reload_makes_the_running_server_reread_the_links_file(data_path: Path, start_server: StartServer,
                                                                    tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "note.txt").write_bytes(f"from {folder.name}".encode())
    links = data_path / "remote_links.yml"
    links.write_text(f"first: {{provider: fs, path: {first}}}\n")
    server = start_server(workers=2)  # the unit's supervisor forwards the signal to every worker
    server.wait_for_log("ready", START_TIMEOUT)
    assert request(server.url("/links/fs/second/note.txt")).status == 404

    links.write_text(links.read_text() + f"second: {{provider: fs, path: {second}}}\n")
    reload = shlex.split(_one("Service", "ExecReload").replace("$MAINPID", str(server.pid)))
    assert reload[:2] == ["/bin/kill", "-HUP"]
    subprocess.run(reload, check=True, timeout=30)
    server.wait_for_log("reloaded: 2 entries")
    deadline = time.monotonic() + 10
    for _attempt in range(100):  # each worker reloads on its own; any may answer
        replies = [request(server.url("/links/fs/second/note.txt")) for _ in range(4)]
        if all(reply.status == 200 for reply in replies) or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # a poll interval under the deadline above
    assert [(reply.status, reply.body) for reply in replies] == [(200, b"from second")] * 4
    assert request(server.url("/links/fs/first/note.txt")).body == b"from first"


# --- MemoryDenyWriteExecute: the server needs no writable and executable memory -------------------

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
# `python -c MDWE_LAUNCHER program args...`: the kernel's memory-deny-write-execute (Linux 6.3+; kept
# across fork and exec, like the seccomp filter systemd 252 installs for MemoryDenyWriteExecute=), then
# exec the program. Exit 77: this kernel lacks it.
MDWE_LAUNCHER = f"""
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    print("PR_SET_MDWE failed: errno", ctypes.get_errno(), flush=True)
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""
MDWE_SKIP = 77


def _under_mdwe(*command: str) -> list[str]:
    return [sys.executable, "-c", MDWE_LAUNCHER, *command]


def _start_under_mdwe(data_path: Path) -> tuple[subprocess.Popen[str], str, "queue.Queue[str]"]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "IMGPROXY_"))},
           "DATA_PATH": str(data_path), "PYTHONUNBUFFERED": "1"}
    command = _under_mdwe(sys.executable, "-m", "proxy.runtime.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                          "--workers", "2")
    process = subprocess.Popen(command, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    deadline, seen = time.monotonic() + START_TIMEOUT, []
    while (time.monotonic() < deadline and process.poll() is None) or not lines.empty():
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if line.startswith("preview-proxy listening on "):
            return process, line.rsplit(" ", 1)[1], lines
    stop_process(process)
    if process.returncode == MDWE_SKIP:
        pytest.skip(f"this kernel has no PR_SET_MDWE ({os.uname().release}): {seen[-1:]}")
    raise AssertionError("server did not start:\n" + "\n".join(seen[-30:]))


def test_the_server_renders_every_format_and_a_video_frame_without_writable_executable_memory(data_path: Path):
    bucket = data_path / "storage" / "media"
    bucket.mkdir(parents=True)
    Image.radial_gradient("L").resize((640, 480)).convert("RGB").save(bucket / "photo.jpg", quality=90)
    Image.radial_gradient("L").convert("RGB").save(bucket / "photo.avif")  # decoded by libavif's own codec
    (bucket / "clip.mp4").write_bytes(make_video(VideoSpec(frames=25)))
    # The launcher's setting is in force in the program it execs: writable and executable memory is refused.
    probe = subprocess.run(_under_mdwe(sys.executable, "-c", "import mmap; mmap.mmap(-1, 4096, prot=7)"),
                           capture_output=True, text=True, timeout=30)
    if probe.returncode == MDWE_SKIP:
        pytest.skip(f"this kernel has no PR_SET_MDWE ({os.uname().release})")
    assert probe.returncode == 1 and "PermissionError" in probe.stderr, probe.stderr
    process, base_url, _lines = _start_under_mdwe(data_path)
    try:
        cases = {"/previews/q/ext:jpeg/rs:fill:200:0:0/plain/media/photo.jpg": "image/jpeg",
                 "/previews/q/rs:fill:200:0:0/plain/media/photo.jpg@webp": "image/webp",
                 "/previews/q/rs:fill:200:0:0/plain/media/photo.jpg@avif": "image/avif",
                 "/previews/q/ext:jpeg/rs:fill:100:0:0/plain/media/photo.avif": "image/jpeg",
                 "/image-converter/videoframe/33p/media/clip.mp4": "image/jpeg"}
        replies = {path: request(base_url + path) for path in cases}
        assert {path: (reply.status, reply.headers["Content-Type"]) for path, reply in replies.items()} == {
            path: (200, kind) for path, kind in cases.items()}
        assert process.poll() is None
    finally:
        stop_process(process)
    assert process.returncode == 0

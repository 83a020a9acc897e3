"""Every command in the README is run by the test suite, and the README points only at what exists.

The README's ```sh blocks are read line by line (a trailing backslash joins lines; blank lines and `#`
comments are skipped). Each command must be in one of two tables:

- RUN_HERE: this module runs it, verbatim, in README order, against a server started by the README's
  own `bash deploy/dev.sh serve` on a free port (its `http://127.0.0.1:8080` swapped for the server's
  address), and checks what it prints. For commands that are cheap and safe.
- RUN_ELSEWHERE: the named file (a test module, or .ci/run) runs it and holds the command verbatim,
  for instance as a string constant it passes to `shlex.split`.

Inline code in the prose that starts like a command (`preview-proxy ...`, `curl ...`, `docker ...`)
must be one of those commands or a leading part of one. A README paragraph with a new command thus
needs a row here, and the failure says which command and line lack one.
"""

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from tests.support.processes import stop_process_group

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
VENV_BIN = REPO / ".venv" / "bin"
README_ADDRESS = "http://127.0.0.1:8080"
SERVE = "bash deploy/dev.sh serve"
ADMIN_TOKEN = "readme-admin-token-0123456789"
UPLOAD_TOKEN = "readme-upload-token-0123456789"
SIGNING_KEY = "readme-signing-key-0123456789abcdef0123"
# The first words of inline code that is a command rather than a name or a value.
PROGRAMS = ("preview-proxy", "bash", "sh", "curl", "docker", "kubectl", "kustomize", "systemctl", "nginx",
            "promtool", "python", "python3", "pip", "apt-get", ".venv/bin/python")
PREVIEW_PATH = "/previews/q/ext:jpeg/resize:fill:300:0:0/q:70/plain/sample-public/images/sample.jpg"


@dataclass(frozen=True)
class Run:
    """What a command run here must print (each pattern, searched line-wise), and the files it must leave."""

    prints: tuple[str, ...]
    in_repo: bool = False  # run in the checkout (it names files of it), else in a scratch folder
    needs: str | None = None  # a program the test skips without, as the module that checks that part does
    images: dict[str, tuple[str, int]] = field(default_factory=dict)  # file -> (format, width) it writes


# Run by this module, in README order. The server is the one `bash deploy/dev.sh serve` started, with
# ADMIN_TOKENS and UPLOAD_TOKENS set; the commands' environment has $ADMIN_TOKEN and $UPLOAD_TOKEN.
RUN_HERE: dict[str, Run] = {
    SERVE: Run(prints=(r"^preview-proxy listening on http://127\.0\.0\.1:\d+$",
                       r"^try: http://127\.0\.0\.1:\d+/sample-public/images/sample\.jpg$")),
    f"curl -sI {README_ADDRESS}/sample-public/images/sample.jpg":
        Run(prints=(r"^HTTP/1\.1 200 OK", r"^X-Cache: BYPASS", r"^Content-Type: image/jpeg")),
    f"curl -s -o preview.jpg -w '%{{http_code}} %{{content_type}}\\n' {README_ADDRESS}{PREVIEW_PATH}":
        Run(prints=(r"^200 image/jpeg$",), images={"preview.jpg": ("JPEG", 300)}),
    f"curl -s -o sample.webp -w '%{{http_code}} %{{content_type}}\\n' {README_ADDRESS}/previews/q/rs:fit:800:0/f:webp"
    "/plain/sample-public/images/sample.jpg":
        Run(prints=(r"^200 image/webp$",), images={"sample.webp": ("WEBP", 800)}),
    f"curl -sI {README_ADDRESS}/image-converter/convert/sample-public/images/sample.jpg":
        Run(prints=(r"^HTTP/1\.1 200 OK", r"^X-Converted-From: jpeg", r"^Content-Type: image/jpeg")),
    "preview-proxy config": Run(prints=(r"^STORAGE_PROVIDER = http  # ", r"^ADMIN_TOKENS = ")),
    "preview-proxy config --json":
        Run(prints=(r'^  "STORAGE_PROVIDER": \{$', r'^    "source": "(default|environment|env file)"')),
    "preview-proxy --version": Run(prints=(r"^preview-proxy \S+ \(pillow-simd \S+, SIMD \w+\)$",)),
    "preview-proxy presign GET sample-public/images/sample.jpg --expires 15m":
        Run(prints=(rf"^{re.escape(README_ADDRESS)}/sample-public/images/sample\.jpg\?expires=\d+&signature=[\w-]+$",)),
    "kubectl kustomize deploy/kubernetes": Run(prints=(r"^kind: StatefulSet$",), in_repo=True, needs="kubectl"),
    f"curl -s {README_ADDRESS}/metrics": Run(prints=(r"^preview_proxy_requests_total\{",)),
    "promtool test rules deploy/monitoring/alerts.test.yml": Run(prints=(r"SUCCESS",), in_repo=True, needs="promtool"),
    f'curl -s -X PURGE -H "Authorization: Bearer $ADMIN_TOKEN" {README_ADDRESS}/sample-public/images/sample.jpg':
        Run(prints=(r'"purged": "sample-public/images/sample\.jpg"', r'"previews": [1-9]')),
    "preview-proxy cache stats": Run(prints=(r"^previews: entries=\d+ ", r"^storage: ", r"^image-converter: ")),
    "preview-proxy cache purge sample-public/images/sample.jpg": Run(prints=(r"^previews=\d+ storage=\d+",)),
    "preview-proxy cache verify --fix": Run(prints=(r"^verify: 0 problem\(s\)$",)),
    f"curl -s -T preview.jpg -w '%{{http_code}}\\n' -H \"Authorization: Bearer $UPLOAD_TOKEN\" "
    f"{README_ADDRESS}/sample-public/uploads/preview.jpg": Run(prints=(r"^201$",)),
    "preview-proxy presign PUT sample-public/uploads/b.jpg --expires 15m":
        Run(prints=(rf"^{re.escape(README_ADDRESS)}/sample-public/uploads/b\.jpg\?expires=\d+&signature=[\w-]+$",)),
    "preview-proxy uploads list": Run(prints=(r"^0 part files of unfinished writes \(\d+ folders? searched\)$",)),
    "preview-proxy uploads abort --older-than 1d":
        Run(prints=(r"^0 part files of unfinished writes \(\d+ folders? searched\)$",)),
    "preview-proxy warm links.txt --previews rs:fit:300:0/q:70 --previews rs:fill:64:64 --jobs 8":
        Run(prints=(r"^warm: 1 source\(s\) .*: [01] warmed, [01] already cached, 0 failed",)),
}

# Run elsewhere: command -> the file (relative to the checkout) that runs it and holds it verbatim.
RUN_ELSEWHERE: dict[str, str] = {
    "bash deploy/dev.sh test": ".ci/run",
    "preview-proxy --strict-config serve": "tests/test_cli_config.py",
    "preview-proxy migrate --to archive --dry-run": "tests/test_migrate.py",
    "preview-proxy migrate --to archive --jobs 8": "tests/test_migrate.py",
}


# --- reading the README ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """A command of a ```sh block and the README line it starts on."""

    text: str
    line: int


def readme_commands(text: str) -> list[Command]:
    """Every command of the ```sh blocks, continuation lines joined, comments and blank lines skipped."""
    commands: list[Command] = []
    in_block, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        fence = line.strip().startswith("```")
        if fence:
            in_block = not in_block and line.strip() in ("```sh", "```bash", "```shell")
            continue
        if not in_block:
            continue
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        start = start if pending else number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        commands.append(Command(pending + stripped, start))
        pending = ""
    return commands


def prose_commands(text: str) -> list[Command]:
    """Inline code outside the code blocks that starts with the name of a program."""
    found: list[Command] = []
    in_block = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            continue
        for span in re.findall(r"`([^`]+)`", line):
            if span.split()[0] in PROGRAMS and len(span.split()) > 1:
                found.append(Command(span, number))
    return found


def block_languages(text: str) -> list[tuple[int, str]]:
    """(line, language) of every opening fence."""
    opened, fences = False, []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("```"):
            if not opened:
                fences.append((number, line.strip()[3:]))
            opened = not opened
    return fences


# --- every command has a runner ----------------------------------------------------------------------------

def test_every_readme_command_is_run_by_the_suite() -> None:
    unrun = [f"README.md line {c.line}: `{c.text}` is run by no test: add it to RUN_HERE in tests/test_readme.py "
             "(cheap and safe, with what it must print) or to RUN_ELSEWHERE with the test module that runs it "
             "verbatim" for c in readme_commands(README.read_text()) if c.text not in RUN_HERE | RUN_ELSEWHERE]
    assert not unrun, "\n".join(unrun)


def test_files_said_to_run_a_command_hold_it_verbatim() -> None:
    wrong = []
    for command, where in RUN_ELSEWHERE.items():
        path = REPO / where
        if not path.is_file():
            wrong.append(f"`{command}`: RUN_ELSEWHERE names {where}, which does not exist")
        elif command not in path.read_text():
            wrong.append(f"`{command}`: {where} does not contain the command verbatim")
    assert not wrong, "\n".join(wrong)


def test_no_table_row_outlives_its_readme_command() -> None:
    commands = {c.text for c in readme_commands(README.read_text())}
    stale = sorted((set(RUN_HERE) | set(RUN_ELSEWHERE)) - commands)
    assert stale == [], f"in tests/test_readme.py but no longer in the README: {stale}"


def test_commands_in_the_prose_are_readme_commands() -> None:
    commands = [c.text.split() for c in readme_commands(README.read_text())]
    loose = [f"README.md line {c.line}: `{c.text}`" for c in prose_commands(README.read_text())
             if not any(words[:len(c.text.split())] == c.text.split() for words in commands)]
    assert not loose, ("inline commands that no code block holds (so no test runs them); put them in a "
                       "```sh block with a row in tests/test_readme.py:\n" + "\n".join(loose))


def test_every_code_block_says_its_language() -> None:
    # An untagged block could hold commands that escape the check above.
    untagged = [number for number, language in block_languages(README.read_text()) if not language]
    assert untagged == [], f"README.md code blocks without a language, at lines {untagged}"


def test_the_reader_parses_blocks_continuations_and_prose() -> None:
    text = "\n".join(["a `curl -s x` b `preview-proxy` c", "```sh", "# note", "curl -s \\", "  http://x/",
                      "", "preview-proxy config", "```", "```yaml", "curl: not a command", "```"])
    assert readme_commands(text) == [Command("curl -s http://x/", 4), Command("preview-proxy config", 7)]
    assert prose_commands(text) == [Command("curl -s x", 1)]
    assert block_languages(text) == [(2, "sh"), (9, "yaml")]


# --- the README points only at what exists -------------------------------------------------------------------

def documents() -> list[Path]:
    """The README and the docs/ folder."""
    return [README, *sorted(DOCS.glob("*.md"))]


def test_relative_links_point_at_files_and_headings_that_exist() -> None:
    broken = []
    for document in documents():
        for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path_text, _, anchor = target.partition("#")
            path = (document.parent / path_text).resolve() if path_text else document
            if not path.exists():
                broken.append(f"{document.relative_to(REPO)}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path.read_text()):
                broken.append(f"{document.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lowercase, punctuation dropped, spaces as hyphens)."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"(?m)^#+ (.+)$", text)}


def test_no_issue_numbers_or_paths_outside_the_repository() -> None:
    found = []
    for document in documents():
        for number, line in enumerate(document.read_text().splitlines(), start=1):
            # `token #2` is how log lines name a token by its place, not a reference.
            for pattern in (r"(?<!token )(?<![\w&])#\d+\b", r"\bissues?\b", r"\.\./shared", r"(?<![\w.])/work/"):
                if re.search(pattern, line, re.IGNORECASE):
                    found.append(f"{document.relative_to(REPO)} line {number}: {line.strip()[:100]}")
    assert not found, "issue references or paths outside the repository (say it without them):\n" + "\n".join(found)


# --- running the commands ------------------------------------------------------------------------------------

@dataclass
class DevServer:
    """`bash deploy/dev.sh serve`, started as the README says, on a port the system picks."""

    process: subprocess.Popen  # type: ignore[type-arg]
    lines: list[str]
    base_url: str
    data_path: Path


def clean_env(**extra: str) -> dict[str, str]:
    """The inherited environment without any preview-proxy setting, the venv's programs first, and `extra`."""
    owned = ("STORAGE_", "CACHE_", "SERVER_", "IMGPROXY_", "UPLOAD_", "ADMIN_", "CORS_", "AWS_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(owned)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    data_path = tmp_path_factory.mktemp("readme") / "data"
    env = clean_env(DATA_PATH=str(data_path), SERVER_PORT="0", SERVER_WORKERS="1", PYTHONUNBUFFERED="1",
                    ADMIN_TOKENS=ADMIN_TOKEN, UPLOAD_TOKENS=UPLOAD_TOKEN)
    process = subprocess.Popen(SERVE.split(), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    lines: list[str] = []
    listening = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("try: "):
                listening.set()
        listening.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        # The set-up checks before it acts: seconds on a machine where `deploy/dev.sh test` already ran.
        assert listening.wait(120) and process.poll() is None, "dev.sh serve did not start:\n" + "\n".join(lines)
        base = next(line.split()[-1] for line in lines if line.startswith("preview-proxy listening on "))
        yield DevServer(process, lines, base, data_path)
    finally:
        stop_process_group(process)


def run_readme_command(command: str, run: Run, server: DevServer, workdir: Path) -> str:
    """Run `command` as a reader would type it, with the README's address swapped for the server's."""
    result = subprocess.run(["bash", "-c", command.replace(README_ADDRESS, server.base_url)],
                            cwd=REPO if run.in_repo else workdir, capture_output=True, text=True, timeout=120,
                            env=clean_env(DATA_PATH=str(server.data_path), ADMIN_TOKEN=ADMIN_TOKEN,
                                          UPLOAD_TOKEN=UPLOAD_TOKEN, SIGNING_KEYS=SIGNING_KEY))
    assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_every_command_run_here_prints_what_the_readme_says(dev_server: DevServer, tmp_path: Path) -> None:
    (tmp_path / "links.txt").write_text("sample-public/images/sample.jpg\n")  # the warm example's list
    skipped = []
    for command in [c.text for c in readme_commands(README.read_text()) if c.text in RUN_HERE]:
        run = RUN_HERE[command]
        if run.needs is not None and shutil.which(run.needs) is None:
            skipped.append(f"`{command}` ({run.needs} is not installed)")
            continue
        output = "\n".join(dev_server.lines) if command == SERVE else run_readme_command(command, run, dev_server,
                                                                                          tmp_path)
        for pattern in run.prints:
            assert re.search(pattern, output, re.MULTILINE), f"`{command}` printed no match of {pattern!r}:\n{output}"
        for name, (image_format, width) in run.images.items():
            with Image.open(tmp_path / name) as image:
                assert (image.format, image.width) == (image_format, width), f"`{command}` wrote {name} wrong"
    if skipped:
        pytest.skip("ran every other command; skipped " + ", ".join(skipped))


def test_a_preview_asked_twice_is_a_hit_the_second_time(dev_server: DevServer, tmp_path: Path) -> None:
    # The README says so right after the first URLs; a fresh size, so the first answer is a miss.
    url = dev_server.base_url + PREVIEW_PATH.replace("300:0:0", "120:0:0")
    answers = [subprocess.run(["curl", "-sI", url], capture_output=True, text=True, timeout=30, check=True).stdout
               for _ in range(2)]
    assert [re.search(r"(?m)^X-Cache: (\w+)", answer)[1] for answer in answers] == ["MISS", "HIT"]  # type: ignore[index]


def test_the_presigned_url_the_readme_prints_takes_an_upload(dev_server: DevServer, tmp_path: Path) -> None:
    # The server signs with SIGNING_KEYS of its own environment, so this one gets the key too.
    command = "preview-proxy presign PUT sample-public/uploads/b.jpg --expires 15m"
    data_path = tmp_path / "data"
    (data_path / "storage" / "sample-public").mkdir(parents=True)
    env = clean_env(DATA_PATH=str(data_path), SERVER_PORT="0", SERVER_WORKERS="1", PYTHONUNBUFFERED="1",
                    SIGNING_KEYS=SIGNING_KEY)
    server = subprocess.Popen([str(VENV_BIN / "preview-proxy"), "serve"], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert server.stdout is not None
        deadline, base = time.monotonic() + 60, ""
        while not base and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            if line.startswith("preview-proxy listening on "):
                base = line.split()[-1]
        assert base, "the server did not start"
        url = run_readme_command(command, RUN_HERE[command], DevServer(server, [], base, data_path), tmp_path).strip()
        put = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", "-",
                              url.replace(README_ADDRESS, base)], input="bytes", capture_output=True, text=True,
                             timeout=30)
        assert put.stdout == "201"
        assert (data_path / "storage" / "sample-public" / "uploads" / "b.jpg").read_text() == "bytes"
    finally:
        stop_process_group(server)

"""A real browser for tests: Debian's Chromium (/usr/bin/chromium) driven by playwright-core from npm.

playwright-core is installed into .cache/node (git-ignored, beside Azurite) on first use; it ships no
browser and downloads none, and the driver (browser_canvas.js: the canvas and fetch checks of
browser_canvas.html, or a deep-zoom view, tests/support/deep_zoom.py) starts /usr/bin/chromium itself.
Pages are served from loopback origins of their own by `page_server`, so what they load from the proxy
is cross-origin, as for a web application on another host.
"""

import functools
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
NODE_PREFIX = REPO / ".cache" / "node"
PLAYWRIGHT_CORE_VERSION = "1.65.2"
PLAYWRIGHT_CORE = NODE_PREFIX / "node_modules" / "playwright-core"
DRIVER = Path(__file__).with_name("browser_canvas.js")
PAGE = Path(__file__).with_name("browser_canvas.html")
INSTALL_SECONDS = 180.0
LAUNCH_FAILED = 3  # the driver's exit status when Chromium cannot start
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript"}


def installed_version() -> str | None:
    """The version of playwright-core in .cache/node, or None."""
    try:
        return str(json.loads((PLAYWRIGHT_CORE / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_playwright_core() -> str | None:
    """Install the pinned playwright-core into .cache/node unless it is there; None when ready, else why not.

    The same as `npm install --prefix .cache/node playwright-core@<version>` (saved to its package.json,
    so a later install there, Azurite's, keeps it). PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD is set in case a
    version ever gains an install step that fetches a browser.
    """
    if installed_version() == PLAYWRIGHT_CORE_VERSION:
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed (deploy/apt-install.sh nodejs npm)"
    NODE_PREFIX.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", "--loglevel=error",
         f"playwright-core@{PLAYWRIGHT_CORE_VERSION}"],
        env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}, capture_output=True, text=True,
        timeout=INSTALL_SECONDS, check=False)
    if result.returncode != 0 or installed_version() != PLAYWRIGHT_CORE_VERSION:
        return f"npm could not install playwright-core@{PLAYWRIGHT_CORE_VERSION}: {result.stderr.strip()[-300:]}"
    return None


def unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (bash deploy/apt-install.sh chromium)"
    if shutil.which("node") is None:
        return "node is not installed (deploy/apt-install.sh nodejs npm)"
    return ensure_playwright_core()


@dataclass(frozen=True)
class Visit:
    """A page to open and the checks its runChecks() makes (see browser_canvas.html)."""

    page: str
    checks: list[dict[str, Any]]


class LaunchFailed(Exception):
    """Chromium could not start here (the one reason a browser test skips once set up)."""


def run_visits(visits: list[Visit], timeout: float) -> list[list[dict[str, Any]]]:
    """Open each page in one headless Chromium, in order; each page's results, one per check."""
    spec = json.dumps([{"page": visit.page, "checks": visit.checks} for visit in visits])
    return list(run_driver(["visits", spec], "visits", timeout)["visits"])


def run_driver(arguments: list[str], expected: str, timeout: float) -> dict[str, Any]:
    """Run the driver (browser_canvas.js) with `arguments`: the JSON it printed last, which must hold `expected`.

    LaunchFailed when Chromium cannot start here; AssertionError, with the driver's output, on anything else.
    """
    # A process group of its own: on a timeout, Chromium's processes go with the driver.
    driver = subprocess.Popen(["node", str(DRIVER), str(PLAYWRIGHT_CORE), *arguments], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = driver.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=10)
        raise
    last_line = (stdout.strip().splitlines() or ["{}"])[-1]
    try:
        output = json.loads(last_line)
    except ValueError:
        output = {}
    if driver.returncode == LAUNCH_FAILED and "launchError" in output:
        raise LaunchFailed(output["launchError"])
    if driver.returncode != 0 or expected not in output:
        raise AssertionError(f"browser driver failed ({driver.returncode}): {stdout[-2000:]}{stderr[-2000:]}")
    return dict(output)


class _StaticPages(BaseHTTPRequestHandler):
    """Answers a GET of one of `files`' paths with that file, and of any other path with `page`."""

    def __init__(self, *args: Any, page: Path, files: Mapping[str, Path], **kwargs: Any) -> None:
        self.page, self.files = page, files
        super().__init__(*args, **kwargs)  # which answers the request

    def do_GET(self) -> None:
        path = self.files.get(self.path.split("?", 1)[0], self.page)
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES[path.suffix])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the page's results, not this server's log."""


@contextmanager
def page_server(page: Path = PAGE, files: Mapping[str, Path] | None = None) -> Iterator[str]:
    """`page` (by default the checks page) at every path but those of `files` (path -> file), on a loopback
    port of its own, for a `with` block: yields its origin."""
    handler = functools.partial(_StaticPages, page=page, files=files or {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

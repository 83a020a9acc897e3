"""A real browser for tests: Debian's Chromium (/usr/bin/chromium) driven by playwright-core from npm.

playwright-core is installed into .cache/node (git-ignored, beside Azurite) on first use; it ships no
browser and downloads none, and the driver (browser_canvas.js) starts /usr/bin/chromium itself. Pages
are served from loopback origins of their own by `PageServer`, so what they load from the proxy is
cross-origin, as for a web application on another host.
"""

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
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
    # A process group of its own: on a timeout, Chromium's processes go with the driver.
    driver = subprocess.Popen(["node", str(DRIVER), str(PLAYWRIGHT_CORE), spec], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = driver.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=10)
        raise
    result = subprocess.CompletedProcess(driver.args, driver.returncode, stdout, stderr)
    last_line = (result.stdout.strip().splitlines() or ["{}"])[-1]
    try:
        output = json.loads(last_line)
    except ValueError:
        output = {}
    if result.returncode == LAUNCH_FAILED and "launchError" in output:
        raise LaunchFailed(output["launchError"])
    if result.returncode != 0 or "visits" not in output:
        raise AssertionError(f"browser driver failed ({result.returncode}): {result.stdout[-2000:]}"
                             f"{result.stderr[-2000:]}")
    return list(output["visits"])


class _PageHandler(BaseHTTPRequestHandler):
    """Answers every GET with the checks page."""

    def do_GET(self) -> None:
        body = PAGE.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the results, not the page server's log."""


@contextmanager
def page_server() -> Iterator[str]:
    """The checks page on a loopback port of its own, for a `with` block: yields its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

"""OpenSeadragon, the deep-zoom viewer, in Debian's Chromium (as tests/support/browser.py drives it).

OpenSeadragon comes from npm into .cache/node, beside Azurite and playwright-core (deploy/dev.sh setup
installs it, or `ensure_openseadragon` on first use). `viewer_pages` serves deep_zoom.html and the
viewer's script from a loopback origin of their own, so every IIIF request the viewer makes is
cross-origin, as from a repository's page; `open_deep_zoom` opens one view and screenshots it.
"""

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.browser import LAUNCH_FAILED, NODE_PREFIX, PLAYWRIGHT_CORE, LaunchFailed

OPENSEADRAGON_VERSION = "6.1.1"  # the same pin as deploy/dev.sh's OPENSEADRAGON_VERSION
OPENSEADRAGON = NODE_PREFIX / "node_modules" / "openseadragon"
SCRIPT = OPENSEADRAGON / "build" / "openseadragon" / "openseadragon.min.js"
PAGE = Path(__file__).with_name("deep_zoom.html")
DRIVER = Path(__file__).with_name("deep_zoom.js")
INSTALL_SECONDS = 180.0


def ensure_openseadragon() -> str | None:
    """Install the pinned OpenSeadragon into .cache/node unless it is there; None when ready, else why not."""
    try:
        if json.loads((OPENSEADRAGON / "package.json").read_text())["version"] == OPENSEADRAGON_VERSION:
            return None
    except (OSError, ValueError, KeyError):
        pass
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed (deploy/apt-install.sh nodejs npm)"
    result = subprocess.run(
        [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", "--loglevel=error",
         f"openseadragon@{OPENSEADRAGON_VERSION}"], capture_output=True, text=True, timeout=INSTALL_SECONDS,
        check=False)
    if result.returncode != 0 or not SCRIPT.exists():
        return f"npm could not install openseadragon@{OPENSEADRAGON_VERSION}: {result.stderr.strip()[-300:]}"
    return None


class _Pages(BaseHTTPRequestHandler):
    """The viewer page at every path but the script's."""

    def do_GET(self) -> None:
        is_script = self.path.split("?", 1)[0] == "/openseadragon.min.js"
        body = (SCRIPT if is_script else PAGE).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript" if is_script else "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the viewer's state, not this server's log."""


@contextmanager
def viewer_pages() -> Iterator[str]:
    """The viewer page on a loopback port of its own, for a `with` block: yields its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def open_deep_zoom(page_url: str, screenshot: Path, timeout: float) -> dict[str, Any]:
    """Open the view, wait for all its tiles, screenshot the viewer to `screenshot`; the page's state
    (`done`, `error`, the loaded tiles' URLs, the view's `bounds` in image pixels)."""
    driver = subprocess.Popen(["node", str(DRIVER), str(PLAYWRIGHT_CORE), page_url, str(screenshot)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = driver.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(driver.pid, signal.SIGKILL)  # Chromium's processes go with the driver
        driver.communicate(timeout=10)
        raise
    last_line = (stdout.strip().splitlines() or ["{}"])[-1]
    try:
        state = json.loads(last_line)
    except ValueError:
        state = {}
    if driver.returncode == LAUNCH_FAILED and "launchError" in state:
        raise LaunchFailed(state["launchError"])
    if driver.returncode != 0 or "done" not in state:
        raise AssertionError(f"deep-zoom driver failed ({driver.returncode}): {stdout[-2000:]}{stderr[-2000:]}")
    return dict(state)

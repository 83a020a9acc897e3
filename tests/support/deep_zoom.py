"""OpenSeadragon, the deep-zoom viewer, in Debian's Chromium (driven as tests/support/browser.py drives it).

OpenSeadragon comes from npm into .cache/node, beside Azurite and playwright-core (deploy/dev.sh setup
installs it, or `ensure_openseadragon` on first use). `viewer_pages` serves deep_zoom.html and the
viewer's script from a loopback origin of their own (browser.py's page server), so every IIIF request
the viewer makes is cross-origin, as from a repository's page; `open_deep_zoom` opens one view and
screenshots it (browser_canvas.js's deep-zoom mode).
"""

import json
import shutil
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tests.support.browser import NODE_PREFIX, page_server, run_driver

OPENSEADRAGON_VERSION = "6.1.1"  # the same pin as deploy/dev.sh's OPENSEADRAGON_VERSION
OPENSEADRAGON = NODE_PREFIX / "node_modules" / "openseadragon"
SCRIPT = OPENSEADRAGON / "build" / "openseadragon" / "openseadragon.min.js"
PAGE = Path(__file__).with_name("deep_zoom.html")
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


def viewer_pages() -> AbstractContextManager[str]:
    """The viewer page (and OpenSeadragon's script beside it) on a loopback port of its own: yields its origin."""
    return page_server(PAGE, {"/openseadragon.min.js": SCRIPT})


def open_deep_zoom(page_url: str, screenshot: Path, timeout: float) -> dict[str, Any]:
    """Open the view, wait for all its tiles, screenshot the viewer to `screenshot`; the page's state
    (`done`, `error`, the loaded tiles' URLs, the view's `bounds` in image pixels)."""
    return run_driver(["deep-zoom", page_url, str(screenshot)], "done", timeout)

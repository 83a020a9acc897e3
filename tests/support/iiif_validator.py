"""The official IIIF Image API validator (`iiif-validator` from PyPI, IIIF's own image-validator), run
against a live server.

It needs plain Pillow, which would replace pillow-simd (both install the `PIL` package), so it lives in
a virtual environment of its own, .cache/iiif-validator (git-ignored, beside Azurite's .cache/node),
made by deploy/dev.sh setup or here on first use. Its `iiif-validate.py` runs every test of a version up
to a compliance level and prints PASS or FAIL with the validator's message for each. Its test image is
the validator's colour table (ValidationInfo.colorInfo): a 1000 x 1000 grid of 100 px squares, read
from the installed validator and drawn here.
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent.parent
VENV = REPO / ".cache" / "iiif-validator"
VERSION = "1.0.5"  # the same pin as deploy/dev.sh's IIIF_VALIDATOR_VERSION
PYTHON = VENV / "bin" / "python"
SCRIPT = VENV / "bin" / "iiif-validate.py"
IDENTIFIER = "67352ccc-d1b0-11e1-89ae-279075081939"  # the validator's own image's name
INSTALL_SECONDS = 300.0
SQUARE = 100
_RESULT = re.compile(r"\[\d+\] test (\S+) (PASS|FAIL)")


def installed_version() -> str | None:
    """The validator's version in .cache/iiif-validator, or None."""
    if not PYTHON.exists():
        return None
    result = subprocess.run([str(PYTHON), "-m", "pip", "show", "iiif-validator"], capture_output=True, text=True,
                            timeout=60, check=False)
    found = re.search(r"^Version: (\S+)", result.stdout, re.MULTILINE)
    return found.group(1) if found else None


def ensure_validator() -> str | None:
    """Install the pinned validator into its own environment unless it is there; None when ready, else why not."""
    if SCRIPT.exists() and installed_version() == VERSION:
        return None
    if not PYTHON.exists():
        made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(VENV)], capture_output=True,
                              text=True, timeout=INSTALL_SECONDS, check=False)
        if made.returncode != 0:
            return f"could not make {VENV}: {made.stderr.strip()[-300:]}"
        subprocess.run([str(PYTHON), "-m", "ensurepip", "-q"], capture_output=True, timeout=INSTALL_SECONDS,
                       check=False)
    result = subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", f"iiif-validator=={VERSION}"],
                            capture_output=True, text=True, timeout=INSTALL_SECONDS, check=False)
    if result.returncode != 0 or not SCRIPT.exists():
        return f"pip could not install iiif-validator=={VERSION}: {result.stderr.strip()[-300:]}"
    return None


def validator_image() -> Image.Image:
    """The validator's test image, drawn from its own colour table (colorInfo[x][y] is column x, row y)."""
    program = ("from iiif_validator.validator import ValidationInfo; import json; "
               "print(json.dumps(ValidationInfo().colorInfo))")
    printed = subprocess.run([str(PYTHON), "-c", program], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    table = json.loads(printed.strip().splitlines()[-1])  # the last line: one of its modules prints on import
    image = Image.new("RGB", (len(table) * SQUARE, len(table[0]) * SQUARE))
    draw = ImageDraw.Draw(image)
    for x, column in enumerate(table):
        for y, colour in enumerate(column):
            draw.rectangle((x * SQUARE, y * SQUARE, (x + 1) * SQUARE - 1, (y + 1) * SQUARE - 1), fill=tuple(colour))
    return image


@dataclass(frozen=True)
class Report:
    """One run: the tests that passed, and each failure with the validator's message."""

    passed: list[str]
    failed: dict[str, str]
    output: str


def validate(server: str, prefix: str, identifier: str, version: str, level: int, timeout: float) -> Report:
    """Run every test of `version` up to `level` against `server` (host:port) under `prefix`."""
    result = subprocess.run(
        [str(PYTHON), str(SCRIPT), "--server", server, "--prefix", prefix, "--identifier", identifier,
         "--version", version, "--level", str(level)],
        capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, "PYTHONPATH": ""})
    output = result.stdout + result.stderr
    passed: list[str] = []
    failed: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        found = _RESULT.search(line)
        if found:
            current = found.group(1)
            (passed.append(current) if found.group(2) == "PASS" else failed.setdefault(current, ""))
        elif current in failed and line.strip():
            failed[current] += line.strip() + " "
    return Report(passed, failed, output)

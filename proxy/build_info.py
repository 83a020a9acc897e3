"""What this build is: preview-proxy's version, pillow-simd's, and the SIMD level pillow-simd was built for.

Read from package metadata and the build's stamp, never by importing PIL: code built for a level this
CPU lacks would stop the process at the first instruction (deploy/docker/entrypoint.sh checks that).
"""

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NamedTuple

# The level the container image records (deploy/docker/Dockerfile), then the one deploy/build/pillow-simd.sh
# stamps into the virtualenv it built (`<version> <level>`).
SIMD_FILES = (Path("/etc/preview-proxy/simd"), Path(sys.prefix) / ".pillow-simd-build")
UNKNOWN = "unknown"


class BuildInfo(NamedTuple):
    """Versions and the SIMD level, `unknown` where there is no record."""

    version: str
    pillow_simd: str
    simd: str

    def line(self) -> str:
        """`preview-proxy 0.1.0 (pillow-simd 12.1.1.post0, avx2)`, as `--version` prints it."""
        return f"preview-proxy {self.version} (pillow-simd {self.pillow_simd}, SIMD {self.simd})"


def build_info() -> BuildInfo:
    """This process's build, from the installed distributions and the SIMD stamp."""
    return BuildInfo(_version("preview-proxy"), _version("pillow-simd"), _simd_level())


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return UNKNOWN


def _simd_level() -> str:
    for path in SIMD_FILES:
        try:
            words = path.read_text(encoding="utf-8").split()
        except (OSError, UnicodeDecodeError):
            continue
        if words:
            return words[-1]  # the image's file holds the level alone; the stamp ends with it
    return UNKNOWN

"""What the server was built from, for `preview_proxy_build_info`: its version and its pillow-simd build.

pillow-simd's speed depends on the SIMD level it was compiled for (AVX2 or SSE4), which no Python
interface tells; the build records it beside the interpreter: deploy/dev.sh in the environment
(`.pillow-simd-build`: version and level), the container image in /etc/preview-proxy/simd.
"""

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

BUILD_LABELS = ("version", "pillow_simd", "simd")
UNKNOWN = "unknown"
# Where a build wrote its SIMD level: the container image's file, then the environment's stamp.
IMAGE_STAMP = Path("/etc/preview-proxy/simd")
ENVIRONMENT_STAMP = ".pillow-simd-build"


def build_labels() -> dict[str, str]:
    """The labels of build_info: this package's version, pillow-simd's ("" without it) and the SIMD level."""
    return {"version": _version("preview-proxy") or UNKNOWN, "pillow_simd": _version("pillow-simd"),
            "simd": _simd_level()}


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


def _simd_level() -> str:
    """avx2 or sse4 as the build recorded it, or "unknown"."""
    for stamp, field in ((IMAGE_STAMP, 0), (Path(sys.prefix) / ENVIRONMENT_STAMP, 1)):
        try:
            words = stamp.read_text().split()
        except OSError:
            continue
        if len(words) > field:
            return words[field]
    return UNKNOWN

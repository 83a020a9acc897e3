"""The environment deploy/dev.sh builds: pillow-simd, built for this CPU, and never plain pillow."""

import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import PIL
import PIL._imaging
import pytest

from tests.conftest import REPO


def test_plain_pillow_is_not_installed():
    with pytest.raises(PackageNotFoundError):
        distribution("pillow")


def test_pil_is_pillow_simds():
    simd = distribution("pillow-simd")
    assert PIL.__version__ == simd.version
    assert any(str(file).startswith("PIL/_imaging") for file in simd.files or [])


def _cpu_has_avx2() -> bool:
    return " avx2" in Path("/proc/cpuinfo").read_text()


@pytest.mark.skipif(not _cpu_has_avx2(), reason="this CPU has no AVX2; the SSE build is the right one")
def test_pillow_simd_was_built_with_avx2_here():
    stamp = (REPO / ".venv" / ".pillow-simd-build").read_text().split()
    assert stamp == [distribution("pillow-simd").version, "avx2"]
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    listing = subprocess.run([objdump, "-d", PIL._imaging.__file__], capture_output=True, text=True,
                             timeout=120, check=True).stdout
    # AVX2 code works on 256-bit ymm registers; an SSE-only build has none.
    assert listing.count("%ymm") > 1000


def test_processes_load_pyav_and_the_app_only_when_they_need_them():
    # Each worker process pays for what it imports (PyAV alone is about 24 MiB of resident memory), and
    # the supervisor runs no app at all; W4 of the peers benchmark sums every process's peak RSS.
    probe = ("import sys, proxy.app, proxy.runtime.supervisor; "
             "print(sorted(m for m in ('av', 'proxy.runtime.server') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr

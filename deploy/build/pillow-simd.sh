#!/usr/bin/env bash
# pillow-simd from source into a virtualenv, for one SIMD level. The one build recipe for both the
# developer's .venv (deploy/dev.sh setup) and the container image's build stage (deploy/docker/Dockerfile),
# so what `.ci/run` exercises is what the image runs.
#
#   bash deploy/build/pillow-simd.sh [--check] PYTHON [avx2|sse4|auto]
#
#   PYTHON   the virtualenv's interpreter (its venv is the folder above bin/)
#   level    avx2 (CC="cc -mavx2") or sse4 (pillow-simd's default build); auto, the default, picks avx2
#            when this CPU has it, else sse4
#   --check  build nothing: exit 0 if this version and level are in place already, 1 if they are not
#
# The version is pyproject.toml's pin. The build is recorded in <venv>/.pillow-simd-build as
# "<version> <level>"; a build for another version or level is never reused, and pip's wheel cache is
# bypassed for the same reason (its key is the sdist, not the compiler flags).
set -euo pipefail

log() { printf 'pillow-simd.sh: %s\n' "$*" >&2; }
usage() { echo "usage: bash deploy/build/pillow-simd.sh [--check] PYTHON [avx2|sse4|auto]" >&2; exit 2; }

check_only=false
if [ "${1:-}" = "--check" ]; then check_only=true; shift; fi
[ $# -ge 1 ] && [ $# -le 2 ] || usage
python=$1
level=${2:-auto}
pyproject="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/pyproject.toml"
stamp="$(dirname "$(dirname "$python")")/.pillow-simd-build"

# The CPU flags each level's code uses (-msse4 is SSE4.1 and 4.2; -mavx2 adds AVX and AVX2). The same
# table is in deploy/docker/entrypoint.sh, which refuses to start an image on a CPU that lacks them.
required_flags() {
  case "$1" in
    sse4) echo "sse4_1 sse4_2" ;;
    avx2) echo "sse4_1 sse4_2 avx avx2" ;;
  esac
}
cpu_has() {
  local flag flags
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  for flag in $(required_flags "$1"); do
    case "$flags" in *" $flag "*) ;; *) return 1 ;; esac
  done
}

case "$level" in
  auto) if cpu_has avx2; then level=avx2; else level=sse4; fi ;;
  avx2 | sse4) ;;
  *) log "unknown SIMD level '$level' (expected avx2, sse4 or auto)"; exit 2 ;;
esac
case "$level" in avx2) cc="cc -mavx2" ;; *) cc="cc" ;; esac

version=$("$python" - "$pyproject" <<'PY'
import sys
import tomllib

dependencies = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print(next(d.split("==")[1] for d in dependencies if d.startswith("pillow-simd==")))
PY
)

# In place: the stamp says this version and level, and that version is what the venv has installed
# (read from its metadata: importing PIL would run code built for a level this CPU may lack).
installed=$("$python" -c 'from importlib.metadata import version; print(version("pillow-simd"))' 2>/dev/null || true)
if [ "$(cat "$stamp" 2>/dev/null)" = "$version $level" ] && [ "$installed" = "$version" ]; then
  log "pillow-simd $version for $level is already built in $(dirname "$stamp")"
  exit 0
fi
if $check_only; then
  log "pillow-simd $version for $level is not built in $(dirname "$stamp") (found: ${installed:-none}, stamp: $(cat "$stamp" 2>/dev/null || echo none))"
  exit 1
fi

log "building pillow-simd $version for $level (CC=\"$cc\"); this takes a few minutes once"
"$python" -m pip uninstall -q -y pillow pillow-simd >/dev/null 2>&1 || true
CC="$cc" "$python" -m pip install -q --no-cache-dir --no-binary pillow-simd "pillow-simd==$version"
# A build host without the level's instructions (an image for AVX2 built on an older CPU) can build
# the code but not run it, so the import check runs only where it can.
if cpu_has "$level"; then
  "$python" -c 'import PIL.Image, PIL._imaging'
else
  log "not imported: this CPU lacks the $level instructions it was built for"
fi
echo "$version $level" >"$stamp"

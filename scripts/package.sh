#!/usr/bin/env bash
# Builds the Debian packages of caja-hub and caja-node (cargo-deb; metadata in
# hub/Cargo.toml and node/Cargo.toml, units and maintainer scripts in
# packaging/). docs/operations.md installs them.
#
#   scripts/package.sh                     release build, then both .deb in target/debian/
#   scripts/package.sh --out DIR           … into DIR
#   scripts/package.sh --no-build --profile dev --out DIR
#                                          package binaries already built (the
#                                          packaging test: CI's debug build, no
#                                          release build in CI)
#   scripts/package.sh --ensure-tool       only install the pinned cargo-deb if missing
#
# cargo-deb is installed with `cargo install --locked` at the pinned version
# when it is missing or another version.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0

ensure_tool() {
  if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "scripts/package.sh: installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
  fi
}

profile=release
build=1
out=target/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --ensure-tool) ensure_tool; exit 0 ;;
    --no-build) build=0 ;;
    --profile) profile="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "scripts/package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

ensure_tool
if [ "$build" -eq 1 ]; then
  # Without -p tests/bench: no test-only feature reaches the binaries.
  cargo build --locked --profile "$profile" -p caja-hub -p caja-node --bins
fi
mkdir -p "$out"
for pkg in caja-hub caja-node; do
  # --fast: gzip-speed xz; --no-build: the binaries of the step above (or
  # of the caller); `target/release/` in the assets follows --profile.
  cargo deb --quiet --locked --no-build --fast --profile "$profile" -p "$pkg" -o "$out"
done
ls -1 "$out"/*.deb

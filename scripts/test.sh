#!/usr/bin/env bash
# The test command of README.md (and of .ci/run): installs what the tests need
# beyond cargo when it is missing, then runs every test of the workspace.
#
# - Chromium + chromedriver (browser tests of the cashier screen and the
#   dashboard), from the distribution's packages.
# - PostgreSQL server binaries (hub-on-PostgreSQL tests start their own
#   throwaway server in a temp dir, as a non-root user).
# - xmllint, xmlsec1 and openssl: the independent checks of e-CF documents
#   (schema validity against DGII's XSDs, XMLDSig signatures) and the
#   throwaway certification authority the tests make.
# - python3: the independent verifier of audit exports
#   (hub/tests/independent/verify_audit_export.py, standard library only).
# - systemd-analyze (Debian: systemd) and cargo-deb (pinned in
#   scripts/package.sh, `cargo install --locked` once): the packaging test
#   (tests/tests/packages.rs) builds the .deb from the debug binaries and
#   verifies their units.
#
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p caja-hub`).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
pg_bin=""
for d in /usr/lib/postgresql/*/bin; do
  if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then pg_bin="$d"; fi
done
[ -n "$pg_bin" ] || need_apt+=(postgresql)
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
command -v xmlsec1 >/dev/null 2>&1 || need_apt+=(xmlsec1)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v dpkg-deb >/dev/null 2>&1 || need_apt+=(dpkg)

if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "scripts/test.sh: installing ${need_apt[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then pg_bin="$d"; fi
  done
fi

scripts/package.sh --ensure-tool

# The tests find these; with CAJA_REQUIRE_EXTERNAL=1 a test that needs one and
# cannot find it fails instead of being skipped.
export CAJA_CHROMIUM="${CAJA_CHROMIUM:-$(command -v chromium)}"
export CAJA_CHROMEDRIVER="${CAJA_CHROMEDRIVER:-$(command -v chromedriver)}"
export CAJA_PG_BIN="${CAJA_PG_BIN:-$pg_bin}"
export CAJA_REQUIRE_EXTERNAL=1

exec cargo test --workspace --locked "$@"

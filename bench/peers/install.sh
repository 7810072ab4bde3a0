#!/bin/sh
# Installs the PouchDB baseline of `caja-bench sync-backlog` (pouchdb and
# pouchdb-server, versions pinned in package.json and package-lock.json) from
# the npm registry into bench/peers/node_modules, with the machine's Node.js.
# node_modules is not committed. Safe to run again: `npm ci` starts clean.
set -eu
cd "$(dirname "$0")"
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install.sh: $tool not found; the PouchDB baseline needs Node.js >= 18 and npm" >&2
        exit 1
    fi
done
echo "install.sh: node $(node --version), npm $(npm --version 2>/dev/null)"
if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
else
    npm install --no-audit --no-fund --loglevel=error
fi
# The check replicate.js relies on: both packages load.
node -e 'require("pouchdb"); require.resolve("pouchdb-server/bin/pouchdb-server"); console.log("install.sh: pouchdb", require("pouchdb/package.json").version, "and pouchdb-server", require("pouchdb-server/package.json").version, "installed")'

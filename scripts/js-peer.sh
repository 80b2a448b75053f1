#!/usr/bin/env bash
# Installs JavaScript's Event Hubs consumer and blob checkpoint store, at the versions pinned in
# tools/js-peer/package.json (locked by its package-lock.json), into tools/js-peer/node_modules
# (once; again when the lock changes), and prints that directory. Needs node and npm, which
# Azurite needs too; fails loudly without them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=tools/js-peer
command -v node >/dev/null || { echo "js-peer.sh: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "js-peer.sh: npm is not installed" >&2; exit 1; }
if [[ ! -f $dir/node_modules/.pins || "$(cat $dir/node_modules/.pins)" != "$(cat $dir/package-lock.json)" ]]; then
  echo "js-peer.sh: installing $dir/package.json into $dir/node_modules (once: seconds)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) \
    || { echo "js-peer.sh: npm ci failed in $dir" >&2; exit 1; }
  cp "$dir/package-lock.json" "$dir/node_modules/.pins"
fi
echo "$PWD/$dir"

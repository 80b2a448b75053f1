#!/usr/bin/env bash
# Installs Python's Event Hubs processor and blob checkpoint store, at the versions pinned in
# tools/python-peer/requirements.txt, into tools/python-peer/.venv (once; again when the pins
# change), and prints the venv's python. Needs python3 with venv; fails loudly without it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=tools/python-peer
venv=$dir/.venv
command -v python3 >/dev/null || { echo "python-peer.sh: python3 is not installed" >&2; exit 1; }
if [[ ! -x $venv/bin/python || ! -f $venv/.pins || "$(cat $venv/.pins)" != "$(cat $dir/requirements.txt)" ]]; then
  echo "python-peer.sh: installing $dir/requirements.txt into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$dir/requirements.txt" >&2
  cp "$dir/requirements.txt" "$venv/.pins"
fi
echo "$PWD/$venv/bin/python"

#!/usr/bin/env bash
# The public API (every feature), as cargo-public-api prints it from nightly rustdoc JSON,
# against the snapshot api/public-api.txt: a change to the API shows in review as a diff of that
# file, and this fails until the snapshot is updated (`scripts/api-check.sh --update`) and the
# change is in the CHANGELOG. Installs the pinned cargo-public-api (minutes, once) and a
# nightly toolchain when missing, so it is a script of its own, not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tool_version=0.52.0
if [[ "$(cargo public-api --version 2>/dev/null)" != *"$tool_version"* ]]; then
  echo "api-check.sh: installing cargo-public-api $tool_version (once: a few minutes)" >&2
  cargo install cargo-public-api --version "$tool_version" --locked --quiet
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "api-check.sh: installing a nightly toolchain for rustdoc JSON (once)" >&2
  rustup toolchain install nightly --profile minimal >/dev/null
fi
current=target/public-api.txt
# -s: blanket impls left out (they follow from the rest).
cargo public-api -p eventhub-checkpointstore --all-features -s 2>/dev/null >"$current"
if [[ "${1:-}" == "--update" ]]; then
  cp "$current" api/public-api.txt
  echo "api-check.sh: api/public-api.txt updated ($(wc -l <"$current") lines); say what changed in the CHANGELOG" >&2
  exit 0
fi
if ! diff -u api/public-api.txt "$current"; then
  echo "api-check.sh: the public API changed (above). If that is intended: scripts/api-check.sh --update, and a CHANGELOG line" >&2
  exit 1
fi
echo "api-check.sh: the public API matches api/public-api.txt" >&2

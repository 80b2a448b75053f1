#!/usr/bin/env bash
# What a `cargo add` user gets, checked: packages the crate as `cargo publish` would (the files
# Cargo.toml's `include` names), builds the packaged library with every feature, then builds the
# packaged examples against the package alone (no workspace, no dev-only testkit). Shares the
# workspace's target directory, so only what changed is compiled; then removes this crate's own
# artifacts from it (below).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# Tests and benches are left out of the package on purpose: cargo's notes about them are noise.
cargo publish --dry-run --allow-dirty --all-features --quiet 2>&1 \
  | { grep -v -e '^warning: ignoring \(test\|benchmark\|example\) ' -e '^warning: aborting upload due to dry run' || true; }
package="target/package/eventhub-checkpointstore-$version"
[[ -f "$package/Cargo.toml" ]] || { echo "package-check.sh: $package was not unpacked" >&2; exit 1; }
CARGO_TARGET_DIR="$PWD/target" cargo build --quiet --all-features --examples --manifest-path "$package/Cargo.toml"
# The packaged copy compiles to the same artifact names as the workspace's crate, and cargo then
# took the workspace's crate for up to date: edits made after this script went unbuilt (tests ran
# old code). Removing them makes the next build compile the workspace's own sources.
cargo clean --quiet -p eventhub-checkpointstore
echo "package-check.sh: the package ($(find "$package" -type f -not -path '*/target/*' | wc -l) files) builds with every feature, and so do its examples" >&2

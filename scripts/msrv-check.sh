#!/usr/bin/env bash
# The declared minimum Rust (Cargo.toml's rust-version) builds the packaged crate with every
# feature, as a dependent on that Rust gets it: dependencies resolved for that Rust (Cargo's
# MSRV-aware resolver, the default for edition 2024 projects), in a copy of the package made by
# scripts/package-check.sh. Installs the toolchain with rustup when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
package="target/package/eventhub-checkpointstore-$version"
[[ -f "$package/Cargo.toml" ]] || { echo "msrv-check.sh: run scripts/package-check.sh first" >&2; exit 1; }
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
  echo "msrv-check.sh: installing Rust $msrv (once: about a minute)" >&2
  rustup toolchain install "$msrv" --profile minimal >/dev/null
fi
work="target/msrv/package"
rm -rf "$work" && mkdir -p "$work" && cp -r "$package/." "$work/"
rm -rf "$work/target"
# Its own workspace: a dependent's view, not a member of this one.
printf '\n[workspace]\n' >> "$work/Cargo.toml"
(cd "$work" && CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo "+$msrv" update --quiet)
CARGO_TARGET_DIR="$PWD/target/msrv" cargo "+$msrv" check --quiet --all-features --lib --bins \
  --manifest-path "$work/Cargo.toml"
echo "msrv-check.sh: the package builds with Rust $msrv and every feature" >&2

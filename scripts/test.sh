#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting and lints, then unit, integration and doc tests
# (all features) against a fresh Azurite that this script installs, starts and stops, then the
# demo, whose summary checks exit non-zero on failure, and the Entra ID example (always against
# their own Azurite). Python's Event Hubs processor is installed into a venv for the mixed-fleet
# test.
# Extra arguments go to `cargo test` (e.g. a test name filter) and skip the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/system-deps.sh
# Python's processor and blob store, pinned, for the mixed-fleet test (tests/python_peer.rs).
PYTHON_PEER=$(scripts/python-peer.sh)
export PYTHON_PEER
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
# The docs as docs.rs builds them (all features), with broken links and bad markup as errors.
RUSTDOCFLAGS="-D warnings" cargo doc --all-features --no-deps --quiet
# Build first so Azurite is not left waiting on the compiler.
cargo test --workspace --all-features --no-run --quiet
scripts/azurite.sh run -- cargo test --workspace --all-features "$@"
if [[ $# -eq 0 ]]; then
  # The demo, then the Entra ID example over HTTPS against the OAuth Azurite.
  scripts/azurite.sh run -- bash -c \
    'cargo run --all-features --quiet --example demo && cargo run --all-features --quiet --example entra_id'
fi

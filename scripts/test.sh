#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting and lints, the package as published (every
# feature, each feature alone, the minimum Rust), then unit, integration and doc tests
# (all features) against a fresh Azurite and a fresh local Event Hubs endpoint that this script
# installs, starts and stops, then the demo, whose summary checks exit non-zero on failure, the
# two processor examples, and the Entra ID example (always against their own Azurite).
# Python's Event Hubs client, processor and blob store are installed into a venv, and
# JavaScript's into tools/js-peer/node_modules, for the mixed-fleet and interoperability tests.
# Extra arguments go to `cargo test` (e.g. a test name filter) and skip the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/system-deps.sh
# Python's and JavaScript's consumers and blob stores, pinned, for the mixed fleets
# (tests/processor.rs, tests/python_peer.rs) and the store-level tests (tests/js_peer.rs).
PYTHON_PEER=$(scripts/python-peer.sh)
export PYTHON_PEER
JS_PEER=$(scripts/js-peer.sh)
export JS_PEER
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
# The docs as docs.rs builds them (all features), with broken links and bad markup as errors.
RUSTDOCFLAGS="-D warnings" cargo doc --all-features --no-deps --quiet
# What -D warnings lets through: links into other crates that did not resolve.
scripts/doc-links.py
# What a `cargo add` user gets: the package (its files, built with every feature, its examples
# without the workspace), each feature alone, and the declared minimum Rust. The package first:
# it leaves the workspace's crate to be compiled again (see the script).
scripts/package-check.sh
# Build first so Azurite is not left waiting on the compiler.
cargo test --workspace --all-features --no-run --quiet
scripts/feature-check.sh
scripts/msrv-check.sh
scripts/deps-check.py
scripts/eventhubs.sh install
scripts/azurite.sh run -- scripts/eventhubs.sh run -- cargo test --workspace --all-features "$@"
if [[ $# -eq 0 ]]; then
  # The demo, the processor examples (this crate's, then the official one resuming after its
  # checkpoints), the Prometheus example, the README's and usage page's snippets that run until
  # Ctrl-C (until they printed what they should, then interrupted), then the Entra ID example
  # over HTTPS against the OAuth Azurite.
  cargo build --all-features --quiet --examples
  scripts/azurite.sh run -- scripts/eventhubs.sh run --hub telemetry=4:0:20:200 -- bash -c \
    'cargo run --all-features --quiet --example demo &&
     cargo run --all-features --quiet --example processor &&
     cargo run --all-features --quiet --example official_processor &&
     cargo run --all-features --quiet --example prometheus >/dev/null &&
     scripts/run-snippet.sh readme_processor "^0: Some\\(199\\)$" "^1: Some\\(199\\)$" "^2: Some\\(199\\)$" "^3: Some\\(199\\)$" &&
     scripts/run-snippet.sh usage_balancer "^after this cycle: " &&
     cargo run --all-features --quiet --example entra_id'
fi

#!/usr/bin/env bash
# Runs the demo (examples/demo.rs) against the local Event Hubs endpoint, which this script
# builds, starts and stops (scripts/eventhubs.sh). Uses AZURE_STORAGE_CONNECTION_STRING when it
# is set; otherwise installs and starts Azurite for the run and stops it afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A word only on a first run, when the build takes minutes; later runs start in seconds.
if [[ ! -x target/debug/examples/demo ]]; then
  echo "demo.sh: first run: building the demo and the local Event Hubs endpoint and installing Azurite, about 7 minutes on 2 cores (later runs start in seconds); the demo itself takes about 30 seconds" >&2
fi
cargo build --quiet --features metrics --example demo
scripts/eventhubs.sh install
if [[ -n "${AZURE_STORAGE_CONNECTION_STRING:-}" ]]; then
  exec scripts/eventhubs.sh run -- cargo run --quiet --features metrics --example demo -- "$@"
fi
exec scripts/azurite.sh run -- scripts/eventhubs.sh run -- cargo run --quiet --features metrics --example demo -- "$@"

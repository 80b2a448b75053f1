#!/usr/bin/env bash
# Runs the demo (examples/demo.rs) against the local Event Hubs endpoint, which this script
# builds, starts and stops (scripts/eventhubs.sh). Uses AZURE_STORAGE_CONNECTION_STRING when it
# is set; otherwise installs and starts Azurite for the run and stops it afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --quiet --features metrics --example demo
scripts/eventhubs.sh install
if [[ -n "${AZURE_STORAGE_CONNECTION_STRING:-}" ]]; then
  exec scripts/eventhubs.sh run -- cargo run --quiet --features metrics --example demo -- "$@"
fi
exec scripts/azurite.sh run -- scripts/eventhubs.sh run -- cargo run --quiet --features metrics --example demo -- "$@"

#!/usr/bin/env bash
# The library (and the CLI) as a dependent builds it with each feature alone, with none, and with
# the CLI's combination: `cargo check`, failing on any warning (a feature that leaves code unused,
# an item behind the wrong `cfg`). Each feature set is checked once; shared dependencies are not.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

status=0
for features in "" eventhubs blocking table conformance metrics cli "cli,eventhubs"; do
  out=$(cargo check --quiet -p eventhub-checkpointstore --no-default-features \
    ${features:+--features "$features"} --lib --bins --message-format short 2>&1) || status=1
  if [[ -n "$out" ]]; then
    echo "feature-check.sh: with features [$features]:" >&2
    echo "$out" >&2
    status=1
  fi
done
exit "$status"

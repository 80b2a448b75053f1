#!/usr/bin/env bash
# The benchmarks against a fresh Azurite (and, for the processor bench, a fresh local Event Hubs
# endpoint):
#
#   scripts/bench.sh              benches/store_vs_ceiling.rs: the store/ceiling table and the
#                                 claim-concurrency sweep (BENCH_REPS sets the repetitions,
#                                 default 5)
#   scripts/bench.sh processor    benches/processor.rs: two official processors on real events,
#                                 events/s and storage requests per 1,000 events
#   scripts/bench.sh metrics      benches/metrics.rs: the store with and without a metrics
#                                 recorder installed
#   scripts/bench.sh fleet        benches/fleet.rs: K balancers over N partitions, time to fair
#                                 share and requests in steady state (FLEET_ROWS=NxK,... picks rows;
#                                 FLEET_STRATEGIES=greedy or balanced picks one strategy;
#                                 FLEET_PYTHON=NxK,... adds Python's load balancer as reference)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A backtrace per discarded SDK error would be measured too; production runs without it.
unset RUST_BACKTRACE
if [[ "${1:-}" == "processor" ]]; then
  shift
  cargo bench --features eventhubs --bench processor --no-run --quiet
  scripts/eventhubs.sh install
  exec scripts/azurite.sh run -- scripts/eventhubs.sh run -- \
    cargo bench --quiet --features eventhubs --bench processor "$@"
fi
if [[ "${1:-}" == "metrics" ]]; then
  shift
  cargo bench --features metrics --bench metrics --no-run --quiet
  exec scripts/azurite.sh run -- cargo bench --quiet --features metrics --bench metrics "$@"
fi
if [[ "${1:-}" == "fleet" ]]; then
  shift
  if [[ -n "${FLEET_PYTHON:-}" ]]; then
    PYTHON_PEER=$(scripts/python-peer.sh)
    export PYTHON_PEER
  fi
  cargo bench --bench fleet --no-run --quiet
  exec scripts/azurite.sh run -- cargo bench --quiet --bench fleet "$@"
fi
cargo bench --bench store_vs_ceiling --no-run --quiet
exec scripts/azurite.sh run -- cargo bench --quiet --bench store_vs_ceiling "$@"

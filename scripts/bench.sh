#!/usr/bin/env bash
# The benchmarks against a fresh Azurite (and, for the processor bench, a fresh local Event Hubs
# endpoint):
#
#   scripts/bench.sh              benches/store_vs_ceiling.rs: the store/ceiling table and the
#                                 claim-concurrency sweep (BENCH_REPS sets the repetitions,
#                                 default 5; BENCH_PIN_AZURITE=1 runs Azurite on CPU 0 and the
#                                 bench on the other CPUs; BENCH_ONLY=network, the slow-network
#                                 rows alone, BENCH_NET_DELAYS=10,50 their delays in ms,
#                                 BENCH_NET_UPDATES=50 each writer's updates,
#                                 BENCH_NET_CLAIM_CALLS=50 the claim calls,
#                                 BENCH_NET_WORKLOADS=32,4,claims and
#                                 BENCH_NET_PROXIES=chunk,read pick rows)
#   scripts/bench.sh processor    benches/processor.rs: two official processors on real events,
#                                 events/s and storage requests per 1,000 events
#   scripts/bench.sh consumers    benches/consumers.rs: this crate's processor against the
#                                 official one on real events: events/s, CPU and storage
#                                 requests per 1,000 events, events reprocessed at scale-out
#   scripts/bench.sh faults       benches/fault_table.rs: the official processor, Python's and
#                                 JavaScript's consumers and this crate's processor under each
#                                 Event Hubs fault: events lost, processed twice, time until
#                                 read again (FAULT_KINDS=official,python,js,ours and
#                                 FAULTS=Paused,... pick)
#   scripts/bench.sh metrics      benches/metrics.rs: the store with and without a metrics
#                                 recorder installed
#   scripts/bench.sh fleet        benches/fleet.rs: K balancers over N partitions, time to fair
#                                 share and requests in steady state (FLEET_ROWS=NxK,... picks rows;
#                                 FLEET_STRATEGIES=greedy or balanced picks one strategy;
#                                 FLEET_PROCESSES=NxK,... adds rows of separate processes;
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
if [[ "${1:-}" == "consumers" ]]; then
  shift
  cargo bench --features eventhubs --bench consumers --no-run --quiet
  scripts/eventhubs.sh install
  exec scripts/azurite.sh run -- scripts/eventhubs.sh run -- \
    cargo bench --quiet --features eventhubs --bench consumers "$@"
fi
if [[ "${1:-}" == "faults" ]]; then
  shift
  PYTHON_PEER=$(scripts/python-peer.sh)
  export PYTHON_PEER
  JS_PEER=$(scripts/js-peer.sh)
  export JS_PEER
  cargo bench --features eventhubs --bench fault_table --no-run --quiet
  scripts/eventhubs.sh install
  exec scripts/azurite.sh run -- scripts/eventhubs.sh run -- \
    cargo bench --quiet --features eventhubs --bench fault_table "$@"
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
if [[ -n "${BENCH_PIN_AZURITE:-}" ]]; then
  # The emulator on CPU 0 and the bench (both clients, the proxies) on the others, as a service
  # on other hardware would be: on a 2-core machine a saturated emulator otherwise takes its
  # CPU from the client being measured.
  command -v taskset >/dev/null || { echo "bench.sh: BENCH_PIN_AZURITE needs taskset" >&2; exit 1; }
  others="1-$(( $(nproc) - 1 ))"
  exec scripts/azurite.sh run -- bash -c '
    for pid in $(pgrep -f "azurite-(blob|table)"); do taskset -a -pc 0 "$pid" >/dev/null; done
    exec taskset -c "$0" cargo bench --quiet --bench store_vs_ceiling "$@"' "$others" "$@"
fi
exec scripts/azurite.sh run -- cargo bench --quiet --bench store_vs_ceiling "$@"

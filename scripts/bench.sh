#!/usr/bin/env bash
# The benchmarks (benches/store_vs_ceiling.rs) against a fresh Azurite: prints the store/ceiling
# table and the claim-concurrency sweep. BENCH_REPS sets the repetitions (default 5).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo bench --bench store_vs_ceiling --no-run --quiet
# A backtrace per discarded SDK error would be measured too; production runs without it.
unset RUST_BACKTRACE
exec scripts/azurite.sh run -- cargo bench --quiet --bench store_vs_ceiling "$@"

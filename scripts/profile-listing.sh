#!/usr/bin/env bash
# Instructions per listed record, the store's and the ceiling's (benches/store_vs_ceiling.rs,
# BENCH_PROFILE), for checkpoints and for ownership: each side lists 1,000 records LOW and HIGH
# times under callgrind against a fresh Azurite, and the difference, divided by the extra
# records, cancels the set-up out.
# Each run's callgrind output stays in target/profile/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOW=${LOW:-4}
HIGH=${HIGH:-12}
if [[ "${1:-}" != "--inside" ]]; then
  exec scripts/azurite.sh run -- "$0" --inside "$@"
fi
shift
bin=$(cargo bench --bench store_vs_ceiling --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))$/\1/p' | tail -1)
mkdir -p target/profile
instructions() { # side iterations
  local out=target/profile/callgrind.$1.$2
  BENCH_PROFILE=$1 BENCH_ITERS=$2 AZURITE_CONNECTION_STRING=$AZURE_STORAGE_CONNECTION_STRING \
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" >/dev/null 2>"$out.log"
  sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out"
}
for record in checkpoint ownership; do
  for side in store ceiling; do
    low=$(instructions "$side-$record" "$LOW")
    high=$(instructions "$side-$record" "$HIGH")
    echo "$record, $side: $(( (high - low) / ((HIGH - LOW) * 1000) )) instructions per listed record"
  done
done

#!/usr/bin/env bash
# Instructions per operation under callgrind (benches/store_vs_ceiling.rs, BENCH_PROFILE), each
# path run LOW and HIGH times against a fresh Azurite: the difference, divided by the extra
# operations, cancels the set-up out.
#
#   scripts/profile.sh            per listed record: blob store and ceiling, checkpoints and
#                                 ownership (1,000 records listed)
#   scripts/profile.sh table      per listed record: the table store beside the blob store
#   scripts/profile.sh updates    per checkpoint update (32 partitions): the blob store's
#                                 update_checkpoint, its advance_checkpoint, a checkpointer
#                                 writing every position, and the ceiling
#
# Each run's callgrind output stays in target/profile/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# As scripts/bench.sh: production runs without a backtrace per discarded SDK error.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
LOW=${LOW:-4}
HIGH=${HIGH:-12}
if [[ "${1:-}" != "--inside" ]]; then
  exec scripts/azurite.sh run -- "$0" --inside "$@"
fi
shift
case "${1:-listings}" in
  listings) runs="store-checkpoint ceiling-checkpoint store-ownership ceiling-ownership"; per=1000; what="listed record" ;;
  table) runs="table-checkpoint store-checkpoint table-ownership store-ownership"; per=1000; what="listed record" ;;
  updates) runs="store-updates advance-updates checkpointer-updates ceiling-updates"; per=32; what="update" ;;
  *) echo "usage: scripts/profile.sh [listings|table|updates]" >&2; exit 2 ;;
esac
bin=$(cargo bench --bench store_vs_ceiling --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))$/\1/p' | tail -1)
mkdir -p target/profile
instructions() { # run iterations
  local out=target/profile/callgrind.$1.$2
  BENCH_PROFILE=$1 BENCH_ITERS=$2 AZURITE_CONNECTION_STRING=$AZURE_STORAGE_CONNECTION_STRING \
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" >/dev/null 2>"$out.log"
  sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out"
}
for run in $runs; do
  low=$(instructions "$run" "$LOW")
  high=$(instructions "$run" "$HIGH")
  echo "$run: $(( (high - low) / ((HIGH - LOW) * per) )) instructions per $what"
done

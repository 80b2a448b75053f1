#!/usr/bin/env bash
# Runs a built example that runs until Ctrl-C (a README or docs snippet, verbatim) until its
# output has matched every PATTERN (extended regex, one line each), then interrupts it and checks
# that it stopped cleanly (exit 0) within a minute. Fails, showing the output, if a pattern is
# not matched within 3 minutes or the program exits early or badly.
#
#   scripts/run-snippet.sh EXAMPLE PATTERN...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

example=$1; shift
bin=target/debug/examples/$example
[[ -x "$bin" ]] || { echo "run-snippet.sh: $bin is not built" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$bin" >"$out" 2>&1 &
pid=$!
fail() { echo "run-snippet.sh: $example: $*; its output:" >&2; tail -n 40 "$out" >&2; kill "$pid" 2>/dev/null || true; exit 1; }
deadline=$(( SECONDS + 180 ))
for pattern in "$@"; do
  until grep -qE "$pattern" "$out"; do
    kill -0 "$pid" 2>/dev/null || fail "exited before printing /$pattern/"
    (( SECONDS < deadline )) || fail "no /$pattern/ within 3 minutes"
    sleep 0.2
  done
done
kill -INT "$pid"
deadline=$(( SECONDS + 60 ))
while kill -0 "$pid" 2>/dev/null; do
  (( SECONDS < deadline )) || fail "still running a minute after Ctrl-C"
  sleep 0.2
done
wait "$pid" || fail "exited with status $? after Ctrl-C"
echo "run-snippet.sh: $example: printed what it should and stopped cleanly on Ctrl-C" >&2

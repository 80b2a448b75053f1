#!/usr/bin/env bash
# Builds and runs the local Event Hubs endpoint (tools/eventhubs-local, a workspace crate whose
# AMQP stack, fe2o3-amqp, is pinned in its Cargo.toml and the lock file).
#
#   scripts/eventhubs.sh install         build it (release)
#   scripts/eventhubs.sh run [--hub SPEC]... -- CMD ...
#                                        start it on free loopback ports (with those hubs), run
#                                        CMD with EVENTHUBS_LOCAL_AMQP (amqp://127.0.0.1:PORT),
#                                        EVENTHUBS_LOCAL_CONTROL (http://127.0.0.1:PORT) and
#                                        EVENTHUBS_CONNECTION_STRING (the emulator's, namespace
#                                        localhost, any key) set, stop it, exit with CMD's status
#   scripts/eventhubs.sh serve [--hub NAME=PARTITIONS[:PRELOAD[:RATE[:TOTAL]]]]...
#                                        start it, print its addresses, wait for Ctrl-C
#
# If it cannot be built or does not answer, this fails loudly (exit 1) and shows its log.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$root/target/release/eventhubs-local"

die() { echo "eventhubs.sh: $*" >&2; exit 1; }

install() {
  # A word only when there is something to wait for: the first build, or one after a change.
  if [[ ! -x "$bin" ]]; then
    echo "eventhubs.sh: building the local Event Hubs endpoint (release, once: about 3 minutes on 2 cores)" >&2
  fi
  (cd "$root" && cargo build --release --quiet -p eventhubs-local) \
    || die "cargo build -p eventhubs-local failed"
  [[ -x "$bin" ]] || die "$bin is missing after the build"
}

endpoint_pid=""
log=""

stop() {
  if [[ -n "$endpoint_pid" ]] && kill -0 "$endpoint_pid" 2>/dev/null; then
    kill "$endpoint_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$endpoint_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$endpoint_pid" 2>/dev/null || true
  fi
  [[ -n "$log" ]] && rm -f "$log" "$log.out"
  endpoint_pid=""
}

# Starts the endpoint on free ports (it picks them and prints them), waits until its control
# plane answers, and exports where it listens.
start() {
  install
  log=$(mktemp)
  "$bin" "$@" >"$log.out" 2>"$log" &
  endpoint_pid=$!
  trap stop EXIT
  trap 'exit 130' INT TERM
  local deadline=$((SECONDS + 60)) line=""
  until [[ -n "$line" ]]; do
    line=$(head -n 1 "$log.out" 2>/dev/null || true)
    if ! kill -0 "$endpoint_pid" 2>/dev/null; then
      cat "$log" >&2 || true
      die "the endpoint exited before it listened"
    fi
    (( SECONDS > deadline )) && { cat "$log" >&2 || true; die "the endpoint did not listen within 60 s"; }
    [[ -n "$line" ]] || sleep 0.1
  done
  read -r _ amqp control <<<"$line"
  local port=${control##*:}
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    (( SECONDS > deadline )) && die "the control plane did not answer on $control within 60 s"
    sleep 0.1
  done
  export EVENTHUBS_LOCAL_AMQP="$amqp"
  export EVENTHUBS_LOCAL_CONTROL="$control"
  # What the SDKs and eh-checkpoints read; the endpoint takes any key.
  export EVENTHUBS_CONNECTION_STRING="Endpoint=sb://localhost:${amqp##*:};SharedAccessKeyName=local;SharedAccessKey=local;UseDevelopmentEmulator=true"
  echo "eventhubs.sh: local Event Hubs endpoint on $amqp (control $control, pid $endpoint_pid)" >&2
}

case "${1:-}" in
  install)
    install
    ;;
  run)
    shift
    endpoint_args=()
    while (( $# > 0 )) && [[ "$1" != "--" ]]; do endpoint_args+=("$1"); shift; done
    [[ "${1:-}" == "--" ]] && shift
    (( $# > 0 )) || die "usage: scripts/eventhubs.sh run [--hub SPEC]... -- CMD [ARGS...]"
    start "${endpoint_args[@]}"
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
  serve)
    shift
    start "$@"
    echo "EVENTHUBS_LOCAL_AMQP=$EVENTHUBS_LOCAL_AMQP EVENTHUBS_LOCAL_CONTROL=$EVENTHUBS_LOCAL_CONTROL EVENTHUBS_CONNECTION_STRING='$EVENTHUBS_CONNECTION_STRING'"
    wait "$endpoint_pid"
    ;;
  *)
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac

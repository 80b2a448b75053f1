#!/usr/bin/env bash
# Installs and runs the Azurite blob and table emulators pinned in tools/azurite/package.json.
#
#   scripts/azurite.sh install         install the pinned Azurite into tools/azurite/node_modules
#   scripts/azurite.sh run -- CMD ...   start Azurite (blob and table services, each on a free
#                                       loopback port), run CMD with
#                                       AZURITE_CONNECTION_STRING and AZURE_STORAGE_CONNECTION_STRING
#                                       (and AZURITE_BLOB_BIN, the pinned azurite-blob) set,
#                                       stop Azurite, exit with CMD's status
#                                       Beside them, a blob and a table service over HTTPS that take
#                                       Entra ID (OAuth) bearer tokens: AZURITE_HTTPS_BLOB_URL,
#                                       AZURITE_HTTPS_TABLE_URL, and AZURITE_CA_CERT, the PEM of the
#                                       throwaway CA that signed their certificate (made by openssl
#                                       for this run, never kept)
#   scripts/azurite.sh serve           start Azurite, print the connection string, wait for Ctrl-C
#
# Azurite keeps its data in memory and its debris in a temporary directory; telemetry is off.
# If it cannot be installed or does not answer, this fails loudly (exit 1) and shows its log.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tool_dir="$root/tools/azurite"
bin="$tool_dir/node_modules/.bin/azurite-blob"
table_bin="$tool_dir/node_modules/.bin/azurite-table"
dev_key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

die() { echo "azurite.sh: $*" >&2; exit 1; }

install() {
  command -v node >/dev/null || die "node is not installed (Azurite needs Node.js and npm)"
  command -v npm >/dev/null || die "npm is not installed (Azurite needs Node.js and npm)"
  local wanted installed=""
  wanted=$(node -p "require('$tool_dir/package.json').dependencies.azurite")
  if [[ -f "$tool_dir/node_modules/azurite/package.json" ]]; then
    installed=$(node -p "require('$tool_dir/node_modules/azurite/package.json').version")
  fi
  if [[ -x "$bin" && -x "$table_bin" && "$installed" == "$wanted" ]]; then
    return 0
  fi
  echo "azurite.sh: installing azurite $wanted into tools/azurite/node_modules (once: about a minute)" >&2
  # --ignore-scripts: Azurite needs no install script; engine warnings on older Node are harmless.
  (cd "$tool_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) \
    || die "npm ci failed for azurite $wanted"
  [[ -x "$bin" && -x "$table_bin" ]] || die "azurite-blob or azurite-table is missing after install"
}

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

azurite_pid=""
table_pid=""
https_pid=""
https_table_pid=""
work_dir=""

stop_one() {
  local pid=$1
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}

stop() {
  stop_one "$azurite_pid"
  stop_one "$table_pid"
  stop_one "$https_pid"
  stop_one "$https_table_pid"
  [[ -n "$work_dir" ]] && rm -rf "$work_dir"
  azurite_pid=""
  table_pid=""
  https_pid=""
  https_table_pid=""
}

# Waits until 127.0.0.1:$2 accepts connections; fails loudly if process $1 exits or 60 s pass.
wait_for() {
  local pid=$1 port=$2 log=$3 deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2 || true
      die "Azurite exited before it answered on 127.0.0.1:$port"
    fi
    if (( SECONDS > deadline )); then
      cat "$log" >&2 || true
      die "Azurite did not answer on 127.0.0.1:$port within 60 s"
    fi
    sleep 0.2
  done
}

# A throwaway CA and a server certificate for 127.0.0.1 signed by it, in $1: ca.pem, cert.pem,
# key.pem. The clients trust ca.pem only for this run, as they would a private CA.
make_certificates() {
  local dir=$1
  command -v openssl >/dev/null || die "openssl is not installed (the HTTPS Azurite needs a test certificate)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=eventhub-checkpointstore test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      >/dev/null 2>&1 || die "openssl could not make the test CA"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$dir/key.pem" -out "$dir/server.csr" >/dev/null 2>&1 \
      || die "openssl could not make the server key"
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 2 -extfile "$dir/server.ext" -out "$dir/cert.pem" >/dev/null 2>&1 \
      || die "openssl could not sign the server certificate"
}

start() {
  install
  local port table_port
  port=$(free_port)
  table_port=$(free_port)
  while [[ "$table_port" == "$port" ]]; do table_port=$(free_port); done
  work_dir=$(mktemp -d)
  mkdir -p "$work_dir/blob" "$work_dir/table"
  # Azurite writes debug and metadata files into its working directory.
  (cd "$work_dir/blob" && exec "$bin" --blobHost 127.0.0.1 --blobPort "$port" \
      --inMemoryPersistence --disableTelemetry --silent >"$work_dir/blob.log" 2>&1) &
  azurite_pid=$!
  (cd "$work_dir/table" && exec "$table_bin" --tableHost 127.0.0.1 --tablePort "$table_port" \
      --inMemoryPersistence --disableTelemetry --silent >"$work_dir/table.log" 2>&1) &
  table_pid=$!
  # The same services over HTTPS, taking OAuth bearer tokens (Entra ID) as well as Shared Key.
  local https_port https_table_port tls
  tls="$work_dir/tls"
  mkdir -p "$tls" "$work_dir/https-blob" "$work_dir/https-table"
  make_certificates "$tls"
  https_port=$(free_port)
  https_table_port=$(free_port)
  (cd "$work_dir/https-blob" && exec "$bin" --blobHost 127.0.0.1 --blobPort "$https_port" \
      --oauth basic --cert "$tls/cert.pem" --key "$tls/key.pem" \
      --inMemoryPersistence --disableTelemetry --silent >"$work_dir/https-blob.log" 2>&1) &
  https_pid=$!
  (cd "$work_dir/https-table" && exec "$table_bin" --tableHost 127.0.0.1 --tablePort "$https_table_port" \
      --oauth basic --cert "$tls/cert.pem" --key "$tls/key.pem" \
      --inMemoryPersistence --disableTelemetry --silent >"$work_dir/https-table.log" 2>&1) &
  https_table_pid=$!
  trap stop EXIT
  trap 'exit 130' INT TERM
  wait_for "$azurite_pid" "$port" "$work_dir/blob.log"
  wait_for "$table_pid" "$table_port" "$work_dir/table.log"
  wait_for "$https_pid" "$https_port" "$work_dir/https-blob.log"
  wait_for "$https_table_pid" "$https_table_port" "$work_dir/https-table.log"
  local conn="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$dev_key;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;TableEndpoint=http://127.0.0.1:$table_port/devstoreaccount1;"
  export AZURITE_CONNECTION_STRING="$conn"
  export AZURE_STORAGE_CONNECTION_STRING="$conn"
  # For tests that run an Azurite of their own (the crash test kills and restarts one).
  export AZURITE_BLOB_BIN="$bin"
  export AZURITE_HTTPS_BLOB_URL="https://127.0.0.1:$https_port/devstoreaccount1"
  export AZURITE_HTTPS_TABLE_URL="https://127.0.0.1:$https_table_port/devstoreaccount1"
  export AZURITE_CA_CERT="$tls/ca.pem"
  echo "azurite.sh: Azurite blob service on http://127.0.0.1:$port (pid $azurite_pid), table service on http://127.0.0.1:$table_port (pid $table_pid); with OAuth over HTTPS: blob on $https_port, table on $https_table_port" >&2
}

case "${1:-}" in
  install)
    install
    ;;
  run)
    shift
    [[ "${1:-}" == "--" ]] && shift
    (( $# > 0 )) || die "usage: scripts/azurite.sh run -- CMD [ARGS...]"
    start
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
  serve)
    start
    echo "$AZURITE_CONNECTION_STRING"
    echo "AZURITE_HTTPS_BLOB_URL=$AZURITE_HTTPS_BLOB_URL AZURITE_HTTPS_TABLE_URL=$AZURITE_HTTPS_TABLE_URL AZURITE_CA_CERT=$AZURITE_CA_CERT"
    wait "$azurite_pid"
    ;;
  *)
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac

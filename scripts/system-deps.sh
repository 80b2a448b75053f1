#!/usr/bin/env bash
# The C libraries the `eventhubs` feature needs to build: azure_messaging_eventhubs 0.15 turns on
# its AMQP stack's native-tls (OpenSSL) unconditionally, so openssl-sys needs OpenSSL's headers and
# pkg-config. Installs them from Debian/Ubuntu apt when missing; a no-op when present.
set -euo pipefail

if command -v pkg-config >/dev/null && pkg-config --exists openssl; then
  exit 0
fi
command -v apt-get >/dev/null || {
  echo "system-deps.sh: OpenSSL headers and pkg-config are missing, and this is not an apt system;" \
    "install them (e.g. libssl-dev and pkg-config, or openssl-devel) and retry" >&2
  exit 1
}
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "system-deps.sh: installing libssl-dev and pkg-config (for the eventhubs feature)" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libssl-dev pkg-config >&2

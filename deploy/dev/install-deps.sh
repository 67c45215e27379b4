#!/usr/bin/env bash
# Installs the Debian packages caresignal needs to build, run and test.
# Idempotent: when everything is present it installs nothing and exits 0.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  librdkafka-dev libavro-dev libjansson-dev libhiredis-dev libcmocka-dev
  libssl-dev libcurl4-openssl-dev libmicrohttpd-dev libsystemd-dev
  # operability (docs/operations): Prometheus and promtool scrape and check the metrics
  prometheus curl
  # tests/deploy: YAML of the compose and Kubernetes files, read by Debian's python3
  python3-yaml
  redis-server redis-tools kcat python3 iproute2 procps
  # the bench: callgrind instruction counts of redis-server, massif heap peaks
  valgrind
  # the fuzz build (tests/fuzz): clang with libFuzzer, llvm-symbolizer for its reports
  clang libclang-rt-14-dev llvm
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package index may be stale or absent on a fresh machine.
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system-wide redis-server on install; caresignal never uses it
# (the dev stack runs its own on a private port), so leave it as the admin wants.
echo "install-deps: done" >&2

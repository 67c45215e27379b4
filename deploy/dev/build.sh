#!/usr/bin/env bash
# Configures and builds caresignal with CMake.
#   deploy/dev/build.sh [--dir DIR] [--sanitize] [--werror]
# Prints nothing but errors unless VERBOSE=1; the build directory defaults to build/.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
dir="$top/build"
opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --sanitize) opts+=(-DCS_SANITIZE=ON); shift ;;
    --werror) opts+=(-DCS_WERROR=ON); shift ;;
    *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
jobs=$(nproc 2>/dev/null || echo 2)
log=$(mktemp)
if ! { cmake -S "$top" -B "$dir" "${opts[@]}" && cmake --build "$dir" -j "$jobs"; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "build.sh: build failed" >&2
  exit 1
fi
[ "${VERBOSE:-0}" = 1 ] && cat "$log"
rm -f "$log"
exit 0

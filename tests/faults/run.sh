#!/usr/bin/env bash
# The fault suite (tests/faults/run.py): the whole pipeline under a continuous feed while
# faults are injected, then docs/contract/guarantees.md's invariants checked. CI runs the default size as
# part of tests/run.sh; the long run is:
#   tests/faults/run.sh --kills 100 [--seed S] [--out FILE]
# It uses the build in build/ (or --build DIR / CS_BUILD_DIR): build first with
# deploy/dev/build.sh or tests/run.sh.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) export CS_BUILD_DIR=$(cd "$2" && pwd); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
export CS_SOURCE_DIR="$top"
export CS_BUILD_DIR="${CS_BUILD_DIR:-$top/build}"
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$top/tests/faults/run.py" ${args[@]+"${args[@]}"}

#!/usr/bin/env bash
# The main job: caresignal end to end on a private dev stack with a realistic 90-day
# partner feed. Installs what is missing, builds, runs, prints what was paged, the
# highest-risk locations and the dead letters by reason, and stops everything.
#   deploy/dev/demo.sh [--keep]      (--keep: leave the working directory and logs)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

deploy/dev/install-deps.sh
echo "demo: building (build/)" >&2
deploy/dev/build.sh --dir build
exec python3 deploy/dev/demo.py --build "$top/build" "$@"

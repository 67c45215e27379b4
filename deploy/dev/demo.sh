#!/usr/bin/env bash
# The main job on the embedded dev stack: install, build, start a private redis-server
# and devbroker, show they work, stop everything.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

deploy/dev/install-deps.sh
echo "demo: building" >&2
deploy/dev/build.sh --dir build

dir=$(mktemp -d /tmp/caresignal-demo-XXXXXX)
trap 'deploy/dev/stack.sh stop --dir "$dir"; rm -rf "$dir"' EXIT
deploy/dev/stack.sh start --dir "$dir" --build build --owner $$
source "$dir/stack.env"

echo "demo: redis-server 127.0.0.1:$CS_REDIS_PORT answers: $(redis-cli -p "$CS_REDIS_PORT" ping)"
echo "demo: devbroker $CS_BOOTSTRAP has these topics:"
kcat -b "$CS_BOOTSTRAP" -L | grep -E '^  topic' | sed 's/^ */  /'
echo '{"hello":"caresignal"}' | kcat -b "$CS_BOOTSTRAP" -P -t intel.alerts -k demo
echo "demo: a message through the broker: $(kcat -b "$CS_BOOTSTRAP" -C -t intel.alerts -e -q -f '%k => %s')"

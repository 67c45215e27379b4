#!/usr/bin/env bash
# Checks deploy/prometheus/: the alert rules (promtool check rules), their unit tests
# (promtool test rules) and the example scrape config with the rules it loads
# (promtool check config). Needs nothing but promtool; runs in a few seconds.
# Exit 0 only if every check passes; the last line is the summary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir="$repo/deploy/prometheus"
PROMTOOL=${PROMTOOL:-promtool}

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
  echo "prometheus rules: promtool not found (Debian package prometheus)" >&2
  echo "prometheus rules: 0 passed, 1 failed"
  exit 1
fi

passed=0
failed=0
check() {
  local name=$1; shift
  local out rc=0
  out=$(cd "$dir" && "$@" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name (exit $rc)"
    printf '%s\n' "$out" | sed 's/^/     /'
  fi
}

check "check rules caresignal.rules.yml" \
  "$PROMTOOL" check rules caresignal.rules.yml
check "test rules caresignal.rules.test.yml" \
  "$PROMTOOL" test rules caresignal.rules.test.yml
# From another directory on purpose: rule_files must resolve relative to the config.
check "check config prometheus.yml" \
  env -C / "$PROMTOOL" check config "$dir/prometheus.yml"

echo "prometheus rules: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

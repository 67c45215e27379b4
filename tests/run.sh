#!/usr/bin/env bash
# Runs every caresignal test on this machine: installs the Debian packages it needs,
# builds with warnings as errors and runs the whole suite with ctest, then builds with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the same suite again.
# Each test starts and stops its own redis-server and devbroker on free loopback ports.
# Then a brief fuzz stage: every libFuzzer target for 8 seconds (tests/fuzz/run.sh),
# each target one test. The last line is the total: "N passed, N failed".
#
#   tests/run.sh [--no-sanitize] [--only-sanitize] [--no-fuzz] [-R REGEX]
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

plain=1
sanitize=1
fuzz=1
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-sanitize) sanitize=0; shift ;;
    --only-sanitize) plain=0; shift ;;
    --no-fuzz) fuzz=0; shift ;;
    -R) ctest_args+=(-R "$2"); shift 2 ;;
    *) echo "tests/run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

deploy/dev/install-deps.sh || exit 1

passed=0
failed=0
jobs=$(nproc 2>/dev/null || echo 2)

run_suite() { # run_suite BUILD_DIR LABEL [build options]
  local dir=$1 label=$2
  shift 2
  echo "== $label: building in $dir"
  if ! deploy/dev/build.sh --dir "$dir" --werror "$@"; then
    echo "== $label: build failed"
    failed=$((failed + 1))
    return
  fi
  echo "== $label: running the suite"
  local log
  log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" ${ctest_args[@]+"${ctest_args[@]}"} 2>&1 | tee "$log"
  local summary total nfail
  summary=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  rm -f "$log"
  if [ -z "$summary" ]; then
    echo "== $label: ctest gave no summary"
    failed=$((failed + 1))
    return
  fi
  nfail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")
  total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$summary")
  passed=$((passed + total - nfail))
  failed=$((failed + nfail))
}

# ---------------------------------------------------------------- fuzz stage
# Brief: each libFuzzer target runs 8 seconds from its seeds and the corpus earlier
# runs grew in build-fuzz/ (CI must stay short; tests/fuzz/README.md has the long run).
# Each target is one test: passed when it ran and found nothing.
run_fuzz() {
  echo "== fuzz: libFuzzer targets, 8 s each"
  local log t n
  log=$(mktemp)
  tests/fuzz/run.sh --seconds 8 2>&1 | tee "$log"
  n=0
  while read -r t; do
    n=$((n + 1))
    if grep -qE "^fuzz: $t: .*, findings 0\$" "$log"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
  done < <(sed -nE 's/^fuzz: ([a-z_]+): .* executions, .*/\1/p' "$log")
  # no target line at all (the build failed): the stage itself is one failure
  [ "$n" -eq 0 ] && failed=$((failed + 1))
  rm -f "$log"
}

start=$(date +%s)
[ "$plain" = 1 ] && run_suite build "plain build"
[ "$sanitize" = 1 ] && run_suite build-asan "ASan+UBSan build" --sanitize
[ "$fuzz" = 1 ] && run_fuzz
echo "== all suites took $(( $(date +%s) - start ))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

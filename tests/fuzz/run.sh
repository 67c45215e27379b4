#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DCS_FUZZ=ON), seeds their corpora from the
# project's data, replays every kept regression, then runs each target in turn (one
# fuzzer process at a time) and reports executions, speed, corpus size and findings.
#
#   tests/fuzz/run.sh [--seconds N] [--runs N] [--target NAME]... [--build DIR]
#
# Default: 60 seconds per target, every target, build directory build-fuzz. Given both
# --runs and --seconds, a target stops at whichever comes first (the long run). The
# corpus a run grows stays in DIR/fuzz-corpus/<target> and the next run starts from it;
# findings go to DIR/fuzz-findings/<target>/. One line per target
#   fuzz: <target>: <N> executions, <N> exec/s, <N>s, corpus <N>, findings <N> (...)
# then "fuzz: N targets, M findings". Exit status 1 on any finding or build failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

all_targets=(avro json_convert normalise directory rules properties registry)
# -max_len of each input kind: a raw message up to normalise.max.bytes (65536) plus the
# normalise target's 9-byte header; files an operator writes are small
declare -A max_len=([avro]=70000 [json_convert]=70000 [normalise]=70000
                    [directory]=8192 [rules]=8192 [properties]=8192 [registry]=8192)

seconds=
runs=
build=build-fuzz
targets=()
usage() {
  echo "usage: tests/fuzz/run.sh [--seconds N] [--runs N] [--target NAME]... [--build DIR]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) [ $# -ge 2 ] || usage; seconds=$2; shift 2 ;;
    --runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
    --target) [ $# -ge 2 ] || usage; targets+=("$2"); shift 2 ;;
    --build) [ $# -ge 2 ] || usage; build=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "tests/fuzz/run.sh: unknown option $1" >&2; usage ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
[ -z "$seconds" ] && [ -z "$runs" ] && seconds=60
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]:-}" ] || { echo "tests/fuzz/run.sh: unknown target '$t' (${all_targets[*]})" >&2; exit 2; }
done
case "$build" in /*) ;; *) build="$top/$build" ;; esac

echo "== fuzz: building in $build"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# at most 2 compile jobs: the machine's cores are shared
if ! { cmake -S "$top" -B "$build" -DCMAKE_C_COMPILER=clang -DCS_FUZZ=ON -DCS_TESTS=OFF &&
       cmake --build "$build" -j 2 --target cs_fuzz_all; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "fuzz: build failed"
  echo "fuzz: 0 targets, 1 findings"
  exit 1
fi

seeds="$build/fuzz-seeds" corpus="$build/fuzz-corpus" findings="$build/fuzz-findings"
python3 "$top/tests/fuzz/seed.py" --out "$seeds" --build "$build" \
  $(printf -- '--target %s ' "${targets[@]}") >/dev/null || { echo "fuzz: seeding failed"; exit 1; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# the targets find the source tree themselves; this keeps a moved binary working
export CS_SOURCE_DIR="$top"

total_findings=0
start_all=$(date +%s)
for t in "${targets[@]}"; do
  bin="$build/fuzz/fuzz_$t"
  mkdir -p "$corpus/$t" "$findings/$t"
  found=0 kinds=()
  # a target's own LeakSanitizer suppressions (library leaks it proved bounded), if any
  if [ -f "$top/tests/fuzz/lsan-$t.supp" ]; then
    export LSAN_OPTIONS="suppressions=$top/tests/fuzz/lsan-$t.supp:print_suppressions=0"
  else
    unset LSAN_OPTIONS
  fi

  # every kept regression first: each must now run clean
  for f in "$top/tests/fuzz/regressions/$t"/*; do
    [ -f "$f" ] || continue
    if ! "$bin" -runs=1 -timeout=10 -rss_limit_mb=2048 "$f" >"$log" 2>&1; then
      found=$((found + 1)) kinds+=("regression ${f#"$top"/}")
      tail -40 "$log"
    fi
  done

  budget=()
  [ -n "$seconds" ] && budget+=(-max_total_time="$seconds")
  [ -n "$runs" ] && budget+=(-runs="$runs")
  dict=()
  [ -f "$seeds/$t.dict" ] && dict=(-dict="$seeds/$t.dict")
  before=$(ls "$findings/$t" | sort)
  t0=$(date +%s)
  "$bin" "${budget[@]}" "${dict[@]}" -max_len="${max_len[$t]}" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$findings/$t/" \
    "$corpus/$t" "$seeds/$t" >"$log" 2>&1
  rc=$?
  wall=$(( $(date +%s) - t0 ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # the corpus libFuzzer ended with (seeds and what it added, after its reduction)
  size=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | sed 's/corp: //')
  new=$(comm -13 <(echo "$before") <(ls "$findings/$t" | sort) | grep -v '^$')
  for a in $new; do
    found=$((found + 1))
    kinds+=("${a%%-*} $findings/$t/$a")
  done
  if [ "$rc" -ne 0 ] && [ -z "$new" ]; then
    found=$((found + 1)) kinds+=("exit status $rc without an artifact")
  fi
  if [ "$found" -gt 0 ]; then
    grep -E 'ERROR|SUMMARY|#[0-9]+ 0x' "$log" | head -30
  fi
  total_findings=$((total_findings + found))
  detail=""
  [ ${#kinds[@]} -gt 0 ] && detail=" ($(IFS=';'; echo "${kinds[*]}"))"
  echo "fuzz: $t: ${execs:-0} executions, ${speed:-0} exec/s, ${wall}s, corpus ${size:-0}, findings $found$detail"
done
echo "== fuzz: took $(( $(date +%s) - start_all ))s"
echo "fuzz: ${#targets[@]} targets, $total_findings findings"
[ "$total_findings" -eq 0 ]

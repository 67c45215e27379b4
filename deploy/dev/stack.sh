#!/usr/bin/env bash
# The private development stack: a redis-server on a free loopback port with its own
# data directory, and caresignal-devbroker (librdkafka's in-memory mock cluster).
#
#   stack.sh start  [--dir DIR] [--build DIR] [--owner PID] [--brokers N]
#                   [--partitions TOPIC=N]... [--quiet]
#   stack.sh stop   [--dir DIR]
#   stack.sh status [--dir DIR]
#   stack.sh fault  [--dir DIR] [--build DIR] COMMAND...
#
# start writes DIR/stack.env (CS_REDIS_PORT, CS_BOOTSTRAP, ... for shells and tests)
# and DIR/caresignal.properties (for --config). stop kills exactly the processes start
# recorded, nothing else. With --owner PID a watchdog stops the stack when PID exits,
# so a test killed half-way leaves no process behind. The devbroker takes fault
# injection commands on DIR/broker.sock (CS_BROKER_CONTROL); fault sends one, e.g.
# `stack.sh fault --dir DIR down 2`, prints the reply and exits 0 on ok, 1 on error.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cmd=${1:-}
[ $# -gt 0 ] && shift
dir="$top/.stack"
build="${CS_BUILD_DIR:-$top/build}"
build_given=0
owner=""
brokers=3
quiet=0
partitions=()
words=() # the command of fault
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --build) build=$2; build_given=1; shift 2 ;;
    --owner) owner=$2; shift 2 ;;
    --brokers) brokers=$2; shift 2 ;;
    --partitions) partitions+=(--partitions "$2"); shift 2 ;;
    --quiet) quiet=1; shift ;;
    -*) echo "stack.sh: unknown option $1" >&2; exit 2 ;;
    *)
      # a fault command starts at its first word and runs to the end of the line
      if [ "$cmd" != fault ]; then echo "stack.sh: unexpected argument $1" >&2; exit 2; fi
      words=("$@"); break ;;
  esac
done

say() { [ "$quiet" = 1 ] || echo "stack: $*" >&2; }

# is_ours PIDFILE NAME: the recorded process is alive and is the program we started
# (a recycled pid must never be killed).
is_ours() {
  local pidfile=$1 name=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name"
}

stop_one() {
  local pidfile=$1 name=$2 pid i
  if is_ours "$pidfile" "$name"; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      is_ours "$pidfile" "$name" || break
      sleep 0.1
    done
    if is_ours "$pidfile" "$name"; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.1
    fi
  fi
  rm -f "$pidfile"
}

do_stop() {
  [ -d "$dir" ] || return 0
  stop_one "$dir/broker.pid" caresignal-devbroker
  stop_one "$dir/redis.pid" redis-server
  # The watchdog may be the one calling us: never kill our own parent.
  if [ -f "$dir/watchdog.pid" ] && [ "$(cat "$dir/watchdog.pid")" != "$PPID" ]; then
    stop_one "$dir/watchdog.pid" stack-watchdog
  fi
  # the devbroker removes its socket when it stops; after a SIGKILL it is left behind
  rm -f "$dir/watchdog.pid" "$dir/stack.env" "$dir/broker.sock"
  say "stopped"
}

start_redis() {
  local port i
  mkdir -p "$dir/redis"
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    # AOF everysec as in production, so restart tests see real recovery behaviour.
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/redis" --daemonize no \
      --appendonly yes --appendfsync everysec --save "" --protected-mode yes \
      --logfile "$dir/redis.log" >/dev/null 2>&1 </dev/null &
    echo $! >"$dir/redis.pid"
    for i in $(seq 1 100); do
      if redis-cli -p "$port" ping >/dev/null 2>&1; then
        echo "$port" >"$dir/redis.port"
        return 0
      fi
      # alive, by pid: right after the fork the child may not have exec'd redis-server
      # yet, so its name cannot be checked here (under load that race is real)
      kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null || break
      sleep 0.05
    done
    stop_one "$dir/redis.pid" redis-server
  done
  echo "stack: redis-server did not start (see $dir/redis.log)" >&2
  return 1
}

start_broker() {
  local bin="$build/caresignal-devbroker" i
  if [ ! -x "$bin" ]; then
    echo "stack: $bin not found: build first (deploy/dev/build.sh)" >&2
    return 1
  fi
  rm -f "$dir/bootstrap"
  "$bin" --brokers "$brokers" ${partitions[@]+"${partitions[@]}"} \
    --bootstrap-file "$dir/bootstrap" --control "$dir/broker.sock" \
    >/dev/null 2>"$dir/devbroker.log" </dev/null &
  echo $! >"$dir/broker.pid"
  for i in $(seq 1 200); do
    [ -s "$dir/bootstrap" ] && return 0
    kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null || break # by pid: see start_redis
    sleep 0.05
  done
  echo "stack: caresignal-devbroker did not start (see $dir/devbroker.log)" >&2
  return 1
}

start_watchdog() {
  # A detached loop, named so is_ours can recognise it: stops the stack when the
  # owner process is gone.
  setsid bash -c 'exec -a stack-watchdog bash -c "
      while kill -0 $0 2>/dev/null && [ -f \"$1/stack.env\" ]; do sleep 1; done
      [ -f \"$1/stack.env\" ] && \"$2\" stop --dir \"$1\" --quiet
    " "$@"' "$owner" "$dir" "$top/deploy/dev/stack.sh" >/dev/null 2>&1 </dev/null &
  echo $! >"$dir/watchdog.pid"
}

do_start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # absolute, as recorded in stack.env for fault from any directory
  if [ -d "$build" ]; then build=$(cd "$build" && pwd); fi
  if is_ours "$dir/redis.pid" redis-server || is_ours "$dir/broker.pid" caresignal-devbroker; then
    echo "stack: already running in $dir (stack.sh stop --dir $dir)" >&2
    exit 1
  fi
  trap 'do_stop' ERR
  start_redis
  start_broker
  local port bootstrap
  port=$(cat "$dir/redis.port")
  bootstrap=$(cat "$dir/bootstrap")
  cat >"$dir/caresignal.properties" <<EOF
# Written by deploy/dev/stack.sh for the private dev stack in $dir
kafka.bootstrap.servers=$bootstrap
redis.host=127.0.0.1
redis.port=$port
# The dev broker answers a caught-up fetch only after fetch.wait.max.ms, and delays a
# rebalance by session.timeout.ms - 1 s (docs/contract/environment.md): keep both small here.
kafka.fetch.wait.max.ms=5
kafka.session.timeout.ms=6000
kafka.heartbeat.interval.ms=500
EOF
  cat >"$dir/stack.env" <<EOF
CS_STACK_DIR=$dir
CS_REDIS_HOST=127.0.0.1
CS_REDIS_PORT=$port
CS_REDIS_PID=$(cat "$dir/redis.pid")
CS_BOOTSTRAP=$bootstrap
CS_BROKER_PID=$(cat "$dir/broker.pid")
CS_BROKER_CONTROL=$dir/broker.sock
CS_DEVBROKER=$build/caresignal-devbroker
CS_CONFIG=$dir/caresignal.properties
EOF
  if [ -n "$owner" ]; then
    start_watchdog
  fi
  trap - ERR
  say "redis 127.0.0.1:$port, kafka $bootstrap (env: $dir/stack.env)"
}

# fault COMMAND...: one control command to the running devbroker, through the same
# binary (its --send client), so nothing but the build is needed.
do_fault() {
  if [ ${#words[@]} -eq 0 ]; then
    echo "usage: stack.sh fault [--dir DIR] COMMAND... (e.g. stack.sh fault --dir $dir help)" >&2
    exit 2
  fi
  if [ ! -f "$dir/stack.env" ] || ! is_ours "$dir/broker.pid" caresignal-devbroker; then
    echo "stack: not running in $dir" >&2
    exit 1
  fi
  local bin control
  bin=$(sed -n 's/^CS_DEVBROKER=//p' "$dir/stack.env")
  control=$(sed -n 's/^CS_BROKER_CONTROL=//p' "$dir/stack.env")
  if [ "$build_given" = 1 ] || [ -z "$bin" ]; then
    bin="$build/caresignal-devbroker"
  fi
  exec "$bin" --send "${control:-$dir/broker.sock}" "${words[@]}"
}

case "$cmd" in
  start) do_start ;;
  fault) do_fault ;;
  stop) do_stop ;;
  status)
    if is_ours "$dir/redis.pid" redis-server && is_ours "$dir/broker.pid" caresignal-devbroker; then
      cat "$dir/stack.env"
    else
      echo "stack: not running in $dir" >&2
      exit 1
    fi
    ;;
  *) echo "usage: stack.sh start|stop|status|fault [--dir DIR] [--build DIR] [--owner PID] [--brokers N] [--partitions TOPIC=N] [COMMAND... of fault]" >&2; exit 2 ;;
esac

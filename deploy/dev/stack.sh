#!/usr/bin/env bash
# The private development stack: a redis-server on a free loopback port with its own
# data directory, and caresignal-devbroker (librdkafka's in-memory mock cluster).
#
#   stack.sh start  [--dir DIR] [--build DIR] [--owner PID] [--brokers N]
#                   [--partitions TOPIC=N]... [--redis-cluster [--cluster-node-timeout MS]]
#                   [--quiet]
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
#
# With --redis-cluster, start runs a Redis Cluster instead of the one redis-server: 6
# nodes (3 masters + 3 replicas) on free loopback ports, each with its data directory
# DIR/redis-PORT/ (AOF everysec, nodes.conf), log DIR/redis-PORT.log and pid file
# DIR/redis-PORT.pid, joined with redis-cli --cluster create, and returns once every
# node reports cluster_state:ok with all 16384 slots assigned and every replica's link
# to its master is up. --cluster-node-timeout MS (default 2000) is the nodes'
# cluster-node-timeout: a fail-over takes a few seconds. caresignal.properties then has
# redis.cluster.nodes=127.0.0.1:P1,...,127.0.0.1:P6 in place of redis.host/redis.port,
# and stack.env has CS_REDIS_CLUSTER_NODES (the same list), CS_REDIS_CLUSTER_PORTS (the
# ports, space-separated, in double quotes), CS_REDIS_CLUSTER_NODE_TIMEOUT, and
# CS_REDIS_HOST, CS_REDIS_PORT, CS_REDIS_PID of the first node (for redis-cli -c). stop
# kills every recorded node (DIR/redis-*.pid); status requires all of them alive.
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
redis_cluster=0
node_timeout=""
words=() # the command of fault
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --build) build=$2; build_given=1; shift 2 ;;
    --owner) owner=$2; shift 2 ;;
    --brokers) brokers=$2; shift 2 ;;
    --partitions) partitions+=(--partitions "$2"); shift 2 ;;
    --redis-cluster) redis_cluster=1; shift ;;
    --cluster-node-timeout) node_timeout=$2; shift 2 ;;
    --quiet) quiet=1; shift ;;
    -*) echo "stack.sh: unknown option $1" >&2; exit 2 ;;
    *)
      # a fault command starts at its first word and runs to the end of the line
      if [ "$cmd" != fault ]; then echo "stack.sh: unexpected argument $1" >&2; exit 2; fi
      words=("$@"); break ;;
  esac
done
if [ -n "$node_timeout" ]; then
  case "$node_timeout" in
    *[!0-9]*) echo "stack.sh: --cluster-node-timeout takes milliseconds, not $node_timeout" >&2; exit 2 ;;
  esac
  if [ "$redis_cluster" != 1 ]; then
    echo "stack.sh: --cluster-node-timeout needs --redis-cluster" >&2; exit 2
  fi
fi
node_timeout=${node_timeout:-2000}

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
  stop_cluster_nodes
  # The watchdog may be the one calling us: never kill our own parent.
  if [ -f "$dir/watchdog.pid" ] && [ "$(cat "$dir/watchdog.pid")" != "$PPID" ]; then
    stop_one "$dir/watchdog.pid" stack-watchdog
  fi
  # the devbroker removes its socket when it stops; after a SIGKILL it is left behind
  rm -f "$dir/watchdog.pid" "$dir/stack.env" "$dir/broker.sock"
  say "stopped"
}

# redis_answers PORT PID: waits (5 s at most) until the server answering on PORT is the
# redis-server PID, started just now. It must be ours: on a port another stack's node
# holds (a cluster's node restarted by a test), ours fails to bind and the other would
# answer PING. By pid, not name: right after the fork the child may not have exec'd
# redis-server yet (under load that race is real). (A signal's trap must not run in a
# test of two command substitutions: bash 5.2 then fails to parse it.)
redis_answers() {
  local port=$1 pid=$2 i answer
  for i in $(seq 1 100); do
    answer=$(redis-cli -p "$port" info server 2>/dev/null | tr -d '\r' |
      sed -n 's/^process_id://p') || true
    if [ "$answer" = "$pid" ]; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

start_redis() {
  local port
  mkdir -p "$dir/redis"
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    # AOF everysec as in production, so restart tests see real recovery behaviour.
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/redis" --daemonize no \
      --appendonly yes --appendfsync everysec --save "" --protected-mode yes \
      --logfile "$dir/redis.log" >/dev/null 2>&1 </dev/null &
    echo $! >"$dir/redis.pid"
    if redis_answers "$port" "$(cat "$dir/redis.pid")"; then
      echo "$port" >"$dir/redis.port"
      return 0
    fi
    stop_one "$dir/redis.pid" redis-server
  done
  echo "stack: redis-server did not start (see $dir/redis.log)" >&2
  return 1
}

# cluster_node_ours: a recorded cluster node (DIR/redis-PORT.pid) is alive and ours.
cluster_node_ours() {
  local f
  for f in "$dir"/redis-*.pid; do
    is_ours "$f" redis-server && return 0
  done
  return 1
}

# redis_running: the recorded redis-server is alive, or with a cluster (stack.env has
# CS_REDIS_CLUSTER_PORTS) every one of its nodes.
redis_running() {
  local ports p
  ports=$(sed -n 's/^CS_REDIS_CLUSTER_PORTS=//p' "$dir/stack.env" 2>/dev/null | tr -d '"') || true
  if [ -z "$ports" ]; then
    is_ours "$dir/redis.pid" redis-server
    return
  fi
  for p in $ports; do
    is_ours "$dir/redis-$p.pid" redis-server || return 1
  done
}

# stop_cluster_nodes: SIGTERM to every recorded node at once (a master's shutdown waits
# for its replicas), then stop_one waits for each (SIGKILL after 5 s).
stop_cluster_nodes() {
  local f
  for f in "$dir"/redis-*.pid; do
    if is_ours "$f" redis-server; then kill -TERM "$(cat "$f")" 2>/dev/null || true; fi
  done
  for f in "$dir"/redis-*.pid; do
    [ -e "$f" ] || continue
    stop_one "$f" redis-server
  done
}

# start_cluster_node: one cluster node on a free port, none of $ports nor the cluster
# bus port (PORT + 10000) of one; appends the port to $ports.
start_cluster_node() {
  local port p taken
  for _ in 1 2 3 4 5 6 7 8; do
    # PORT + 10000, the node's cluster bus, must be a port too
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 35000 ))
    taken=0
    for p in ${ports[@]+"${ports[@]}"}; do
      if [ "$port" = "$p" ] || [ "$port" = $((p + 10000)) ] || [ "$port" = $((p - 10000)) ]; then
        taken=1
      fi
    done
    # the data directory of an earlier cluster in DIR holds its nodes.conf: not reused
    if [ "$taken" = 1 ] || [ -e "$dir/redis-$port" ]; then continue; fi
    mkdir -p "$dir/redis-$port" || return 1
    # AOF everysec as in production; a replica's full sync starts at once, not after the
    # default 5 s repl-diskless-sync-delay (a node rejoining after a test killed it too)
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/redis-$port" --daemonize no \
      --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout "$node_timeout" --repl-diskless-sync-delay 0 \
      --appendonly yes --appendfsync everysec --save "" --protected-mode yes \
      --logfile "$dir/redis-$port.log" >/dev/null 2>&1 </dev/null &
    echo $! >"$dir/redis-$port.pid"
    if redis_answers "$port" "$(cat "$dir/redis-$port.pid")"; then
      ports+=("$port")
      return 0
    fi
    stop_one "$dir/redis-$port.pid" redis-server
    rm -rf "$dir/redis-$port"
  done
  echo "stack: a redis-server of the cluster did not start (see $dir/redis-*.log)" >&2
  return 1
}

# cluster_node_ready PORT: the node sees the whole cluster healthy, 3 masters serving
# slots and 3 replicas of them (the roles --cluster create gave reach the other nodes
# by gossip), and a replica has its link to its master up.
cluster_node_ready() {
  local info
  info=$(timeout 5 redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r') || return 1
  grep -qx 'cluster_state:ok' <<<"$info" || return 1
  grep -qx 'cluster_slots_assigned:16384' <<<"$info" || return 1
  grep -qx 'cluster_known_nodes:6' <<<"$info" || return 1
  info=$(timeout 5 redis-cli -p "$1" cluster nodes 2>/dev/null) || return 1
  awk '$3 ~ /fail|handshake|noaddr/ { bad++ }
       $3 ~ /(^|,)master(,|$)/ && NF > 8 { m++ }
       $3 ~ /(^|,)slave(,|$)/ && $4 != "-" { s++ }
       END { exit !(m == 3 && s == 3 && !bad) }' <<<"$info" || return 1
  info=$(timeout 5 redis-cli -p "$1" info replication 2>/dev/null | tr -d '\r') || return 1
  if grep -qx 'role:slave' <<<"$info"; then
    grep -qx 'master_link_status:up' <<<"$info" || return 1
  fi
  return 0
}

# start_redis_cluster: 6 nodes joined as 3 masters + 3 replicas, ready; sets $ports.
start_redis_cluster() {
  local p i addrs=() ready
  ports=()
  for i in 1 2 3 4 5 6; do
    start_cluster_node || return 1
  done
  for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
  if ! timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
      >"$dir/redis-cluster-create.log" 2>&1 </dev/null; then
    echo "stack: redis-cli --cluster create failed (see $dir/redis-cluster-create.log)" >&2
    return 1
  fi
  for i in $(seq 1 300); do
    ready=1
    for p in "${ports[@]}"; do
      cluster_node_ready "$p" || { ready=0; break; }
    done
    [ "$ready" = 1 ] && return 0
    sleep 0.1
  done
  echo "stack: the Redis Cluster did not become ready within 30 s (see $dir/redis-*.log)" >&2
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

# write_stack_files REDIS_PROPERTIES REDIS_ENV: DIR/caresignal.properties and
# DIR/stack.env, with the lines that say where Redis is (one node or a cluster); the
# caller's $bootstrap is the broker's.
write_stack_files() {
  cat >"$dir/caresignal.properties" <<EOF
# Written by deploy/dev/stack.sh for the private dev stack in $dir
kafka.bootstrap.servers=$bootstrap
$1
# The dev broker answers a caught-up fetch only after fetch.wait.max.ms, and delays a
# rebalance by session.timeout.ms - 1 s (docs/contract/environment.md): keep both small here.
kafka.fetch.wait.max.ms=5
kafka.session.timeout.ms=6000
kafka.heartbeat.interval.ms=500
EOF
  cat >"$dir/stack.env" <<EOF
CS_STACK_DIR=$dir
$2
CS_BOOTSTRAP=$bootstrap
CS_BROKER_PID=$(cat "$dir/broker.pid")
CS_BROKER_CONTROL=$dir/broker.sock
CS_DEVBROKER=$build/caresignal-devbroker
CS_CONFIG=$dir/caresignal.properties
EOF
}

do_start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # absolute, as recorded in stack.env for fault from any directory
  if [ -d "$build" ]; then build=$(cd "$build" && pwd); fi
  if is_ours "$dir/redis.pid" redis-server || is_ours "$dir/broker.pid" caresignal-devbroker ||
    cluster_node_ours; then
    echo "stack: already running in $dir (stack.sh stop --dir $dir)" >&2
    exit 1
  fi
  trap 'do_stop' ERR
  if [ "$redis_cluster" = 1 ]; then
    do_start_cluster
    return
  fi
  start_redis
  start_broker
  local port bootstrap
  port=$(cat "$dir/redis.port")
  bootstrap=$(cat "$dir/bootstrap")
  write_stack_files "redis.host=127.0.0.1
redis.port=$port" "CS_REDIS_HOST=127.0.0.1
CS_REDIS_PORT=$port
CS_REDIS_PID=$(cat "$dir/redis.pid")"
  if [ -n "$owner" ]; then
    start_watchdog
  fi
  trap - ERR
  say "redis 127.0.0.1:$port, kafka $bootstrap (env: $dir/stack.env)"
}

# our_child PID: the process is a child of this shell.
our_child() {
  local stat ppid
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r _ ppid _ <<<"${stat##*) }" # after "PID (NAME) ": the state, then the ppid
  [ "$ppid" = "$$" ]
}

# cluster_start_exit: the EXIT trap of an unfinished cluster start. A process forked
# just now may not have exec'd its program yet, so is_ours cannot tell it by its name,
# but a child of this shell is ours: those get a SIGTERM first.
cluster_start_exit() {
  local rc=$? f
  trap - EXIT
  for f in "$dir/broker.pid" "$dir/watchdog.pid" "$dir"/redis-*.pid; do
    if [ -s "$f" ] && our_child "$(cat "$f")"; then
      kill -TERM "$(cat "$f")" 2>/dev/null || true
    fi
  done
  do_stop
  exit "$rc"
}

# do_start_cluster: the rest of do_start with a Redis Cluster. Starting one takes
# seconds, and a command failing inside a function exits under set -e without running
# the ERR trap: any exit before the end, on a signal too, stops whatever was started.
do_start_cluster() {
  trap 'exit 1' ERR
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'cluster_start_exit' EXIT
  local ports=() p nodes="" bootstrap
  start_redis_cluster
  start_broker
  for p in "${ports[@]}"; do nodes="$nodes${nodes:+,}127.0.0.1:$p"; done
  bootstrap=$(cat "$dir/bootstrap")
  write_stack_files "redis.cluster.nodes=$nodes" "CS_REDIS_CLUSTER_NODES=$nodes
CS_REDIS_CLUSTER_PORTS=\"${ports[*]}\"
CS_REDIS_CLUSTER_NODE_TIMEOUT=$node_timeout
CS_REDIS_HOST=127.0.0.1
CS_REDIS_PORT=${ports[0]}
CS_REDIS_PID=$(cat "$dir/redis-${ports[0]}.pid")"
  if [ -n "$owner" ]; then
    start_watchdog
  fi
  trap - ERR HUP INT TERM EXIT
  say "redis cluster $nodes, kafka $bootstrap (env: $dir/stack.env)"
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
    if redis_running && is_ours "$dir/broker.pid" caresignal-devbroker; then
      cat "$dir/stack.env"
    else
      echo "stack: not running in $dir" >&2
      exit 1
    fi
    ;;
  *) echo "usage: stack.sh start|stop|status|fault [--dir DIR] [--build DIR] [--owner PID] [--brokers N] [--partitions TOPIC=N] [--redis-cluster] [--cluster-node-timeout MS] [COMMAND... of fault]" >&2; exit 2 ;;
esac

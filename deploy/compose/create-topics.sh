#!/usr/bin/env bash
# deploy/compose/create-topics.sh: the compose stack's one-shot topic job (service
# kafka-topics, in the apache/kafka image). Creates caresignal's six topics on the
# single compose broker with kafka-topics.sh directly.
#
# Why not deploy/kafka/topics.sh: it fixes --replication-factor 3 and
# min.insync.replicas=2 (docs/contract/environment.md: production survives a lost broker), which a
# one-broker cluster refuses, and it offers no override. Everything else is the same:
# partitions, retention.ms, max.message.bytes and the other topic configs are
# topics.sh's, and tests/deploy/test_container_defs.py holds this script's --dry-run
# against topics.sh's --dry-run (only replication 1 and min.insync.replicas=1 differ).
#
#   create-topics.sh [--dry-run]     BOOTSTRAP (default kafka:9092), KAFKA_TOPICS
#                                    (default /opt/kafka/bin/kafka-topics.sh)
# Idempotent (--if-not-exists). Exit 0 done, 1 a command failed, 2 bad usage.
set -euo pipefail

BOOTSTRAP=${BOOTSTRAP:-kafka:9092}
KAFKA_TOPICS=${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}
REPLICATION_FACTOR=1 # one broker
MIN_INSYNC_REPLICAS=1
DAY_MS=86400000

dry_run=0
case ${1:-} in
'') ;;
--dry-run) dry_run=1 ;;
*) echo "create-topics.sh: unknown argument '$1' (usage: create-topics.sh [--dry-run])" >&2
   exit 2 ;;
esac

# name partitions retention.ms max.message.bytes (deploy/kafka/topics.sh's defaults)
topics() {
    cat <<EOF
intel.raw.nhse 8 $((14 * DAY_MS)) 1048576
intel.raw.ccg 8 $((14 * DAY_MS)) 1048576
intel.raw.ofsted-send 4 $((14 * DAY_MS)) 1048576
intel.events 16 -1 1048576
intel.alerts 4 $((90 * DAY_MS)) 1048576
intel.deadletter 4 $((30 * DAY_MS)) 2097152
EOF
}

run() {
    if [ "$dry_run" = 1 ]; then
        printf '%s\n' "$*"
        return 0
    fi
    printf '+ %s\n' "$*" >&2
    "$@"
}

while read -r name parts retention bytes; do
    run "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
        --topic "$name" --partitions "$parts" --replication-factor "$REPLICATION_FACTOR" \
        --config cleanup.policy=delete \
        --config "min.insync.replicas=$MIN_INSYNC_REPLICAS" \
        --config "retention.ms=$retention" \
        --config retention.bytes=-1 \
        --config "max.message.bytes=$bytes" \
        --config message.timestamp.type=CreateTime \
        --config unclean.leader.election.enable=false
done < <(topics)

# show what exists (a topic made earlier by hand keeps its own partitions: see README)
[ "$dry_run" = 1 ] || "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --describe \
    --topic 'intel\..*'

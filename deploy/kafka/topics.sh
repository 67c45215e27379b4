#!/usr/bin/env bash
# deploy/kafka/topics.sh: creates caresignal's topics on a production Apache Kafka
# (>= 2.8, KRaft or ZooKeeper) with kafka-topics.sh. Idempotent: a topic that exists is
# left alone (--if-not-exists), then every topic's partition count and replication
# factor are checked. See deploy/kafka/README.md for the why of every number.
set -euo pipefail

cs_prog=topics.sh
cs_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/kafka/common.sh
. "$cs_here/common.sh"

KAFKA_TOPICS=${KAFKA_TOPICS:-kafka-topics.sh}
KAFKA_CONFIGS=${KAFKA_CONFIGS:-kafka-configs.sh}

# Fixed by docs/contract/environment.md: every topic survives one broker lost with acks=all writes going on.
REPLICATION_FACTOR=3
MIN_INSYNC_REPLICAS=2

# Partition counts: those caresignal-devbroker creates (deploy/dev/devbroker.c,
# parse_topics; docs/contract/configuration.md "creates the topics above with their partition counts").
# A consumer group scales out to at most this many processes per topic. Decide before
# the first message: adding partitions later moves keys (subject keys on intel.events)
# to other partitions, so per-key order holds only within each side of the change.
CS_PARTITIONS_RAW_NHSE=${CS_PARTITIONS_RAW_NHSE:-8}
CS_PARTITIONS_RAW_CCG=${CS_PARTITIONS_RAW_CCG:-8}
CS_PARTITIONS_RAW_OFSTED_SEND=${CS_PARTITIONS_RAW_OFSTED_SEND:-4}
CS_PARTITIONS_EVENTS=${CS_PARTITIONS_EVENTS:-16}
CS_PARTITIONS_ALERTS=${CS_PARTITIONS_ALERTS:-4}
CS_PARTITIONS_DEADLETTER=${CS_PARTITIONS_DEADLETTER:-4}

DAY_MS=86400000
# raw: partner bytes (personal data included) kept 14 days, long enough to re-normalise
#   after a bug fix (offsets --to-time on caresignal-normalise), short for personal data.
CS_RETENTION_RAW_MS=${CS_RETENTION_RAW_MS:-$((14 * DAY_MS))}
# events: -1 = kept for ever. intel.events is the history that rebuild and what-if
#   replay; the risk state (levels with hysteresis, events_total, the 396-day
#   de-duplication horizon) is only reproducible from all of it. No personal data.
CS_RETENTION_EVENTS_MS=${CS_RETENTION_EVENTS_MS:--1}
# alerts: derived (a rebuild re-derives them with the same ids); 90 days lets the pager's
#   group be rewound after a sink outage and matches the 90-day explanation window.
CS_RETENTION_ALERTS_MS=${CS_RETENTION_ALERTS_MS:-$((90 * DAY_MS))}
# dead letters: partner bytes again; docs/contract/reason-codes.md asks for short retention. 30 days to fix
#   the cause (a directory update, a sink) and redrive, longer than the raw topics'.
CS_RETENTION_DEADLETTER_MS=${CS_RETENTION_DEADLETTER_MS:-$((30 * DAY_MS))}

# max.message.bytes (the largest record batch the topic takes). A dead letter is a raw
# (or events or alerts) value with its key plus up to a few hundred bytes of cs.*
# headers, so the dead-letter topic must take any message of the others plus headroom.
CS_MAX_BYTES_RAW=${CS_MAX_BYTES_RAW:-1048576}        # 1 MiB
CS_MAX_BYTES_EVENTS=${CS_MAX_BYTES_EVENTS:-1048576}  # 1 MiB
CS_MAX_BYTES_ALERTS=${CS_MAX_BYTES_ALERTS:-1048576}  # 1 MiB
CS_MAX_BYTES_DEADLETTER=${CS_MAX_BYTES_DEADLETTER:-2097152} # 2 MiB
DEADLETTER_HEADROOM=65536 # the producers' own allowance for headers (CS_KAFKA_PRODUCER_MAX_BYTES)

cs_update_configs=0

cs_help() {
    cat <<EOF
Usage: deploy/kafka/topics.sh [--bootstrap-server HOST:PORT,...] [--command-config FILE]
                              [--update-configs] [--dry-run] [--help]

Creates caresignal's six topics with kafka-topics.sh --create --if-not-exists
(replication factor $REPLICATION_FACTOR, min.insync.replicas=$MIN_INSYNC_REPLICAS, cleanup.policy=delete, per-topic
retention.ms and max.message.bytes), then describes each topic and fails if an existing
one has another partition count or replication factor. Running it again changes nothing.

  --bootstrap-server LIST  brokers (default: \$BOOTSTRAP)
  --command-config FILE    admin client properties: security.protocol, sasl.*, ssl.*
                           of a principal allowed to create topics (default: \$COMMAND_CONFIG)
  --update-configs         also set the topic configs below on topics that already
                           exist (kafka-configs.sh --alter --add-config; idempotent)
  --dry-run                print the commands instead of running them (no broker needed)
  --help                   this text

Topics (names from CS_TOPIC_RAW_NHSE, CS_TOPIC_RAW_CCG, CS_TOPIC_RAW_OFSTED_SEND,
CS_TOPIC_EVENTS, CS_TOPIC_ALERTS, CS_TOPIC_DEADLETTER; defaults as docs/contract/topics.md):
$(cs_topic_table)

Overrides (environment): CS_PARTITIONS_{RAW_NHSE,RAW_CCG,RAW_OFSTED_SEND,EVENTS,ALERTS,
DEADLETTER}, CS_RETENTION_{RAW,EVENTS,ALERTS,DEADLETTER}_MS (-1: for ever),
CS_MAX_BYTES_{RAW,EVENTS,ALERTS,DEADLETTER}; the dead-letter topic's limit must exceed
every other topic's by at least $DEADLETTER_HEADROOM bytes. KAFKA_TOPICS, KAFKA_CONFIGS: the tools
(default kafka-topics.sh, kafka-configs.sh; Confluent's packages name them without .sh).

Exit status: 0 done, 1 a Kafka command failed or a topic differs, 2 bad usage.
EOF
}

cs_extra_option() {
    case $1 in
    --update-configs) cs_update_configs=1 ;;
    *) return 1 ;;
    esac
}

# name partitions retention.ms max.message.bytes, one topic a line
cs_topics() {
    printf '%s %s %s %s\n' \
        "$CS_TOPIC_RAW_NHSE" "$CS_PARTITIONS_RAW_NHSE" "$CS_RETENTION_RAW_MS" "$CS_MAX_BYTES_RAW" \
        "$CS_TOPIC_RAW_CCG" "$CS_PARTITIONS_RAW_CCG" "$CS_RETENTION_RAW_MS" "$CS_MAX_BYTES_RAW" \
        "$CS_TOPIC_RAW_OFSTED_SEND" "$CS_PARTITIONS_RAW_OFSTED_SEND" "$CS_RETENTION_RAW_MS" "$CS_MAX_BYTES_RAW" \
        "$CS_TOPIC_EVENTS" "$CS_PARTITIONS_EVENTS" "$CS_RETENTION_EVENTS_MS" "$CS_MAX_BYTES_EVENTS" \
        "$CS_TOPIC_ALERTS" "$CS_PARTITIONS_ALERTS" "$CS_RETENTION_ALERTS_MS" "$CS_MAX_BYTES_ALERTS" \
        "$CS_TOPIC_DEADLETTER" "$CS_PARTITIONS_DEADLETTER" "$CS_RETENTION_DEADLETTER_MS" "$CS_MAX_BYTES_DEADLETTER"
}

cs_topic_table() {
    local name parts ret bytes
    printf '  %-24s %10s %16s %18s\n' topic partitions retention.ms max.message.bytes
    while read -r name parts ret bytes; do
        printf '  %-24s %10s %16s %18s\n' "$name" "$parts" "$ret" "$bytes"
    done < <(cs_topics)
}

cs_is_int() {
    case $1 in '' | *[!0-9]*) return 1 ;; esac
}

cs_validate() {
    local name parts ret bytes
    cs_is_int "$CS_MAX_BYTES_DEADLETTER" ||
        cs_usage_error "$CS_TOPIC_DEADLETTER: max.message.bytes '$CS_MAX_BYTES_DEADLETTER' is not an integer"
    while read -r name parts ret bytes; do
        case $name in '' | *[!A-Za-z0-9._-]*)
            cs_usage_error "topic name '$name': Kafka allows only [A-Za-z0-9._-]" ;;
        esac
        { cs_is_int "$parts" && [ "$parts" -ge 1 ]; } ||
            cs_usage_error "$name: partitions '$parts' is not a positive integer"
        { [ "$ret" = -1 ] || { cs_is_int "$ret" && [ "$ret" -ge 1 ]; }; } ||
            cs_usage_error "$name: retention.ms '$ret' is neither -1 nor a positive integer"
        cs_is_int "$bytes" ||
            cs_usage_error "$name: max.message.bytes '$bytes' is not an integer"
        if [ "$name" != "$CS_TOPIC_DEADLETTER" ] &&
            [ $((bytes + DEADLETTER_HEADROOM)) -gt "$CS_MAX_BYTES_DEADLETTER" ]; then
            cs_usage_error "$name: max.message.bytes $bytes + $DEADLETTER_HEADROOM bytes of headers exceeds the dead-letter topic's $CS_MAX_BYTES_DEADLETTER: its dead letters would lose their value"
        fi
    done < <(cs_topics)
    [ "$(cs_topics | awk '{print $1}' | sort -u | wc -l)" = 6 ] ||
        cs_usage_error "the six topic names are not distinct"
}

cs_configs() { # retention.ms max.message.bytes -> the topic configs, one a line
    printf '%s\n' \
        cleanup.policy=delete \
        "min.insync.replicas=$MIN_INSYNC_REPLICAS" \
        "retention.ms=$1" \
        retention.bytes=-1 \
        "max.message.bytes=$2" \
        message.timestamp.type=CreateTime \
        unclean.leader.election.enable=false
}

# Fails (returns 1) when the existing topic's partitions or replication factor differ.
cs_check_topic() {
    local name=$1 parts=$2 out got_parts got_rf
    local cmd=("$KAFKA_TOPICS" --bootstrap-server "$cs_bootstrap"
        --command-config "$cs_command_config" --describe --topic "$name")
    if [ "$cs_dry_run" = 1 ]; then
        cs_run "${cmd[@]}"
        return 0
    fi
    out=$("${cmd[@]}") || { echo "$cs_prog: cannot describe $name" >&2; return 1; }
    # the summary line: "Topic: NAME<TAB>TopicId: ...<TAB>PartitionCount: N<TAB>ReplicationFactor: R ..."
    read -r got_parts got_rf < <(printf '%s\n' "$out" | awk -v t="$name" '
        { p = ""; r = ""; hit = 0
          for (i = 1; i < NF; i++) {
            if ($i == "Topic:" && $(i + 1) == t) hit = 1
            if ($i == "PartitionCount:") p = $(i + 1)
            if ($i == "ReplicationFactor:") r = $(i + 1)
          }
          if (hit && p != "") { print p, r; exit } }') || true
    if [ "${got_parts:-}" != "$parts" ] || [ "${got_rf:-}" != "$REPLICATION_FACTOR" ]; then
        printf '%s: topic %s has %s partitions and replication factor %s, expected %s and %s (an existing topic is never changed: see README.md)\n' \
            "$cs_prog" "$name" "${got_parts:-?}" "${got_rf:-?}" "$parts" "$REPLICATION_FACTOR" >&2
        return 1
    fi
}

main() {
    cs_parse_args "$@"
    cs_validate
    cs_require_tool "$KAFKA_TOPICS" KAFKA_TOPICS
    [ "$cs_update_configs" = 0 ] || cs_require_tool "$KAFKA_CONFIGS" KAFKA_CONFIGS
    local name parts ret bytes c bad=0
    local -a args cfgs
    while read -r name parts ret bytes; do
        args=("$KAFKA_TOPICS" --bootstrap-server "$cs_bootstrap"
            --command-config "$cs_command_config" --create --if-not-exists
            --topic "$name" --partitions "$parts" --replication-factor "$REPLICATION_FACTOR")
        mapfile -t cfgs < <(cs_configs "$ret" "$bytes")
        for c in "${cfgs[@]}"; do
            args+=(--config "$c")
        done
        cs_run "${args[@]}"
        if [ "$cs_update_configs" = 1 ]; then
            cs_run "$KAFKA_CONFIGS" --bootstrap-server "$cs_bootstrap" \
                --command-config "$cs_command_config" --alter --entity-type topics \
                --entity-name "$name" --add-config "$(IFS=,; echo "${cfgs[*]}")"
        fi
    done < <(cs_topics)
    while read -r name parts ret bytes; do
        cs_check_topic "$name" "$parts" || bad=1
    done < <(cs_topics)
    return "$bad"
}

main "$@"

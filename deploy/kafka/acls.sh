#!/usr/bin/env bash
# deploy/kafka/acls.sh: caresignal's ACLs on a production Apache Kafka (>= 2.8, KRaft
# with StandardAuthorizer or ZooKeeper with AclAuthorizer) with kafka-acls.sh --add.
# Idempotent: adding an ACL that exists changes nothing. Least privilege: each program
# gets what its code does (README.md has the matrix and the reason for every line).
set -euo pipefail

cs_prog=acls.sh
cs_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/kafka/common.sh
. "$cs_here/common.sh"

KAFKA_ACLS=${KAFKA_ACLS:-kafka-acls.sh}

# Principals: with SASL/SCRAM or PLAIN, User:<sasl username>; with mTLS, User:<the
# certificate's DN> unless the brokers' ssl.principal.mapping.rules shorten it.
CS_PRINCIPAL_NORMALISE=${CS_PRINCIPAL_NORMALISE:-User:caresignal-normalise}
CS_PRINCIPAL_SCORE=${CS_PRINCIPAL_SCORE:-User:caresignal-score}
CS_PRINCIPAL_PAGE=${CS_PRINCIPAL_PAGE:-User:caresignal-page}
CS_PRINCIPAL_OPS=${CS_PRINCIPAL_OPS:-User:caresignal-ops}
CS_PRINCIPAL_PARTNER_NHSE=${CS_PRINCIPAL_PARTNER_NHSE:-User:partner-nhse}
CS_PRINCIPAL_PARTNER_CCG=${CS_PRINCIPAL_PARTNER_CCG:-User:partner-ccg}
CS_PRINCIPAL_PARTNER_OFSTED=${CS_PRINCIPAL_PARTNER_OFSTED:-User:partner-ofsted}

# Consumer groups: the programs' group.id default is the program's name (docs/contract/configuration.md).
CS_GROUP_NORMALISE=${CS_GROUP_NORMALISE:-caresignal-normalise}
CS_GROUP_SCORE=${CS_GROUP_SCORE:-caresignal-score}
CS_GROUP_PAGE=${CS_GROUP_PAGE:-caresignal-page}
# Groups of the ops tools: caresignal-replay's readers (rebuild, whatif, redrive) use
# group.id "caresignal-reader-<pid>" without joining or committing (lib/reader.c);
# caresignal-cat uses "caresignal-cat"; ops' own ad hoc consumers use the prefix "ops-".
CS_GROUP_READER_PREFIX=${CS_GROUP_READER_PREFIX:-caresignal-reader-}
CS_GROUP_CAT=${CS_GROUP_CAT:-caresignal-cat}
CS_GROUP_OPS_PREFIX=${CS_GROUP_OPS_PREFIX:-ops-}

cs_idempotent_write=1

cs_help() {
    cat <<EOF
Usage: deploy/kafka/acls.sh [--bootstrap-server HOST:PORT,...] [--command-config FILE]
                            [--no-idempotent-write] [--dry-run] [--help]

Adds caresignal's ACLs with kafka-acls.sh --add (allow rules only; hosts '*'):
  partners   Write, Describe on their own raw topic, nothing else
  normalise  reads the three raw topics (group $CS_GROUP_NORMALISE), writes
             $CS_TOPIC_EVENTS and $CS_TOPIC_DEADLETTER
  score      reads $CS_TOPIC_EVENTS (group $CS_GROUP_SCORE), writes $CS_TOPIC_ALERTS and $CS_TOPIC_DEADLETTER
  page       reads $CS_TOPIC_ALERTS (group $CS_GROUP_PAGE), writes $CS_TOPIC_DEADLETTER
  ops        Read, Describe, DescribeConfigs on every topic (the only reader of
             $CS_TOPIC_DEADLETTER); Write on the raw topics, $CS_TOPIC_EVENTS and
             $CS_TOPIC_ALERTS (caresignal-replay redrive); Read on the three consumers'
             groups (caresignal-replay offsets) and on the groups of its own tools
Every producer is idempotent: IdempotentWrite on the cluster as well, which brokers
before 2.8 need (from 2.8 Write on any topic is enough).

  --bootstrap-server LIST  brokers (default: \$BOOTSTRAP)
  --command-config FILE    admin client properties of a principal allowed to alter ACLs
                           (a super user) (default: \$COMMAND_CONFIG)
  --no-idempotent-write    leave out the cluster IdempotentWrite ACLs (brokers >= 2.8)
  --dry-run                print the commands instead of running them (no broker needed)
  --help                   this text

Environment: CS_PRINCIPAL_{NORMALISE,SCORE,PAGE,OPS,PARTNER_NHSE,PARTNER_CCG,
PARTNER_OFSTED} (defaults User:caresignal-normalise, ..., User:partner-ofsted; each must
be distinct), CS_GROUP_{NORMALISE,SCORE,PAGE,CAT}, CS_GROUP_READER_PREFIX,
CS_GROUP_OPS_PREFIX, CS_TOPIC_* (as topics.sh), KAFKA_ACLS (default kafka-acls.sh).

Exit status: 0 done, 1 a Kafka command failed, 2 bad usage.
EOF
}

cs_extra_option() {
    case $1 in
    --no-idempotent-write) cs_idempotent_write=0 ;;
    *) return 1 ;;
    esac
}

cs_validate() {
    local p v seen=' '
    for p in CS_PRINCIPAL_NORMALISE CS_PRINCIPAL_SCORE CS_PRINCIPAL_PAGE CS_PRINCIPAL_OPS \
        CS_PRINCIPAL_PARTNER_NHSE CS_PRINCIPAL_PARTNER_CCG CS_PRINCIPAL_PARTNER_OFSTED; do
        v=${!p}
        case $v in
        *:*'*'* | '*'*) cs_usage_error "$p='$v': a wildcard principal would grant everyone" ;;
        [A-Za-z]*:?*) ;;
        *) cs_usage_error "$p='$v': expected Type:name, e.g. User:caresignal-ops" ;;
        esac
        case $seen in *" $v "*)
            cs_usage_error "$p='$v' is another role's principal too: one principal per role" ;;
        esac
        seen+="$v "
    done
    for v in "$CS_GROUP_NORMALISE" "$CS_GROUP_SCORE" "$CS_GROUP_PAGE" "$CS_GROUP_CAT" \
        "$CS_GROUP_READER_PREFIX" "$CS_GROUP_OPS_PREFIX"; do
        case $v in '' | *'*'*) cs_usage_error "group '$v': empty or a wildcard" ;; esac
    done
}

# allow PRINCIPAL (--topic T | --group G | --cluster) [prefixed] -- OPERATION...
allow() {
    local principal=$1 kind=$2 name='' pattern=literal
    shift 2
    if [ "$kind" != --cluster ]; then
        name=$1
        shift
    fi
    if [ "$1" = prefixed ]; then
        pattern=prefixed
        shift
    fi
    [ "$1" = -- ] && shift
    local -a cmd=("$KAFKA_ACLS" --bootstrap-server "$cs_bootstrap"
        --command-config "$cs_command_config" --add --allow-principal "$principal")
    local op
    for op in "$@"; do
        cmd+=(--operation "$op")
    done
    if [ "$kind" = --cluster ]; then
        cmd+=(--cluster)
    else
        cmd+=("$kind" "$name" --resource-pattern-type "$pattern")
    fi
    cs_run "${cmd[@]}"
}

producer() { # PRINCIPAL TOPIC...: Write (with Describe, for metadata) on each topic
    local principal=$1 t
    shift
    for t in "$@"; do
        allow "$principal" --topic "$t" -- Write Describe
    done
    if [ "$cs_idempotent_write" = 1 ]; then
        allow "$principal" --cluster -- IdempotentWrite
    fi
}

consumer() { # PRINCIPAL GROUP TOPIC...: Read on the topics, Read on the group
    local principal=$1 group=$2 t
    shift 2
    for t in "$@"; do
        allow "$principal" --topic "$t" -- Read Describe
    done
    allow "$principal" --group "$group" -- Read Describe
}

main() {
    cs_parse_args "$@"
    cs_validate
    cs_require_tool "$KAFKA_ACLS" KAFKA_ACLS
    local raw=("$CS_TOPIC_RAW_NHSE" "$CS_TOPIC_RAW_CCG" "$CS_TOPIC_RAW_OFSTED_SEND")
    local t

    # Partners: each writes its own raw topic only (the topic fixes the source, docs/contract/topics.md).
    producer "$CS_PRINCIPAL_PARTNER_NHSE" "$CS_TOPIC_RAW_NHSE"
    producer "$CS_PRINCIPAL_PARTNER_CCG" "$CS_TOPIC_RAW_CCG"
    producer "$CS_PRINCIPAL_PARTNER_OFSTED" "$CS_TOPIC_RAW_OFSTED_SEND"

    # caresignal-normalise: raw -> intel.events, rejections -> intel.deadletter.
    consumer "$CS_PRINCIPAL_NORMALISE" "$CS_GROUP_NORMALISE" "${raw[@]}"
    producer "$CS_PRINCIPAL_NORMALISE" "$CS_TOPIC_EVENTS" "$CS_TOPIC_DEADLETTER"

    # caresignal-score: intel.events -> intel.alerts; poison events -> intel.deadletter.
    consumer "$CS_PRINCIPAL_SCORE" "$CS_GROUP_SCORE" "$CS_TOPIC_EVENTS"
    producer "$CS_PRINCIPAL_SCORE" "$CS_TOPIC_ALERTS" "$CS_TOPIC_DEADLETTER"

    # caresignal-page: intel.alerts -> sinks; undeliverable alerts -> intel.deadletter.
    consumer "$CS_PRINCIPAL_PAGE" "$CS_GROUP_PAGE" "$CS_TOPIC_ALERTS"
    producer "$CS_PRINCIPAL_PAGE" "$CS_TOPIC_DEADLETTER"

    # ops (caresignal-replay, caresignal-cat): reads everything, the dead letters included.
    for t in "${raw[@]}" "$CS_TOPIC_EVENTS" "$CS_TOPIC_ALERTS" "$CS_TOPIC_DEADLETTER"; do
        allow "$CS_PRINCIPAL_OPS" --topic "$t" -- Read Describe DescribeConfigs
    done
    # redrive republishes a dead letter to its cs.origin.topic: a raw topic, intel.alerts
    # (UNDELIVERABLE) or intel.events (STATE_ERROR). Never to the dead-letter topic.
    producer "$CS_PRINCIPAL_OPS" "${raw[@]}" "$CS_TOPIC_EVENTS" "$CS_TOPIC_ALERTS"
    # offsets --group G commits G's offsets (OffsetCommit: Read on the group and topic);
    # cat --committed G reads them (OffsetFetch: Describe).
    for t in "$CS_GROUP_NORMALISE" "$CS_GROUP_SCORE" "$CS_GROUP_PAGE" "$CS_GROUP_CAT"; do
        allow "$CS_PRINCIPAL_OPS" --group "$t" -- Read Describe
    done
    allow "$CS_PRINCIPAL_OPS" --group "$CS_GROUP_READER_PREFIX" prefixed -- Read Describe
    allow "$CS_PRINCIPAL_OPS" --group "$CS_GROUP_OPS_PREFIX" prefixed -- Read Describe
}

main "$@"

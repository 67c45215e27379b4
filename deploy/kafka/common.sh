# shellcheck shell=bash
# deploy/kafka/common.sh: sourced by topics.sh and acls.sh (not run on its own).
# Topic names, option parsing and the run-or-print helper the two scripts share.

# Topic names: the defaults of the programs' topic.* keys (docs/contract/topics.md, lib/config.c).
# Override them here only if caresignal.properties overrides topic.* too.
CS_TOPIC_RAW_NHSE=${CS_TOPIC_RAW_NHSE:-intel.raw.nhse}
CS_TOPIC_RAW_CCG=${CS_TOPIC_RAW_CCG:-intel.raw.ccg}
CS_TOPIC_RAW_OFSTED_SEND=${CS_TOPIC_RAW_OFSTED_SEND:-intel.raw.ofsted-send}
CS_TOPIC_EVENTS=${CS_TOPIC_EVENTS:-intel.events}
CS_TOPIC_ALERTS=${CS_TOPIC_ALERTS:-intel.alerts}
CS_TOPIC_DEADLETTER=${CS_TOPIC_DEADLETTER:-intel.deadletter}

: "${cs_prog:=kafka-defs}" # the sourcing script's name, for messages
cs_dry_run=0
cs_bootstrap=${BOOTSTRAP:-}
cs_command_config=${COMMAND_CONFIG:-}

cs_usage_error() {
    printf '%s: %s (see --help)\n' "$cs_prog" "$*" >&2
    exit 2
}

# cs_parse_args "$@": the options both scripts take. A script may define
# cs_extra_option NAME, returning 0 when it takes the option NAME (a flag, no value).
cs_parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
        --bootstrap-server) [ $# -ge 2 ] || cs_usage_error "option $1 needs a value"
            cs_bootstrap=$2; shift 2 ;;
        --bootstrap-server=*) cs_bootstrap=${1#*=}; shift ;;
        --command-config) [ $# -ge 2 ] || cs_usage_error "option $1 needs a value"
            cs_command_config=$2; shift 2 ;;
        --command-config=*) cs_command_config=${1#*=}; shift ;;
        --dry-run) cs_dry_run=1; shift ;;
        -h | --help) cs_help; exit 0 ;;
        *)
            if declare -F cs_extra_option >/dev/null && cs_extra_option "$1"; then
                shift
            else
                cs_usage_error "unknown argument '$1'"
            fi ;;
        esac
    done
    if [ "$cs_dry_run" = 0 ]; then
        [ -n "$cs_bootstrap" ] ||
            cs_usage_error "no bootstrap servers: set BOOTSTRAP or pass --bootstrap-server"
        [ -n "$cs_command_config" ] ||
            cs_usage_error "no admin client config: set COMMAND_CONFIG or pass --command-config"
        [ -r "$cs_command_config" ] ||
            cs_usage_error "--command-config: cannot read '$cs_command_config'"
    fi
    # shown in place of a value a dry run was not given
    cs_bootstrap=${cs_bootstrap:-<bootstrap-servers>}
    cs_command_config=${cs_command_config:-<admin-client.properties>}
}

# cs_require_tool NAME: a real run needs the Kafka tool on PATH (or named by its env var).
cs_require_tool() {
    [ "$cs_dry_run" = 1 ] && return 0
    command -v "$1" >/dev/null 2>&1 ||
        cs_usage_error "'$1' not found: put Kafka's bin/ on PATH or set ${2} to the tool"
}

# cs_quote WORD: sets cs_quoted to WORD as the shell reads it back (bare when safe,
# else single-quoted).
cs_quote() {
    case $1 in
    '' | *[!A-Za-z0-9_./:=,@%+-]*) cs_quoted="'${1//\'/\'\\\'\'}'" ;;
    *) cs_quoted=$1 ;;
    esac
}

# cs_run CMD ARG...: a dry run prints the command (one line, shell-quoted, ready to
# paste); a real run shows it on stderr and runs it, stopping at the first failure.
cs_run() {
    local line='' w cs_quoted
    for w in "$@"; do
        cs_quote "$w"
        line+="${line:+ }$cs_quoted"
    done
    if [ "$cs_dry_run" = 1 ]; then
        printf '%s\n' "$line"
        return 0
    fi
    printf '+ %s\n' "$line" >&2
    local rc=0
    "$@" || rc=$?
    if [ "$rc" != 0 ]; then
        printf '%s: failed (exit %s): %s\n' "$cs_prog" "$rc" "$line" >&2
        exit 1
    fi
}

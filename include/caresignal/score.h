/* caresignal scoring: the Redis layout (docs/contract/redis-layout.md) and the one Redis
 * function that applies a subject's events (docs/contract/risk-model.md), built from the
 * rules and called with FCALL. */
#ifndef CARESIGNAL_SCORE_H
#define CARESIGNAL_SCORE_H

#include <hiredis/hiredis.h>

#include "caresignal/alert.h"
#include "caresignal/event.h"
#include "caresignal/redis.h"
#include "caresignal/rules.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_scorer cs_scorer_t;

/**
 * Builds the Lua library for \p rules (borrowed; must outlive the scorer) and the
 * key layout under namespace \p ns (copied). The library is named after the rules'
 * digest, so scorers with different rules (a what-if) never replace each other's.
 * @returns NULL with \p errstr.
 */
cs_scorer_t *cs_scorer_new(const cs_rules_t *rules, const char *ns, char *errstr,
                           size_t errstr_size);
/** The same, writing state of \p layout (1 or 2: docs/contract/redis-layout.md;
 *  cs_scorer_new: 1). Readers read whichever layout the namespace holds. */
cs_scorer_t *cs_scorer_new_layout(const cs_rules_t *rules, const char *ns, int layout,
                                  char *errstr, size_t errstr_size);
void cs_scorer_destroy(cs_scorer_t *s);
int cs_scorer_layout(const cs_scorer_t *s);

/**
 * Before writing: records the namespace's layout in `<ns>:layout` if it has none yet
 * (what its state keys are, or in a new namespace the scorer's), and refuses a
 * namespace of another layout than the scorer writes.
 * @returns CS_OK, CS_ERR_INVALID_ARG (another layout; \p errstr names state.layout),
 * CS_ERR_RETRY (Redis unreachable or refusing), CS_ERR_FATAL (the record is not a
 * layout), each with \p errstr.
 */
cs_err_t cs_scorer_claim(const cs_scorer_t *s, cs_redis_t *redis, char *errstr,
                         size_t errstr_size);

/** The layout a namespace holds (`<ns>:layout`; none: 1). */
cs_err_t cs_scorer_namespace_layout(const cs_scorer_t *s, cs_redis_t *redis, int *layout,
                                    char *errstr, size_t errstr_size);

/** The Lua library text (for cs_redis_function_load) and the function's name. Borrowed.
 */
const char *cs_scorer_library(const cs_scorer_t *s);
/** Layout 2's compare-and-set function (FCALL <it> 1 <key> <SHA-1 hex of the value the
 *  new one was computed from, "" for none> <new value>: 1 written, 0 the value moved), by
 *  which the scorer engine writes on a Redis Cluster (lib/engine.c). */
const char *cs_scorer_cas_function(const cs_scorer_t *s);
const char *cs_scorer_function(const cs_scorer_t *s);

/** An event to apply, with its own position on the events topic (not its origin). */
typedef struct cs_score_input {
    const cs_intel_event_t *ev;
    int32_t partition;
    int64_t offset;
} cs_score_input_t;

/**
 * Appends one FCALL applying \p n events of ONE subject, in offset order, to \p pipe.
 * @returns CS_OK, CS_ERR_INVALID_ARG (events of different subjects) or CS_ERR_NOMEM.
 */
cs_err_t cs_scorer_add_call(cs_scorer_t *s, cs_redis_pipe_t *pipe,
                            const cs_score_input_t *in, size_t n);

/**
 * Appends the acknowledgement of \p n alerts of ONE subject, delivered to the alerts
 * topic, to \p pipe: they leave the subject's pending_alerts (the redelivery safety
 * net), which makes the final state independent of how events were batched.
 */
cs_err_t cs_scorer_add_ack(cs_scorer_t *s, cs_redis_pipe_t *pipe,
                           const cs_alert_t *alerts, size_t n);

/** What one call did. `alerts` (new ones first, then re-emitted ones) is owned by the
 *  outcome: release with cs_score_outcome_release. */
typedef struct cs_score_outcome {
    double score; /**< S(as_of) after the call */
    int64_t as_of;
    cs_level_t level;
    int applied, duplicates, redeliveries;
    int regressions; /**< of the applied: unseen events at or below the subject's last
                          offset on their partition (intel.events recreated, migrated) */
    int nalerts;     /**< alerts to publish */
    int nreemitted;  /**< of which re-emitted for redelivered events (same ids as before)
                      */
    cs_alert_t *alerts;
} cs_score_outcome_t;

/**
 * Parses the reply of a call made with the same \p in / \p n into \p out; alerts get
 * their ids, the rules version, and region / local authority from the triggering event.
 * @returns CS_OK, or CS_ERR_REDIS with \p errstr (an error reply, a malformed reply).
 */
cs_err_t cs_scorer_parse_reply(const cs_scorer_t *s, const redisReply *reply,
                               const cs_score_input_t *in, size_t n,
                               cs_score_outcome_t *out, char *errstr, size_t errstr_size);

void cs_score_outcome_release(cs_score_outcome_t *out);

/* ------------------------------------------------------------------ computing here
 * state.engine = scorer (docs/contract/redis-layout.md, "Computing in the scorer"): the
 * scorer computes each subject's new state itself, exactly as the Redis function would,
 * and Redis only stores it. The engine reads the values under WATCH and writes them in
 * one MULTI/EXEC, so that no write replaces a value it was not computed from. */

/** Computes in the scorer (\p on non-zero) or in the Redis function (0, the default).
 *  @returns CS_OK, or CS_ERR_INVALID_ARG (only layout 2 can: \p errstr names
 *  state.engine). */
cs_err_t cs_scorer_set_compute(cs_scorer_t *s, int on, char *errstr, size_t errstr_size);
int cs_scorer_computes(const cs_scorer_t *s);

/**
 * Applies \p n events of ONE subject, in offset order, to its state value \p state (the
 * reply of a GET of its state key: nil for a new subject), as the function would.
 * \p value (malloc'd, the caller frees it) is the value to store, NULL when nothing
 * changed; \p out as cs_scorer_parse_reply would have made of the function's reply.
 * @returns CS_OK, or CS_ERR_REDIS with \p errstr (a value that is not this layout's),
 * as the function's error reply.
 */
cs_err_t cs_scorer_compute(const cs_scorer_t *s, const redisReply *state,
                           const cs_score_input_t *in, size_t n, unsigned char **value,
                           size_t *value_len, cs_score_outcome_t *out, char *errstr,
                           size_t errstr_size);

/**
 * Acknowledges \p n delivered alerts of ONE subject in its state value \p state (a GET
 * reply), as the acknowledgement function would: the pending alerts with the same kind,
 * level and triggered_by leave it. \p value (malloc'd) is the value to store, NULL when
 * none was pending; \p removed how many left.
 * @returns CS_OK, or CS_ERR_REDIS with \p errstr (a value that is not this layout's).
 */
cs_err_t cs_scorer_compute_ack(const cs_scorer_t *s, const redisReply *state,
                               const cs_alert_t *alerts, size_t n, unsigned char **value,
                               size_t *value_len, int *removed, char *errstr,
                               size_t errstr_size);

/**
 * One alert of a reply (JSON, numbers as "%.17g" strings) into \p a, of subject
 * \p subject_kind / \p subject_id; routing attributes from the triggering event among
 * \p in (\p n may be 0: none); id and rules version set.
 * @returns CS_OK or CS_ERR_REDIS (malformed).
 */
cs_err_t cs_scorer_parse_alert(const cs_scorer_t *s, const char *text, size_t len,
                               cs_subject_kind_t subject_kind, const char *subject_id,
                               const cs_score_input_t *in, size_t n, cs_alert_t *a);

/** Redis keys of the layout (docs/contract/redis-layout.md), written into \p out. */
void cs_scorer_state_key(const cs_scorer_t *s, const char *subject_key, char *out,
                         size_t size);
void cs_scorer_rank_key(const cs_scorer_t *s, cs_subject_kind_t kind, char *out,
                        size_t size);
void cs_scorer_pos_key(const cs_scorer_t *s, const char *topic, int32_t partition,
                       char *out, size_t size);

/** On a Redis Cluster each rank set is spread over this many keys (so that no master
 *  holds the whole country's index), merged on read (cs_scorer_top). */
#define CS_RANK_SHARDS 16
/** The rank set shard \p shard of \p kind: `<ns>:rank:{<KIND>:<shard>}`; \p shard -1 is
 *  the one key of a single node, `<ns>:rank:<KIND>`. */
void cs_scorer_rank_key_shard(const cs_scorer_t *s, cs_subject_kind_t kind, int shard,
                              char *out, size_t size);
/** The shard of a subject's rank on a cluster: its key slot mod CS_RANK_SHARDS. */
int cs_scorer_rank_shard(const char *subject_key);
/**
 * The \p n highest ranked subjects of \p kind, highest first, merged over the shards on a
 * cluster: \p subjects gets \p count strings (free each and the array).
 */
cs_err_t cs_scorer_top(const cs_scorer_t *s, cs_redis_t *redis, cs_subject_kind_t kind,
                       long n, char ***subjects, size_t *count, char *errstr,
                       size_t errstr_size);
/** A position key on a Redis Cluster master: `<ns>:pos:{<tag>}:<topic>:<partition>`, the
 *  tag one of cs_redis_shard_tags(); \p tag NULL is cs_scorer_pos_key's (one node). */
void cs_scorer_pos_key_on(const cs_scorer_t *s, const char *tag, const char *topic,
                          int32_t partition, char *out, size_t size);

/**
 * The rank of a subject in `<ns>:rank:<KIND>`: log2(S) + as_of / half-life. Ordering by
 * it is ordering by the score decayed to any common "now" (S(now) = S·2^-(now-as_of)/H),
 * so the sorted set stays exact without rewriting every subject as time passes.
 * -inf for S <= 0.
 */
double cs_scorer_rank_value(const cs_scorer_t *s, double score, int64_t as_of);

/** S decayed from \p as_of to \p now (now >= as_of; earlier leaves S unchanged). */
double cs_scorer_decay(const cs_rules_t *rules, double score, int64_t as_of, int64_t now);

/* ------------------------------------------------------------------ reading a subject
 * The one way to read risk state (--show, --top, rebuild verification, the tests, the
 * bench): nothing outside this module knows key shapes, field names or member formats. */

/** Event keys seen (the de-duplication record) in one UTC month. */
typedef struct cs_subject_month {
    char month[8]; /**< YYYY-MM */
    long long event_keys;
} cs_subject_month_t;

/** What the state holds for one subject. */
typedef struct cs_subject_view {
    cs_subject_kind_t kind;
    char subject_id[CS_ID_MAX + 1];
    int exists;    /**< 0: no state (nothing else is set) */
    double score;  /**< S at as_of (not decayed) */
    int64_t as_of; /**< the latest occurred_at applied, ms */
    double area_scores[CS_AREA_COUNT];
    cs_level_t level;
    int64_t level_since; /**< when the level last changed (as_of then), ms; 0 never */
    int has_immediate;
    int64_t immediate_at; /**< the latest immediate event's occurred_at, ms */
    long long assurance, events_total, duplicates;
    int has_position;
    int32_t last_partition; /**< of the last event applied or skipped as a duplicate */
    int64_t last_offset;
    int nevents;
    cs_recent_event_t *events; /**< the 90-day list, newest first */
    int has_last_alert;
    cs_alert_t last_alert; /**< the alert it last produced (no routing attributes) */
    int npending;          /**< alerts produced and not yet acknowledged as delivered */
    int nmonths;
    cs_subject_month_t *months; /**< oldest first */
} cs_subject_view_t;

/**
 * Reads \p n subjects ("KIND:id", as cs_subject_key writes them) into \p out (n views,
 * release each with cs_subject_view_release). One pipelined round trip.
 * @returns CS_OK, CS_ERR_INVALID_ARG (a malformed subject, named in \p errstr),
 * CS_ERR_REDIS or CS_ERR_RETRY with \p errstr.
 */
cs_err_t cs_scorer_read(const cs_scorer_t *s, cs_redis_t *redis,
                        const char *const *subjects, size_t n, cs_subject_view_t *out,
                        char *errstr, size_t errstr_size);
void cs_subject_view_release(cs_subject_view_t *v);

/** Equal state (bit-identical numbers, the same list, alert and months)? */
int cs_subject_view_equal(const cs_subject_view_t *a, const cs_subject_view_t *b);

/** The documented JSON shape of a view (docs/contract/redis-layout.md, "Reading a
 *  subject"). New reference. */
json_t *cs_subject_view_json(const cs_subject_view_t *v);

/**
 * One step of walking every subject of the namespace: \p cursor "0" to start, until it
 * is "0" again. Appends the step's subjects to \p subjects (grown; free each and the
 * array). @returns CS_OK or CS_ERR_REDIS / CS_ERR_RETRY with \p errstr.
 */
cs_err_t cs_scorer_scan(const cs_scorer_t *s, cs_redis_t *redis, char cursor[32],
                        char ***subjects, size_t *n, char *errstr, size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif

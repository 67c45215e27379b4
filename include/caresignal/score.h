/* caresignal scoring: the Redis layout (docs/contract/redis-layout.md) and the one Redis function that
 * applies a subject's events (docs/contract/risk-model.md), built from the rules and called with FCALL. */
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
void cs_scorer_destroy(cs_scorer_t *s);

/** The Lua library text (for cs_redis_function_load) and the function's name. Borrowed.
 */
const char *cs_scorer_library(const cs_scorer_t *s);
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

/** Redis keys of the layout (docs/contract/redis-layout.md), written into \p out. */
void cs_scorer_state_key(const cs_scorer_t *s, const char *subject_key, char *out,
                         size_t size);
void cs_scorer_events_key(const cs_scorer_t *s, const char *subject_key, char *out,
                          size_t size);
void cs_scorer_rank_key(const cs_scorer_t *s, cs_subject_kind_t kind, char *out,
                        size_t size);
void cs_scorer_pos_key(const cs_scorer_t *s, const char *topic, int32_t partition,
                       char *out, size_t size);

/**
 * The rank of a subject in `<ns>:rank:<KIND>`: log2(S) + as_of / half-life. Ordering by
 * it is ordering by the score decayed to any common "now" (S(now) = S·2^-(now-as_of)/H),
 * so the sorted set stays exact without rewriting every subject as time passes.
 * -inf for S <= 0.
 */
double cs_scorer_rank_value(const cs_scorer_t *s, double score, int64_t as_of);

/** S decayed from \p as_of to \p now (now >= as_of; earlier leaves S unchanged). */
double cs_scorer_decay(const cs_rules_t *rules, double score, int64_t as_of, int64_t now);

#ifdef __cplusplus
}
#endif
#endif

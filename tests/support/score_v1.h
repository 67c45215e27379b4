/* Layout 1 of the risk state (a state hash, an events sorted set, seen sets of event
 * keys by month), kept only as the reference the differential test runs beside today's
 * engine (tests/unit/test_score_differential.c): its Lua function is the one caresignal
 * ran until layout 2, unchanged (tests/support/risk_v1.lua). */
#ifndef CS_SCORE_V1_H
#define CS_SCORE_V1_H

#include "caresignal/score.h"

typedef struct cs_v1 cs_v1_t;

/** Layout 1 under namespace \p ns with \p scorer's rules; \p scorer (borrowed) parses the
 *  replies, which have the same shape in both layouts. */
cs_v1_t *cs_v1_new(const cs_scorer_t *scorer, const cs_rules_t *rules, const char *ns);
void cs_v1_destroy(cs_v1_t *v);
const char *cs_v1_library(const cs_v1_t *v);
cs_err_t cs_v1_add_call(cs_v1_t *v, cs_redis_pipe_t *pipe, const cs_score_input_t *in,
                        size_t n);
cs_err_t cs_v1_add_ack(cs_v1_t *v, cs_redis_pipe_t *pipe, const cs_alert_t *alerts,
                       size_t n);
/** One subject ("KIND:id") as cs_scorer_read gives it. */
cs_err_t cs_v1_read(cs_v1_t *v, cs_redis_t *redis, const char *subject,
                    cs_subject_view_t *out, char *errstr, size_t errstr_size);

#endif

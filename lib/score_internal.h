/* The scoring module's own parts shared by lib/score.c (the layout-independent API),
 * lib/score_v1.c and lib/score_v2.c (one file per state layout). Nothing outside the
 * module includes it: the layouts are the module's to change. */
#ifndef CS_SCORE_INTERNAL_H
#define CS_SCORE_INTERNAL_H

#include "caresignal/score.h"

struct cs_scorer {
    const cs_rules_t *rules;
    char ns[128];
    int layout;   /* the layout it writes (1 or 2) */
    int computes; /* state.engine = scorer: the arithmetic here, Redis only stores */
    char function[64];
    char ack_function[64];
    char
        cas_function[64]; /* layout 2: compare-and-set (the scorer engine on a cluster) */
    char *library;
};

/* "KIND:id" into \p v's kind and id. @returns 0, or -1 if malformed. */
int cs_view_subject(const char *subject, cs_subject_view_t *v);

cs_err_t cs_v1_add_call(cs_scorer_t *s, cs_redis_pipe_t *pipe, const cs_score_input_t *in,
                        size_t n);
cs_err_t cs_v2_add_call(cs_scorer_t *s, cs_redis_pipe_t *pipe, const cs_score_input_t *in,
                        size_t n);

/* \p n views of valid subjects (kind and id already set in \p out); on failure the
 * caller (cs_scorer_read) releases them */
cs_err_t cs_v1_read(const cs_scorer_t *s, cs_redis_t *redis, const char *const *subjects,
                    size_t n, cs_subject_view_t *out, char *errstr, size_t errstr_size);
cs_err_t cs_v2_read(const cs_scorer_t *s, cs_redis_t *redis, const char *const *subjects,
                    size_t n, cs_subject_view_t *out, char *errstr, size_t errstr_size);

/* Layout 2: what it needs of an event (lib/score_v2.c) */
typedef struct cs_v2_event {
    unsigned char digest[8]; /* SHA-256 of "YYYY-MM" NUL event_key, first 8 bytes */
    int month;               /* year * 12 + month - 1 of occurred_at (UTC) */
    int64_t month_end;       /* the first ms of the next month */
    int signal, severity, area;
    int flags; /* 1 immediate, 2 assurance */
    int64_t t; /* occurred_at */
    double weight;
    int32_t partition;
    int64_t offset;
    const char *prefix, *ref; /* the event_key's "SOURCE:org:" and the rest (borrowed) */
    size_t prefix_len, ref_len;
} cs_v2_event_t;

void cs_v2_event_of(const cs_scorer_t *s, const cs_score_input_t *in, cs_v2_event_t *v);

/* lib/score_v2_compute.c: cs_scorer_compute for layout 2 */
cs_err_t cs_v2_compute(const cs_scorer_t *s, const redisReply *state,
                       const cs_score_input_t *in, size_t n, unsigned char **value,
                       size_t *value_len, cs_score_outcome_t *out, char *errstr,
                       size_t errstr_size);

/* lib/score_v2_compute.c: cs_scorer_compute_ack for layout 2 */
cs_err_t cs_v2_compute_ack(const redisReply *state, const cs_alert_t *alerts, size_t n,
                           unsigned char **value, size_t *value_len, int *removed,
                           char *errstr, size_t errstr_size);

#endif

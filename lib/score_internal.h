/* The scoring module's own parts shared by lib/score.c (the layout-independent API),
 * lib/score_v1.c and lib/score_v2.c (one file per state layout). Nothing outside the
 * module includes it: the layouts are the module's to change. */
#ifndef CS_SCORE_INTERNAL_H
#define CS_SCORE_INTERNAL_H

#include "caresignal/score.h"

struct cs_scorer {
    const cs_rules_t *rules;
    char ns[128];
    int layout; /* the layout it writes (1 or 2) */
    char function[64];
    char ack_function[64];
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

#endif

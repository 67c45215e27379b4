/* caresignal score stage: caresignal-score's consumer on the runtime (docs/contract/risk-model.md to docs/contract/guarantees.md).
 *
 * Events are decoded as they arrive (what is not a valid IntelEvent is dead-lettered)
 * and gathered into the next batch; one worker thread owns the Redis connection and
 * executes batches in order, so while Redis runs one batch's pipeline the next is
 * gathered, decoded and prepared, and a subject's events are never split across
 * connections. A batch's alerts are produced as soon as its replies are parsed; once
 * they are delivered its acknowledgement goes to Redis on the same connection; only then
 * are its messages finished (their offsets stored). While Redis cannot answer the worker
 * retries with backoff and consumption is paused.
 */
#ifndef CARESIGNAL_SCORE_STAGE_H
#define CARESIGNAL_SCORE_STAGE_H

#include "caresignal/config.h"
#include "caresignal/redis.h"
#include "caresignal/registry.h"
#include "caresignal/runtime.h"
#include "caresignal/score.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_score_stage cs_score_stage_t;

/** What the stage did (the "score totals" log line). */
typedef struct cs_score_stage_stats {
    long events, applied, duplicates, redeliveries, regressions, alerts, reemitted,
        dead_letters, batches;
    long rank_errors;
    int waiting; /**< Redis cannot answer now */
} cs_score_stage_stats_t;

/**
 * A stage applying with \p scorer through \p store (the worker's connection, the
 * function library already loaded) and reading start positions through \p reader (the
 * loop's own connection); all three borrowed, to outlive the stage. @returns NULL with
 * \p errstr.
 */
cs_score_stage_t *cs_score_stage_new(const cs_config_t *cfg, cs_registry_t *reg,
                                     cs_scorer_t *scorer, cs_redis_t *store,
                                     cs_redis_t *reader, char *errstr,
                                     size_t errstr_size);

/** The runtime callbacks of \p s (for cs_runtime_new). */
cs_runtime_handler_t cs_score_stage_handler(cs_score_stage_t *s);

/** Gives the stage its runtime and starts the worker. @returns CS_OK or CS_ERR_NOMEM. */
cs_err_t cs_score_stage_start(cs_score_stage_t *s, cs_runtime_t *rt);

void cs_score_stage_get_stats(const cs_score_stage_t *s, cs_score_stage_stats_t *st);

/** Stops and joins the worker, frees what is left. Call after cs_runtime_destroy. */
void cs_score_stage_destroy(cs_score_stage_t *s);

#ifdef __cplusplus
}
#endif
#endif

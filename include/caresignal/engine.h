/* caresignal scoring engine: a batch of canonical events applied to the Redis risk state
 * — one FCALL per subject, then the positions, on one connection — its alerts returned
 * and, once delivered, acknowledged. caresignal-score and caresignal-replay (rebuild,
 * what-if) both run this, so a rebuild computes exactly what the live scorer computes. */
#ifndef CARESIGNAL_ENGINE_H
#define CARESIGNAL_ENGINE_H

#include <stdint.h>

#include "caresignal/alert.h"
#include "caresignal/event.h"
#include "caresignal/redis.h"
#include "caresignal/score.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A decoded event and its own position on the events topic. */
typedef struct cs_engine_event {
    cs_intel_event_t ev;
    const char *topic; /**< borrowed for the call */
    int32_t partition;
    int64_t offset;
} cs_engine_event_t;

/** What a batch did. `alerts` (new and re-emitted, subject by subject) is owned by the
 *  engine and valid until its next apply. */
typedef struct cs_engine_result {
    cs_alert_t *alerts;
    int nalerts;
    int nreemitted;
    long applied, duplicates, redeliveries;
    long regressions; /**< applied at or below the subject's last offset (see score.h) */
    /** indexes (into the apply's \p events) of events whose subject's call failed (an
     *  error reply or one we cannot read): not applied; the caller dead-letters them.
     *  Owned by the engine, valid until its next apply; `failure` says why (the first).
     */
    const size_t *failed;
    size_t nfailed;
    const char *failure;
} cs_engine_result_t;

/**
 * Called while Redis cannot answer, before each new attempt (\p first is 1 the first
 * time in a row); \p error says why. @returns 0 to keep trying, non-zero to give up
 * (the apply then returns CS_ERR_RETRY). May sleep; should back off.
 */
typedef int(cs_engine_waiting_cb)(void *opaque, const char *error, int first);

/** Called once when Redis answers again after cs_engine_waiting_cb was called. */
typedef void(cs_engine_back_cb)(void *opaque);

typedef struct cs_engine cs_engine_t;

/** \p scorer and \p redis are borrowed and must outlive the engine; callbacks optional
 *  (without one, the engine backs off from 100 ms to 5 s and never gives up). */
cs_engine_t *cs_engine_new(cs_scorer_t *scorer, cs_redis_t *redis,
                           cs_engine_waiting_cb *waiting, cs_engine_back_cb *back,
                           void *opaque);
void cs_engine_destroy(cs_engine_t *e);

/**
 * Applies \p n events (any subjects, any partitions, in consumption order). With
 * \p positions, records `<ns>:pos:<topic>:<partition>` = the next offset after them,
 * in the same pipeline after the function calls. Updates the rank sets afterwards.
 * One subject's call failing never fails the batch: its events are listed in
 * out->failed. If every call fails, 3 calls in a row with no success between, the
 * function fails for everyone: the engine waits (the waiting callback) and retries the
 * batch.
 * @returns CS_OK, CS_ERR_RETRY (the waiting callback gave up: nothing was applied, or
 *          the function calls were but may be repeated safely), CS_ERR_FATAL (Redis
 *          refused a position, or the connection cannot be set up: \p errstr).
 */
cs_err_t cs_engine_apply(cs_engine_t *e, const cs_engine_event_t *events, size_t n,
                         int positions, cs_engine_result_t *out, char *errstr,
                         size_t errstr_size);

/**
 * Acknowledges the alerts of the last apply as delivered (they leave the subjects'
 * pending lists). @returns as cs_engine_apply.
 */
cs_err_t cs_engine_ack(cs_engine_t *e, char *errstr, size_t errstr_size);

/*
 * The same in steps, for a scorer that prepares the next batch while Redis executes one
 * (the prepare on one thread, execute and ack on the thread that owns the Redis
 * connection: one engine's execute/ack calls must come from one thread, in order).
 */
typedef struct cs_engine_batch cs_engine_batch_t;

/** Sorts \p n events (borrowed until the batch is freed) into one call per subject and
 *  builds the pipeline (with \p positions, the position SETs after the calls). Touches
 *  nothing but the scorer's rules. @returns the batch, or NULL when out of memory. */
cs_engine_batch_t *cs_engine_prepare(cs_engine_t *e, const cs_engine_event_t *events,
                                     size_t n, int positions);

/** Executes a prepared batch (as cs_engine_apply); its results stay in the batch. */
cs_err_t cs_engine_execute(cs_engine_t *e, cs_engine_batch_t *b, cs_engine_result_t *out,
                           char *errstr, size_t errstr_size);

/** Acknowledges a batch's alerts once delivered (as cs_engine_ack). */
cs_err_t cs_engine_ack_batch(cs_engine_t *e, cs_engine_batch_t *b, char *errstr,
                             size_t errstr_size);

/** @returns how many events the batch holds. */
size_t cs_engine_batch_events(const cs_engine_batch_t *b);

/** @returns how many subject calls the batch makes (one per subject). */
size_t cs_engine_batch_calls(const cs_engine_batch_t *b);

void cs_engine_batch_free(cs_engine_batch_t *b);

/** @returns how many rank-set updates Redis refused (logged; scoring goes on). */
long cs_engine_rank_errors(const cs_engine_t *e);

/** Computing in the scorer: @returns how many batch writes were refused (and computed
 *  again) because a value changed between their read and their write — another
 *  scorer writing the same subjects, as one that lost its partition may for a while. */
long cs_engine_conflicts(const cs_engine_t *e);

#ifdef __cplusplus
}
#endif
#endif

/* caresignal delivery: alerts handed to their routes, each route with its own worker
 * thread, bounded queue and retries, so a slow or dead webhook never holds back stdout
 * or exec routes, and the consumer keeps polling while deliveries are retried
 * (docs/contract/guarantees.md, docs/contract/configuration.md). */
#ifndef CARESIGNAL_DELIVERY_H
#define CARESIGNAL_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "caresignal/alert.h"
#include "caresignal/backoff.h"
#include "caresignal/directory.h"
#include "caresignal/page.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How long and how often a route tries one alert. */
typedef struct cs_delivery_policy {
    long retries;    /**< attempts after the first (page.retries) */
    long backoff_ms; /**< first retry delay, doubled each time (page.retry.backoff.ms) */
    long backoff_max_ms; /**< the largest delay between two attempts */
    long max_hold_ms;    /**< no attempt starts later than this after the first
                              (page.retry.max.ms): an alert is then undeliverable */
    size_t queue_max;    /**< alerts queued per route; submit refuses beyond it */
} cs_delivery_policy_t;

/**
 * Optional: called in the route's worker thread right after an alert was delivered,
 * before the job is handed back, so that a record of the delivery (the pager's
 * de-duplication record) is written within microseconds of it, not after the main loop's
 * next turn: a crash in between would page the alert again. \p worker_state starts NULL
 * and is the worker's own (e.g. its own Redis connection); @returns non-zero if the
 * record was written (job->recorded). `release` frees the state when the worker ends.
 */
typedef struct cs_delivery_hooks {
    int (*delivered)(void *opaque, void **worker_state, const cs_alert_t *alert);
    void (*release)(void *opaque, void *worker_state);
    /** Optional, called in a worker each time a job is finished (delivered, given up or
     *  abandoned), with the delivery's lock held: wake the consumer loop, nothing more. */
    void (*finished)(void *opaque);
    void *opaque;
} cs_delivery_hooks_t;

/** One alert on its way to one route. Allocated by the caller (malloc), owned by the
 *  delivery between a successful submit and its return by cs_delivery_next_done. */
typedef struct cs_delivery_job {
    cs_alert_t alert;
    const cs_route_t *route; /**< borrowed: one of the routes given to cs_delivery_new */
    void *opaque;            /**< the caller's (e.g. its input message) */
    /* set when the job comes back: */
    cs_err_t result;  /**< CS_OK delivered; CS_ERR_RETRY undeliverable (its retries or its
                           time ran out); CS_ERR_FATAL abandoned at shutdown */
    int attempts;     /**< attempts made */
    int recorded;     /**< delivered, and the delivered hook recorded it */
    char error[256];  /**< the last failure (what failed, never alert content) */
    int64_t first_at; /**< when its first attempt started (monotonic ms) */
    int64_t done_at;  /**< when it finished (monotonic ms) */
    /* the delivery's own: */
    int64_t next_at;
    cs_backoff_t backoff;
    struct cs_delivery_job *next;
} cs_delivery_job_t;

typedef struct cs_delivery cs_delivery_t;

/**
 * Starts one worker thread per route of \p routes (borrowed, must outlive the delivery);
 * \p hooks may be NULL (copied).
 * Each worker owns its own delivery channel (cs_pager_t) writing the stdout sink to
 * \p out (borrowed; lines are written whole) and naming locations from \p dir.
 * @returns NULL with \p errstr on failure.
 */
cs_delivery_t *cs_delivery_new(const cs_routes_t *routes,
                               const cs_delivery_policy_t *policy,
                               const cs_delivery_hooks_t *hooks, FILE *out,
                               const cs_directory_t *dir, char *errstr,
                               size_t errstr_size);

/**
 * Queues \p job on its route. Jobs of one subject on one route are attempted in the order
 * submitted; jobs of different subjects are attempted independently (a failing one does
 * not hold back the others). @returns CS_OK (the delivery owns the job) or CS_ERR_RETRY
 * (that route's queue is full: the caller keeps the job, pauses and tries later).
 */
cs_err_t cs_delivery_submit(cs_delivery_t *d, cs_delivery_job_t *job);

/** @returns non-zero if \p route can take another job now. */
int cs_delivery_has_room(cs_delivery_t *d, const cs_route_t *route);

/** @returns the next finished job (the caller owns it again and frees it), or NULL. */
cs_delivery_job_t *cs_delivery_next_done(cs_delivery_t *d);

/** Waits up to \p timeout_ms for a finished job. @returns non-zero if there is one. */
int cs_delivery_wait(cs_delivery_t *d, int timeout_ms);

/** @returns jobs submitted and not yet returned by cs_delivery_next_done. */
size_t cs_delivery_in_flight(cs_delivery_t *d);

/**
 * Stops: takes no more jobs, lets queued ones finish for up to \p drain_ms (each attempt
 * already running finishes), then abandons the rest (CS_ERR_FATAL). Every job comes back
 * through cs_delivery_next_done; destroy after collecting them. Idempotent.
 */
void cs_delivery_stop(cs_delivery_t *d, long drain_ms);

/** Stops (drain 0), joins the workers and frees jobs never collected. NULL is a no-op. */
void cs_delivery_destroy(cs_delivery_t *d);

/** caresignal_page_deliveries_total{route, outcome} += 1 (docs/operations.md). */
void cs_page_count(const char *route, const char *outcome);

/** An alert delivered on \p route: counted, and its end-to-end age observed when
 *  \p origin_ms (when its raw message was published) is known (> 0). */
void cs_page_delivered(const char *route, int64_t origin_ms);

#ifdef __cplusplus
}
#endif
#endif

/* caresignal backoff: the one retry-delay policy (exponential, capped, with jitter) that
 * every retry loop uses, so a fleet of consumers does not hammer a recovering Redis or
 * broker in lock-step. */
#ifndef CARESIGNAL_BACKOFF_H
#define CARESIGNAL_BACKOFF_H

#ifdef __cplusplus
extern "C" {
#endif

/** The store's retry policy (docs/contract/guarantees.md): 100 ms doubling to 5 s. */
#define CS_BACKOFF_STORE_INITIAL_MS 100
#define CS_BACKOFF_STORE_MAX_MS     5000

/**
 * Exponential backoff with "equal jitter": the n-th delay is drawn uniformly from
 * [step/2, step] where step = min(initial x 2^n, max). Caller-owned, no allocation;
 * one per retry loop (not thread-safe).
 */
typedef struct cs_backoff {
    long initial_ms, max_ms;
    long step_ms;  /**< the current step (before jitter) */
    unsigned seed; /**< rand_r state */
    int attempts;  /**< delays handed out since the last reset */
} cs_backoff_t;

/** Starts a policy of \p initial_ms doubling to \p max_ms (both >= 1). */
void cs_backoff_init(cs_backoff_t *b, long initial_ms, long max_ms);

/** @returns the next delay to wait, in ms, and doubles the step (up to the cap). */
long cs_backoff_next(cs_backoff_t *b);

/** Back to the first step (after a success). */
void cs_backoff_reset(cs_backoff_t *b);

/** Waits cs_backoff_next() (returning early on a stop request). @returns the delay. */
long cs_backoff_sleep(cs_backoff_t *b);

#ifdef __cplusplus
}
#endif
#endif

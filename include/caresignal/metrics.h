/* caresignal metrics: counters, gauges and histograms in one process-wide registry,
 * rendered in Prometheus's text exposition format (version 0.0.4), and the health that
 * /healthz and /readyz report (docs/operations.md lists every metric).
 *
 * Naming follows Prometheus's conventions: caresignal_<what>_total for counters, base
 * units (_seconds, _bytes). No label ever carries a location id or anything a partner
 * wrote: label values are topic names, reason codes, enum names and route names.
 *
 * Threads: every function may be called from any thread. A series pointer stays valid
 * until cs_metrics_reset (tests only); updating one is a lock-free atomic operation, so
 * hot paths look a series up once and keep it.
 */
#ifndef CARESIGNAL_METRICS_H
#define CARESIGNAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cs_metric_type {
    CS_METRIC_COUNTER,
    CS_METRIC_GAUGE,
    CS_METRIC_HISTOGRAM,
} cs_metric_type_t;

/** A metric family: a name, its help text and its label names. */
typedef struct cs_metric cs_metric_t;
/** One series of a family: one value of each label. */
typedef struct cs_series cs_series_t;

enum { CS_METRIC_MAX_LABELS = 4 };

/**
 * The family \p name, registered on first use (later calls with the same name return
 * it; \p help and \p labels must then agree). \p labels: comma-separated label names,
 * NULL or "" for none. Histograms take cs_metric_histogram. @returns NULL only when out
 * of memory or on a name or type mismatch (a programming error, logged).
 */
cs_metric_t *cs_metric(cs_metric_type_t type, const char *name, const char *help,
                       const char *labels);

/** A histogram family with the upper bounds \p bounds (ascending, +Inf implied). */
cs_metric_t *cs_metric_histogram(const char *name, const char *help, const char *labels,
                                 const double *bounds, size_t nbounds);

/** The series of \p m with these label values, one per label name (NULL is ""). Takes
 *  the registry's lock: keep the pointer. @returns NULL only if \p m is NULL or out of
 *  memory; every update function accepts NULL and does nothing. */
cs_series_t *cs_metric_at(cs_metric_t *m, ...);

/**
 * The series of a one-label family \p m for \p value, remembered in \p c by the string's
 * address: for label values that stay at one address (librdkafka's topic names), looked up
 * without the registry's lock once seen. A cache belongs to one thread.
 */
typedef struct cs_series_cache {
    const char *key[8];
    cs_series_t *series[8];
} cs_series_cache_t;
cs_series_t *cs_series_cached(cs_series_cache_t *c, cs_metric_t *m, const char *value);

void cs_series_add(cs_series_t *s, double v); /**< counter or gauge: += v */
void cs_series_set(cs_series_t *s, double v); /**< gauge: = v */
void cs_series_observe(cs_series_t *s, double v); /**< histogram */
double cs_series_value(const cs_series_t *s); /**< counter or gauge; histogram: count */

/** Hides every series of \p m until it is set again (e.g. the lag of partitions no longer
 *  assigned). Series stay allocated: pointers kept elsewhere remain valid. */
void cs_metric_hide_all(cs_metric_t *m);

/** Hides every series of \p m but the \p n in \p keep (one pass, under the lock: a
 *  scrape never sees the family half updated). */
void cs_metric_hide_others(cs_metric_t *m, cs_series_t *const *keep, size_t n);

/** The exposition of every family with at least one visible series, then the process's
 *  own metrics (process_cpu_seconds_total, process_resident_memory_bytes, ...). Caller
 *  frees. @returns NULL when out of memory. */
char *cs_metrics_render(size_t *len);

/** Forgets every family (tests). No series pointer may be used afterwards. */
void cs_metrics_reset(void);

/** Bounds for durations in seconds, from 0.5 ms to 60 s. */
extern const double cs_metric_seconds_bounds[];
extern const size_t cs_metric_seconds_nbounds;
/** Bounds for end-to-end ages in seconds: 1 ms steps where the pipeline's own share
 *  lies (the latency targets are in ms), up to an hour (a lag). */
extern const double cs_metric_age_bounds[];
extern const size_t cs_metric_age_nbounds;

/* ------------------------------------------------------------------ health */

/** What readiness is made of. Each part is unknown until a program first sets it; an
 *  unknown part does not count (a program without Redis never sets CS_HEALTH_REDIS). */
typedef enum cs_health_part {
    CS_HEALTH_ASSIGNED, /**< the consumer has joined its group and got an assignment */
    CS_HEALTH_KAFKA,    /**< a broker answers */
    CS_HEALTH_REDIS,    /**< the last Redis call succeeded */
    CS_HEALTH_PARTS
} cs_health_part_t;

/** Records that the program's loop turned at \p now_ms (monotonic). */
void cs_health_turned(int64_t now_ms);
/** When the loop last turned (monotonic ms), -1 before the first turn. */
int64_t cs_health_last_turn(void);
void cs_health_set(cs_health_part_t part, int ok);
/** -1 unknown, 0 failing, 1 ok. */
int cs_health_get(cs_health_part_t part);

/** Whether the loop turned within \p max_age_ms of \p now_ms (before the first turn: no).
 *  \p why gets a one-line reason either way. */
int cs_health_live(int64_t now_ms, int64_t max_age_ms, char *why, size_t why_size);
/** Whether every known part is ok and the group assignment arrived; \p why names what is
 *  missing (or "ready"). */
int cs_health_ready(char *why, size_t why_size);

#ifdef __cplusplus
}
#endif
#endif

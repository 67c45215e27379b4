/* caresignal delivery: one worker thread per route over a queue of jobs; a job that fails
 * waits for its next attempt while the worker tries the others, so a dead receiver costs
 * each alert its own retry time, not the sum of everyone's. */
#include "caresignal/delivery.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "caresignal/metrics.h"
#include "caresignal/signals.h"

void cs_page_count(const char *route, const char *outcome)
{
    cs_series_add(cs_metric_at(cs_metric(CS_METRIC_COUNTER,
                                         "caresignal_page_deliveries_total",
                                         "alerts by route and outcome: delivered, "
                                         "undeliverable (dead-lettered after its retries), "
                                         "duplicate (paged before: skipped); and failed "
                                         "attempts (retried or given up)",
                                         "route,outcome"),
                               route, outcome),
                  1);
}

void cs_page_delivered(const char *route, int64_t origin_ms)
{
    cs_page_count(route, "delivered");
    if (origin_ms <= 0)
        return;
    cs_series_observe(cs_metric_at(cs_metric_histogram(
                                       "caresignal_page_delivery_age_seconds",
                                       "now minus the raw message's timestamp, when its "
                                       "alert is delivered, by route",
                                       "route", cs_metric_age_bounds, cs_metric_age_nbounds),
                                   route),
                      (double)(cs_wall_ms() - origin_ms) / 1000.0);
}

typedef struct cs_worker {
    struct cs_delivery *d;
    const cs_route_t *route;
    pthread_t thread;
    int started;
    cs_delivery_job_t *head, *tail; /* queued, in submission order */
    size_t n;
    pthread_cond_t wake;
} cs_worker_t;

struct cs_delivery {
    cs_delivery_policy_t policy;
    cs_delivery_hooks_t hooks;
    FILE *out;
    const cs_directory_t *dir;
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    cs_worker_t *workers;
    size_t nworkers;
    cs_delivery_job_t *done_head, *done_tail;
    size_t in_flight;
    int stopping;       /* no more submissions; workers finish what is queued */
    int64_t abandon_at; /* after this (mono ms), queued jobs are abandoned */
};

static void cs_abs_deadline(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int cs_same_subject(const cs_delivery_job_t *a, const cs_delivery_job_t *b)
{
    return a->alert.subject_kind == b->alert.subject_kind &&
           !strcmp(a->alert.subject_id, b->alert.subject_id);
}

/* The first job due now whose subject has no earlier job queued (per-subject order);
 * \p wait_ms gets how long until one may be due. Called with the lock held. */
static cs_delivery_job_t *cs_pick(cs_worker_t *w, int64_t now, long *wait_ms)
{
    *wait_ms = 1000;
    for (cs_delivery_job_t *j = w->head; j; j = j->next) {
        int blocked = 0;
        for (cs_delivery_job_t *e = w->head; e != j && !blocked; e = e->next)
            blocked = cs_same_subject(e, j);
        if (blocked)
            continue;
        if (j->next_at <= now)
            return j;
        if (j->next_at - now < *wait_ms)
            *wait_ms = (long)(j->next_at - now);
    }
    return NULL;
}

/* Moves \p j from its worker's queue to the done list. Lock held. */
static void cs_finish(cs_worker_t *w, cs_delivery_job_t *j, cs_err_t result)
{
    cs_delivery_job_t **pp = &w->head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = j->next;
        if (w->tail == j)
            w->tail = prev;
        w->n--;
    }
    j->next = NULL;
    j->result = result;
    j->done_at = cs_mono_ms();
    if (w->d->done_tail)
        w->d->done_tail->next = j;
    else
        w->d->done_head = j;
    w->d->done_tail = j;
    pthread_cond_broadcast(&w->d->done_cv);
    if (w->d->hooks.finished) /* a write to the loop's wake-up pipe: fine under lock */
        w->d->hooks.finished(w->d->hooks.opaque);
}

static void *cs_worker_main(void *arg)
{
    cs_worker_t *w = arg;
    cs_delivery_t *d = w->d;
    cs_pager_t *pager = cs_pager_new(d->out, d->dir);
    void *state = NULL;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        int64_t now = cs_mono_ms();
        if (d->stopping && (!w->head || now >= d->abandon_at))
            break;
        long wait_ms = 1000;
        cs_delivery_job_t *j = pager ? cs_pick(w, now, &wait_ms) : NULL;
        if (!j) {
            if (d->stopping && d->abandon_at - now < wait_ms)
                wait_ms = (long)(d->abandon_at - now);
            struct timespec ts;
            cs_abs_deadline(&ts, wait_ms > 0 ? wait_ms : 1);
            pthread_cond_timedwait(&w->wake, &d->mu, &ts);
            continue;
        }
        if (!j->first_at)
            j->first_at = now;
        pthread_mutex_unlock(&d->mu);
        char error[256];
        cs_err_t rc = cs_pager_deliver(pager, w->route, &j->alert, error, sizeof(error));
        pthread_mutex_lock(&d->mu);
        j->attempts++;
        now = cs_mono_ms();
        if (rc == CS_OK) {
            if (d->hooks.delivered) {
                pthread_mutex_unlock(&d->mu);
                j->recorded = d->hooks.delivered(d->hooks.opaque, &state, &j->alert);
                pthread_mutex_lock(&d->mu);
            }
            cs_finish(w, j, CS_OK);
            continue;
        }
        snprintf(j->error, sizeof(j->error), "%s", error);
        cs_page_count(w->route->name, "failed");
        /* the last retry starts no later than max_hold after the first attempt */
        long delay = cs_backoff_next(&j->backoff);
        int64_t left = j->first_at + d->policy.max_hold_ms - now;
        if (j->attempts > d->policy.retries || left <= 0) {
            cs_finish(w, j, CS_ERR_RETRY);
        } else {
            j->next_at = now + (delay < left ? delay : left);
            cs_series_add(cs_metric_at(cs_metric(CS_METRIC_COUNTER, "caresignal_retries_total",
                                                 "attempts repeated after a retriable "
                                                 "failure, by what was retried",
                                                 "what"),
                                       "page"),
                          1);
        }
    }
    /* stopping: what is still queued comes back abandoned (read again after a restart) */
    while (w->head) {
        if (!w->head->error[0])
            snprintf(w->head->error, sizeof(w->head->error), "abandoned at shutdown");
        cs_finish(w, w->head, CS_ERR_FATAL);
    }
    pthread_mutex_unlock(&d->mu);
    cs_pager_destroy(pager);
    if (d->hooks.release && state)
        d->hooks.release(d->hooks.opaque, state);
    return NULL;
}

cs_delivery_t *cs_delivery_new(const cs_routes_t *routes,
                               const cs_delivery_policy_t *policy,
                               const cs_delivery_hooks_t *hooks, FILE *out,
                               const cs_directory_t *dir, char *errstr,
                               size_t errstr_size)
{
    cs_delivery_t *d = calloc(1, sizeof(*d));
    size_t n = cs_routes_count(routes);
    if (!d || !(d->workers = calloc(n, sizeof(cs_worker_t)))) {
        free(d);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    d->policy = *policy;
    if (hooks)
        d->hooks = *hooks;
    if (d->policy.queue_max < 1)
        d->policy.queue_max = 1;
    d->out = out;
    d->dir = dir;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->done_cv, &ca);
    d->nworkers = n;
    for (size_t i = 0; i < n; i++) {
        cs_worker_t *w = &d->workers[i];
        w->d = d;
        w->route = cs_routes_at(routes, i);
        pthread_cond_init(&w->wake, &ca);
    }
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i < n; i++) {
        cs_worker_t *w = &d->workers[i];
        int rc = pthread_create(&w->thread, NULL, cs_worker_main, w);
        if (rc) {
            snprintf(errstr, errstr_size,
                     "cannot start the delivery thread of route %s: %s", w->route->name,
                     strerror(rc));
            cs_delivery_destroy(d);
            return NULL;
        }
        w->started = 1;
    }
    return d;
}

static cs_worker_t *cs_worker_of(cs_delivery_t *d, const cs_route_t *route)
{
    for (size_t i = 0; i < d->nworkers; i++)
        if (d->workers[i].route == route)
            return &d->workers[i];
    return NULL;
}

int cs_delivery_has_room(cs_delivery_t *d, const cs_route_t *route)
{
    pthread_mutex_lock(&d->mu);
    cs_worker_t *w = cs_worker_of(d, route);
    int room = w && !d->stopping && w->n < d->policy.queue_max;
    pthread_mutex_unlock(&d->mu);
    return room;
}

cs_err_t cs_delivery_submit(cs_delivery_t *d, cs_delivery_job_t *job)
{
    pthread_mutex_lock(&d->mu);
    cs_worker_t *w = cs_worker_of(d, job->route);
    if (!w || d->stopping || w->n >= d->policy.queue_max) {
        pthread_mutex_unlock(&d->mu);
        return w ? CS_ERR_RETRY : CS_ERR_INVALID_ARG;
    }
    job->next = NULL;
    job->attempts = 0;
    job->recorded = 0;
    job->error[0] = '\0';
    job->first_at = job->next_at = 0;
    job->result = CS_OK;
    cs_backoff_init(&job->backoff, d->policy.backoff_ms, d->policy.backoff_max_ms);
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->n++;
    d->in_flight++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&d->mu);
    return CS_OK;
}

cs_delivery_job_t *cs_delivery_next_done(cs_delivery_t *d)
{
    pthread_mutex_lock(&d->mu);
    cs_delivery_job_t *j = d->done_head;
    if (j) {
        d->done_head = j->next;
        if (!d->done_head)
            d->done_tail = NULL;
        j->next = NULL;
        d->in_flight--;
    }
    pthread_mutex_unlock(&d->mu);
    return j;
}

int cs_delivery_wait(cs_delivery_t *d, int timeout_ms)
{
    pthread_mutex_lock(&d->mu);
    if (!d->done_head && timeout_ms > 0) {
        struct timespec ts;
        cs_abs_deadline(&ts, timeout_ms);
        pthread_cond_timedwait(&d->done_cv, &d->mu, &ts);
    }
    int any = d->done_head != NULL;
    pthread_mutex_unlock(&d->mu);
    return any;
}

size_t cs_delivery_in_flight(cs_delivery_t *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->in_flight;
    pthread_mutex_unlock(&d->mu);
    return n;
}

void cs_delivery_stop(cs_delivery_t *d, long drain_ms)
{
    pthread_mutex_lock(&d->mu);
    int64_t at = cs_mono_ms() + (drain_ms > 0 ? drain_ms : 0);
    if (!d->stopping || at < d->abandon_at)
        d->abandon_at = at;
    d->stopping = 1;
    for (size_t i = 0; i < d->nworkers; i++)
        pthread_cond_signal(&d->workers[i].wake);
    pthread_mutex_unlock(&d->mu);
}

void cs_delivery_destroy(cs_delivery_t *d)
{
    if (!d)
        return;
    cs_delivery_stop(d, 0);
    for (size_t i = 0; i < d->nworkers; i++)
        if (d->workers[i].started)
            pthread_join(d->workers[i].thread, NULL);
    for (cs_delivery_job_t *j = d->done_head, *next; j; j = next) {
        next = j->next;
        free(j);
    }
    for (size_t i = 0; i < d->nworkers; i++)
        pthread_cond_destroy(&d->workers[i].wake);
    pthread_cond_destroy(&d->done_cv);
    pthread_mutex_destroy(&d->mu);
    free(d->workers);
    free(d);
}

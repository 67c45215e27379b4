/* caresignal metrics: the registry, the text exposition and the health parts (see
 * metrics.h). Values are doubles kept as their bits in 64-bit atomics. */
#define _GNU_SOURCE
#include "caresignal/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/log.h"

const double cs_metric_seconds_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                           0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                           5,      10,    30,     60};
const size_t cs_metric_seconds_nbounds =
    sizeof(cs_metric_seconds_bounds) / sizeof(cs_metric_seconds_bounds[0]);

const double cs_metric_age_bounds[] = {0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015,
                                       0.02,  0.025, 0.03,  0.04,  0.05,   0.075, 0.1,
                                       0.15,  0.2,   0.3,   0.5,   1,      2.5,   5,
                                       10,    30,    60,    300,   3600};
const size_t cs_metric_age_nbounds =
    sizeof(cs_metric_age_bounds) / sizeof(cs_metric_age_bounds[0]);

struct cs_series {
    cs_series_t *next;
    cs_metric_t *family;
    char *values[CS_METRIC_MAX_LABELS];
    uint64_t value;   /* double bits: counter, gauge; histogram: sum */
    uint64_t *counts; /* histogram: one per bound, then +Inf (not cumulative) */
    int visible;
};

struct cs_metric {
    cs_metric_t *next;
    cs_metric_type_t type;
    char *name, *help;
    char *labels[CS_METRIC_MAX_LABELS];
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    cs_series_t *series, **series_tail;
};

static pthread_mutex_t cs_metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static cs_metric_t *cs_families, **cs_families_tail = &cs_families;

/* ------------------------------------------------------------------ atomics */

static double cs_bits_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static uint64_t cs_double_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

static double cs_atomic_get(const uint64_t *p)
{
    return cs_bits_double(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static void cs_atomic_add(uint64_t *p, double v)
{
    uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, cs_double_bits(cs_bits_double(old) + v),
                                        1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* ------------------------------------------------------------------ families */

static void cs_family_free(cs_metric_t *m)
{
    cs_series_t *s = m->series;
    while (s) {
        cs_series_t *next = s->next;
        for (size_t i = 0; i < m->nlabels; i++)
            free(s->values[i]);
        free(s->counts);
        free(s);
        s = next;
    }
    for (size_t i = 0; i < m->nlabels; i++)
        free(m->labels[i]);
    free(m->name);
    free(m->help);
    free(m->bounds);
    free(m);
}

static int cs_split_labels(cs_metric_t *m, const char *labels)
{
    if (!labels || !*labels)
        return 0;
    const char *p = labels;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (m->nlabels == CS_METRIC_MAX_LABELS || !n)
            return -1;
        if (!(m->labels[m->nlabels++] = strndup(p, n)))
            return -1;
        p += n + (comma ? 1 : 0);
    }
    return 0;
}

static cs_metric_t *cs_family_get(cs_metric_type_t type, const char *name,
                                  const char *help, const char *labels,
                                  const double *bounds, size_t nbounds)
{
    pthread_mutex_lock(&cs_metrics_lock);
    cs_metric_t *m;
    for (m = cs_families; m; m = m->next)
        if (!strcmp(m->name, name))
            break;
    if (m) {
        pthread_mutex_unlock(&cs_metrics_lock);
        if (m->type != type) {
            cs_log_error("metric registered twice with different types", "{s:s}", "metric",
                         name);
            return NULL;
        }
        return m;
    }
    m = calloc(1, sizeof(*m));
    int bad = !m;
    if (m) {
        m->type = type;
        m->series_tail = &m->series;
        m->name = strdup(name);
        m->help = strdup(help ? help : "");
        bad = !m->name || !m->help || cs_split_labels(m, labels);
        if (!bad && type == CS_METRIC_HISTOGRAM) {
            m->bounds = malloc(nbounds * sizeof(*bounds) + 1);
            bad = !m->bounds;
            if (!bad) {
                memcpy(m->bounds, bounds, nbounds * sizeof(*bounds));
                m->nbounds = nbounds;
            }
        }
    }
    if (bad) {
        if (m)
            cs_family_free(m);
        pthread_mutex_unlock(&cs_metrics_lock);
        cs_log_error("cannot register a metric", "{s:s}", "metric", name);
        return NULL;
    }
    *cs_families_tail = m;
    cs_families_tail = &m->next;
    pthread_mutex_unlock(&cs_metrics_lock);
    return m;
}

cs_metric_t *cs_metric(cs_metric_type_t type, const char *name, const char *help,
                       const char *labels)
{
    return cs_family_get(type, name, help, labels, NULL, 0);
}

cs_metric_t *cs_metric_histogram(const char *name, const char *help, const char *labels,
                                 const double *bounds, size_t nbounds)
{
    return cs_family_get(CS_METRIC_HISTOGRAM, name, help, labels, bounds, nbounds);
}

cs_series_t *cs_metric_at(cs_metric_t *m, ...)
{
    if (!m)
        return NULL;
    const char *values[CS_METRIC_MAX_LABELS] = {0};
    va_list ap;
    va_start(ap, m);
    for (size_t i = 0; i < m->nlabels; i++) {
        values[i] = va_arg(ap, const char *);
        if (!values[i])
            values[i] = "";
    }
    va_end(ap);
    pthread_mutex_lock(&cs_metrics_lock);
    cs_series_t *s;
    for (s = m->series; s; s = s->next) {
        size_t i = 0;
        while (i < m->nlabels && !strcmp(s->values[i], values[i]))
            i++;
        if (i == m->nlabels)
            break;
    }
    if (!s && (s = calloc(1, sizeof(*s)))) {
        int bad = 0;
        s->family = m;
        for (size_t i = 0; i < m->nlabels; i++)
            bad |= !(s->values[i] = strdup(values[i]));
        if (m->type == CS_METRIC_HISTOGRAM)
            bad |= !(s->counts = calloc(m->nbounds + 1, sizeof(*s->counts)));
        if (bad) {
            for (size_t i = 0; i < m->nlabels; i++)
                free(s->values[i]);
            free(s->counts);
            free(s);
            s = NULL;
        } else {
            *m->series_tail = s;
            m->series_tail = &s->next;
        }
    }
    if (s)
        __atomic_store_n(&s->visible, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&cs_metrics_lock);
    return s;
}

cs_series_t *cs_series_cached(cs_series_cache_t *c, cs_metric_t *m, const char *value)
{
    size_t n = sizeof(c->key) / sizeof(c->key[0]), i;
    for (i = 0; i < n && c->key[i]; i++)
        if (c->key[i] == value)
            return c->series[i];
    cs_series_t *s = cs_metric_at(m, value);
    if (i < n && s) { /* a full cache still answers, through the lock */
        c->key[i] = value;
        c->series[i] = s;
    }
    return s;
}

void cs_series_add(cs_series_t *s, double v)
{
    if (s)
        cs_atomic_add(&s->value, v);
}

void cs_series_set(cs_series_t *s, double v)
{
    if (!s)
        return;
    __atomic_store_n(&s->value, cs_double_bits(v), __ATOMIC_RELAXED);
    __atomic_store_n(&s->visible, 1, __ATOMIC_RELAXED);
}

void cs_series_observe(cs_series_t *s, double v)
{
    if (!s || !s->counts)
        return;
    const cs_metric_t *m = s->family;
    /* the first bound >= v (le), by bisection: on a hot path, with ~26 bounds */
    size_t lo = 0, hi = m->nbounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v > m->bounds[mid])
            lo = mid + 1;
        else
            hi = mid;
    }
    __atomic_add_fetch(&s->counts[lo], 1, __ATOMIC_RELAXED);
    cs_atomic_add(&s->value, v);
}

double cs_series_value(const cs_series_t *s)
{
    if (!s)
        return 0;
    if (!s->counts)
        return cs_atomic_get(&s->value);
    uint64_t n = 0;
    for (size_t i = 0; i <= s->family->nbounds; i++)
        n += __atomic_load_n(&s->counts[i], __ATOMIC_RELAXED);
    return (double)n;
}

void cs_metric_hide_all(cs_metric_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&cs_metrics_lock);
    for (cs_series_t *s = m->series; s; s = s->next)
        __atomic_store_n(&s->visible, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&cs_metrics_lock);
}

void cs_metric_hide_others(cs_metric_t *m, cs_series_t *const *keep, size_t n)
{
    if (!m)
        return;
    pthread_mutex_lock(&cs_metrics_lock);
    for (cs_series_t *s = m->series; s; s = s->next) {
        size_t i = 0;
        while (i < n && keep[i] != s)
            i++;
        if (i == n)
            __atomic_store_n(&s->visible, 0, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&cs_metrics_lock);
}

void cs_metrics_reset(void)
{
    pthread_mutex_lock(&cs_metrics_lock);
    cs_metric_t *m = cs_families;
    while (m) {
        cs_metric_t *next = m->next;
        cs_family_free(m);
        m = next;
    }
    cs_families = NULL;
    cs_families_tail = &cs_families;
    pthread_mutex_unlock(&cs_metrics_lock);
}

/* ------------------------------------------------------------------ exposition */

typedef struct cs_buf {
    char *p;
    size_t len, cap;
    int failed;
} cs_buf_t;

static void cs_buf_printf(cs_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void cs_buf_printf(cs_buf_t *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Escapes for a label value (\p quote) or a HELP text: backslash, newline, and in a
 * label value the double quote. */
static void cs_buf_escaped(cs_buf_t *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            cs_buf_printf(b, "\\\\");
        else if (*s == '\n')
            cs_buf_printf(b, "\\n");
        else if (quote && *s == '"')
            cs_buf_printf(b, "\\\"");
        else
            cs_buf_printf(b, "%c", *s);
    }
}

static void cs_buf_number(cs_buf_t *b, double v)
{
    if (isnan(v))
        cs_buf_printf(b, "NaN");
    else if (isinf(v))
        cs_buf_printf(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        cs_buf_printf(b, "%.0f", v);
    else {
        /* the shortest form that reads back as the same double */
        char t[32];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(t, sizeof(t), "%.*g", prec, v);
            if (strtod(t, NULL) == v)
                break;
        }
        cs_buf_printf(b, "%s", t);
    }
}

/* name{labels[,le="bound"]} value */
static void cs_buf_sample(cs_buf_t *b, const cs_metric_t *m, const cs_series_t *s,
                          const char *suffix, const char *le, double v)
{
    cs_buf_printf(b, "%s%s", m->name, suffix);
    if (m->nlabels || le) {
        cs_buf_printf(b, "{");
        for (size_t i = 0; i < m->nlabels; i++) {
            cs_buf_printf(b, "%s%s=\"", i ? "," : "", m->labels[i]);
            cs_buf_escaped(b, s->values[i], 1);
            cs_buf_printf(b, "\"");
        }
        if (le)
            cs_buf_printf(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
        cs_buf_printf(b, "}");
    }
    cs_buf_printf(b, " ");
    cs_buf_number(b, v);
    cs_buf_printf(b, "\n");
}

static void cs_render_family(cs_buf_t *b, const cs_metric_t *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    int any = 0;
    for (const cs_series_t *s = m->series; s; s = s->next)
        any |= __atomic_load_n(&s->visible, __ATOMIC_RELAXED);
    if (!any)
        return;
    cs_buf_printf(b, "# HELP %s ", m->name);
    cs_buf_escaped(b, m->help, 0);
    cs_buf_printf(b, "\n# TYPE %s %s\n", m->name, types[m->type]);
    for (const cs_series_t *s = m->series; s; s = s->next) {
        if (!__atomic_load_n(&s->visible, __ATOMIC_RELAXED))
            continue;
        if (m->type != CS_METRIC_HISTOGRAM) {
            cs_buf_sample(b, m, s, "", NULL, cs_atomic_get(&s->value));
            continue;
        }
        /* the count is the sum of the buckets read here, so _count and the +Inf bucket
         * agree even while observations arrive */
        uint64_t cum = 0;
        for (size_t i = 0; i <= m->nbounds; i++) {
            cum += __atomic_load_n(&s->counts[i], __ATOMIC_RELAXED);
            char le[32];
            if (i < m->nbounds)
                snprintf(le, sizeof(le), "%g", m->bounds[i]);
            else
                snprintf(le, sizeof(le), "+Inf");
            cs_buf_sample(b, m, s, "_bucket", le, (double)cum);
        }
        cs_buf_sample(b, m, s, "_sum", NULL, cs_atomic_get(&s->value));
        cs_buf_sample(b, m, s, "_count", NULL, (double)cum);
    }
}

static void cs_render_one(cs_buf_t *b, const char *name, const char *type,
                          const char *help, double v)
{
    cs_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
    cs_buf_number(b, v);
    cs_buf_printf(b, "\n");
}

/* The process collector every Prometheus client library has, from /proc/self. */
static void cs_render_process(cs_buf_t *b)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char line[1024];
        size_t n = fread(line, 1, sizeof(line) - 1, f);
        fclose(f);
        line[n] = '\0';
        /* the fields after the command name, which is in parentheses and may hold any
         * character: field 14 utime, 15 stime, 22 starttime, 23 vsize, 24 rss */
        const char *p = strrchr(line, ')');
        unsigned long utime = 0, stime = 0, vsize = 0;
        unsigned long long start = 0;
        long rss = 0;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d "
                        "%*d %*d %*d %*d %llu %lu %ld",
                        &utime, &stime, &start, &vsize, &rss) == 5 &&
            tick > 0) {
            cs_render_one(b, "process_cpu_seconds_total", "counter",
                          "Total user and system CPU time spent in seconds.",
                          (double)(utime + stime) / (double)tick);
            cs_render_one(b, "process_resident_memory_bytes", "gauge",
                          "Resident memory size in bytes.", (double)rss * (double)page);
            cs_render_one(b, "process_virtual_memory_bytes", "gauge",
                          "Virtual memory size in bytes.", (double)vsize);
            FILE *st = fopen("/proc/stat", "r");
            unsigned long long btime = 0;
            if (st) {
                char l[256];
                while (fgets(l, sizeof(l), st))
                    if (sscanf(l, "btime %llu", &btime) == 1)
                        break;
                fclose(st);
            }
            if (btime)
                cs_render_one(b, "process_start_time_seconds", "gauge",
                              "Start time of the process since unix epoch in seconds.",
                              (double)btime + (double)start / (double)tick);
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = 0;
        for (struct dirent *e; (e = readdir(d));)
            n += e->d_name[0] != '.';
        closedir(d);
        cs_render_one(b, "process_open_fds", "gauge", "Number of open file descriptors.",
                      (double)(n - 1)); /* less the one opendir holds */
    }
}

char *cs_metrics_render(size_t *len)
{
    cs_buf_t b = {0};
    pthread_mutex_lock(&cs_metrics_lock);
    for (const cs_metric_t *m = cs_families; m; m = m->next)
        cs_render_family(&b, m);
    pthread_mutex_unlock(&cs_metrics_lock);
    cs_render_process(&b);
    cs_buf_printf(&b, "%s", ""); /* an empty registry still gets a terminated buffer */
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}

/* ------------------------------------------------------------------ health */

static int64_t cs_last_turn_ms = -1;
static int cs_parts[CS_HEALTH_PARTS] = {-1, -1, -1};

void cs_health_turned(int64_t now_ms)
{
    __atomic_store_n(&cs_last_turn_ms, now_ms, __ATOMIC_RELAXED);
}

void cs_health_set(cs_health_part_t part, int ok)
{
    if (part < CS_HEALTH_PARTS)
        __atomic_store_n(&cs_parts[part], ok ? 1 : 0, __ATOMIC_RELAXED);
}

int64_t cs_health_last_turn(void)
{
    return __atomic_load_n(&cs_last_turn_ms, __ATOMIC_RELAXED);
}

int cs_health_get(cs_health_part_t part)
{
    return part < CS_HEALTH_PARTS ? __atomic_load_n(&cs_parts[part], __ATOMIC_RELAXED)
                                  : -1;
}

int cs_health_live(int64_t now_ms, int64_t max_age_ms, char *why, size_t why_size)
{
    int64_t last = cs_health_last_turn();
    if (last < 0) {
        snprintf(why, why_size, "starting: the loop has not turned yet");
        return 0;
    }
    int64_t age = now_ms - last;
    snprintf(why, why_size, "%s: the loop turned %lld ms ago (limit %lld ms)",
             age <= max_age_ms ? "live" : "stalled", (long long)age,
             (long long)max_age_ms);
    return age <= max_age_ms;
}

int cs_health_ready(char *why, size_t why_size)
{
    static const char *const missing[CS_HEALTH_PARTS] = {
        "no partition assignment from the group yet", "no broker reachable",
        "Redis not reachable"};
    for (int i = 0; i < CS_HEALTH_PARTS; i++) {
        int v = cs_health_get((cs_health_part_t)i);
        /* the assignment is required; the others count once known */
        if (v == 0 || (i == CS_HEALTH_ASSIGNED && v < 0)) {
            snprintf(why, why_size, "not ready: %s", missing[i]);
            return 0;
        }
    }
    snprintf(why, why_size, "ready");
    return 1;
}

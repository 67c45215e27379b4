/* caresignal rules: load and validate deploy/config/rules.json, every error with its
 * JSON path. */
#include "caresignal/rules.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/alert.h"

typedef struct cs_rctx {
    const char *name;
    char *errstr;
    size_t errstr_size;
    int failed;
} cs_rctx_t;

static int cs_rfail(cs_rctx_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cs_rfail(cs_rctx_t *c, const char *path, const char *fmt, ...)
{
    if (c->failed)
        return -1;
    c->failed = 1;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(c->errstr, c->errstr_size, "rules file '%s': %s: %s", c->name, path, what);
    return -1;
}

/* Only the keys in \p allowed (NULL-terminated) and "doc" may appear in \p obj. */
static int cs_rkeys(cs_rctx_t *c, const char *path, const json_t *obj,
                    const char *const *allowed)
{
    if (!json_is_object(obj))
        return cs_rfail(c, path, "must be an object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int ok = !strcmp(key, "doc");
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, key);
        if (!ok) {
            char p[256];
            snprintf(p, sizeof(p), "%s.%s", path, key);
            return cs_rfail(c, p, "unknown key");
        }
    }
    return 0;
}

static const json_t *cs_rget(cs_rctx_t *c, const char *path, const json_t *obj,
                             const char *key, char *child, size_t child_size)
{
    snprintf(child, child_size, "%s.%s", path, key);
    const json_t *v = json_object_get(obj, key);
    if (!v)
        cs_rfail(c, child, "missing");
    return v;
}

static int cs_rnumber(cs_rctx_t *c, const char *path, const json_t *v, double min,
                      double *out)
{
    if (!json_is_number(v))
        return cs_rfail(c, path, "must be a number");
    double d = json_number_value(v);
    if (!isfinite(d) || d < min)
        return min > 0 ? cs_rfail(c, path, "must be a positive number")
                       : cs_rfail(c, path, "must be a number >= %g", min);
    *out = d;
    return 0;
}

static int cs_rstring(cs_rctx_t *c, const char *path, const json_t *v, char *out,
                      size_t size)
{
    if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= size)
        return cs_rfail(c, path, "must be a non-empty string (at most %zu characters)",
                        size - 1);
    snprintf(out, size, "%s", json_string_value(v));
    return 0;
}

static int cs_rsymbol(cs_rctx_t *c, const char *path, const json_t *v,
                      const char *const *names, int n, const char *what)
{
    if (!json_is_string(v))
        return cs_rfail(c, path, "must be a %s name", what);
    int idx = cs_enum_index(names, n, json_string_value(v));
    if (idx < 0)
        return cs_rfail(c, path, "unknown %s '%s'", what, json_string_value(v));
    return idx;
}

/* {"field": F, "map": {partner symbol: canonical}} or {"value": canonical} */
static int cs_renum_map(cs_rctx_t *c, const char *path, const json_t *v,
                        const char *const *names, int n, const char *what,
                        cs_rules_enum_map_t *out)
{
    static const char *const keys[] = {"field", "map", "value", NULL};
    if (cs_rkeys(c, path, v, keys))
        return -1;
    char p[256];
    const json_t *value = json_object_get(v, "value");
    if (value) {
        snprintf(p, sizeof(p), "%s.value", path);
        int idx = cs_rsymbol(c, p, value, names, n, what);
        if (idx < 0)
            return -1;
        out->field[0] = '\0';
        out->constant = idx;
        return 0;
    }
    const json_t *field = cs_rget(c, path, v, "field", p, sizeof(p));
    if (!field || cs_rstring(c, p, field, out->field, sizeof(out->field)))
        return -1;
    const json_t *map = cs_rget(c, path, v, "map", p, sizeof(p));
    if (!map)
        return -1;
    if (!json_is_object(map) || !json_object_size(map))
        return cs_rfail(c, p, "must be a non-empty object");
    out->table = json_object();
    const char *sym;
    const json_t *target;
    json_object_foreach((json_t *)map, sym, target)
    {
        char sp[256];
        snprintf(sp, sizeof(sp), "%s.%s", p, sym);
        int idx = cs_rsymbol(c, sp, target, names, n, what);
        if (idx < 0)
            return -1;
        json_object_set_new(out->table, sym, json_integer(idx));
    }
    return 0;
}

static int cs_rsource(cs_rctx_t *c, const char *path, const json_t *v,
                      cs_rules_source_t *s)
{
    static const char *const keys[] = {"schema",   "event_ref",       "org",
                                       "subject",  "occurred_at",     "signal",
                                       "severity", "named_locations", NULL};
    if (cs_rkeys(c, path, v, keys))
        return -1;
    char p[256], q[256];
    const json_t *x;
    s->present = 1;
    if (!(x = cs_rget(c, path, v, "schema", p, sizeof(p))) ||
        cs_rstring(c, p, x, s->schema, sizeof(s->schema)))
        return -1;
    if (!(x = cs_rget(c, path, v, "event_ref", p, sizeof(p))) ||
        cs_rstring(c, p, x, s->event_ref_field, sizeof(s->event_ref_field)))
        return -1;
    if (!(x = cs_rget(c, path, v, "occurred_at", p, sizeof(p))) ||
        cs_rstring(c, p, x, s->occurred_field, sizeof(s->occurred_field)))
        return -1;
    static const char *const org_keys[] = {"field", "format", NULL};
    if (!(x = cs_rget(c, path, v, "org", p, sizeof(p))) || cs_rkeys(c, p, x, org_keys))
        return -1;
    const json_t *y;
    if (!(y = cs_rget(c, p, x, "field", q, sizeof(q))) ||
        cs_rstring(c, q, y, s->org_field, sizeof(s->org_field)))
        return -1;
    if (!(y = cs_rget(c, p, x, "format", q, sizeof(q))))
        return -1;
    int fmt =
        cs_rsymbol(c, q, y, cs_id_kind_names, CS_ID_KIND_COUNT, "identifier format");
    if (fmt < 0)
        return -1;
    s->org_format = (cs_id_kind_t)fmt;
    static const char *const subj_keys[] = {"field", "kind", NULL};
    if (!(x = cs_rget(c, path, v, "subject", p, sizeof(p))) ||
        cs_rkeys(c, p, x, subj_keys))
        return -1;
    if (!(y = cs_rget(c, p, x, "field", q, sizeof(q))) ||
        cs_rstring(c, q, y, s->subject_field, sizeof(s->subject_field)))
        return -1;
    if (!(y = cs_rget(c, p, x, "kind", q, sizeof(q))))
        return -1;
    int kind =
        cs_rsymbol(c, q, y, cs_subject_kind_names, CS_SUBJECT_COUNT, "subject kind");
    if (kind < 0)
        return -1;
    s->subject_kind = (cs_subject_kind_t)kind;
    if (!(x = cs_rget(c, path, v, "signal", p, sizeof(p))) ||
        cs_renum_map(c, p, x, cs_signal_names, CS_SIGNAL_COUNT, "signal", &s->signal))
        return -1;
    if (!(x = cs_rget(c, path, v, "severity", p, sizeof(p))) ||
        cs_renum_map(c, p, x, cs_severity_names, CS_SEVERITY_COUNT, "severity",
                     &s->severity))
        return -1;
    if ((x = json_object_get(v, "named_locations"))) {
        snprintf(p, sizeof(p), "%s.named_locations", path);
        if (cs_rstring(c, p, x, s->named_locations_field,
                       sizeof(s->named_locations_field)))
            return -1;
    }
    return 0;
}

/* {"SYMBOL": number, ...} covering every symbol of \p names exactly. */
static int cs_rtable(cs_rctx_t *c, const char *path, const json_t *v,
                     const char *const *names, int n, const char *what, double min,
                     double *out)
{
    if (!json_is_object(v))
        return cs_rfail(c, path, "must be an object");
    const char *key;
    const json_t *x;
    json_object_foreach((json_t *)v, key, x)
    {
        char p[256];
        snprintf(p, sizeof(p), "%s.%s", path, key);
        int idx = cs_enum_index(names, n, key);
        if (idx < 0)
            return cs_rfail(c, p, "unknown %s", what);
        if (cs_rnumber(c, p, x, min, &out[idx]))
            return -1;
    }
    for (int i = 0; i < n; i++)
        if (!json_object_get(v, names[i]))
            return cs_rfail(c, path, "missing %s %s", what, names[i]);
    return 0;
}

static int cs_rmask(cs_rctx_t *c, const char *path, const json_t *v,
                    const char *const *names, int n, const char *what, uint32_t *mask)
{
    if (!json_is_array(v) || !json_array_size(v))
        return cs_rfail(c, path, "must be a non-empty array of %s names", what);
    size_t i;
    const json_t *x;
    json_array_foreach(v, i, x)
    {
        char p[256];
        snprintf(p, sizeof(p), "%s[%zu]", path, i);
        int idx = cs_rsymbol(c, p, x, names, n, what);
        if (idx < 0)
            return -1;
        *mask |= 1u << idx;
    }
    return 0;
}

static int cs_rlevels(cs_rctx_t *c, const char *path, const json_t *v,
                      cs_rules_levels_t *l)
{
    static const char *const keys[] = {"watch", "inspect", NULL};
    static const char *const rc_keys[] = {"raise", "clear", NULL};
    if (cs_rkeys(c, path, v, keys))
        return -1;
    char p[256], q[256];
    const json_t *x, *y;
    double *targets[2][2] = {{&l->watch_raise, &l->watch_clear},
                             {&l->inspect_raise, &l->inspect_clear}};
    for (int i = 0; i < 2; i++) {
        if (!(x = cs_rget(c, path, v, keys[i], p, sizeof(p))) ||
            cs_rkeys(c, p, x, rc_keys))
            return -1;
        for (int j = 0; j < 2; j++)
            if (!(y = cs_rget(c, p, x, rc_keys[j], q, sizeof(q))) ||
                cs_rnumber(c, q, y, 0, targets[i][j]))
                return -1;
        snprintf(q, sizeof(q), "%s.clear", p);
        if (*targets[i][1] >= *targets[i][0])
            return cs_rfail(c, q, "must be below raise (%g)", *targets[i][0]);
    }
    snprintf(p, sizeof(p), "%s.inspect.raise", path);
    if (l->inspect_raise < l->watch_raise)
        return cs_rfail(c, p, "must not be below watch.raise (%g)", l->watch_raise);
    snprintf(p, sizeof(p), "%s.inspect.clear", path);
    if (l->inspect_clear < l->watch_clear)
        return cs_rfail(c, p, "must not be below watch.clear (%g)", l->watch_clear);
    return 0;
}

static int cs_rint(cs_rctx_t *c, const char *path, const json_t *v, long min, long max,
                   long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return cs_rfail(c, path, "must be an integer from %ld to %ld", min, max);
    *out = (long)json_integer_value(v);
    return 0;
}

static int cs_rrisk(cs_rctx_t *c, const json_t *risk, cs_rules_t *r)
{
    static const char *const keys[] = {"half_life_days",
                                       "base",
                                       "severity_multiplier",
                                       "assurance_signals",
                                       "levels",
                                       "immediate",
                                       "events",
                                       NULL};
    const char *path = "$.risk";
    if (cs_rkeys(c, path, risk, keys))
        return -1;
    char p[256], q[256];
    const json_t *x, *y;
    double d;
    if (!(x = cs_rget(c, path, risk, "half_life_days", p, sizeof(p))) ||
        cs_rnumber(c, p, x, 1e-9, &d))
        return -1;
    r->half_life_ms = d * 86400000.0;
    if (!(x = cs_rget(c, path, risk, "base", p, sizeof(p))) ||
        cs_rtable(c, p, x, cs_signal_names, CS_SIGNAL_COUNT, "signal", 0, r->base))
        return -1;
    if (!(x = cs_rget(c, path, risk, "severity_multiplier", p, sizeof(p))) ||
        cs_rtable(c, p, x, cs_severity_names, CS_SEVERITY_COUNT, "severity", 0,
                  r->multiplier))
        return -1;
    if ((x = json_object_get(risk, "assurance_signals"))) {
        uint32_t mask = 0;
        snprintf(p, sizeof(p), "%s.assurance_signals", path);
        if (cs_rmask(c, p, x, cs_signal_names, CS_SIGNAL_COUNT, "signal", &mask))
            return -1;
        for (int i = 0; i < CS_SIGNAL_COUNT; i++)
            r->assurance[i] = (mask >> i) & 1;
    }
    if (!(x = cs_rget(c, path, risk, "levels", p, sizeof(p))))
        return -1;
    if (cs_rkeys(c, p, x, (const char *const[]){"LOCATION", "LOCAL_AREA", NULL}))
        return -1;
    for (int k = 0; k < CS_SUBJECT_COUNT; k++)
        if (!(y = cs_rget(c, p, x, cs_subject_kind_names[k], q, sizeof(q))) ||
            cs_rlevels(c, q, y, &r->levels[k]))
            return -1;
    if (!(x = cs_rget(c, path, risk, "immediate", p, sizeof(p))) ||
        cs_rkeys(c, p, x, (const char *const[]){"hold_days", "rules", NULL}))
        return -1;
    if (!(y = cs_rget(c, p, x, "hold_days", q, sizeof(q))) || cs_rnumber(c, q, y, 0, &d))
        return -1;
    r->hold_ms = (int64_t)llround(d * 86400000.0);
    if (!(y = cs_rget(c, p, x, "rules", q, sizeof(q))))
        return -1;
    if (!json_is_array(y) || json_array_size(y) > CS_RULES_IMMEDIATE_MAX)
        return cs_rfail(c, q, "must be an array of at most %d rules",
                        CS_RULES_IMMEDIATE_MAX);
    size_t i;
    const json_t *rule;
    json_array_foreach(y, i, rule)
    {
        char rp[256], fp[256];
        snprintf(rp, sizeof(rp), "%s[%zu]", q, i);
        if (cs_rkeys(c, rp, rule,
                     (const char *const[]){"signals", "severities", "areas", NULL}))
            return -1;
        if (!json_object_size(rule))
            return cs_rfail(c, rp, "an empty rule would match every event");
        cs_rules_immediate_t *im = &r->immediate[r->immediate_count++];
        const json_t *z;
        snprintf(fp, sizeof(fp), "%s.signals", rp);
        if ((z = json_object_get(rule, "signals")) &&
            cs_rmask(c, fp, z, cs_signal_names, CS_SIGNAL_COUNT, "signal", &im->signals))
            return -1;
        snprintf(fp, sizeof(fp), "%s.severities", rp);
        if ((z = json_object_get(rule, "severities")) &&
            cs_rmask(c, fp, z, cs_severity_names, CS_SEVERITY_COUNT, "severity",
                     &im->severities))
            return -1;
        snprintf(fp, sizeof(fp), "%s.areas", rp);
        if ((z = json_object_get(rule, "areas")) &&
            cs_rmask(c, fp, z, cs_area_names, CS_AREA_COUNT, "area", &im->areas))
            return -1;
    }
    if (!(x = cs_rget(c, path, risk, "events", p, sizeof(p))) ||
        cs_rkeys(
            c, p, x,
            (const char *const[]){"window_days", "max", "recent", "seen_ttl_days", NULL}))
        return -1;
    long n;
    if (!(y = cs_rget(c, p, x, "window_days", q, sizeof(q))) ||
        cs_rint(c, q, y, 1, 3650, &n))
        return -1;
    r->window_ms = (int64_t)n * 86400000LL;
    if (!(y = cs_rget(c, p, x, "max", q, sizeof(q))) || cs_rint(c, q, y, 1, 100000, &n))
        return -1;
    r->events_max = (int)n;
    if (!(y = cs_rget(c, p, x, "recent", q, sizeof(q))) || cs_rint(c, q, y, 0, 1000, &n))
        return -1;
    /* an alert carries at most CS_ALERT_RECENT_MAX: what a state would keep beyond that
     * is never read (and layout 2 counts its list in one byte) */
    r->recent_max = n > CS_ALERT_RECENT_MAX ? CS_ALERT_RECENT_MAX : (int)n;
    if (!(y = cs_rget(c, p, x, "seen_ttl_days", q, sizeof(q))) ||
        cs_rint(c, q, y, 1, 36500, &n))
        return -1;
    r->seen_ttl_s = (int64_t)n * 86400;
    return 0;
}

static int cs_rmapping(cs_rctx_t *c, const json_t *m, cs_rules_t *r)
{
    static const char *const keys[] = {"NHSE",  "CCG",        "OFSTED_SEND",
                                       "areas", "time_range", NULL};
    const char *path = "$.mapping";
    if (cs_rkeys(c, path, m, keys))
        return -1;
    char p[256], q[256];
    const json_t *x, *y;
    for (int s = 0; s < CS_SOURCE_COUNT; s++)
        if (!(x = cs_rget(c, path, m, cs_source_names[s], p, sizeof(p))) ||
            cs_rsource(c, p, x, &r->sources[s]))
            return -1;
    if (!(x = cs_rget(c, path, m, "areas", p, sizeof(p))))
        return -1;
    if (!json_is_object(x))
        return cs_rfail(c, p, "must be an object");
    for (int s = 0; s < CS_SIGNAL_COUNT; s++) {
        if (!(y = cs_rget(c, p, x, cs_signal_names[s], q, sizeof(q))))
            return -1;
        int a = cs_rsymbol(c, q, y, cs_area_names, CS_AREA_COUNT, "area");
        if (a < 0)
            return -1;
        r->area_of_signal[s] = (cs_area_t)a;
    }
    const char *key;
    json_object_foreach((json_t *)x, key,
                        y) if (cs_enum_index(cs_signal_names, CS_SIGNAL_COUNT, key) < 0)
    {
        snprintf(q, sizeof(q), "%s.%s", p, key);
        return cs_rfail(c, q, "unknown signal");
    }
    if (!(x = cs_rget(c, path, m, "time_range", p, sizeof(p))) ||
        cs_rkeys(c, p, x,
                 (const char *const[]){"future_tolerance_minutes", "past_horizon_days",
                                       "date_future_days", NULL}))
        return -1;
    long n;
    if (!(y = cs_rget(c, p, x, "future_tolerance_minutes", q, sizeof(q))) ||
        cs_rint(c, q, y, 0, 100000, &n))
        return -1;
    r->future_tolerance_ms = (int64_t)n * 60000;
    if (!(y = cs_rget(c, p, x, "past_horizon_days", q, sizeof(q))) ||
        cs_rint(c, q, y, 1, 36500, &n))
        return -1;
    r->past_horizon_ms = (int64_t)n * 86400000LL;
    if (!(y = cs_rget(c, p, x, "date_future_days", q, sizeof(q))) ||
        cs_rint(c, q, y, 0, 3650, &n))
        return -1;
    r->date_future_days = (int)n;
    return 0;
}

static void cs_rdigest(const char *text, size_t len, char out[17])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void cs_rules_destroy(cs_rules_t *rules)
{
    if (!rules)
        return;
    for (int s = 0; s < CS_SOURCE_COUNT; s++) {
        json_decref(rules->sources[s].signal.table);
        json_decref(rules->sources[s].severity.table);
    }
    free(rules);
}

cs_rules_t *cs_rules_parse(const char *text, size_t len, const char *name, char *errstr,
                           size_t errstr_size)
{
    cs_rctx_t c = {name, errstr, errstr_size, 0};
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "rules file '%s': line %d: %s", name, jerr.line,
                 jerr.text);
        return NULL;
    }
    cs_rules_t *r = calloc(1, sizeof(*r));
    if (!r) {
        json_decref(root);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    static const char *const keys[] = {"version", "mapping", "risk", NULL};
    char p[256];
    const json_t *x;
    if (!cs_rkeys(&c, "$", root, keys) &&
        (x = cs_rget(&c, "$", root, "version", p, sizeof(p))) &&
        !cs_rstring(&c, p, x, r->version, sizeof(r->version)) &&
        (x = cs_rget(&c, "$", root, "mapping", p, sizeof(p))) && !cs_rmapping(&c, x, r) &&
        (x = cs_rget(&c, "$", root, "risk", p, sizeof(p))))
        cs_rrisk(&c, x, r);
    json_decref(root);
    if (c.failed) {
        cs_rules_destroy(r);
        return NULL;
    }
    cs_rdigest(text, len, r->digest);
    return r;
}

cs_rules_t *cs_rules_load(const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errstr_size, "rules file '%s': cannot read", path);
        return NULL;
    }
    char *text = NULL;
    size_t cap = 0;
    ssize_t len = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (len < 0) {
        free(text);
        snprintf(errstr, errstr_size, "rules file '%s': empty or unreadable", path);
        return NULL;
    }
    cs_rules_t *r = cs_rules_parse(text, (size_t)len, path, errstr, errstr_size);
    free(text);
    return r;
}

double cs_rules_weight(const cs_rules_t *rules, cs_signal_t signal,
                       cs_severity_t severity)
{
    return rules->base[signal] * rules->multiplier[severity];
}

int cs_rules_is_immediate(const cs_rules_t *rules, cs_signal_t signal,
                          cs_severity_t severity, cs_area_t area)
{
    for (int i = 0; i < rules->immediate_count; i++) {
        const cs_rules_immediate_t *im = &rules->immediate[i];
        if ((!im->signals || (im->signals >> signal & 1)) &&
            (!im->severities || (im->severities >> severity & 1)) &&
            (!im->areas || (im->areas >> area & 1)))
            return 1;
    }
    return 0;
}

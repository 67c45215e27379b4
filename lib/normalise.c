/* caresignal normalisation: raw partner message -> canonical IntelEvents (docs/contract/formats.md to docs/contract/canonical-event.md).
 *
 * Both inbound formats end in an avro-c value of a partner schema: JSON through the
 * schema-guided converter (always the newest version), Avro by decoding with the
 * writer's own version. The mapping then reads the handful of fields it needs by
 * name through a per-version table compiled at start-up, taking the newest
 * version's defaults for fields an older writer lacks (avro-c's resolver cannot).
 */
#include "caresignal/normalise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/codec.h"
#include "caresignal/convert.h"
#include "caresignal/ids.h"
#include "caresignal/signals.h"
#include "caresignal/timeutil.h"

enum { R_REF, R_ORG, R_SUBJECT, R_OCCURRED, R_SIGNAL, R_SEVERITY, R_NAMED, R_COUNT };

#define CS_MAX_VERSIONS 16

typedef struct cs_version_map {
    const cs_schema_t *schema; /* the writer's version */
    avro_value_t value;        /* reusable decode target */
    int idx[R_COUNT];          /* field index in this version, -1 if it lacks it */
    int *enum_map[R_COUNT];    /* R_SIGNAL/R_SEVERITY: writer symbol -> canonical, -1
                                  unmapped */
    int enum_n[R_COUNT];
} cs_version_map_t;

typedef struct cs_source_map {
    const cs_rules_source_t *rs;
    const char *topic;
    const cs_schema_t *latest;
    cs_converter_t *conv;
    const char *field[R_COUNT]; /* field names; NULL when the role is a constant/unused */
    const json_t *def[R_COUNT]; /* the newest version's default, NULL if none */
    int occurred_is_date;
    int id_roles[4]; /* identifier roles in schema field order */
    int n_id_roles;
    cs_version_map_t versions[CS_MAX_VERSIONS];
    int nversions;
    cs_version_map_t *json_version; /* the newest version: JSON is read against it */
} cs_source_map_t;

struct cs_normaliser {
    const cs_registry_t *reg;
    const cs_rules_t *rules;
    const cs_directory_t *dir;
    long max_bytes;
    cs_source_map_t src[CS_SOURCE_COUNT];
    cs_event_codec_t *codec;
    cs_decoder_t *dec;
    /* outputs of the current message */
    cs_normalised_event_t *out;
    size_t out_cap;
    uint8_t *arena;
    size_t arena_len, arena_cap;
    json_t *seen_named; /* de-duplication of named locations */
    int no_location_check;
};

/* ------------------------------------------------------------------ compile */

static avro_schema_t cs_unlink(avro_schema_t s)
{
    return avro_typeof(s) == AVRO_LINK ? avro_schema_link_target(s) : s;
}

/* The enum schema of a field, looking through a nullable union. */
static avro_schema_t cs_field_enum(avro_schema_t rec, int idx)
{
    avro_schema_t t = cs_unlink(avro_schema_record_field_get_by_index(rec, idx));
    if (avro_typeof(t) == AVRO_UNION)
        for (size_t i = 0; i < avro_schema_union_size(t); i++) {
            avro_schema_t b = cs_unlink(avro_schema_union_branch(t, (int)i));
            if (avro_typeof(b) == AVRO_ENUM)
                return b;
        }
    return avro_typeof(t) == AVRO_ENUM ? t : NULL;
}

static int cs_compile_version(cs_source_map_t *m, int src, const cs_schema_t *s,
                              char *errstr, size_t errstr_size)
{
    cs_version_map_t *v = &m->versions[m->nversions];
    memset(v, 0, sizeof(*v));
    v->schema = s;
    if (avro_generic_value_new(s->iface, &v->value)) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    m->nversions++;
    const cs_rules_enum_map_t *maps[R_COUNT] = {NULL};
    maps[R_SIGNAL] = &m->rs->signal;
    maps[R_SEVERITY] = &m->rs->severity;
    for (int r = 0; r < R_COUNT; r++) {
        v->idx[r] =
            m->field[r] ? avro_schema_record_field_get_index(s->avro, m->field[r]) : -1;
        if (!maps[r] || v->idx[r] < 0)
            continue;
        avro_schema_t e = cs_field_enum(s->avro, v->idx[r]);
        if (!e) {
            snprintf(errstr, errstr_size,
                     "rules: %s.%s is not an enum in schema file '%s'", s->subject,
                     m->field[r], s->file);
            return -1;
        }
        v->enum_n[r] = avro_schema_enum_number_of_symbols(e);
        v->enum_map[r] = calloc((size_t)v->enum_n[r], sizeof(int));
        if (!v->enum_map[r])
            return -1;
        for (int i = 0; i < v->enum_n[r]; i++) {
            const json_t *c = json_object_get(maps[r]->table, avro_schema_enum_get(e, i));
            v->enum_map[r][i] = c ? (int)json_integer_value(c) : -1;
            /* the newest version must be mapped completely: a partner symbol the rules
             * forget would reject good events */
            if (!c && s == m->latest) {
                snprintf(errstr, errstr_size,
                         "rules file: $.mapping.%s.%s.map: no mapping for %s symbol %s",
                         cs_source_names[src], r == R_SIGNAL ? "signal" : "severity",
                         s->subject, avro_schema_enum_get(e, i));
                return -1;
            }
        }
    }
    return 0;
}

static int cs_compile_source(cs_normaliser_t *n, int src, const char *topic, char *errstr,
                             size_t errstr_size)
{
    cs_source_map_t *m = &n->src[src];
    const cs_rules_source_t *rs = &n->rules->sources[src];
    m->rs = rs;
    m->topic = topic;
    m->latest = cs_registry_latest(n->reg, rs->schema);
    if (!m->latest) {
        snprintf(errstr, errstr_size,
                 "rules file: $.mapping.%s.schema: %s is not in the schema registry",
                 cs_source_names[src], rs->schema);
        return -1;
    }
    m->field[R_REF] = rs->event_ref_field;
    m->field[R_ORG] = rs->org_field;
    m->field[R_SUBJECT] = rs->subject_field;
    m->field[R_OCCURRED] = rs->occurred_field;
    m->field[R_SIGNAL] = rs->signal.field[0] ? rs->signal.field : NULL;
    m->field[R_SEVERITY] = rs->severity.field[0] ? rs->severity.field : NULL;
    m->field[R_NAMED] = rs->named_locations_field[0] ? rs->named_locations_field : NULL;
    for (int r = 0; r < R_COUNT; r++) {
        if (!m->field[r])
            continue;
        const json_t *f = cs_schema_field_json(m->latest, m->field[r]);
        if (!f) {
            snprintf(errstr, errstr_size,
                     "rules file: $.mapping.%s: field %s is not in %s",
                     cs_source_names[src], m->field[r], m->latest->subject);
            return -1;
        }
        m->def[r] = json_object_get(f, "default");
    }
    const json_t *occ = cs_schema_field_json(m->latest, m->field[R_OCCURRED]);
    const char *fmt = json_string_value(json_object_get(occ, "format"));
    m->occurred_is_date = fmt && !strcmp(fmt, "date");

    /* identifiers are checked in schema field order */
    int roles[] = {R_REF, R_ORG, R_SUBJECT, R_NAMED};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (m->field[roles[i]])
            m->id_roles[m->n_id_roles++] = roles[i];
    for (int i = 1; i < m->n_id_roles; i++)
        for (int j = i; j > 0; j--) {
            int a = avro_schema_record_field_get_index(m->latest->avro,
                                                       m->field[m->id_roles[j - 1]]);
            int b = avro_schema_record_field_get_index(m->latest->avro,
                                                       m->field[m->id_roles[j]]);
            if (a <= b)
                break;
            int t = m->id_roles[j];
            m->id_roles[j] = m->id_roles[j - 1];
            m->id_roles[j - 1] = t;
        }

    if (!(m->conv = cs_converter_new(m->latest, errstr, errstr_size)))
        return -1;
    for (size_t i = 0; i < cs_registry_count(n->reg); i++) {
        const cs_schema_t *s = cs_registry_at(n->reg, i);
        if (strcmp(s->subject, rs->schema))
            continue;
        if (m->nversions == CS_MAX_VERSIONS) {
            snprintf(errstr, errstr_size, "schema registry: more than %d versions of %s",
                     CS_MAX_VERSIONS, s->subject);
            return -1;
        }
        if (cs_compile_version(m, src, s, errstr, errstr_size))
            return -1;
        if (s == m->latest)
            m->json_version = &m->versions[m->nversions - 1];
    }
    return 0;
}

void cs_normaliser_destroy(cs_normaliser_t *n)
{
    if (!n)
        return;
    for (int s = 0; s < CS_SOURCE_COUNT; s++) {
        cs_source_map_t *m = &n->src[s];
        for (int v = 0; v < m->nversions; v++) {
            avro_value_decref(&m->versions[v].value);
            for (int r = 0; r < R_COUNT; r++)
                free(m->versions[v].enum_map[r]);
        }
        cs_converter_destroy(m->conv);
    }
    cs_event_codec_destroy(n->codec);
    cs_decoder_destroy(n->dec);
    json_decref(n->seen_named);
    free(n->out);
    free(n->arena);
    free(n);
}

cs_normaliser_t *cs_normaliser_new(const cs_registry_t *reg, const cs_rules_t *rules,
                                   const char *const raw_topics[CS_SOURCE_COUNT],
                                   long max_bytes, char *errstr, size_t errstr_size)
{
    cs_normaliser_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->reg = reg;
    n->rules = rules;
    n->max_bytes = max_bytes;
    n->seen_named = json_object();
    if (!(n->codec = cs_event_codec_new(reg, errstr, errstr_size)) ||
        !(n->dec = cs_decoder_new()))
        goto fail;
    for (int s = 0; s < CS_SOURCE_COUNT; s++)
        if (cs_compile_source(n, s, raw_topics[s], errstr, errstr_size))
            goto fail;
    return n;
fail:
    cs_normaliser_destroy(n);
    return NULL;
}

void cs_normaliser_set_location_check(cs_normaliser_t *n, int enabled)
{
    n->no_location_check = !enabled;
}

void cs_normaliser_set_directory(cs_normaliser_t *n, const cs_directory_t *dir)
{
    n->dir = dir;
}

int cs_normaliser_source_of(const cs_normaliser_t *n, const char *topic)
{
    for (int s = 0; s < CS_SOURCE_COUNT; s++)
        if (!strcmp(n->src[s].topic, topic))
            return s;
    return -1;
}

/* ------------------------------------------------------------------ field access */

/* The value of role \p r, looking through a union; NULL if the version lacks it. */
static int cs_role_value(cs_version_map_t *v, int r, avro_value_t *out)
{
    if (v->idx[r] < 0)
        return 0;
    avro_value_get_by_index(&v->value, (size_t)v->idx[r], out, NULL);
    if (avro_value_get_type(out) == AVRO_UNION) {
        avro_value_t branch;
        avro_value_get_current_branch(out, &branch);
        *out = branch;
    }
    return 1;
}

static cs_err_t cs_role_string(const cs_source_map_t *m, cs_version_map_t *v, int r,
                               const char **s, size_t *len, cs_error_t *err)
{
    avro_value_t f;
    if (!cs_role_value(v, r, &f)) {
        if (!json_is_string(m->def[r]))
            return cs_error_set(err, CS_ERR_FIELD_MISSING, m->field[r],
                                "required field missing in this schema version");
        *s = json_string_value(m->def[r]);
        *len = json_string_length(m->def[r]);
        return CS_OK;
    }
    if (avro_value_get_type(&f) != AVRO_STRING)
        return cs_error_set(err, CS_ERR_FIELD_TYPE, m->field[r], "expected a string");
    size_t size;
    avro_value_get_string(&f, s, &size);
    *len = size ? size - 1 : 0;
    return CS_OK;
}

static cs_err_t cs_role_enum(const cs_source_map_t *m, cs_version_map_t *v, int r,
                             const cs_rules_enum_map_t *map, int *out, cs_error_t *err)
{
    if (!m->field[r]) {
        *out = map->constant;
        return CS_OK;
    }
    avro_value_t f;
    if (!cs_role_value(v, r, &f)) {
        const json_t *c = json_is_string(m->def[r])
                              ? json_object_get(map->table, json_string_value(m->def[r]))
                              : NULL;
        if (!c)
            return cs_error_set(err, CS_ERR_FIELD_MISSING, m->field[r],
                                "required field missing in this schema version");
        *out = (int)json_integer_value(c);
        return CS_OK;
    }
    int idx;
    if (avro_value_get_type(&f) != AVRO_ENUM || avro_value_get_enum(&f, &idx))
        return cs_error_set(err, CS_ERR_FIELD_TYPE, m->field[r], "expected an enum");
    if (idx < 0 || idx >= v->enum_n[r] || v->enum_map[r][idx] < 0)
        return cs_error_set(err, CS_ERR_ENUM_UNKNOWN, m->field[r],
                            "enum symbol not mapped");
    *out = v->enum_map[r][idx];
    return CS_OK;
}

static cs_err_t cs_role_time(const cs_source_map_t *m, cs_version_map_t *v, int64_t *ms,
                             cs_error_t *err)
{
    avro_value_t f;
    const char *field = m->field[R_OCCURRED];
    if (!cs_role_value(v, R_OCCURRED, &f))
        return cs_error_set(err, CS_ERR_FIELD_MISSING, field,
                            "required field missing in this schema version");
    if (avro_value_get_type(&f) == AVRO_INT64) {
        avro_value_get_long(&f, ms);
        return CS_OK;
    }
    if (avro_value_get_type(&f) == AVRO_STRING) {
        const char *s;
        size_t size;
        avro_value_get_string(&f, &s, &size);
        if (!cs_date_parse(s, size ? size - 1 : 0, ms))
            return CS_OK;
    }
    return cs_error_set(err, CS_ERR_FIELD_TYPE, field,
                        "expected a timestamp or a date YYYY-MM-DD");
}

/* ------------------------------------------------------------------ outputs */

static cs_normalised_event_t *cs_out_slot(cs_normaliser_t *n, size_t i)
{
    if (i >= n->out_cap) {
        size_t cap = n->out_cap ? n->out_cap * 2 : 8;
        while (cap <= i)
            cap *= 2;
        cs_normalised_event_t *grown = realloc(n->out, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        n->out = grown;
        n->out_cap = cap;
    }
    return &n->out[i];
}

static cs_err_t cs_arena_append(cs_normaliser_t *n, const uint8_t *data, size_t len)
{
    if (n->arena_len + len > n->arena_cap) {
        size_t cap = n->arena_cap ? n->arena_cap : 4096;
        while (cap < n->arena_len + len)
            cap *= 2;
        uint8_t *grown = realloc(n->arena, cap);
        if (!grown)
            return CS_ERR_NOMEM;
        n->arena = grown;
        n->arena_cap = cap;
    }
    memcpy(n->arena + n->arena_len, data, len);
    n->arena_len += len;
    return CS_OK;
}

static void cs_copy_id(char *dst, size_t size, const char *s, size_t len)
{
    if (len >= size)
        len = size - 1;
    memcpy(dst, s, len);
    dst[len] = '\0';
}

/* ------------------------------------------------------------------ normalise */

static cs_err_t cs_decode_input(cs_normaliser_t *n, cs_source_map_t *m,
                                const cs_raw_msg_t *msg, cs_version_map_t **vout,
                                int32_t *schema_id, cs_error_t *err)
{
    const uint8_t *b = msg->value;
    if (msg->value_len > 0 && b[0] == CS_WIRE_MAGIC) {
        const void *payload;
        size_t plen;
        if (cs_wire_parse(b, msg->value_len, schema_id, &payload, &plen))
            return cs_error_set(err, CS_ERR_AVRO_DECODE, NULL,
                                "shorter than the Avro wire header");
        cs_version_map_t *v = NULL;
        for (int i = 0; i < m->nversions; i++)
            if (m->versions[i].schema->id == *schema_id)
                v = &m->versions[i];
        if (!v)
            return cs_error_set(err, CS_ERR_SCHEMA_UNKNOWN, NULL,
                                "schema id %d is not a registered version of %s",
                                (int)*schema_id, m->latest->subject);
        cs_err_t e =
            cs_decoder_read(n->dec, v->schema->avro, payload, plen, &v->value, err);
        if (e)
            return e;
        *vout = v;
        return CS_OK;
    }
    *schema_id = -1;
    json_error_t jerr;
    /* JSON_DECODE_ANY: a bare string, number or literal is valid JSON, so it is
     * NOT_OBJECT (docs/contract/reason-codes.md), not JSON_SYNTAX; jansson otherwise refuses it at parse */
    json_t *doc = msg->value ? json_loadb(msg->value, msg->value_len,
                                          JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr)
                             : NULL;
    if (!doc)
        return cs_error_set(err, CS_ERR_JSON_SYNTAX, NULL, "not valid JSON (position %d)",
                            msg->value ? jerr.position : 0);
    cs_err_t e = cs_converter_run(m->conv, doc, &m->json_version->value, err);
    json_decref(doc);
    if (e)
        return e;
    *vout = m->json_version;
    return CS_OK;
}

static cs_id_kind_t cs_role_id_kind(const cs_source_map_t *m, int r)
{
    switch (r) {
    case R_REF:
        return CS_ID_EVENT_REF;
    case R_ORG:
        return m->rs->org_format;
    case R_SUBJECT:
        return m->rs->subject_kind == CS_SUBJECT_LOCATION ? CS_ID_LOCATION : CS_ID_GSS;
    default:
        return CS_ID_LOCATION;
    }
}

cs_err_t cs_normalise(cs_normaliser_t *n, const cs_raw_msg_t *msg,
                      const cs_normalised_event_t **events, size_t *count,
                      cs_error_t *err)
{
    cs_error_clear(err);
    *events = NULL;
    *count = 0;
    int src = cs_normaliser_source_of(n, msg->topic);
    if (src < 0)
        return cs_error_set(err, CS_ERR_SCHEMA_UNKNOWN, NULL, "not a partner topic");
    cs_source_map_t *m = &n->src[src];
    if ((long)msg->value_len > n->max_bytes)
        return cs_error_set(err, CS_ERR_TOO_LARGE, NULL,
                            "value larger than normalise.max.bytes (%ld)", n->max_bytes);

    cs_version_map_t *v = NULL;
    int32_t schema_id = -1;
    cs_err_t e = cs_decode_input(n, m, msg, &v, &schema_id, err);
    if (e)
        return e;

    /* the roles, in schema field order: FIELD_* errors an old writer version can raise */
    const char *ref, *org, *subject;
    size_t ref_len, org_len, subject_len;
    int signal, severity;
    int64_t occurred;
    if ((e = cs_role_string(m, v, R_REF, &ref, &ref_len, err)) ||
        (e = cs_role_string(m, v, R_ORG, &org, &org_len, err)) ||
        (e = cs_role_string(m, v, R_SUBJECT, &subject, &subject_len, err)) ||
        (e = cs_role_time(m, v, &occurred, err)) ||
        (e = cs_role_enum(m, v, R_SIGNAL, &m->rs->signal, &signal, err)) ||
        (e = cs_role_enum(m, v, R_SEVERITY, &m->rs->severity, &severity, err)))
        return e;
    avro_value_t named;
    size_t named_n = 0;
    int have_named = m->field[R_NAMED] && cs_role_value(v, R_NAMED, &named);
    if (have_named) {
        if (avro_value_get_type(&named) != AVRO_ARRAY)
            return cs_error_set(err, CS_ERR_FIELD_TYPE, m->field[R_NAMED],
                                "expected an array");
        avro_value_get_size(&named, &named_n);
    } else if (m->field[R_NAMED] && json_array_size(m->def[R_NAMED])) {
        return cs_error_set(err, CS_ERR_FIELD_MISSING, m->field[R_NAMED],
                            "required field missing in this schema version");
    }

    /* identifiers (ID_FORMAT), in schema field order */
    char path[128];
    for (int i = 0; i < m->n_id_roles; i++) {
        int r = m->id_roles[i];
        if (r == R_NAMED) {
            for (size_t k = 0; k < named_n; k++) {
                avro_value_t item;
                const char *s;
                size_t size;
                avro_value_get_by_index(&named, k, &item, NULL);
                if (avro_value_get_string(&item, &s, &size) ||
                    !cs_id_valid(CS_ID_LOCATION, s, size ? size - 1 : 0)) {
                    snprintf(path, sizeof(path), "%s[%zu]", m->field[R_NAMED], k);
                    return cs_error_set(err, CS_ERR_ID_FORMAT, path,
                                        "not a CQC location id");
                }
            }
            continue;
        }
        const char *s = r == R_REF ? ref : r == R_ORG ? org : subject;
        size_t len = r == R_REF ? ref_len : r == R_ORG ? org_len : subject_len;
        if (!cs_id_valid(cs_role_id_kind(m, r), s, len))
            return cs_error_set(err, CS_ERR_ID_FORMAT, m->field[r],
                                "not a valid %s identifier",
                                cs_id_kind_names[cs_role_id_kind(m, r)]);
    }

    /* TIME_RANGE (docs/contract/reason-codes.md): the partner's CreateTime can be anything, so the upper
     * bound is the earlier of it and our clock (an event dated 2100 would pin its
     * subject's as_of and silence it); a message without one is judged by the clock.
     * A replay is unaffected: a message re-read later is older than the clock. */
    const cs_rules_t *rules = n->rules;
    int64_t now = msg->now_ms > 0 ? msg->now_ms : cs_wall_ms();
    int64_t ts = msg->timestamp_ms;
    int64_t upper = ts >= 0 && ts < now ? ts : now;
    int64_t lower = (ts >= 0 ? ts : now) - rules->past_horizon_ms;
    int future = m->occurred_is_date ? occurred / CS_MS_PER_DAY >
                                           upper / CS_MS_PER_DAY + rules->date_future_days
                                     : occurred > upper + rules->future_tolerance_ms;
    if (future || occurred < lower)
        return cs_error_set(err, CS_ERR_TIME_RANGE, m->field[R_OCCURRED],
                            future
                                ? "occurred in the future (of the message or the clock)"
                                : "older than the de-duplication horizon");

    /* UNKNOWN_LOCATION: the subject, then every named location */
    const cs_location_t *loc = NULL;
    if (m->rs->subject_kind == CS_SUBJECT_LOCATION) {
        loc = n->dir ? cs_directory_find(n->dir, subject, subject_len) : NULL;
        if (!loc && !n->no_location_check)
            return cs_error_set(err, CS_ERR_UNKNOWN_LOCATION, m->field[R_SUBJECT],
                                "location not in the directory");
    }
    json_object_clear(n->seen_named);
    for (size_t k = 0; k < named_n; k++) {
        avro_value_t item;
        const char *s;
        size_t size;
        avro_value_get_by_index(&named, k, &item, NULL);
        avro_value_get_string(&item, &s, &size);
        if (!n->no_location_check &&
            (!n->dir || !cs_directory_find(n->dir, s, size - 1))) {
            snprintf(path, sizeof(path), "%s[%zu]", m->field[R_NAMED], k);
            return cs_error_set(err, CS_ERR_UNKNOWN_LOCATION, path,
                                "location not in the directory");
        }
    }

    /* outputs: the subject's event, then one LOCATION event per distinct named location
     */
    n->arena_len = 0;
    size_t nout = 0;
    cs_normalised_event_t *o = cs_out_slot(n, nout);
    if (!o)
        return cs_error_set(err, CS_ERR_NOMEM, NULL, "out of memory");
    cs_intel_event_t *ev = &o->ev;
    memset(ev, 0, sizeof(*ev));
    snprintf(ev->event_key, sizeof(ev->event_key), "%s:%.*s:%.*s", cs_source_names[src],
             (int)org_len, org, (int)ref_len, ref);
    ev->source = (cs_source_t)src;
    cs_copy_id(ev->source_org, sizeof(ev->source_org), org, org_len);
    ev->subject_kind = m->rs->subject_kind;
    cs_copy_id(ev->subject_id, sizeof(ev->subject_id), subject, subject_len);
    ev->signal = (cs_signal_t)signal;
    ev->area = rules->area_of_signal[signal];
    ev->severity = (cs_severity_t)severity;
    ev->occurred_at = occurred;
    ev->received_at = ts >= 0 ? ts : occurred;
    snprintf(ev->origin_topic, sizeof(ev->origin_topic), "%s", msg->topic);
    ev->origin_partition = msg->partition;
    ev->origin_offset = msg->offset;
    ev->origin_schema_id = schema_id;
    if (m->rs->subject_kind == CS_SUBJECT_LOCATION) {
        snprintf(ev->region, sizeof(ev->region), "%s", loc ? loc->region : "UNKNOWN");
        snprintf(ev->local_authority_code, sizeof(ev->local_authority_code), "%s",
                 loc ? loc->local_authority_code : "UNKNOWN");
    } else {
        const char *region =
            n->dir ? cs_directory_area_region(n->dir, subject, subject_len) : NULL;
        snprintf(ev->region, sizeof(ev->region), "%s", region ? region : "UNKNOWN");
        cs_copy_id(ev->local_authority_code, sizeof(ev->local_authority_code), subject,
                   subject_len);
    }
    nout++;
    for (size_t k = 0; k < named_n; k++) {
        avro_value_t item;
        const char *s;
        size_t size;
        avro_value_get_by_index(&named, k, &item, NULL);
        avro_value_get_string(&item, &s, &size);
        if (json_object_getn(n->seen_named, s, size - 1))
            continue; /* a repeated name counts once */
        json_object_setn_new(n->seen_named, s, size - 1, json_true());
        const cs_location_t *nl = n->dir ? cs_directory_find(n->dir, s, size - 1) : NULL;
        cs_normalised_event_t *no = cs_out_slot(n, nout);
        if (!no)
            return cs_error_set(err, CS_ERR_NOMEM, NULL, "out of memory");
        no->ev = n->out[0].ev;
        cs_intel_event_t *le = &no->ev;
        size_t klen = strlen(le->event_key);
        snprintf(le->event_key + klen, sizeof(le->event_key) - klen, "#%.*s",
                 (int)(size - 1), s);
        le->subject_kind = CS_SUBJECT_LOCATION;
        cs_copy_id(le->subject_id, sizeof(le->subject_id), s, size - 1);
        snprintf(le->region, sizeof(le->region), "%s", nl ? nl->region : "UNKNOWN");
        snprintf(le->local_authority_code, sizeof(le->local_authority_code), "%s",
                 nl ? nl->local_authority_code : "UNKNOWN");
        nout++;
    }

    /* encode one after another into the arena; pointers are set once it stops moving */
    for (size_t i = 0; i < nout; i++) {
        const uint8_t *bytes;
        size_t len;
        cs_normalised_event_t *x = &n->out[i];
        x->key_len =
            cs_subject_key(x->ev.subject_kind, x->ev.subject_id, x->key, sizeof(x->key));
        if (cs_event_encode(n->codec, &x->ev, &bytes, &len) ||
            cs_arena_append(n, bytes, len))
            return cs_error_set(err, CS_ERR_NOMEM, NULL,
                                "cannot encode the canonical event");
        x->value_len = len;
    }
    for (size_t i = 0, start = 0; i < nout; start += n->out[i].value_len, i++)
        n->out[i].value = n->arena + start;
    *events = n->out;
    *count = nout;
    return CS_OK;
}

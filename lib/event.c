/* caresignal canonical model: enum names, subject keys, IntelEvent encode/decode. */
#include "caresignal/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/codec.h"
#include "caresignal/ids.h"

const char *const cs_source_names[CS_SOURCE_COUNT] = {"NHSE", "CCG", "OFSTED_SEND"};
const char *const cs_subject_kind_names[CS_SUBJECT_COUNT] = {"LOCATION", "LOCAL_AREA"};
const char *const cs_signal_names[CS_SIGNAL_COUNT] = {
    "SERIOUS_INCIDENT",    "NEVER_EVENT",    "OUTBREAK",        "VACCINATION_INCIDENT",
    "WORKFORCE_SHORTFALL", "DNACPR_CONCERN", "IPC_CONCERN",     "COMPLAINT",
    "SAFEGUARDING",        "WHISTLEBLOWING", "QUALITY_CONCERN", "CONTRACT_BREACH",
    "POSITIVE_FEEDBACK",   "SEND_OUTCOME"};
const char *const cs_area_names[CS_AREA_COUNT] = {"SAFE_CARE", "STAFFING",
                                                  "PROTECTION_FROM_ABUSE", "ASSURANCE"};
const char *const cs_severity_names[CS_SEVERITY_COUNT] = {"INFO", "LOW", "MEDIUM", "HIGH",
                                                          "CRITICAL"};

int cs_enum_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return i;
    return -1;
}

size_t cs_subject_key(cs_subject_kind_t kind, const char *subject_id, char *out,
                      size_t size)
{
    int n = snprintf(out, size, "%s:%s", cs_subject_kind_names[kind], subject_id);
    if (n < 0 || size == 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

/* ------------------------------------------------------------------ model check */

static const char *const cs_event_fields[] = {
    "event_key",           "source",      "source_org", "subject_kind",
    "subject_id",          "signal",      "area",       "severity",
    "occurred_at",         "received_at", "origin",     "region",
    "local_authority_code"};
enum {
    F_EVENT_KEY,
    F_SOURCE,
    F_SOURCE_ORG,
    F_SUBJECT_KIND,
    F_SUBJECT_ID,
    F_SIGNAL,
    F_AREA,
    F_SEVERITY,
    F_OCCURRED_AT,
    F_RECEIVED_AT,
    F_ORIGIN,
    F_REGION,
    F_LA,
    F_COUNT
};

static int cs_check_enum(avro_schema_t s, const char *const *names, int n)
{
    if (avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    if (avro_typeof(s) != AVRO_ENUM || avro_schema_enum_number_of_symbols(s) != n)
        return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(avro_schema_enum_get(s, i), names[i]))
            return -1;
    return 0;
}

cs_err_t cs_event_model_check(const cs_registry_t *reg, char *errstr, size_t errstr_size)
{
    const cs_schema_t *s = cs_registry_latest(reg, "caresignal.IntelEvent");
    if (!s) {
        snprintf(errstr, errstr_size, "schema registry: no caresignal.IntelEvent schema");
        return CS_ERR_CONFIG;
    }
    if (avro_schema_record_size(s->avro) != F_COUNT)
        goto bad;
    for (int i = 0; i < F_COUNT; i++)
        if (strcmp(avro_schema_record_field_name(s->avro, i), cs_event_fields[i]))
            goto bad;
    if (cs_check_enum(avro_schema_record_field_get_by_index(s->avro, F_SOURCE),
                      cs_source_names, CS_SOURCE_COUNT) ||
        cs_check_enum(avro_schema_record_field_get_by_index(s->avro, F_SUBJECT_KIND),
                      cs_subject_kind_names, CS_SUBJECT_COUNT) ||
        cs_check_enum(avro_schema_record_field_get_by_index(s->avro, F_SIGNAL),
                      cs_signal_names, CS_SIGNAL_COUNT) ||
        cs_check_enum(avro_schema_record_field_get_by_index(s->avro, F_AREA),
                      cs_area_names, CS_AREA_COUNT) ||
        cs_check_enum(avro_schema_record_field_get_by_index(s->avro, F_SEVERITY),
                      cs_severity_names, CS_SEVERITY_COUNT))
        goto bad;
    return CS_OK;
bad:
    snprintf(
        errstr, errstr_size,
        "schema file '%s': caresignal.IntelEvent does not match the fields and symbols "
        "this build expects (docs/contract/canonical-event.md)",
        s->file);
    return CS_ERR_CONFIG;
}

/* ------------------------------------------------------------------ codec */

#define CS_CODEC_MAX_VERSIONS 16

struct cs_event_codec {
    const cs_registry_t *reg;
    const cs_schema_t *latest;
    avro_value_t out; /* reusable value of the newest schema */
    cs_encoder_t *enc;
    cs_decoder_t *dec;
    struct {
        int id;
        avro_value_t v;
    } in[CS_CODEC_MAX_VERSIONS]; /* one reusable value per decoded writer version */
    int nin;
};

cs_event_codec_t *cs_event_codec_new(const cs_registry_t *reg, char *errstr,
                                     size_t errstr_size)
{
    if (cs_event_model_check(reg, errstr, errstr_size))
        return NULL;
    cs_event_codec_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->reg = reg;
    c->latest = cs_registry_latest(reg, "caresignal.IntelEvent");
    c->enc = cs_encoder_new();
    c->dec = cs_decoder_new();
    if (!c->enc || !c->dec || avro_generic_value_new(c->latest->iface, &c->out)) {
        snprintf(errstr, errstr_size, "out of memory");
        cs_encoder_destroy(c->enc);
        cs_decoder_destroy(c->dec);
        free(c);
        return NULL;
    }
    return c;
}

void cs_event_codec_destroy(cs_event_codec_t *c)
{
    if (!c)
        return;
    avro_value_decref(&c->out);
    for (int i = 0; i < c->nin; i++)
        avro_value_decref(&c->in[i].v);
    cs_encoder_destroy(c->enc);
    cs_decoder_destroy(c->dec);
    free(c);
}

static void cs_set_str(avro_value_t *rec, int idx, const char *s)
{
    avro_value_t f;
    avro_value_get_by_index(rec, (size_t)idx, &f, NULL);
    avro_value_set_string_len(&f, s, strlen(s) + 1);
}

static void cs_set_enum(avro_value_t *rec, int idx, int v)
{
    avro_value_t f;
    avro_value_get_by_index(rec, (size_t)idx, &f, NULL);
    avro_value_set_enum(&f, v);
}

static void cs_set_long(avro_value_t *rec, int idx, int64_t v)
{
    avro_value_t f;
    avro_value_get_by_index(rec, (size_t)idx, &f, NULL);
    avro_value_set_long(&f, v);
}

cs_err_t cs_event_encode(cs_event_codec_t *c, const cs_intel_event_t *ev,
                         const uint8_t **out, size_t *out_len)
{
    avro_value_t *r = &c->out;
    cs_set_str(r, F_EVENT_KEY, ev->event_key);
    cs_set_enum(r, F_SOURCE, ev->source);
    cs_set_str(r, F_SOURCE_ORG, ev->source_org);
    cs_set_enum(r, F_SUBJECT_KIND, ev->subject_kind);
    cs_set_str(r, F_SUBJECT_ID, ev->subject_id);
    cs_set_enum(r, F_SIGNAL, ev->signal);
    cs_set_enum(r, F_AREA, ev->area);
    cs_set_enum(r, F_SEVERITY, ev->severity);
    cs_set_long(r, F_OCCURRED_AT, ev->occurred_at);
    cs_set_long(r, F_RECEIVED_AT, ev->received_at);
    avro_value_t origin, f;
    avro_value_get_by_index(r, F_ORIGIN, &origin, NULL);
    cs_set_str(&origin, 0, ev->origin_topic);
    avro_value_get_by_index(&origin, 1, &f, NULL);
    avro_value_set_int(&f, ev->origin_partition);
    cs_set_long(&origin, 2, ev->origin_offset);
    avro_value_get_by_index(&origin, 3, &f, NULL);
    avro_value_set_int(&f, ev->origin_schema_id);
    cs_set_str(r, F_REGION, ev->region);
    cs_set_str(r, F_LA, ev->local_authority_code);
    return cs_encoder_write(c->enc, c->latest->id, r, out, out_len);
}

static avro_value_t *cs_codec_value_for(cs_event_codec_t *c, const cs_schema_t *s)
{
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].id == s->id)
            return &c->in[i].v;
    if (c->nin == CS_CODEC_MAX_VERSIONS ||
        avro_generic_value_new(s->iface, &c->in[c->nin].v))
        return NULL;
    c->in[c->nin].id = s->id;
    return &c->in[c->nin++].v;
}

/* Copies string field \p name of \p rec into \p out; a missing or overlong field fails.
 */
static int cs_get_str(avro_value_t *rec, const char *name, char *out, size_t size)
{
    avro_value_t f;
    const char *s;
    size_t len;
    if (avro_value_get_by_name(rec, name, &f, NULL) ||
        avro_value_get_string(&f, &s, &len) || len == 0 || len > size)
        return -1;
    memcpy(out, s, len); /* len includes the NUL */
    out[len - 1] = '\0';
    return 0;
}

static int cs_get_enum(avro_value_t *rec, const char *name, int n, int *out)
{
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL) || avro_value_get_enum(&f, out) ||
        *out < 0 || *out >= n)
        return -1;
    return 0;
}

static int cs_get_long(avro_value_t *rec, const char *name, int64_t *out)
{
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_get_long(&f, out)
               ? -1
               : 0;
}

cs_err_t cs_event_decode(cs_event_codec_t *c, const void *buf, size_t len,
                         cs_intel_event_t *ev, cs_error_t *err)
{
    int32_t id;
    const void *payload;
    size_t plen;
    if (cs_wire_parse(buf, len, &id, &payload, &plen))
        return cs_error_set(err, CS_ERR_AVRO_DECODE, NULL, "not in the Avro wire format");
    const cs_schema_t *s = cs_registry_get(c->reg, id);
    if (!s || strcmp(s->subject, "caresignal.IntelEvent"))
        return cs_error_set(err, CS_ERR_SCHEMA_UNKNOWN, NULL,
                            "schema id %d is not an IntelEvent", (int)id);
    avro_value_t *v = cs_codec_value_for(c, s);
    if (!v)
        return cs_error_set(err, CS_ERR_NOMEM, NULL, "out of memory");
    cs_err_t e = cs_decoder_read(c->dec, s->avro, payload, plen, v, err);
    if (e)
        return e;
    int src, kind, sig, area, sev;
    avro_value_t origin, f;
    int32_t i32;
    memset(ev, 0, sizeof(*ev));
    if (cs_get_str(v, "event_key", ev->event_key, sizeof(ev->event_key)) ||
        cs_get_enum(v, "source", CS_SOURCE_COUNT, &src) ||
        cs_get_str(v, "source_org", ev->source_org, sizeof(ev->source_org)) ||
        cs_get_enum(v, "subject_kind", CS_SUBJECT_COUNT, &kind) ||
        cs_get_str(v, "subject_id", ev->subject_id, sizeof(ev->subject_id)) ||
        cs_get_enum(v, "signal", CS_SIGNAL_COUNT, &sig) ||
        cs_get_enum(v, "area", CS_AREA_COUNT, &area) ||
        cs_get_enum(v, "severity", CS_SEVERITY_COUNT, &sev) ||
        cs_get_long(v, "occurred_at", &ev->occurred_at) ||
        cs_get_long(v, "received_at", &ev->received_at) ||
        avro_value_get_by_name(v, "origin", &origin, NULL) ||
        cs_get_str(&origin, "topic", ev->origin_topic, sizeof(ev->origin_topic)) ||
        avro_value_get_by_name(&origin, "partition", &f, NULL) ||
        avro_value_get_int(&f, &i32) ||
        cs_get_long(&origin, "offset", &ev->origin_offset) ||
        cs_get_str(v, "region", ev->region, sizeof(ev->region)) ||
        cs_get_str(v, "local_authority_code", ev->local_authority_code,
                   sizeof(ev->local_authority_code)))
        return cs_error_set(err, CS_ERR_AVRO_DECODE, NULL,
                            "IntelEvent with missing or oversized fields");
    ev->origin_partition = i32;
    if (avro_value_get_by_name(&origin, "schema_id", &f, NULL) ||
        avro_value_get_int(&f, &i32))
        return cs_error_set(err, CS_ERR_AVRO_DECODE, NULL,
                            "IntelEvent without origin.schema_id");
    ev->origin_schema_id = i32;
    ev->source = (cs_source_t)src;
    ev->subject_kind = (cs_subject_kind_t)kind;
    ev->signal = (cs_signal_t)sig;
    ev->area = (cs_area_t)area;
    ev->severity = (cs_severity_t)sev;
    return CS_OK;
}

/* ------------------------------------------------------------------ validation */

int cs_event_key_valid(const char *key)
{
    const char *c1 = strchr(key, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
        return 0;
    int src = -1;
    for (int i = 0; i < CS_SOURCE_COUNT; i++)
        if ((size_t)(c1 - key) == strlen(cs_source_names[i]) &&
            !strncmp(key, cs_source_names[i], (size_t)(c1 - key)))
            src = i;
    const char *org = c1 + 1, *ref = c2 + 1;
    size_t org_len = (size_t)(c2 - org);
    if (src < 0 ||
        !(cs_id_valid(CS_ID_ODS, org, org_len) || cs_id_valid(CS_ID_GSS, org, org_len)))
        return 0;
    const char *hash = strchr(ref, '#');
    size_t ref_len = hash ? (size_t)(hash - ref) : strlen(ref);
    if (!cs_id_valid(CS_ID_EVENT_REF, ref, ref_len))
        return 0;
    return !hash || cs_id_valid(CS_ID_LOCATION, hash + 1, strlen(hash + 1));
}

int cs_event_label_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
            return 0;
    return n >= 1 && n <= CS_ID_MAX;
}

cs_err_t cs_event_validate(const cs_intel_event_t *ev, cs_error_t *err)
{
    cs_id_kind_t subject =
        ev->subject_kind == CS_SUBJECT_LOCATION ? CS_ID_LOCATION : CS_ID_GSS;
    const char *src = cs_source_names[ev->source];
    size_t src_len = strlen(src), org_len = strlen(ev->source_org);
    if (!cs_id_valid(CS_ID_ODS, ev->source_org, org_len) &&
        !cs_id_valid(CS_ID_GSS, ev->source_org, org_len))
        return cs_error_set(err, CS_ERR_ID_FORMAT, "source_org",
                            "not an ODS or GSS code");
    if (!cs_event_key_valid(ev->event_key) || strncmp(ev->event_key, src, src_len) ||
        ev->event_key[src_len] != ':' ||
        strncmp(ev->event_key + src_len + 1, ev->source_org, org_len) ||
        ev->event_key[src_len + 1 + org_len] != ':')
        return cs_error_set(err, CS_ERR_ID_FORMAT, "event_key",
                            "not <SOURCE>:<org>:<ref> of this event's source and org");
    if (!cs_id_valid(subject, ev->subject_id, strlen(ev->subject_id)))
        return cs_error_set(err, CS_ERR_ID_FORMAT, "subject_id", "not a valid %s id",
                            cs_subject_kind_names[ev->subject_kind]);
    if (strcmp(ev->local_authority_code, "UNKNOWN") &&
        !cs_id_valid(CS_ID_GSS, ev->local_authority_code,
                     strlen(ev->local_authority_code)))
        return cs_error_set(err, CS_ERR_ID_FORMAT, "local_authority_code",
                            "not a GSS code or UNKNOWN");
    if (!cs_event_label_valid(ev->region))
        return cs_error_set(err, CS_ERR_ID_FORMAT, "region",
                            "not 1 to 64 printable characters");
    return CS_OK;
}

/* caresignal alerts: ids, JSON form, and the wire format. The Avro codec goes through the
 * JSON form with the schema-guided converter, so the alert has exactly one shape. */
#include "caresignal/alert.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/codec.h"
#include "caresignal/convert.h"
#include "caresignal/ids.h"

const char *const cs_level_names[CS_LEVEL_COUNT] = {"NONE", "WATCH", "INSPECT"};
const char *const cs_alert_kind_names[CS_ALERT_KIND_COUNT] = {"RAISED", "CLEARED"};
const char *const cs_reason_names[CS_REASON_COUNT] = {"THRESHOLD", "IMMEDIATE"};

void cs_alert_id(const char *subject_key, cs_alert_kind_t kind, cs_level_t level,
                 const char *triggered_by, char out[33])
{
    char text[512];
    int n = snprintf(text, sizeof(text), "%s|%s|%s|%s", subject_key,
                     cs_alert_kind_names[kind], cs_level_names[level], triggered_by);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(text, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void cs_alert_set_id(cs_alert_t *a)
{
    char key[CS_SUBJECT_KEY_MAX];
    cs_subject_key(a->subject_kind, a->subject_id, key, sizeof(key));
    cs_alert_id(key, a->kind, a->level, a->triggered_by, a->alert_id);
}

json_t *cs_recent_events_json(const cs_recent_event_t *e, int n)
{
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:I}", "event_key", e[i].event_key, "signal",
                            cs_signal_names[e[i].signal], "severity",
                            cs_severity_names[e[i].severity], "occurred_at",
                            (json_int_t)e[i].occurred_at));
    return list;
}

json_t *cs_alert_to_json(const cs_alert_t *a)
{
    json_t *areas = json_object();
    for (int i = 0; i < CS_AREA_COUNT; i++)
        json_object_set_new(areas, cs_area_names[i], json_real(a->area_scores[i]));
    json_t *recent = cs_recent_events_json(a->recent, a->nrecent);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:o, s:I, s:s, s:s, s:o, s:s, s:s, s:s}",
        "alert_id", a->alert_id, "kind", cs_alert_kind_names[a->kind], "subject_kind",
        cs_subject_kind_names[a->subject_kind], "subject_id", a->subject_id, "level",
        cs_level_names[a->level], "previous_level", cs_level_names[a->previous_level],
        "score", a->score, "area_scores", areas, "as_of", (json_int_t)a->as_of,
        "triggered_by", a->triggered_by, "reason", cs_reason_names[a->reason], "recent",
        recent, "rules_version", a->rules_version, "region", a->region,
        "local_authority_code", a->local_authority_code);
}

static int cs_jenum(const json_t *j, const char *key, const char *const *names, int n)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? cs_enum_index(names, n, s) : -1;
}

static int cs_jstr(const json_t *j, const char *key, char *out, size_t size)
{
    const json_t *v = json_object_get(j, key);
    if (!json_is_string(v) || json_string_length(v) >= size)
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

cs_err_t cs_alert_from_json(const json_t *j, cs_alert_t *a)
{
    memset(a, 0, sizeof(*a));
    int kind = cs_jenum(j, "kind", cs_alert_kind_names, CS_ALERT_KIND_COUNT);
    int sk = cs_jenum(j, "subject_kind", cs_subject_kind_names, CS_SUBJECT_COUNT);
    int level = cs_jenum(j, "level", cs_level_names, CS_LEVEL_COUNT);
    int prev = cs_jenum(j, "previous_level", cs_level_names, CS_LEVEL_COUNT);
    int reason = cs_jenum(j, "reason", cs_reason_names, CS_REASON_COUNT);
    const json_t *areas = json_object_get(j, "area_scores");
    const json_t *recent = json_object_get(j, "recent");
    if (kind < 0 || sk < 0 || level < 0 || prev < 0 || reason < 0 ||
        cs_jstr(j, "alert_id", a->alert_id, sizeof(a->alert_id)) ||
        cs_jstr(j, "subject_id", a->subject_id, sizeof(a->subject_id)) ||
        cs_jstr(j, "triggered_by", a->triggered_by, sizeof(a->triggered_by)) ||
        cs_jstr(j, "rules_version", a->rules_version, sizeof(a->rules_version)) ||
        cs_jstr(j, "region", a->region, sizeof(a->region)) ||
        cs_jstr(j, "local_authority_code", a->local_authority_code,
                sizeof(a->local_authority_code)) ||
        !json_is_number(json_object_get(j, "score")) ||
        !json_is_integer(json_object_get(j, "as_of")) || !json_is_object(areas) ||
        !json_is_array(recent) || json_array_size(recent) > CS_ALERT_RECENT_MAX)
        return CS_ERR_INVALID_ARG;
    a->kind = (cs_alert_kind_t)kind;
    a->subject_kind = (cs_subject_kind_t)sk;
    a->level = (cs_level_t)level;
    a->previous_level = (cs_level_t)prev;
    a->reason = (cs_reason_t)reason;
    a->score = json_number_value(json_object_get(j, "score"));
    a->as_of = json_integer_value(json_object_get(j, "as_of"));
    for (int i = 0; i < CS_AREA_COUNT; i++)
        a->area_scores[i] = json_number_value(json_object_get(areas, cs_area_names[i]));
    size_t i;
    const json_t *r;
    json_array_foreach(recent, i, r)
    {
        cs_recent_event_t *e = &a->recent[a->nrecent++];
        int sig = cs_jenum(r, "signal", cs_signal_names, CS_SIGNAL_COUNT);
        int sev = cs_jenum(r, "severity", cs_severity_names, CS_SEVERITY_COUNT);
        if (sig < 0 || sev < 0 ||
            cs_jstr(r, "event_key", e->event_key, sizeof(e->event_key)) ||
            !json_is_integer(json_object_get(r, "occurred_at")))
            return CS_ERR_INVALID_ARG;
        e->signal = (cs_signal_t)sig;
        e->severity = (cs_severity_t)sev;
        e->occurred_at = json_integer_value(json_object_get(r, "occurred_at"));
    }
    return CS_OK;
}

/* ------------------------------------------------------------------ codec */

struct cs_alert_codec {
    const cs_registry_t *reg;
    const cs_schema_t *latest;
    cs_converter_t *conv;
    avro_value_t value;
    cs_encoder_t *enc;
    cs_decoder_t *dec;
};

cs_alert_codec_t *cs_alert_codec_new(const cs_registry_t *reg, char *errstr,
                                     size_t errstr_size)
{
    cs_alert_codec_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->reg = reg;
    c->latest = cs_registry_latest(reg, "caresignal.RiskAlert");
    if (!c->latest) {
        snprintf(errstr, errstr_size, "schema registry: no caresignal.RiskAlert schema");
        free(c);
        return NULL;
    }
    c->conv = cs_converter_new(c->latest, errstr, errstr_size);
    c->enc = cs_encoder_new();
    c->dec = cs_decoder_new();
    if (!c->conv || !c->enc || !c->dec ||
        avro_generic_value_new(c->latest->iface, &c->value)) {
        cs_converter_destroy(c->conv);
        cs_encoder_destroy(c->enc);
        cs_decoder_destroy(c->dec);
        free(c);
        return NULL;
    }
    return c;
}

void cs_alert_codec_destroy(cs_alert_codec_t *c)
{
    if (!c)
        return;
    avro_value_decref(&c->value);
    cs_converter_destroy(c->conv);
    cs_encoder_destroy(c->enc);
    cs_decoder_destroy(c->dec);
    free(c);
}

cs_err_t cs_alert_encode(cs_alert_codec_t *c, const cs_alert_t *a, const uint8_t **out,
                         size_t *out_len)
{
    json_t *j = cs_alert_to_json(a);
    cs_error_t err;
    cs_err_t rc = j ? cs_converter_run(c->conv, j, &c->value, &err) : CS_ERR_NOMEM;
    json_decref(j);
    if (rc)
        return rc;
    return cs_encoder_write(c->enc, c->latest->id, &c->value, out, out_len);
}

cs_err_t cs_alert_decode(cs_alert_codec_t *c, const void *buf, size_t len, cs_alert_t *a,
                         cs_error_t *err)
{
    int32_t id;
    const void *payload;
    size_t plen;
    if (cs_wire_parse(buf, len, &id, &payload, &plen))
        return cs_error_set(err, CS_ERR_AVRO_DECODE, NULL, "not in the Avro wire format");
    const cs_schema_t *s = cs_registry_get(c->reg, id);
    if (!s || strcmp(s->subject, "caresignal.RiskAlert"))
        return cs_error_set(err, CS_ERR_SCHEMA_UNKNOWN, NULL,
                            "schema id %d is not a RiskAlert", (int)id);
    avro_value_t v;
    if (avro_generic_value_new(s->iface, &v))
        return cs_error_set(err, CS_ERR_NOMEM, NULL, "out of memory");
    cs_err_t rc = cs_decoder_read(c->dec, s->avro, payload, plen, &v, err);
    char *text = NULL;
    if (!rc && avro_value_to_json(&v, 1, &text))
        rc = cs_error_set(err, CS_ERR_AVRO_DECODE, NULL, "cannot render the RiskAlert");
    avro_value_decref(&v);
    if (rc)
        return rc;
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    rc = j ? cs_alert_from_json(j, a) : CS_ERR_INVALID_ARG;
    json_decref(j);
    return rc ? cs_error_set(err, CS_ERR_AVRO_DECODE, NULL,
                             "RiskAlert with missing fields")
              : CS_OK;
}

cs_err_t cs_alert_validate(const cs_alert_t *a, cs_error_t *err)
{
    size_t n = strspn(a->alert_id, "0123456789abcdef");
    if (n != 32 || a->alert_id[32])
        return cs_error_set(err, CS_ERR_ID_FORMAT, "alert_id", "not 32 hex digits");
    cs_id_kind_t subject =
        a->subject_kind == CS_SUBJECT_LOCATION ? CS_ID_LOCATION : CS_ID_GSS;
    if (!cs_id_valid(subject, a->subject_id, strlen(a->subject_id)))
        return cs_error_set(err, CS_ERR_ID_FORMAT, "subject_id", "not a valid %s id",
                            cs_subject_kind_names[a->subject_kind]);
    if (!cs_event_key_valid(a->triggered_by))
        return cs_error_set(err, CS_ERR_ID_FORMAT, "triggered_by", "not an event key");
    if (!cs_event_label_valid(a->region))
        return cs_error_set(err, CS_ERR_ID_FORMAT, "region",
                            "not 1 to 64 printable characters");
    if (!cs_event_label_valid(a->local_authority_code))
        return cs_error_set(err, CS_ERR_ID_FORMAT, "local_authority_code",
                            "not 1 to 64 printable characters");
    return CS_OK;
}

/* caresignal error codes: names and the docs/contract/reason-codes.md reason table. */
#include "caresignal/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    cs_err_t code;
    const char *name;
} cs_err_names[] = {
    {CS_OK, "OK"},
    {CS_ERR_NOMEM, "NOMEM"},
    {CS_ERR_INVALID_ARG, "INVALID_ARG"},
    {CS_ERR_CONFIG, "CONFIG"},
    {CS_ERR_IO, "IO"},
    {CS_ERR_RETRY, "RETRY"},
    {CS_ERR_FATAL, "FATAL"},
    {CS_ERR_NOT_FOUND, "NOT_FOUND"},
    {CS_ERR_TIMEOUT, "TIMEOUT"},
    {CS_ERR_KAFKA, "KAFKA"},
    {CS_ERR_REDIS, "REDIS"},
    {CS_ERR_JSON_SYNTAX, "JSON_SYNTAX"},
    {CS_ERR_NOT_OBJECT, "NOT_OBJECT"},
    {CS_ERR_SCHEMA_UNKNOWN, "SCHEMA_UNKNOWN"},
    {CS_ERR_AVRO_DECODE, "AVRO_DECODE"},
    {CS_ERR_FIELD_MISSING, "FIELD_MISSING"},
    {CS_ERR_FIELD_TYPE, "FIELD_TYPE"},
    {CS_ERR_ENUM_UNKNOWN, "ENUM_UNKNOWN"},
    {CS_ERR_ID_FORMAT, "ID_FORMAT"},
    {CS_ERR_TIME_RANGE, "TIME_RANGE"},
    {CS_ERR_TOO_LARGE, "TOO_LARGE"},
    {CS_ERR_UNKNOWN_LOCATION, "UNKNOWN_LOCATION"},
};

const char *cs_err_str(cs_err_t err)
{
    for (size_t i = 0; i < sizeof(cs_err_names) / sizeof(cs_err_names[0]); i++)
        if (cs_err_names[i].code == err)
            return cs_err_names[i].name;
    return "UNKNOWN_ERROR";
}

int cs_err_is_reason(cs_err_t err)
{
    return err <= CS_ERR_JSON_SYNTAX && err >= CS_ERR_UNKNOWN_LOCATION;
}

cs_err_t cs_err_from_reason(const char *name)
{
    for (size_t i = 0; i < sizeof(cs_err_names) / sizeof(cs_err_names[0]); i++)
        if (cs_err_is_reason(cs_err_names[i].code) && !strcmp(cs_err_names[i].name, name))
            return cs_err_names[i].code;
    return CS_OK;
}

void cs_error_clear(cs_error_t *e)
{
    e->code = CS_OK;
    e->field[0] = '\0';
    e->msg[0] = '\0';
}

cs_err_t cs_error_set(cs_error_t *e, cs_err_t code, const char *field, const char *fmt,
                      ...)
{
    if (!e)
        return code;
    e->code = code;
    snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}

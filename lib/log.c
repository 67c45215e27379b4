/* caresignal logging: JSON lines on stderr, built with jansson so every value is escaped.
 */
#include "caresignal/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char cs_log_program[64] = "caresignal";
static cs_log_level_t cs_log_min = CS_LOG_INFO;
static FILE *cs_log_out;
static pthread_mutex_t cs_log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const cs_log_names[] = {"debug", "info", "warn", "error", "fatal"};

void cs_log_init(const char *program, cs_log_level_t min_level)
{
    snprintf(cs_log_program, sizeof(cs_log_program), "%s",
             program ? program : "caresignal");
    cs_log_min = min_level;
}

void cs_log_set_output(FILE *f)
{
    cs_log_out = f;
}

cs_err_t cs_log_level_parse(const char *s, cs_log_level_t *out)
{
    for (int i = 0; i <= CS_LOG_FATAL; i++) {
        if (!strcmp(s, cs_log_names[i])) {
            *out = (cs_log_level_t)i;
            return CS_OK;
        }
    }
    return CS_ERR_INVALID_ARG;
}

const char *cs_log_level_name(cs_log_level_t lvl)
{
    return (lvl >= CS_LOG_DEBUG && lvl <= CS_LOG_FATAL) ? cs_log_names[lvl] : "info";
}

int cs_log_enabled(cs_log_level_t lvl)
{
    return lvl >= cs_log_min;
}

static void cs_log_timestamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* The record's own fields (ts, level, program, msg) are reserved: a caller's field of
 * the same name (an alert's "level": INSPECT) is written as "field_<name>", so a log
 * processor never reads an alert level as the line's severity. */
static void cs_log_merge(json_t *line, json_t *extra)
{
    static const char *const reserved[] = {"ts", "level", "program", "msg", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(extra, key, v)
    {
        int clash = 0;
        for (const char *const *r = reserved; *r && !clash; r++)
            clash = !strcmp(key, *r);
        if (!clash) {
            json_object_set(line, key, v);
            continue;
        }
        char renamed[80];
        snprintf(renamed, sizeof(renamed), "field_%s", key);
        json_object_set(line, renamed, v);
    }
}

void cs_log(cs_log_level_t lvl, const char *msg, const char *fields, ...)
{
    if (!cs_log_enabled(lvl))
        return;
    char ts[40];
    cs_log_timestamp(ts, sizeof(ts));

    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(cs_log_level_name(lvl)));
    json_object_set_new(line, "program", json_string(cs_log_program));
    /* json_stringn_nocheck would let invalid UTF-8 through; a message we cannot
     * encode is replaced rather than dropped. */
    json_t *m = json_string(msg ? msg : "");
    json_object_set_new(line, "msg", m ? m : json_string("(message not valid UTF-8)"));
    if (fields) {
        va_list ap;
        va_start(ap, fields);
        json_error_t jerr;
        json_t *extra = json_vpack_ex(&jerr, 0, fields, ap);
        va_end(ap);
        if (extra && json_is_object(extra))
            cs_log_merge(line, extra);
        else
            json_object_set_new(line, "log_error", json_string(jerr.text));
        json_decref(extra);
    }
    char *text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(line);
    if (!text)
        return;
    pthread_mutex_lock(&cs_log_lock);
    FILE *out = cs_log_out ? cs_log_out : stderr;
    fputs(text, out);
    fputc('\n', out);
    fflush(out);
    pthread_mutex_unlock(&cs_log_lock);
    free(text);
}

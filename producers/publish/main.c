/* caresignal-publish: for partners. Reads JSON events (JSON lines or JSON arrays),
 * validates each with the normaliser's own code and publishes them, JSON or Avro, with
 * delivery reports; prints a summary naming every event that was rejected or not
 * delivered. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/cli.h"
#include "caresignal/log.h"
#include "caresignal/publish.h"
#include "caresignal/signals.h"

static const cs_cli_option_t options[] = {
    {"source", "SOURCE",
     "nhse, ccg or ofsted-send: the partner, its schema and its topic"},
    {"avro", NULL,
     "publish Avro in the Confluent wire format (newest schema) instead of JSON"},
    {"dry-run", NULL, "validate only; nothing is published"},
    {"key-field", "FIELD",
     "field whose value is the Kafka key (default: the location or area)"},
    {NULL, NULL, NULL},
};

static const cs_cli_spec_t spec = {
    "caresignal-publish",
    CS_PROG_PUBLISH,
    "--source SOURCE [options] [FILE...|-]",
    "Publishes partner events to caresignal. Each FILE (or standard input, '-', the "
    "default)\n"
    "holds JSON events — one object per line, or JSON arrays of objects — as the "
    "partner's\n"
    "schema defines them. Every event is validated exactly as caresignal-normalise will\n"
    "(schema, identifiers, time range) except for the location directory, which only "
    "the\n"
    "regulator holds; valid events are published to the partner's raw topic and their\n"
    "delivery confirmed. The summary names each event rejected (with its reason code "
    "and\n"
    "field) or not delivered. Exit 0 only if every event was delivered (or, with\n"
    "--dry-run, valid); 1 if any was rejected or not delivered.",
    options,
    "Examples:\n"
    "  caresignal-publish --config partner.properties --source ccg concerns.jsonl\n"
    "  caresignal-publish --config partner.properties --source nhse --avro - < "
    "incidents.json\n"
    "  caresignal-publish --config partner.properties --source ofsted-send --dry-run "
    "outcomes.json",
};

typedef struct item {
    const char *file;
    long line;    /* where the value starts */
    long element; /* index in an array, -1 for an object on its own */
    int state;    /* 0 queued, 1 delivered, 2 undelivered */
    char detail[128];
} item_t;

typedef struct run {
    cs_publisher_t *pub;
    item_t *items;
    size_t nitems, cap;
    long read, rejected, delivered, undelivered;
} run_t;

static void where(const item_t *it, char *out, size_t size)
{
    if (it->element >= 0)
        snprintf(out, size, "%s line %ld element %ld", it->file, it->line, it->element);
    else
        snprintf(out, size, "%s line %ld", it->file, it->line);
}

static void on_report(void *opaque, void *ref, cs_err_t err, const char *detail)
{
    run_t *r = opaque;
    item_t *it = &r->items[(uintptr_t)ref];
    if (err == CS_OK) {
        it->state = 1;
        r->delivered++;
    } else {
        it->state = 2;
        r->undelivered++;
        snprintf(it->detail, sizeof(it->detail), "%s", detail);
    }
}

static void send_one(run_t *r, const char *file, long line, long element,
                     const char *json, size_t len)
{
    r->read++;
    if (r->nitems == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        item_t *grown = realloc(r->items, r->cap * sizeof(*grown));
        if (!grown) {
            fprintf(stderr, "caresignal-publish: out of memory\n");
            exit(1);
        }
        r->items = grown;
    }
    item_t *it = &r->items[r->nitems];
    memset(it, 0, sizeof(*it));
    it->file = file;
    it->line = line;
    it->element = element;
    cs_error_t err;
    cs_err_t rc =
        cs_publisher_send(r->pub, json, len, (void *)(uintptr_t)r->nitems, &err);
    if (rc) {
        char w[300];
        where(it, w, sizeof(w));
        r->rejected++;
        printf("rejected %s: %s%s%s (%s)\n", w, cs_err_str(rc), err.field[0] ? " " : "",
               err.field, err.msg);
        return;
    }
    r->nitems++;
    cs_publisher_poll(r->pub);
}

static long line_at(const char *buf, size_t pos)
{
    long line = 1;
    for (size_t i = 0; i < pos; i++)
        line += buf[i] == '\n';
    return line;
}

/* A file is a sequence of JSON values: one object per line (JSON lines), pretty-printed
 * objects, or arrays of objects. Objects are published with their bytes as written;
 * array elements compactly re-serialised. A value that does not parse is rejected and
 * reading resumes at the next line. */
static int publish_file(run_t *r, const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    const char *name = strcmp(path, "-") ? path : "stdin";
    if (!f) {
        fprintf(stderr, "caresignal-publish: cannot read %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        fprintf(stderr, "caresignal-publish: cannot read %s\n", path);
        free(buf);
        return -1;
    }
    size_t len = n > 0 ? (size_t)n : 0, pos = 0;
    while (pos < len) {
        while (pos < len && (buf[pos] == ' ' || buf[pos] == '\t' || buf[pos] == '\n' ||
                             buf[pos] == '\r'))
            pos++;
        if (pos >= len)
            break;
        long line = line_at(buf, pos);
        json_error_t jerr;
        json_t *v = json_loadb(
            buf + pos, len - pos,
            JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!v) {
            /* let the validator name the problem, then resync at the next line */
            const char *nl = memchr(buf + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - buf) : len;
            send_one(r, name, line, -1, buf + pos, end - pos);
            pos = end;
            continue;
        }
        size_t used = (size_t)jerr.position;
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                char *text = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
                send_one(r, name, line, (long)i, text ? text : "",
                         text ? strlen(text) : 0);
                free(text);
            }
        } else {
            send_one(r, name, line, -1, buf + pos, used);
        }
        json_decref(v);
        pos += used ? used : 1;
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    cs_publish_options_t opts;
    memset(&opts, 0, sizeof(opts));
    const char *source = cs_cli_get(&cli, &spec, "source");
    static const char *const sources[] = {"nhse", "ccg", "ofsted-send"};
    int s = source ? cs_enum_index(sources, 3, source) : -1;
    if (s < 0)
        cs_cli_fail(&spec, "option --source: expected nhse, ccg or ofsted-send%s%s%s",
                    source ? ", got '" : "", source ? source : "", source ? "'" : "");
    opts.source = (cs_source_t)s;
    opts.avro = cs_cli_get(&cli, &spec, "avro") != NULL;
    opts.dry_run = cs_cli_get(&cli, &spec, "dry-run") != NULL;
    opts.key_field = cs_cli_get(&cli, &spec, "key-field");
    if (!opts.dry_run)
        cs_cli_require(&spec, &cfg, CS_PROG_PUBLISH);
    run_t r;
    memset(&r, 0, sizeof(r));
    opts.on_report = on_report;
    opts.opaque = &r;
    char errstr[512];
    r.pub = cs_publisher_new(&cfg, &opts, errstr, sizeof(errstr));
    if (!r.pub)
        cs_cli_fail(&spec, "%s", errstr);
    cs_signals_install();

    int io_failed = 0;
    if (cli.nargs == 0)
        io_failed |= publish_file(&r, "-") != 0;
    for (int i = 0; i < cli.nargs && cs_running(); i++)
        io_failed |= publish_file(&r, cli.args[i]) != 0;
    cs_err_t frc = cs_publisher_flush(r.pub, 120000);
    for (size_t i = 0; i < r.nitems; i++) {
        if (r.items[i].state == 1 || opts.dry_run)
            continue;
        char w[300];
        where(&r.items[i], w, sizeof(w));
        printf("undelivered %s: %s\n", w,
               r.items[i].state == 2 ? r.items[i].detail : "no delivery report in time");
        if (r.items[i].state == 0)
            r.undelivered++;
    }
    if (opts.dry_run)
        printf("%s (dry run): %ld read, %ld valid, %ld rejected\n", sources[s], r.read,
               r.read - r.rejected, r.rejected);
    else
        printf("%s -> %s%s: %ld read, %ld sent, %ld rejected, %ld undelivered\n",
               sources[s], cs_publisher_topic(r.pub), opts.avro ? " (Avro)" : "", r.read,
               r.delivered, r.rejected, r.undelivered);
    (void)frc;
    int failed = io_failed || r.rejected || r.undelivered;
    cs_publisher_destroy(r.pub);
    free(r.items);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return failed ? 1 : 0;
}

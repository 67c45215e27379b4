/* caresignal paging: routes, the three sinks, the webhook signature, the readable line.
 */
#define _GNU_SOURCE /* posix_spawn_file_actions_addclosefrom_np (glibc 2.34) */
#include "caresignal/page.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caresignal/log.h"
#include "caresignal/signals.h"
#include "caresignal/timeutil.h"

/* ------------------------------------------------------------------ routes */

struct cs_routes {
    cs_route_t *routes; /* the file's routes, then the default route */
    size_t n;
};

static void cs_route_clear(cs_route_t *r)
{
    for (size_t i = 0; i < r->nregions; i++)
        free(r->regions[i]);
    free(r->regions);
    free(r->url);
    free(r->secret);
    free(r->command);
}

void cs_routes_destroy(cs_routes_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        cs_route_clear(&r->routes[i]);
    free(r->routes);
    free(r);
}

static char *cs_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int cs_route_check(const cs_route_t *r, const char *where, char *errstr,
                          size_t errstr_size)
{
    if (r->sink == CS_SINK_WEBHOOK && (!r->url || !*r->url)) {
        snprintf(errstr, errstr_size, "%s: the webhook sink needs a url", where);
        return -1;
    }
    if (r->sink == CS_SINK_WEBHOOK && strncmp(r->url, "https://", 8) &&
        (strncmp(r->url, "http://", 7) || !r->allow_http)) {
        /* alerts and their signatures in clear text only when the route says so */
        snprintf(errstr, errstr_size,
                 strncmp(r->url, "http://", 7)
                     ? "%s: the url must start with https:// (or http:// with allow_http)"
                     : "%s: an http:// url sends alerts in clear text: use https://, or "
                       "set allow_http (page.webhook.allow.http for the default route)",
                 where);
        return -1;
    }
    if (r->sink == CS_SINK_EXEC && (!r->command || !*r->command)) {
        snprintf(errstr, errstr_size, "%s: the exec sink needs a command", where);
        return -1;
    }
    return 0;
}

static int cs_sink_parse(const char *s, cs_sink_kind_t *out)
{
    static const char *const names[] = {"stdout", "webhook", "exec"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (cs_sink_kind_t)i;
            return 0;
        }
    return -1;
}

/* "match": {"<key>": ["SYMBOL", ...]} into a bit mask. */
static int cs_match_mask(const json_t *match, const char *key, const char *const *names,
                         int n, unsigned *mask, const char *where, char *errstr,
                         size_t errstr_size)
{
    const json_t *v = json_object_get(match, key);
    if (!v)
        return 0;
    if (!json_is_array(v) || !json_array_size(v)) {
        snprintf(errstr, errstr_size, "%s.match.%s: must be a non-empty array", where,
                 key);
        return -1;
    }
    size_t i;
    const json_t *x;
    json_array_foreach(v, i, x)
    {
        int idx = json_is_string(x) ? cs_enum_index(names, n, json_string_value(x)) : -1;
        if (idx < 0) {
            snprintf(errstr, errstr_size, "%s.match.%s[%zu]: not one of the %s values",
                     where, key, i, key);
            return -1;
        }
        *mask |= 1u << idx;
    }
    return 0;
}

static int cs_route_parse(const json_t *j, size_t idx, const cs_config_t *cfg,
                          cs_route_t *r, const char *file, char *errstr,
                          size_t errstr_size)
{
    char where[600];
    const char *name = json_string_value(json_object_get(j, "name"));
    snprintf(where, sizeof(where), "routes file '%s': routes[%zu]", file, idx);
    snprintf(r->name, sizeof(r->name), "%s", name ? name : "");
    if (!name || !*name) {
        snprintf(errstr, errstr_size, "%s.name: required", where);
        return -1;
    }
    static const char *const keys[] = {
        "name",       "match",      "sink",        "format",     "url",
        "secret",     "secret_env", "secret_file", "timeout_ms", "command",
        "allow_http", "doc",        NULL};
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        int ok = 0;
        for (const char *const *k = keys; *k && !ok; k++)
            ok = !strcmp(*k, key);
        if (!ok) {
            snprintf(errstr, errstr_size, "%s.%s: unknown key", where, key);
            return -1;
        }
    }
    const json_t *match = json_object_get(j, "match");
    if (match && !json_is_object(match)) {
        snprintf(errstr, errstr_size, "%s.match: must be an object", where);
        return -1;
    }
    if (match) {
        json_object_foreach((json_t *)match, key,
                            v) if (strcmp(key, "subject_kind") && strcmp(key, "level") &&
                                   strcmp(key, "kind") && strcmp(key, "region"))
        {
            snprintf(errstr, errstr_size, "%s.match.%s: unknown key", where, key);
            return -1;
        }
        if (cs_match_mask(match, "subject_kind", cs_subject_kind_names, CS_SUBJECT_COUNT,
                          &r->subject_kinds, where, errstr, errstr_size) ||
            cs_match_mask(match, "level", cs_level_names, CS_LEVEL_COUNT, &r->levels,
                          where, errstr, errstr_size) ||
            cs_match_mask(match, "kind", cs_alert_kind_names, CS_ALERT_KIND_COUNT,
                          &r->alert_kinds, where, errstr, errstr_size))
            return -1;
        const json_t *regions = json_object_get(match, "region");
        if (regions) {
            if (!json_is_array(regions) || !json_array_size(regions)) {
                snprintf(errstr, errstr_size,
                         "%s.match.region: must be a non-empty array", where);
                return -1;
            }
            r->regions = calloc(json_array_size(regions), sizeof(char *));
            size_t i;
            const json_t *x;
            json_array_foreach(regions, i, x)
            {
                if (!json_is_string(x)) {
                    snprintf(errstr, errstr_size,
                             "%s.match.region[%zu]: must be a string", where, i);
                    return -1;
                }
                r->regions[r->nregions++] = strdup(json_string_value(x));
            }
        }
    }
    const char *sink = json_string_value(json_object_get(j, "sink"));
    if (!sink || cs_sink_parse(sink, &r->sink)) {
        snprintf(errstr, errstr_size, "%s.sink: expected stdout, webhook or exec", where);
        return -1;
    }
    const char *format = json_string_value(json_object_get(j, "format"));
    if (format && strcmp(format, "json") && strcmp(format, "text")) {
        snprintf(errstr, errstr_size, "%s.format: expected json or text", where);
        return -1;
    }
    r->text = format ? !strcmp(format, "text") : !strcmp(cfg->page_format, "text");
    r->url = cs_dup(json_string_value(json_object_get(j, "url")));
    const char *secret = json_string_value(json_object_get(j, "secret"));
    const char *secret_env = json_string_value(json_object_get(j, "secret_env"));
    const char *secret_file = json_string_value(json_object_get(j, "secret_file"));
    if (!!secret + !!secret_env + !!secret_file > 1) {
        snprintf(errstr, errstr_size, "%s: give one of secret, secret_env, secret_file",
                 where);
        return -1;
    }
    if (secret_env) {
        secret = getenv(secret_env);
        if (!secret) {
            snprintf(errstr, errstr_size,
                     "%s.secret_env: environment variable %s is not set", where,
                     secret_env);
            return -1;
        }
    }
    if (secret_file) {
        char what[700];
        snprintf(what, sizeof(what), "%s.secret_file", where);
        if (cs_config_read_secret_file(what, secret_file, &r->secret, errstr,
                                       errstr_size))
            return -1;
    } else {
        r->secret = cs_dup(
            secret ? secret
                   : (r->sink == CS_SINK_WEBHOOK ? cfg->page_webhook_secret : NULL));
    }
    const json_t *allow = json_object_get(j, "allow_http");
    if (allow && !json_is_boolean(allow)) {
        snprintf(errstr, errstr_size, "%s.allow_http: expected true or false", where);
        return -1;
    }
    r->allow_http = allow ? json_is_true(allow) : 0;
    const json_t *t = json_object_get(j, "timeout_ms");
    if (t && (!json_is_integer(t) || json_integer_value(t) < 100)) {
        snprintf(errstr, errstr_size, "%s.timeout_ms: expected an integer >= 100", where);
        return -1;
    }
    r->timeout_ms = t ? (long)json_integer_value(t) : cfg->page_webhook_timeout_ms;
    r->command = cs_dup(json_string_value(json_object_get(j, "command")));
    return cs_route_check(r, where, errstr, errstr_size);
}

cs_routes_t *cs_routes_load(const cs_config_t *cfg, char *errstr, size_t errstr_size)
{
    cs_routes_t *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return NULL;
    json_t *root = NULL;
    size_t nfile = 0;
    if (cfg->page_routes_file) {
        json_error_t jerr;
        root = json_load_file(cfg->page_routes_file, JSON_REJECT_DUPLICATES, &jerr);
        const json_t *list = json_object_get(root, "routes");
        if (!root || !json_is_array(list)) {
            snprintf(errstr, errstr_size,
                     "routes file '%s': %s (config key 'page.routes.file')",
                     cfg->page_routes_file,
                     root ? "expected {\"routes\": [...]}" : jerr.text);
            json_decref(root);
            free(rs);
            return NULL;
        }
        nfile = json_array_size(list);
    }
    rs->routes = calloc(nfile + 1, sizeof(cs_route_t));
    for (size_t i = 0; i < nfile; i++) {
        rs->n++;
        if (cs_route_parse(json_array_get(json_object_get(root, "routes"), i), i, cfg,
                           &rs->routes[i], cfg->page_routes_file, errstr, errstr_size)) {
            json_decref(root);
            cs_routes_destroy(rs);
            return NULL;
        }
    }
    json_decref(root);
    /* the default route, from the page.* keys */
    cs_route_t *d = &rs->routes[rs->n++];
    snprintf(d->name, sizeof(d->name), "default");
    cs_sink_parse(cfg->page_sink, &d->sink);
    d->text = !strcmp(cfg->page_format, "text");
    d->url = cs_dup(cfg->page_webhook_url);
    d->secret = cs_dup(cfg->page_webhook_secret);
    d->timeout_ms = cfg->page_webhook_timeout_ms;
    d->command = cs_dup(cfg->page_exec_command);
    d->allow_http = !strcmp(cfg->page_webhook_allow_http, "true");
    char inner[512];
    if (d->sink == CS_SINK_WEBHOOK && d->url && !strncmp(d->url, "http://", 7) &&
        !d->allow_http) {
        snprintf(
            errstr, errstr_size,
            "config key 'page.webhook.url': an http:// url sends alerts in clear text: "
            "use https://, or set page.webhook.allow.http=true");
        cs_routes_destroy(rs);
        return NULL;
    }
    if (cs_route_check(d, "default route", inner, sizeof(inner))) {
        snprintf(errstr, errstr_size, "config key '%s': required by page.sink=%s",
                 d->sink == CS_SINK_WEBHOOK ? "page.webhook.url" : "page.exec.command",
                 cfg->page_sink);
        cs_routes_destroy(rs);
        return NULL;
    }
    /* an unsigned webhook cannot be told from a forged one: allowed, but said */
    for (size_t i = 0; i < rs->n; i++)
        if (rs->routes[i].sink == CS_SINK_WEBHOOK &&
            (!rs->routes[i].secret || !*rs->routes[i].secret) &&
            (i + 1 < rs->n || !strcmp(cfg->page_sink, "webhook")))
            cs_log_warn(
                "webhook route without a secret: its requests are not signed and a "
                "receiver cannot tell them from forged ones",
                "{s:s}", "route", rs->routes[i].name);
    return rs;
}

static int cs_route_matches(const cs_route_t *r, const cs_alert_t *a)
{
    if (r->subject_kinds && !(r->subject_kinds >> a->subject_kind & 1))
        return 0;
    if (r->levels && !(r->levels >> a->level & 1))
        return 0;
    if (r->alert_kinds && !(r->alert_kinds >> a->kind & 1))
        return 0;
    if (r->regions) {
        for (size_t i = 0; i < r->nregions; i++)
            if (!strcmp(r->regions[i], a->region))
                return 1;
        return 0;
    }
    return 1;
}

const cs_route_t *cs_routes_match(const cs_routes_t *r, const cs_alert_t *a)
{
    for (size_t i = 0; i + 1 < r->n; i++)
        if (cs_route_matches(&r->routes[i], a))
            return &r->routes[i];
    return &r->routes[r->n - 1];
}

size_t cs_routes_count(const cs_routes_t *r)
{
    return r->n;
}

const cs_route_t *cs_routes_at(const cs_routes_t *r, size_t i)
{
    return i < r->n ? &r->routes[i] : NULL;
}

/* ------------------------------------------------------------------ formats */

void cs_page_signature(const char *secret, int64_t timestamp_s, const void *body,
                       size_t len, char *out, size_t size)
{
    /* HMAC-SHA256 over "<timestamp>.<body>": the timestamp is signed with the body, so a
     * captured request cannot be replayed outside the receiver's tolerance */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char prefix[32];
    int plen = snprintf(prefix, sizeof(prefix), "%lld.", (long long)timestamp_s);
    unsigned char *msg = malloc((size_t)plen + len + 1);
    if (msg) {
        memcpy(msg, prefix, (size_t)plen);
        memcpy(msg + plen, body, len);
        if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, (size_t)plen + len, md,
                  &mdlen))
            mdlen = 0;
        free(msg);
    }
    size_t n = (size_t)snprintf(out, size, "sha256=");
    for (unsigned int i = 0; i < mdlen && n + 3 <= size; i++)
        n += (size_t)snprintf(out + n, size - n, "%02x", md[i]);
}

void cs_page_text_line(const cs_alert_t *a, const cs_directory_t *dir, char *out,
                       size_t size)
{
    char when[32];
    cs_time_format(a->as_of, when, sizeof(when));
    when[16] = '\0'; /* to the minute */
    const cs_location_t *loc =
        dir && a->subject_kind == CS_SUBJECT_LOCATION
            ? cs_directory_find(dir, a->subject_id, strlen(a->subject_id))
            : NULL;
    char name[200];
    if (loc)
        snprintf(name, sizeof(name), " %s (%s)", loc->name, loc->region);
    else
        snprintf(name, sizeof(name), " (%s)", a->region);
    /* the recent signals, most frequent first */
    int count[CS_SIGNAL_COUNT * CS_SEVERITY_COUNT] = {0};
    for (int i = 0; i < a->nrecent; i++)
        count[a->recent[i].signal * CS_SEVERITY_COUNT + a->recent[i].severity]++;
    char reasons[256] = "";
    for (int shown = 0; shown < 3; shown++) {
        int best = -1;
        for (int k = 0; k < CS_SIGNAL_COUNT * CS_SEVERITY_COUNT; k++)
            if (count[k] && (best < 0 || count[k] > count[best]))
                best = k;
        if (best < 0)
            break;
        size_t len = strlen(reasons);
        snprintf(reasons + len, sizeof(reasons) - len, "%s%s/%s", shown ? ", " : "",
                 cs_signal_names[best / CS_SEVERITY_COUNT],
                 cs_severity_names[best % CS_SEVERITY_COUNT]);
        if (count[best] > 1) {
            len = strlen(reasons);
            snprintf(reasons + len, sizeof(reasons) - len, " x%d", count[best]);
        }
        count[best] = 0;
    }
    snprintf(out, size, "%sZ %-7s %-7s %s %s%s score %.1f [%s] %s", when + 0,
             cs_level_names[a->level], cs_alert_kind_names[a->kind],
             cs_subject_kind_names[a->subject_kind], a->subject_id, name, a->score,
             cs_reason_names[a->reason], reasons);
    /* "2026-11-20T09:15" -> "2026-11-20 09:15" */
    if (size > 10 && out[10] == 'T')
        out[10] = ' ';
}

/* ------------------------------------------------------------------ delivery */

struct cs_pager {
    FILE *out;
    const cs_directory_t *dir;
    CURL *curl;
};

static pthread_once_t cs_curl_once = PTHREAD_ONCE_INIT;
static void cs_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

cs_pager_t *cs_pager_new(FILE *out, const cs_directory_t *dir)
{
    pthread_once(&cs_curl_once, cs_curl_init);
    cs_pager_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->out = out ? out : stdout;
    p->dir = dir;
    return p;
}

void cs_pager_destroy(cs_pager_t *p)
{
    if (!p)
        return;
    if (p->curl)
        curl_easy_cleanup(p->curl);
    free(p);
}

static size_t cs_discard(void *ptr, size_t size, size_t n, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * n;
}

static cs_err_t cs_deliver_webhook(cs_pager_t *p, const cs_route_t *r,
                                   const cs_alert_t *a, const char *body, char *errstr,
                                   size_t errstr_size)
{
    if (!p->curl && !(p->curl = curl_easy_init())) {
        snprintf(errstr, errstr_size, "webhook: cannot initialise libcurl");
        return CS_ERR_RETRY;
    }
    CURL *c = p->curl;
    curl_easy_reset(c);
    struct curl_slist *h = NULL;
    char id[64];
    h = curl_slist_append(h, "Content-Type: application/json");
    snprintf(id, sizeof(id), "X-Caresignal-Alert-Id: %s", a->alert_id);
    h = curl_slist_append(h, id);
    char ts_header[64];
    int64_t ts = cs_wall_ms() / 1000;
    snprintf(ts_header, sizeof(ts_header), "X-Caresignal-Timestamp: %lld", (long long)ts);
    h = curl_slist_append(h, ts_header);
    if (r->secret && *r->secret) {
        char value[80], header[112];
        cs_page_signature(r->secret, ts, body, strlen(body), value, sizeof(value));
        snprintf(header, sizeof(header), "X-Caresignal-Signature: %s", value);
        h = curl_slist_append(h, header);
    }
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cs_discard);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "caresignal-page/" CS_VERSION);
    /* never follow a redirect (it could downgrade to http or leave the receiver) */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "webhook: %s", curl_easy_strerror(rc));
        return CS_ERR_RETRY;
    }
    if (status < 200 || status > 299) {
        snprintf(errstr, errstr_size, "webhook: HTTP %ld", status);
        return CS_ERR_RETRY;
    }
    return CS_OK;
}

/* Runs the route's command with /bin/sh -c, the alert JSON on its stdin. The child gets
 * nothing of ours it was not given: no inherited descriptor (the Redis socket, the Kafka
 * connections), a minimal environment (never the secrets a route names in secret_env),
 * its own process group, so that a timeout kills the command and everything it started.
 */
static cs_err_t cs_deliver_exec(const cs_route_t *r, const cs_alert_t *a,
                                const char *body, char *errstr, size_t errstr_size)
{
    char vars[6][160];
    snprintf(vars[0], sizeof(vars[0]), "CS_ALERT_ID=%s", a->alert_id);
    snprintf(vars[1], sizeof(vars[1]), "CS_ALERT_LEVEL=%s", cs_level_names[a->level]);
    snprintf(vars[2], sizeof(vars[2]), "CS_ALERT_KIND=%s", cs_alert_kind_names[a->kind]);
    snprintf(vars[3], sizeof(vars[3]), "CS_SUBJECT_KIND=%s",
             cs_subject_kind_names[a->subject_kind]);
    snprintf(vars[4], sizeof(vars[4]), "CS_SUBJECT_ID=%s", a->subject_id);
    snprintf(vars[5], sizeof(vars[5]), "CS_REGION=%s", a->region);
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                    "LANG=C.UTF-8",
                    vars[0],
                    vars[1],
                    vars[2],
                    vars[3],
                    vars[4],
                    vars[5],
                    NULL};
    char *const argv[] = {"sh", "-c", r->command, NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) {
        snprintf(errstr, errstr_size, "exec: pipe: %s", strerror(errno));
        return CS_ERR_RETRY;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all); /* SIGPIPE ignored here, default there */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[0]);
    if (rc) {
        close(fds[1]);
        snprintf(errstr, errstr_size, "exec: cannot start /bin/sh: %s", strerror(rc));
        return CS_ERR_RETRY;
    }
    /* the alert is far smaller than a pipe's buffer; non-blocking all the same, so a
     * command that never reads cannot hold us past its time limit */
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    /* a command that exits without reading would raise SIGPIPE in this thread: block it
     * for the write and take back any that is pending (the program may not ignore it) */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    size_t len = strlen(body), off = 0;
    while (off < len) {
        ssize_t w = write(fds[1], body + off, len - off);
        if (w <= 0)
            break; /* the command did not read its input: its exit status decides */
        off += (size_t)w;
    }
    if (off == len && write(fds[1], "\n", 1) < 0)
        off = 0;
    close(fds[1]);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int64_t deadline = cs_mono_ms() + r->timeout_ms;
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (cs_mono_ms() > deadline) {
            kill(-pid, SIGKILL); /* the whole group: sh and whatever it started */
            waitpid(pid, &status, 0);
            snprintf(errstr, errstr_size, "exec: the command ran longer than %ld ms",
                     r->timeout_ms);
            return CS_ERR_RETRY;
        }
        poll(NULL, 0, 10);
    }
    /* a command that exited may have left children in its group: they go too */
    kill(-pid, SIGKILL);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(errstr, errstr_size, "exec: the command %s %d",
                 WIFEXITED(status) ? "exited with status" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return CS_ERR_RETRY;
    }
    return CS_OK;
}

cs_err_t cs_pager_deliver(cs_pager_t *p, const cs_route_t *route, const cs_alert_t *a,
                          char *errstr, size_t errstr_size)
{
    if (route->sink == CS_SINK_STDOUT && route->text) {
        char line[1024];
        cs_page_text_line(a, p->dir, line, sizeof(line));
        if (fprintf(p->out, "%s\n", line) < 0 || fflush(p->out)) {
            snprintf(errstr, errstr_size, "stdout: %s", strerror(errno));
            return CS_ERR_RETRY;
        }
        return CS_OK;
    }
    json_t *j = cs_alert_to_json(a);
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!body) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR_RETRY;
    }
    cs_err_t rc = CS_OK;
    switch (route->sink) {
    case CS_SINK_STDOUT:
        if (fprintf(p->out, "%s\n", body) < 0 || fflush(p->out)) {
            snprintf(errstr, errstr_size, "stdout: %s", strerror(errno));
            rc = CS_ERR_RETRY;
        }
        break;
    case CS_SINK_WEBHOOK:
        rc = cs_deliver_webhook(p, route, a, body, errstr, errstr_size);
        break;
    case CS_SINK_EXEC:
        rc = cs_deliver_exec(route, a, body, errstr, errstr_size);
        break;
    }
    free(body);
    return rc;
}

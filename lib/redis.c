/* caresignal Redis helper: connection with timeouts, AUTH, functions, re-sendable
 * pipelines. */
#include "caresignal/redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/backoff.h"
#include "caresignal/log.h"
#include "caresignal/signals.h"
#include "redis_internal.h"

cs_redis_t *cs_redis_new(const char *host, int port, const char *password, int timeout_ms)
{
    cs_redis_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->host = strdup(host ? host : "127.0.0.1");
    r->password = (password && *password) ? strdup(password) : NULL;
    r->port = port;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    if (!r->host || (password && *password && !r->password)) {
        cs_redis_destroy(r);
        return NULL;
    }
    return r;
}

cs_redis_t *cs_redis_new_cluster(const char *nodes, const char *password, int timeout_ms)
{
    /* host names the cluster in logs and errors: its seed list */
    cs_redis_t *r = cs_redis_new(nodes, 0, password, timeout_ms);
    if (r && !(r->cl = cs_cluster_new(nodes))) {
        cs_redis_destroy(r);
        return NULL;
    }
    return r;
}

int cs_redis_is_cluster(const cs_redis_t *r)
{
    return r->cl != NULL;
}

cs_redis_t *cs_redis_new_from_config(const cs_config_t *cfg)
{
    if (cfg->redis_cluster_nodes)
        return cs_redis_new_cluster(cfg->redis_cluster_nodes, cfg->redis_password,
                                    (int)cfg->redis_timeout_ms);
    return cs_redis_new(cfg->redis_host, (int)cfg->redis_port, cfg->redis_password,
                        (int)cfg->redis_timeout_ms);
}

static void cs_redis_drop(cs_redis_t *r)
{
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
}

void cs_redis_destroy(cs_redis_t *r)
{
    if (!r)
        return;
    cs_redis_drop(r);
    cs_cluster_destroy(r->cl);
    for (size_t i = 0; i < r->nlibs; i++)
        free(r->libs[i]);
    free(r->libs);
    free(r->host);
    free(r->password);
    free(r);
}

int cs_redis_connected(const cs_redis_t *r)
{
    if (r->cl)
        return cs_cluster_connected(r);
    return r->c && !r->c->err;
}

redisContext *cs_redis_context(cs_redis_t *r)
{
    return !r->cl && cs_redis_connected(r) ? r->c : NULL;
}

/* Drops the connection and says why; every I/O failure goes through here. */
cs_err_t cs_redis_io_error(cs_redis_t *r, char *errstr, size_t errstr_size)
{
    snprintf(errstr, errstr_size, "redis %s:%d: %s", r->host, r->port,
             r->c && r->c->errstr[0] ? r->c->errstr : "connection lost");
    cs_redis_drop(r);
    return CS_ERR_RETRY;
}

redisReply *cs_redis_command(cs_redis_t *r, int argc, const char **argv,
                             const size_t *argvlen, char *errstr, size_t errstr_size)
{
    if (r->cl)
        return cs_cluster_command(r, argc, argv, argvlen, errstr, errstr_size);
    if (!cs_redis_connected(r)) {
        snprintf(errstr, errstr_size, "redis %s:%d: not connected", r->host, r->port);
        return NULL;
    }
    redisReply *reply = redisCommandArgv(r->c, argc, argv, argvlen);
    if (!reply)
        cs_redis_io_error(r, errstr, errstr_size);
    return reply;
}

static cs_err_t cs_redis_load_one(cs_redis_t *r, const char *code, char *errstr,
                                  size_t errstr_size)
{
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", code};
    redisReply *reply = cs_redis_command(r, 4, argv, NULL, errstr, errstr_size);
    if (!reply)
        return CS_ERR_RETRY;
    cs_err_t err = CS_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis FUNCTION LOAD: %s", reply->str);
        err = strncmp(reply->str, "LOADING", 7) ? CS_ERR_FATAL : CS_ERR_RETRY;
    }
    freeReplyObject(reply);
    return err;
}

cs_err_t cs_redis_load_libs(cs_redis_t *r, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < r->nlibs; i++) {
        cs_err_t err = cs_redis_load_one(r, r->libs[i], errstr, errstr_size);
        if (err)
            return err;
    }
    return CS_OK;
}

cs_err_t cs_redis_connect(cs_redis_t *r, char *errstr, size_t errstr_size)
{
    return r->cl ? cs_cluster_connect(r, errstr, errstr_size)
                 : cs_redis_node_connect(r, errstr, errstr_size);
}

cs_err_t cs_redis_node_connect(cs_redis_t *r, char *errstr, size_t errstr_size)
{
    cs_redis_drop(r);
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    r->c = redisConnectWithTimeout(r->host, r->port, tv);
    if (!r->c || r->c->err)
        return cs_redis_io_error(r, errstr, errstr_size);
    if (redisSetTimeout(r->c, tv) != REDIS_OK)
        return cs_redis_io_error(r, errstr, errstr_size);
    redisEnableKeepAlive(r->c);
    if (r->password) {
        const char *argv[] = {"AUTH", r->password};
        redisReply *reply = cs_redis_command(r, 2, argv, NULL, errstr, errstr_size);
        if (!reply)
            return CS_ERR_RETRY;
        cs_err_t err = CS_OK;
        if (reply->type == REDIS_REPLY_ERROR) {
            /* never echo the password; Redis's message does not contain it. A wrong or
             * needless password is the configuration's (exit 2, never worth a restart) */
            int config = !strncmp(reply->str, "WRONGPASS", 9) ||
                         !strncmp(reply->str, "ERR AUTH", 8) ||
                         !strncmp(reply->str, "ERR invalid password", 20);
            snprintf(errstr, errstr_size, "%sredis %s:%d: AUTH refused: %s",
                     config ? "config key 'redis.password': " : "", r->host, r->port,
                     reply->str);
            err = config ? CS_ERR_CONFIG : CS_ERR_FATAL;
        }
        freeReplyObject(reply);
        if (err) {
            cs_redis_drop(r);
            return err;
        }
    }
    cs_err_t err = cs_redis_load_libs(r, errstr, errstr_size);
    if (err)
        cs_redis_drop(r);
    return err;
}

cs_err_t cs_redis_connect_retry(cs_redis_t *r, long max_wait_ms, char *errstr,
                                size_t errstr_size)
{
    cs_backoff_t b;
    cs_backoff_init(&b, CS_BACKOFF_STORE_INITIAL_MS, CS_BACKOFF_STORE_MAX_MS);
    long waited = 0;
    for (;;) {
        cs_err_t err = cs_redis_connect(r, errstr, errstr_size);
        if (err == CS_OK) {
            if (r->was_down)
                cs_log_info("redis reachable again", "{s:s, s:i}", "host", r->host,
                            "port", r->port);
            r->was_down = 0;
            return CS_OK;
        }
        if (err != CS_ERR_RETRY)
            return err;
        if (!r->was_down)
            cs_log_error("redis unreachable: waiting for it", "{s:s, s:i, s:s}", "host",
                         r->host, "port", r->port, "error", errstr);
        r->was_down = 1;
        if (!cs_running() || (max_wait_ms >= 0 && waited >= max_wait_ms))
            return CS_ERR_RETRY;
        waited += cs_backoff_sleep(&b);
    }
}

cs_err_t cs_redis_function_load(cs_redis_t *r, const char *code, char *errstr,
                                size_t errstr_size)
{
    char **grown = realloc(r->libs, (r->nlibs + 1) * sizeof(*grown));
    if (!grown)
        return CS_ERR_NOMEM;
    r->libs = grown;
    if (!(r->libs[r->nlibs] = strdup(code)))
        return CS_ERR_NOMEM;
    r->nlibs++;
    if (r->cl)
        return cs_cluster_function_load(r, code, errstr, errstr_size);
    if (!cs_redis_connected(r))
        return cs_redis_connect(r, errstr, errstr_size);
    return cs_redis_load_one(r, code, errstr, errstr_size);
}

/* ------------------------------------------------------------------ pipelines */

cs_redis_pipe_t *cs_redis_pipe_new(void)
{
    return calloc(1, sizeof(cs_redis_pipe_t));
}

void cs_redis_pipe_free_replies(cs_redis_pipe_t *p)
{
    for (size_t i = 0; i < p->nreplies; i++)
        if (p->replies[i])
            freeReplyObject(p->replies[i]);
    p->nreplies = 0;
}

void cs_redis_pipe_reset(cs_redis_pipe_t *p)
{
    cs_redis_pipe_free_replies(p);
    for (size_t i = 0; i < p->n; i++)
        redisFreeCommand(p->cmds[i]);
    p->n = 0;
}

void cs_redis_pipe_destroy(cs_redis_pipe_t *p)
{
    if (!p)
        return;
    cs_redis_pipe_reset(p);
    free(p->cmds);
    free(p->lens);
    free(p->replies);
    free(p);
}

size_t cs_redis_pipe_count(const cs_redis_pipe_t *p)
{
    return p->n;
}

cs_err_t cs_redis_pipe_add(cs_redis_pipe_t *p, int argc, const char **argv,
                           const size_t *argvlen)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char **cmds = realloc(p->cmds, cap * sizeof(*cmds));
        if (!cmds)
            return CS_ERR_NOMEM;
        p->cmds = cmds;
        size_t *lens = realloc(p->lens, cap * sizeof(*lens));
        if (!lens)
            return CS_ERR_NOMEM;
        p->lens = lens;
        redisReply **replies = realloc(p->replies, cap * sizeof(*replies));
        if (!replies)
            return CS_ERR_NOMEM;
        p->replies = replies;
        p->cap = cap;
    }
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return CS_ERR_NOMEM;
    p->cmds[p->n] = cmd;
    p->lens[p->n] = (size_t)len;
    p->n++;
    return CS_OK;
}

int cs_redis_reply_retriable(const redisReply *reply)
{
    /* docs/contract/guarantees.md's retriable store errors: the server is loading, busy
     * running a script, a replica or a master without its replicas, out of memory, unable
     * to persist, or a cluster moving slots. None of them means the command was wrong. */
    static const char *const codes[] = {"LOADING",    "BUSY",       "READONLY",
                                        "MASTERDOWN", "TRYAGAIN",   "OOM",
                                        "MISCONF",    "NOREPLICAS", "CLUSTERDOWN"};
    if (!reply || reply->type != REDIS_REPLY_ERROR || !reply->str)
        return 0;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        size_t n = strlen(codes[i]);
        /* the error code is the first word: "BUSY" is not "BUSYKEY" */
        if (!strncmp(reply->str, codes[i], n) && (reply->str[n] == ' ' || !reply->str[n]))
            return 1;
    }
    return 0;
}

int cs_redis_missing_function(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "Function not found");
}

static cs_err_t cs_redis_pipe_send(cs_redis_t *r, cs_redis_pipe_t *p, int *missing_fn,
                                   char *errstr, size_t errstr_size)
{
    cs_redis_pipe_free_replies(p);
    if (!cs_redis_connected(r)) {
        snprintf(errstr, errstr_size, "redis %s:%d: not connected", r->host, r->port);
        return CS_ERR_RETRY;
    }
    for (size_t i = 0; i < p->n; i++)
        if (redisAppendFormattedCommand(r->c, p->cmds[i], p->lens[i]) != REDIS_OK)
            return cs_redis_io_error(r, errstr, errstr_size);
    int retry = 0;
    for (size_t i = 0; i < p->n; i++) {
        void *reply = NULL;
        if (redisGetReply(r->c, &reply) != REDIS_OK || !reply) {
            cs_redis_pipe_free_replies(p);
            return cs_redis_io_error(r, errstr, errstr_size);
        }
        p->replies[p->nreplies++] = reply;
        if (cs_redis_reply_retriable(reply)) {
            snprintf(errstr, errstr_size, "redis %s:%d refuses for now: %.200s", r->host,
                     r->port, ((redisReply *)reply)->str);
            retry = 1;
        }
        if (cs_redis_missing_function(reply))
            *missing_fn = 1;
    }
    if (retry) {
        cs_redis_pipe_free_replies(p);
        return CS_ERR_RETRY;
    }
    return CS_OK;
}

cs_err_t cs_redis_pipe_exec(cs_redis_t *r, cs_redis_pipe_t *p, char *errstr,
                            size_t errstr_size)
{
    if (r->cl)
        return cs_cluster_pipe_exec(r, p, errstr, errstr_size);
    int missing = 0;
    cs_err_t err = cs_redis_pipe_send(r, p, &missing, errstr, errstr_size);
    if (err || !missing || !r->nlibs)
        return err;
    /* Someone flushed or replaced the functions (FUNCTION FLUSH, a fresh replica):
     * load ours again and send once more; the calls are idempotent. */
    cs_log_warn("redis function missing: reloading", NULL);
    if ((err = cs_redis_load_libs(r, errstr, errstr_size)))
        return err;
    missing = 0;
    return cs_redis_pipe_send(r, p, &missing, errstr, errstr_size);
}

const redisReply *cs_redis_pipe_reply(const cs_redis_pipe_t *p, size_t i)
{
    return i < p->nreplies ? p->replies[i] : NULL;
}

static cs_err_t cs_redis_check_noeviction_one(cs_redis_t *r, void *arg, char *errstr,
                                              size_t errstr_size);

cs_err_t cs_redis_check_noeviction(cs_redis_t *r, char *errstr, size_t errstr_size)
{
    if (r->cl) /* every master holds a share of the state */
        return cs_cluster_each_master(r, cs_redis_check_noeviction_one, NULL, errstr,
                                      errstr_size);
    return cs_redis_check_noeviction_one(r, NULL, errstr, errstr_size);
}

static cs_err_t cs_redis_check_noeviction_one(cs_redis_t *r, void *arg, char *errstr,
                                              size_t errstr_size)
{
    (void)arg;
    /* INFO, not CONFIG GET: managed Redis services often rename or disable CONFIG */
    const char *argv[] = {"INFO", "memory"};
    redisReply *reply = cs_redis_command(r, 2, argv, NULL, errstr, errstr_size);
    if (!reply)
        return CS_ERR_RETRY;
    cs_err_t err = CS_OK;
    const char *field = "maxmemory_policy:";
    const char *at = reply->type == REDIS_REPLY_STRING ? strstr(reply->str, field) : NULL;
    if (!at) {
        snprintf(errstr, errstr_size,
                 "redis %s:%d: INFO memory does not say its maxmemory-policy (%s)",
                 r->host, r->port,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "no such field");
        err = cs_redis_reply_retriable(reply) ? CS_ERR_RETRY : CS_ERR_CONFIG;
    } else {
        at += strlen(field);
        size_t n = strcspn(at, "\r\n");
        if (n != strlen("noeviction") || strncmp(at, "noeviction", n)) {
            snprintf(
                errstr, errstr_size,
                "redis %s:%d: maxmemory-policy is '%.*s': Redis could evict "
                "caresignal's state and de-duplication records (events counted twice, "
                "alerts paged twice); set maxmemory-policy noeviction",
                r->host, r->port, (int)(n < 64 ? n : 64), at);
            err = CS_ERR_CONFIG;
        }
    }
    freeReplyObject(reply);
    return err;
}

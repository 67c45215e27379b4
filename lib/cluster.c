/* caresignal Redis Cluster routing over hiredis (which has none): the slot map from
 * CLUSTER SLOTS, one connection per master, pipelines split by slot and sent to every
 * master at once, replies put back in order, MOVED / ASK followed, and the retriable
 * refusals (TRYAGAIN, CLUSTERDOWN, LOADING, ...) handed to the caller's backoff.
 * docs/contract/redis-layout.md, "Redis Cluster", is the contract. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "caresignal/log.h"
#include "redis_internal.h"

#define CS_SLOTS      16384
#define CS_MAX_ROUNDS 8 /* redirections followed within one call before backing off */

typedef struct cs_range {
    unsigned start, end; /* inclusive */
    size_t node;
    const char *host; /* while the map is read: its master (borrowed from the reply) */
    int port;
    size_t replicas; /* the replicas CLUSTER SLOTS lists for it (it leaves out failed
                        ones) */
} cs_range_t;

typedef struct cs_addr {
    char host[256];
    int port;
} cs_addr_t;

struct cs_cluster {
    cs_addr_t *seeds; /* redis.cluster.nodes */
    size_t nseeds;
    cs_redis_t **nodes; /* the masters, by their lowest slot; then ASK / MOVED targets */
    size_t nnodes, nmasters;
    int16_t slot_node[CS_SLOTS]; /* index into nodes; -1: no master known */
    cs_range_t *ranges;
    size_t nranges;
    int stale; /* a MOVED was seen: read the slot map again before the next call */
    long redirects[2]; /* MOVED, ASK followed */
    long lagging;      /* WAITs that timed out: a master without a replica keeping up */
};

/* ------------------------------------------------------------------ slots */

static uint16_t cs_crc16_table[256];
static char cs_slot_tags[CS_SLOTS][8];
static pthread_once_t cs_cluster_once = PTHREAD_ONCE_INIT;

static uint16_t cs_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^
                         cs_crc16_table[((crc >> 8) ^ (uint8_t)buf[i]) & 0xff]);
    return crc;
}

static void cs_cluster_init_tables(void)
{
    /* CRC-16/XMODEM (polynomial 0x1021, initial 0), as the cluster specification says */
    for (unsigned b = 0; b < 256; b++) {
        uint16_t crc = (uint16_t)(b << 8);
        for (int k = 0; k < 8; k++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
        cs_crc16_table[b] = crc;
    }
    /* the tag of a slot: the smallest non-negative integer, in decimal, that hashes to
     * it (every slot has one below 200,000) */
    size_t left = CS_SLOTS;
    for (unsigned n = 0; left; n++) {
        char t[8];
        int len = snprintf(t, sizeof(t), "%u", n);
        unsigned s = cs_crc16(t, (size_t)len) & (CS_SLOTS - 1);
        if (!cs_slot_tags[s][0]) {
            memcpy(cs_slot_tags[s], t, (size_t)len + 1);
            left--;
        }
    }
}

unsigned cs_cluster_key_slot(const char *key, size_t len)
{
    pthread_once(&cs_cluster_once, cs_cluster_init_tables);
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - key);
        }
    }
    return cs_crc16(key, len) & (CS_SLOTS - 1);
}

const char *cs_cluster_slot_tag(unsigned slot)
{
    pthread_once(&cs_cluster_once, cs_cluster_init_tables);
    return cs_slot_tags[slot & (CS_SLOTS - 1)];
}

/* Commands without a key (sent to one master, or to every master) */
static int cs_cmd_keyless(const char *name, size_t len)
{
    static const char *const names[] = {
        "MULTI",    "EXEC",    "DISCARD", "UNWATCH", "PING",     "INFO",   "SCAN",
        "FUNCTION", "CLUSTER", "ASKING",  "AUTH",    "SELECT",   "DBSIZE", "WAIT",
        "CONFIG",   "CLIENT",  "SCRIPT",  "TIME",    "READONLY", "HELLO",  "ECHO"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && !strncasecmp(name, names[i], len))
            return 1;
    return 0;
}

/* The slot a command's first key is in, or -1 for a command without a key */
static int cs_cmd_slot(int argc, const char *const *argv, const size_t *lens)
{
    if (argc < 2 || cs_cmd_keyless(argv[0], lens[0]))
        return -1;
    int at = 1;
    if ((lens[0] == 5 && !strncasecmp(argv[0], "FCALL", 5)) ||
        (lens[0] == 8 && !strncasecmp(argv[0], "FCALL_RO", 8)) ||
        (lens[0] == 4 && !strncasecmp(argv[0], "EVAL", 4)) ||
        (lens[0] == 7 && !strncasecmp(argv[0], "EVALSHA", 7))) {
        if (argc < 4 || lens[2] == 0 || argv[2][0] == '0')
            return -1;
        at = 3;
    }
    return (int)cs_cluster_key_slot(argv[at], lens[at]);
}

/* The first arguments of a RESP-formatted command ("*N\r\n$len\r\narg\r\n..."). */
static int cs_resp_args(const char *cmd, size_t size, const char **args, size_t *lens,
                        int max)
{
    const char *p = cmd, *end = cmd + size;
    if (p >= end || *p != '*')
        return 0;
    long n = strtol(p + 1, NULL, 10);
    if (!(p = memchr(p, '\n', (size_t)(end - p))))
        return 0;
    p++;
    int got = 0;
    for (; got < n && got < max && p < end && *p == '$'; got++) {
        long len = strtol(p + 1, NULL, 10);
        if (!(p = memchr(p, '\n', (size_t)(end - p))) || len < 0 || end - p - 1 < len)
            break;
        args[got] = p + 1;
        lens[got] = (size_t)len;
        p += 1 + len + 2;
    }
    return got;
}

/* ------------------------------------------------------------------ nodes */

/* "host:port" (IPv6 in brackets) into its parts; 0 on success */
static int cs_split_addr(const char *addr, size_t len, char *host, size_t hsize,
                         int *port)
{
    char one[300];
    if (len >= sizeof(one))
        return -1;
    memcpy(one, addr, len);
    one[len] = '\0';
    return cs_config_parse_listen(one, host, hsize, port);
}

cs_cluster_t *cs_cluster_new(const char *nodes)
{
    cs_cluster_t *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    memset(cl->slot_node, 0xff, sizeof(cl->slot_node));
    for (const char *at = nodes; at && *at;) {
        size_t n = strcspn(at, ",");
        cs_addr_t *grown = realloc(cl->seeds, (cl->nseeds + 1) * sizeof(*grown));
        if (!grown) {
            cs_cluster_destroy(cl);
            return NULL;
        }
        cl->seeds = grown;
        /* checked by the configuration (CS_CFG_NODES): a bad one is skipped here */
        if (!cs_split_addr(at, n, grown[cl->nseeds].host, sizeof(grown->host),
                           &grown[cl->nseeds].port))
            cl->nseeds++;
        at += n + (at[n] == ',');
    }
    return cl;
}

void cs_cluster_destroy(cs_cluster_t *cl)
{
    if (!cl)
        return;
    for (size_t i = 0; i < cl->nnodes; i++)
        cs_redis_destroy(cl->nodes[i]);
    free(cl->seeds);
    free(cl->nodes);
    free(cl->ranges);
    free(cl);
}

/* A node handle that knows the libraries to load (not connected yet) */
static cs_redis_t *cs_cluster_node_new(const cs_redis_t *r, const char *host, int port)
{
    cs_redis_t *n = cs_redis_new(host, port, r->password, r->timeout_ms);
    if (!n)
        return NULL;
    if (r->nlibs && !(n->libs = calloc(r->nlibs, sizeof(*n->libs)))) {
        cs_redis_destroy(n);
        return NULL;
    }
    for (size_t i = 0; i < r->nlibs; i++, n->nlibs++)
        if (!(n->libs[i] = strdup(r->libs[i]))) {
            cs_redis_destroy(n);
            return NULL;
        }
    return n;
}

/* The index of the node at host:port among \p nodes (NULLs skipped), or -1 */
static long cs_cluster_find(cs_redis_t *const *nodes, size_t n, const char *host,
                            int port)
{
    for (size_t i = 0; i < n; i++)
        if (nodes[i] && nodes[i]->port == port && !strcmp(nodes[i]->host, host))
            return (long)i;
    return -1;
}

/* The node at host:port, connected; added (as a redirection target) when new */
static cs_redis_t *cs_cluster_node_at(cs_redis_t *r, const char *host, int port,
                                      char *errstr, size_t errstr_size)
{
    cs_cluster_t *cl = r->cl;
    long i = cs_cluster_find(cl->nodes, cl->nnodes, host, port);
    cs_redis_t *n = i < 0 ? NULL : cl->nodes[i];
    if (!n) {
        cs_redis_t **grown = realloc(cl->nodes, (cl->nnodes + 1) * sizeof(*grown));
        if (!grown || !(n = cs_cluster_node_new(r, host, port))) {
            if (grown)
                cl->nodes = grown;
            snprintf(errstr, errstr_size, "redis cluster: out of memory");
            return NULL;
        }
        cl->nodes = grown;
        cl->nodes[cl->nnodes++] = n;
    }
    if (!cs_redis_connected(n) && cs_redis_node_connect(n, errstr, errstr_size))
        return NULL;
    return n;
}

static size_t cs_cluster_node_index(const cs_cluster_t *cl, const cs_redis_t *n)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i] == n)
            return i;
    return 0;
}

static int cs_range_cmp(const void *a, const void *b)
{
    const cs_range_t *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Reads CLUSTER SLOTS from \p via into a fresh node list and slot map. */
static cs_err_t cs_cluster_apply_slots(cs_redis_t *r, const cs_redis_t *via,
                                       const redisReply *slots, char *errstr,
                                       size_t errstr_size)
{
    cs_cluster_t *cl = r->cl;
    size_t nr = slots->elements;
    cs_range_t *ranges = calloc(nr ? nr : 1, sizeof(*ranges));
    if (!ranges)
        return CS_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < nr; i++) {
        const redisReply *e = slots->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        const redisReply *m = e->element[2];
        const char *host =
            m->element[0]->type == REDIS_REPLY_STRING ? m->element[0]->str : "";
        if (!*host || !strcmp(host, "?"))
            host = via->host; /* an unknown endpoint: the node that answered */
        ranges[k] = (cs_range_t){(unsigned)e->element[0]->integer & (CS_SLOTS - 1),
                                 (unsigned)e->element[1]->integer & (CS_SLOTS - 1),
                                 0,
                                 host,
                                 (int)m->element[1]->integer,
                                 e->elements - 3};
        k++;
    }
    /* masters ordered by their lowest slot, so the order survives a fail-over */
    qsort(ranges, k, sizeof(*ranges), cs_range_cmp);
    cs_redis_t **nodes = calloc(k ? k : 1, sizeof(*nodes));
    size_t nmasters = 0;
    cs_err_t err = nodes ? CS_OK : CS_ERR_NOMEM;
    for (size_t i = 0; !err && i < k; i++) {
        long j = cs_cluster_find(nodes, nmasters, ranges[i].host, ranges[i].port);
        if (j < 0) {
            /* keep a node we are connected to already (taken out of the old list) */
            long o =
                cs_cluster_find(cl->nodes, cl->nnodes, ranges[i].host, ranges[i].port);
            cs_redis_t *n = o < 0 ? cs_cluster_node_new(r, ranges[i].host, ranges[i].port)
                                  : cl->nodes[o];
            if (!n) {
                err = CS_ERR_NOMEM;
                break;
            }
            if (o >= 0)
                cl->nodes[o] = NULL;
            j = (long)nmasters;
            nodes[nmasters++] = n;
        }
        ranges[i].node = (size_t)j;
        ranges[i].host = NULL; /* the reply is freed after this */
    }
    if (err) {
        for (size_t i = 0; i < nmasters; i++)
            cs_redis_destroy(nodes[i]);
        free(nodes);
        free(ranges);
        return err;
    }
    for (size_t o = 0; o < cl->nnodes; o++)
        cs_redis_destroy(cl->nodes[o]); /* no longer masters (NULLs were kept) */
    free(cl->nodes);
    free(cl->ranges);
    cl->nodes = nodes;
    cl->nnodes = cl->nmasters = nmasters;
    cl->ranges = ranges;
    cl->nranges = k;
    memset(cl->slot_node, 0xff, sizeof(cl->slot_node));
    size_t assigned = 0;
    for (size_t i = 0; i < k; i++)
        for (unsigned s = ranges[i].start; s <= ranges[i].end; s++) {
            assigned += cl->slot_node[s] < 0;
            cl->slot_node[s] = (int16_t)ranges[i].node;
        }
    cl->stale = assigned < CS_SLOTS; /* not "connected" with a hole in the map */
    if (assigned < CS_SLOTS) {
        snprintf(errstr, errstr_size,
                 "redis cluster: %zu of %d slots have no master (the cluster is down or "
                 "being set up)",
                 (size_t)CS_SLOTS - assigned, CS_SLOTS);
        return CS_ERR_RETRY;
    }
    return CS_OK;
}

/* CLUSTER SLOTS from the first node that answers: the masters we know, then the seeds */
static cs_err_t cs_cluster_read_slots(cs_redis_t *r, char *errstr, size_t errstr_size)
{
    cs_cluster_t *cl = r->cl;
    size_t ncand = cl->nnodes + cl->nseeds;
    cs_addr_t *cand = calloc(ncand ? ncand : 1, sizeof(*cand));
    if (!cand)
        return CS_ERR_NOMEM;
    for (size_t i = 0; i < cl->nnodes; i++) {
        snprintf(cand[i].host, sizeof(cand[i].host), "%s", cl->nodes[i]->host);
        cand[i].port = cl->nodes[i]->port;
    }
    memcpy(cand + cl->nnodes, cl->seeds, cl->nseeds * sizeof(*cand));
    cs_err_t err = CS_ERR_RETRY;
    snprintf(errstr, errstr_size, "redis cluster: no seed node in redis.cluster.nodes");
    for (size_t i = 0; i < ncand; i++) {
        const char *host = cand[i].host;
        int port = cand[i].port;
        /* a connection of its own: the node list may be replaced under it */
        cs_redis_t *probe = cs_redis_new(host, port, r->password, r->timeout_ms);
        if (!probe) {
            err = CS_ERR_NOMEM;
            break;
        }
        err = cs_redis_node_connect(probe, errstr, errstr_size);
        if (!err) {
            const char *argv[] = {"CLUSTER", "SLOTS"};
            redisReply *reply =
                cs_redis_command(probe, 2, argv, NULL, errstr, errstr_size);
            err = CS_ERR_RETRY;
            if (reply && reply->type == REDIS_REPLY_ARRAY) {
                err = cs_cluster_apply_slots(r, probe, reply, errstr, errstr_size);
            } else if (reply && reply->type == REDIS_REPLY_ERROR) {
                if (strstr(reply->str, "cluster support disabled")) {
                    snprintf(errstr, errstr_size,
                             "config key 'redis.cluster.nodes': %s:%d is not a cluster "
                             "node (%.200s): for a single node set redis.host and "
                             "redis.port",
                             host, port, reply->str);
                    err = CS_ERR_CONFIG;
                } else {
                    snprintf(errstr, errstr_size, "redis %s:%d: CLUSTER SLOTS: %.200s",
                             host, port, reply->str);
                }
            }
            if (reply)
                freeReplyObject(reply);
        }
        cs_redis_destroy(probe);
        if (err != CS_ERR_RETRY)
            break; /* a map, or a refusal that is the same everywhere (a password) */
    }
    free(cand);
    return err;
}

cs_err_t cs_cluster_connect(cs_redis_t *r, char *errstr, size_t errstr_size)
{
    cs_err_t err = cs_cluster_read_slots(r, errstr, errstr_size);
    if (err)
        return err;
    cs_cluster_t *cl = r->cl;
    for (size_t i = 0; i < cl->nmasters; i++)
        if (!cs_redis_connected(cl->nodes[i]) &&
            (err = cs_redis_node_connect(cl->nodes[i], errstr, errstr_size)))
            return err;
    return CS_OK;
}

int cs_cluster_connected(const cs_redis_t *r)
{
    const cs_cluster_t *cl = r->cl;
    if (!cl->nmasters || cl->stale)
        return 0;
    for (size_t i = 0; i < cl->nmasters; i++)
        if (!cs_redis_connected(cl->nodes[i]))
            return 0;
    return 1;
}

size_t cs_redis_shards(const cs_redis_t *r)
{
    return r->cl ? r->cl->nmasters : 1;
}

size_t cs_redis_shard_tags(const cs_redis_t *r, size_t shard, const char **tags,
                           size_t max)
{
    if (!r->cl)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < r->cl->nranges; i++) /* ranges are sorted: lowest first */
        if (r->cl->ranges[i].node == shard && n < max)
            tags[n++] = cs_cluster_slot_tag(r->cl->ranges[i].start);
    return n;
}

cs_err_t cs_cluster_each_master(cs_redis_t *r,
                                cs_err_t (*fn)(cs_redis_t *node, void *arg, char *errstr,
                                               size_t errstr_size),
                                void *arg, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < r->cl->nmasters; i++) {
        cs_err_t err = fn(r->cl->nodes[i], arg, errstr, errstr_size);
        if (err)
            return err;
    }
    return CS_OK;
}

cs_err_t cs_cluster_function_load(cs_redis_t *r, const char *code, char *errstr,
                                  size_t errstr_size)
{
    /* every node learns it for its reconnects, and nodes made later copy r->libs */
    for (size_t i = 0; i < r->cl->nnodes; i++) {
        cs_redis_t *n = r->cl->nodes[i];
        char **grown = realloc(n->libs, (n->nlibs + 1) * sizeof(*grown));
        if (!grown)
            return CS_ERR_NOMEM;
        n->libs = grown;
        if (!(n->libs[n->nlibs] = strdup(code)))
            return CS_ERR_NOMEM;
        n->nlibs++;
    }
    if (!cs_cluster_connected(r))
        return cs_redis_connect(r, errstr, errstr_size); /* loads them */
    for (size_t i = 0; i < r->cl->nnodes; i++) {
        cs_redis_t *n = r->cl->nodes[i];
        cs_err_t err =
            cs_redis_connected(n) ? cs_redis_load_libs(n, errstr, errstr_size) : CS_OK;
        if (err)
            return err;
    }
    return CS_OK;
}

/* ------------------------------------------------------------------ redirections */

typedef enum { CS_REDIRECT_NONE, CS_REDIRECT_MOVED, CS_REDIRECT_ASK } cs_redirect_t;

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" into the target node */
static cs_redirect_t cs_cluster_redirect(cs_redis_t *r, const redisReply *reply,
                                         cs_redis_t **to, char *errstr,
                                         size_t errstr_size, cs_err_t *err)
{
    *err = CS_OK;
    if (!reply || reply->type != REDIS_REPLY_ERROR)
        return CS_REDIRECT_NONE;
    cs_redirect_t kind;
    if (!strncmp(reply->str, "MOVED ", 6))
        kind = CS_REDIRECT_MOVED;
    else if (!strncmp(reply->str, "ASK ", 4))
        kind = CS_REDIRECT_ASK;
    else
        return CS_REDIRECT_NONE;
    char *end;
    unsigned long slot = strtoul(strchr(reply->str, ' ') + 1, &end, 10);
    char host[256];
    int port;
    if (*end != ' ' || slot >= CS_SLOTS ||
        cs_split_addr(end + 1, strlen(end + 1), host, sizeof(host), &port)) {
        snprintf(errstr, errstr_size, "redis cluster: cannot follow '%.200s'",
                 reply->str);
        *err = CS_ERR_REDIS;
        return kind;
    }
    if (!host[0])
        snprintf(host, sizeof(host), "%s", r->cl->nmasters ? r->cl->nodes[0]->host : "");
    if (!(*to = cs_cluster_node_at(r, host, port, errstr, errstr_size))) {
        *err = CS_ERR_RETRY;
        return kind;
    }
    r->cl->redirects[kind == CS_REDIRECT_ASK]++;
    if (kind == CS_REDIRECT_MOVED) {
        r->cl->slot_node[slot] = (int16_t)cs_cluster_node_index(r->cl, *to);
        r->cl->stale = 1; /* read the whole map again before the next call */
    }
    return kind;
}

/* ------------------------------------------------------------------ one command */

static redisReply *cs_cluster_scan(cs_redis_t *r, int argc, const char **argv,
                                   const size_t *argvlen, char *errstr,
                                   size_t errstr_size)
{
    /* SCAN runs master by master; the cursor "<master>:<cursor>" says where it is */
    cs_cluster_t *cl = r->cl;
    char *colon = strchr(argv[1], ':');
    size_t m = colon ? strtoul(argv[1], NULL, 10) : 0;
    const char *cursor = colon ? colon + 1 : argv[1];
    if (m >= cl->nmasters) {
        snprintf(errstr, errstr_size, "redis cluster: SCAN cursor '%s' names no master",
                 argv[1]);
        return NULL;
    }
    const char **args = calloc((size_t)argc, sizeof(*args));
    size_t *lens = calloc((size_t)argc, sizeof(*lens));
    redisReply *reply = NULL;
    if (args && lens) {
        for (int i = 0; i < argc; i++) {
            args[i] = argv[i];
            lens[i] = argvlen ? argvlen[i] : strlen(argv[i]);
        }
        args[1] = cursor;
        lens[1] = strlen(cursor);
        reply = cs_redis_command(cl->nodes[m], argc, args, lens, errstr, errstr_size);
    }
    free(args);
    free(lens);
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return reply;
    char next[48];
    const char *got = reply->element[0]->str;
    if (strcmp(got, "0"))
        snprintf(next, sizeof(next), "%zu:%s", m, got);
    else if (m + 1 < cl->nmasters)
        snprintf(next, sizeof(next), "%zu:0", m + 1);
    else
        snprintf(next, sizeof(next), "0");
    char *copy = strdup(next);
    if (!copy) {
        freeReplyObject(reply);
        return NULL;
    }
    free(reply->element[0]->str);
    reply->element[0]->str = copy;
    reply->element[0]->len = strlen(copy);
    return reply;
}

static redisReply *cs_cluster_integer_reply(long long v)
{
    redisReply *reply = calloc(1, sizeof(*reply)); /* freeReplyObject frees it */
    if (reply) {
        reply->type = REDIS_REPLY_INTEGER;
        reply->integer = v;
    }
    return reply;
}

redisReply *cs_cluster_command(cs_redis_t *r, int argc, const char **argv,
                               const size_t *argvlen, char *errstr, size_t errstr_size)
{
    cs_cluster_t *cl = r->cl;
    if (!cs_cluster_connected(r) && cs_cluster_connect(r, errstr, errstr_size))
        return NULL;
    size_t lens[4] = {0};
    for (int i = 0; i < argc && i < 4; i++)
        lens[i] = argvlen ? argvlen[i] : strlen(argv[i]);
    if (argc >= 2 && lens[0] == 4 && !strncasecmp(argv[0], "SCAN", 4))
        return cs_cluster_scan(r, argc, argv, argvlen, errstr, errstr_size);
    if (lens[0] == 8 && !strncasecmp(argv[0], "FUNCTION", 8)) {
        /* FUNCTION LOAD / DELETE / FLUSH: every master holds the libraries */
        redisReply *last = NULL;
        for (size_t i = 0; i < cl->nmasters; i++) {
            if (last)
                freeReplyObject(last);
            last =
                cs_redis_command(cl->nodes[i], argc, argv, argvlen, errstr, errstr_size);
            if (!last || last->type == REDIS_REPLY_ERROR)
                break;
        }
        return last;
    }
    int multi_key = argc > 2 && ((lens[0] == 6 && !strncasecmp(argv[0], "UNLINK", 6)) ||
                                 (lens[0] == 3 && !strncasecmp(argv[0], "DEL", 3)) ||
                                 (lens[0] == 6 && !strncasecmp(argv[0], "EXISTS", 6)));
    if (multi_key) {
        /* keys of many slots: one command per key, the counts added up */
        long long sum = 0;
        for (int i = 1; i < argc; i++) {
            const char *one[] = {argv[0], argv[i]};
            size_t onelen[] = {lens[0], argvlen ? argvlen[i] : strlen(argv[i])};
            redisReply *reply =
                cs_cluster_command(r, 2, one, onelen, errstr, errstr_size);
            if (!reply || reply->type != REDIS_REPLY_INTEGER)
                return reply;
            sum += reply->integer;
            freeReplyObject(reply);
        }
        return cs_cluster_integer_reply(sum);
    }
    size_t keylens[4];
    const char *keyargs[4];
    for (int i = 0; i < argc && i < 4; i++) {
        keyargs[i] = argv[i];
        keylens[i] = lens[i];
    }
    int slot = cs_cmd_slot(argc < 4 ? argc : 4, keyargs, keylens);
    if (slot >= 0 && cl->slot_node[slot] < 0) {
        snprintf(errstr, errstr_size, "redis cluster: slot %d has no master", slot);
        return NULL;
    }
    cs_redis_t *node = cl->nodes[slot < 0 ? 0 : cl->slot_node[slot]];
    int asking = 0;
    for (int round = 0;; round++) {
        if (asking) {
            const char *ask[] = {"ASKING"};
            redisReply *ok = cs_redis_command(node, 1, ask, NULL, errstr, errstr_size);
            if (!ok)
                return NULL;
            freeReplyObject(ok);
        }
        redisReply *reply =
            cs_redis_command(node, argc, argv, argvlen, errstr, errstr_size);
        cs_redis_t *to = NULL;
        cs_err_t err;
        cs_redirect_t kind =
            cs_cluster_redirect(r, reply, &to, errstr, errstr_size, &err);
        if (kind == CS_REDIRECT_NONE || err || round + 1 == CS_MAX_ROUNDS) {
            if (err && reply) {
                freeReplyObject(reply);
                reply = NULL;
            }
            return reply;
        }
        freeReplyObject(reply);
        node = to;
        asking = kind == CS_REDIRECT_ASK;
    }
}

/* ------------------------------------------------------------------ pipelines */

typedef struct cs_sent {
    size_t cmd;
    int asking; /* the ASKING before a command sent after an ASK */
} cs_sent_t;

/* Sends everything appended to a node's connection, without reading: the masters then
 * work while the next one is sent its share. @returns 0, or -1 (the connection dropped,
 * \p errstr saying why). */
static int cs_cluster_flush(cs_redis_t *n, char *errstr, size_t errstr_size)
{
    int done = 0;
    while (n->c && !done)
        if (redisBufferWrite(n->c, &done) != REDIS_OK)
            cs_redis_io_error(n, errstr, errstr_size);
    return n->c ? 0 : -1;
}

cs_err_t cs_cluster_pipe_exec(cs_redis_t *r, cs_redis_pipe_t *p, char *errstr,
                              size_t errstr_size)
{
    cs_cluster_t *cl = r->cl;
    cs_redis_pipe_free_replies(p);
    if (!cs_cluster_connected(r)) {
        cs_err_t err = cs_cluster_connect(r, errstr, errstr_size);
        if (err)
            return err;
    }
    size_t n = p->n;
    if (!n)
        return CS_OK;
    int *slot = malloc(n * sizeof(*slot));
    cs_redis_t **ask = calloc(n, sizeof(*ask)); /* an ASK's target, for the next round */
    size_t *pending = malloc(n * sizeof(*pending));
    cs_sent_t *sent = malloc(2 * n * sizeof(*sent));
    size_t *first = malloc((cl->nnodes + 1) * sizeof(*first));
    char *reload = NULL; /* per node: a function was missing there this round */
    if (!slot || !ask || !pending || !sent || !first) {
        free(slot), free(ask), free(pending), free(sent), free(first);
        return CS_ERR_NOMEM;
    }
    /* a command without a key (MULTI, EXEC) goes with the keyed command before it, or
     * else the one after it */
    int prev = -1;
    for (size_t i = 0; i < n; i++) {
        const char *args[4];
        size_t lens[4];
        int argc = cs_resp_args(p->cmds[i], p->lens[i], args, lens, 4);
        slot[i] = cs_cmd_slot(argc, args, lens);
        if (slot[i] < 0)
            slot[i] = prev;
        else
            prev = slot[i];
    }
    for (size_t i = n; i-- > 0;)
        if (slot[i] >= 0)
            prev = slot[i];
        else
            slot[i] = prev < 0 ? 0 : prev;
    for (size_t i = 0; i < n; i++) {
        p->replies[i] = NULL;
        pending[i] = i;
    }
    size_t npending = n;
    cs_err_t err = CS_OK;
    int retry = 0, missing = 0;
    for (int round = 0; npending && !err && !retry; round++) {
        if (round == CS_MAX_ROUNDS) {
            snprintf(errstr, errstr_size,
                     "redis cluster: redirected %d times in one call: slots are moving",
                     CS_MAX_ROUNDS);
            retry = 1;
            break;
        }
        /* group by node (keeping the pipeline's order within a node), then send every
         * node its commands before reading any reply, so the masters work at once */
        size_t nnodes = cl->nnodes, nsent = 0;
        size_t *grown = realloc(first, (nnodes + 1) * sizeof(*first));
        if (!grown) {
            err = CS_ERR_NOMEM;
            break;
        }
        first = grown;
        char *regrown = realloc(reload, nnodes + 1);
        if (!regrown) {
            err = CS_ERR_NOMEM;
            break;
        }
        reload = regrown;
        memset(reload, 0, nnodes + 1);
        for (size_t j = 0; j < npending; j++)
            if (!ask[pending[j]] && cl->slot_node[slot[pending[j]]] < 0) {
                snprintf(errstr, errstr_size, "redis cluster: slot %d has no master",
                         slot[pending[j]]);
                err = CS_ERR_RETRY;
            }
        if (err)
            break;
        for (size_t k = 0; k < nnodes; k++) {
            first[k] = nsent;
            cs_redis_t *node = cl->nodes[k];
            for (size_t j = 0; j < npending; j++) {
                size_t i = pending[j];
                cs_redis_t *to = ask[i] ? ask[i] : cl->nodes[cl->slot_node[slot[i]]];
                if (to != node)
                    continue;
                if (ask[i]) {
                    sent[nsent++] = (cs_sent_t){i, 1};
                    if (node->c && redisAppendCommand(node->c, "ASKING") != REDIS_OK)
                        err = CS_ERR_RETRY;
                }
                sent[nsent++] = (cs_sent_t){i, 0};
                if (node->c && redisAppendFormattedCommand(node->c, p->cmds[i],
                                                           p->lens[i]) != REDIS_OK)
                    err = CS_ERR_RETRY;
            }
        }
        first[nnodes] = nsent;
        for (size_t j = 0; j < npending; j++)
            ask[pending[j]] = NULL;
        for (size_t k = 0; k < nnodes; k++) {
            cs_redis_t *node = cl->nodes[k];
            if (first[k] == first[k + 1])
                continue;
            if (cs_cluster_flush(node, errstr, errstr_size))
                err = CS_ERR_RETRY;
        }
        npending = 0;
        for (size_t k = 0; k < nnodes; k++) {
            cs_redis_t *node = cl->nodes[k];
            for (size_t s = first[k]; s < first[k + 1]; s++) {
                void *got = NULL;
                if (!node->c || redisGetReply(node->c, &got) != REDIS_OK || !got) {
                    if (node->c)
                        cs_redis_io_error(node, errstr, errstr_size);
                    else if (!err)
                        snprintf(errstr, errstr_size, "redis %s:%d: not connected",
                                 node->host, node->port);
                    err = CS_ERR_RETRY;
                    break;
                }
                redisReply *reply = got;
                size_t i = sent[s].cmd;
                if (sent[s].asking) {
                    freeReplyObject(reply);
                    continue;
                }
                if (p->replies[i])
                    freeReplyObject(p->replies[i]);
                p->replies[i] = reply;
                cs_redis_t *to = NULL;
                cs_err_t rerr;
                cs_redirect_t kind =
                    cs_cluster_redirect(r, reply, &to, errstr, errstr_size, &rerr);
                if (rerr) {
                    err = rerr;
                } else if (kind == CS_REDIRECT_ASK) {
                    ask[i] = to;
                    pending[npending++] = i;
                } else if (kind == CS_REDIRECT_MOVED) {
                    pending[npending++] = i;
                } else if (cs_redis_missing_function(reply) && node->nlibs) {
                    /* flushed, or a replica promoted without them: loaded once this
                     * node's replies are all read, then sent again */
                    reload[k] = 1;
                    pending[npending++] = i;
                } else if (cs_redis_reply_retriable(reply)) {
                    snprintf(errstr, errstr_size, "redis %s:%d refuses for now: %.200s",
                             node->host, node->port, reply->str);
                    retry = 1;
                }
            }
        }
        for (size_t k = 0; k < nnodes && !err; k++)
            if (reload[k]) {
                missing = 1;
                reload[k] = 0;
                if (cl->nodes[k]->c)
                    err = cs_redis_load_libs(cl->nodes[k], errstr, errstr_size);
            }
        /* cs_cluster_node_at may have added nodes: the next round groups them too */
    }
    if (missing)
        cs_log_warn("redis function missing on a cluster node: reloaded", NULL);
    if (!err && retry)
        err = CS_ERR_RETRY;
    if (err) {
        for (size_t i = 0; i < n; i++)
            if (p->replies[i])
                freeReplyObject(p->replies[i]);
        p->nreplies = 0;
    } else {
        p->nreplies = n;
    }
    free(slot), free(ask), free(pending), free(sent), free(first), free(reload);
    return err;
}

/* ------------------------------------------------------------------ durability */

cs_err_t cs_redis_wait_replicas(cs_redis_t *r, char *errstr, size_t errstr_size)
{
    cs_cluster_t *cl = r->cl;
    if (!cl)
        return CS_OK;
    /* WAIT on each master that has a replica, all sent before any answer is read. Its
     * timeout is half the command timeout, so the socket never times out first. */
    char timeout[32];
    snprintf(timeout, sizeof(timeout), "%d",
             r->timeout_ms / 2 > 0 ? r->timeout_ms / 2 : 1);
    char *waiting = calloc(cl->nmasters ? cl->nmasters : 1, 1);
    if (!waiting)
        return CS_ERR_NOMEM;
    cs_err_t err = CS_OK;
    for (size_t i = 0; i < cl->nranges; i++)
        if (cl->ranges[i].replicas && cl->ranges[i].node < cl->nmasters)
            waiting[cl->ranges[i].node] = 1;
    for (size_t m = 0; m < cl->nmasters; m++) {
        cs_redis_t *n = cl->nodes[m];
        if (!waiting[m])
            continue;
        if (!n->c || redisAppendCommand(n->c, "WAIT 1 %s", timeout) != REDIS_OK ||
            cs_cluster_flush(n, errstr, errstr_size)) {
            waiting[m] = 0;
            err = CS_ERR_RETRY;
        }
    }
    for (size_t m = 0; m < cl->nmasters; m++) {
        cs_redis_t *n = cl->nodes[m];
        if (!waiting[m])
            continue;
        void *got = NULL;
        if (redisGetReply(n->c, &got) != REDIS_OK || !got) {
            err = cs_redis_io_error(n, errstr, errstr_size);
            continue;
        }
        redisReply *reply = got;
        if (cs_redis_reply_retriable(reply)) {
            snprintf(errstr, errstr_size, "redis %s:%d: WAIT: %.200s", n->host, n->port,
                     reply->str);
            err = CS_ERR_RETRY;
        } else if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 1) {
            /* no replica confirmed (down or far behind), or WAIT refused (an ACL): go on
             * (waiting for it would stop the whole stream), say so with the answer, and
             * read the map again, which leaves out a failed replica */
            if (!cl->lagging++ || cl->lagging % 1000 == 0)
                cs_log_warn(
                    "redis cluster master without a replica keeping up: a fail-over "
                    "now could lose its last writes",
                    "{s:s, s:i, s:s, s:I}", "host", n->host, "port", n->port, "answer",
                    reply->type == REDIS_REPLY_ERROR ? reply->str : "no replica in time",
                    "count", (json_int_t)cl->lagging);
            cl->stale = 1;
        }
        freeReplyObject(reply);
    }
    free(waiting);
    return err;
}

void cs_redis_cluster_counts(const cs_redis_t *r, long *moved, long *ask, long *lagging)
{
    *moved = r->cl ? r->cl->redirects[0] : 0;
    *ask = r->cl ? r->cl->redirects[1] : 0;
    *lagging = r->cl ? r->cl->lagging : 0;
}

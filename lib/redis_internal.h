/* Internals shared by lib/redis.c (one node, pipelines) and lib/cluster.c (slot routing
 * over those nodes). Not a public header. */
#ifndef CARESIGNAL_REDIS_INTERNAL_H
#define CARESIGNAL_REDIS_INTERNAL_H

#include "caresignal/redis.h"

#include <stdint.h>

typedef struct cs_cluster cs_cluster_t;

struct cs_redis {
    char *host;
    int port;
    char *password;
    int timeout_ms;
    redisContext *c; /* one node: its connection; a cluster: NULL */
    char **libs;     /* Lua libraries to (re)load on every connect */
    size_t nlibs;
    int was_down;     /* for logging the up/down transitions once */
    cs_cluster_t *cl; /* a Redis Cluster: the nodes and the slot map; NULL: one node */
};

struct cs_redis_pipe {
    char **cmds; /* RESP-formatted commands */
    size_t *lens;
    size_t n, cap;
    redisReply **replies;
    size_t nreplies;
};

/* lib/redis.c, for the cluster's nodes */
cs_err_t cs_redis_node_connect(cs_redis_t *r, char *errstr, size_t errstr_size);
cs_err_t cs_redis_load_libs(cs_redis_t *r, char *errstr, size_t errstr_size);
/* Drops a node's connection after an I/O failure, \p errstr saying why: CS_ERR_RETRY */
cs_err_t cs_redis_io_error(cs_redis_t *r, char *errstr, size_t errstr_size);
void cs_redis_pipe_free_replies(cs_redis_pipe_t *p);
int cs_redis_missing_function(const redisReply *reply);

/* lib/cluster.c: a cs_redis_t whose cl is set */
cs_cluster_t *cs_cluster_new(const char *nodes);
void cs_cluster_destroy(cs_cluster_t *cl);
cs_err_t cs_cluster_connect(cs_redis_t *r, char *errstr, size_t errstr_size);
int cs_cluster_connected(const cs_redis_t *r);
redisReply *cs_cluster_command(cs_redis_t *r, int argc, const char **argv,
                               const size_t *argvlen, char *errstr, size_t errstr_size);
cs_err_t cs_cluster_pipe_exec(cs_redis_t *r, cs_redis_pipe_t *p, char *errstr,
                              size_t errstr_size);
cs_err_t cs_cluster_function_load(cs_redis_t *r, const char *code, char *errstr,
                                  size_t errstr_size);
cs_err_t cs_cluster_each_master(cs_redis_t *r,
                                cs_err_t (*fn)(cs_redis_t *node, void *arg, char *errstr,
                                               size_t errstr_size),
                                void *arg, char *errstr, size_t errstr_size);

#endif

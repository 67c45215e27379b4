/* caresignal-replay rebuild: the risk state rebuilt from topic.events into a fresh Redis
 * namespace, without a consumer group (the live one is never moved), then compared with
 * the live namespace subject by subject. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/log.h"
#include "caresignal/reader.h"
#include "replay.h"

/* The fields of a subject's state that a rebuild must reproduce exactly. */
static const char *const compared[] = {"score",
                                       "as_of",
                                       "level",
                                       "level_since",
                                       "imm_at",
                                       "events_total",
                                       "assurance",
                                       "duplicates",
                                       "area.SAFE_CARE",
                                       "area.STAFFING",
                                       "area.PROTECTION_FROM_ABUSE",
                                       "area.ASSURANCE",
                                       "last_alert"};
#define NCOMPARED (sizeof(compared) / sizeof(compared[0]))

/* Do two replies hold the same values (arrays element by element, as text)? */
static int same_reply(const redisReply *a, const redisReply *b)
{
    if (a->type != b->type || a->elements != b->elements)
        return 0;
    for (size_t e = 0; e < a->elements; e++) {
        const redisReply *x = a->element[e], *y = b->element[e];
        if (x->type != y->type || (x->type == REDIS_REPLY_STRING &&
                                   (x->len != y->len || memcmp(x->str, y->str, x->len))))
            return 0;
    }
    return 1;
}

/* Compares every subject of the rebuilt namespace with the live one: the state fields
 * above (as text: bit-identical doubles print identically) and the event list. One
 * pipelined round trip per SCAN page. @returns 0, or -1 if Redis cannot be read (with
 * the reason on stderr). */
static int verify(cs_redis_t *redis, const char *live, const char *rebuilt,
                  long *subjects, long *differ)
{
    char pattern[256], errstr[512], cursor[32] = "0";
    snprintf(pattern, sizeof(pattern), "%s:{*}:state", rebuilt);
    *subjects = *differ = 0;
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    int rc = 0;
    do {
        const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
        redisReply *r = cs_redis_command(redis, 6, scan, NULL, errstr, sizeof(errstr));
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            fprintf(stderr, "caresignal-replay: verification: SCAN: %s\n",
                    r && r->type == REDIS_REPLY_ERROR ? r->str : errstr);
            if (r)
                freeReplyObject(r);
            rc = -1;
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        cs_redis_pipe_reset(p);
        for (size_t i = 0; i < keys->elements; i++) {
            const char *key = keys->element[i]->str;
            const char *tag = key + strlen(rebuilt); /* ":{SUBJECT}:state" */
            int taglen = (int)strlen(tag) - 6;       /* ":{SUBJECT}" */
            char live_key[512], ev_a[512], ev_b[512];
            snprintf(live_key, sizeof(live_key), "%s%s", live, tag);
            snprintf(ev_a, sizeof(ev_a), "%s%.*s:events", rebuilt, taglen, tag);
            snprintf(ev_b, sizeof(ev_b), "%s%.*s:events", live, taglen, tag);
            const char *ha[NCOMPARED + 2] = {"HMGET", key};
            const char *hb[NCOMPARED + 2] = {"HMGET", live_key};
            for (size_t f = 0; f < NCOMPARED; f++)
                ha[f + 2] = hb[f + 2] = compared[f];
            const char *za[] = {"ZRANGE", ev_a, "0", "-1", "WITHSCORES"};
            const char *zb[] = {"ZRANGE", ev_b, "0", "-1", "WITHSCORES"};
            cs_redis_pipe_add(p, (int)NCOMPARED + 2, ha, NULL);
            cs_redis_pipe_add(p, (int)NCOMPARED + 2, hb, NULL);
            cs_redis_pipe_add(p, 5, za, NULL);
            cs_redis_pipe_add(p, 5, zb, NULL);
        }
        if (keys->elements && cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr))) {
            fprintf(stderr, "caresignal-replay: verification: %s\n", errstr);
            freeReplyObject(r);
            rc = -1;
            break;
        }
        for (size_t i = 0; i < keys->elements; i++) {
            size_t k = 4 * i;
            int same =
                same_reply(cs_redis_pipe_reply(p, k), cs_redis_pipe_reply(p, k + 1)) &&
                same_reply(cs_redis_pipe_reply(p, k + 2), cs_redis_pipe_reply(p, k + 3));
            (*subjects)++;
            if (!same && ++*differ <= 10) {
                const char *tag = keys->element[i]->str + strlen(rebuilt);
                printf("  differs: %.*s\n", (int)(strlen(tag) - 8), tag + 2);
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0"));
    cs_redis_pipe_destroy(p);
    return rc;
}

int replay_rebuild(const replay_ctx_t *ctx)
{
    const cs_config_t *cfg = ctx->cfg;
    const char *ns = cs_cli_get(ctx->cli, ctx->spec, "namespace");
    if (!ns)
        cs_cli_fail(ctx->spec, "rebuild needs --namespace NS (a fresh Redis namespace)");
    if (!strcmp(ns, cfg->state_namespace))
        cs_cli_fail(ctx->spec,
                    "option --namespace: '%s' is the live namespace (state.namespace); "
                    "a rebuild goes into a fresh one",
                    ns);
    int64_t from = replay_time_option(ctx, "from-time");
    char errstr[512];
    cs_registry_t *reg = cs_registry_load(cfg->schema_registry, errstr, sizeof(errstr));
    if (!reg)
        cs_cli_fail(ctx->spec, "%s (config key 'schema.registry')", errstr);
    cs_rules_t *rules = cs_rules_load(cfg->rules_file, errstr, sizeof(errstr));
    if (!rules)
        cs_cli_fail(ctx->spec, "%s (config key 'rules.file')", errstr);
    cs_redis_t *redis = replay_redis(ctx);
    replay_target_t target;
    memset(&target, 0, sizeof(target));
    replay_target_init(ctx, &target, ns, rules, redis);

    int rc = 0;
    long existing = replay_namespace_keys(redis, ns, 1);
    printf("rebuild: the risk state from %s into the Redis namespace '%s' (rules %s), "
           "reading "
           "without a consumer group: the live group's offsets are not touched.\n",
           cfg->topic_events, ns, rules->version);
    if (existing != 0) {
        printf("refused: namespace '%s' is not empty (choose a fresh name, or delete its "
               "keys "
               "first)\n",
               ns);
        rc = 1;
        goto done;
    }
    if (!ctx->execute) {
        if (replay_describe_range(ctx, from) < 0)
            rc = 1;
        else
            printf("dry run: nothing written (add --execute)\n");
        goto done;
    }
    long undecodable = 0;
    long read = replay_events(ctx, reg, from, &target, 1, 1, "rebuild", &undecodable);
    if (read < 0) {
        printf(
            "rebuild failed or interrupted: delete namespace '%s' before trying again\n",
            ns);
        rc = 1;
        goto done;
    }
    printf(
        "rebuilt: %ld events read, %ld applied, %ld duplicates skipped, %ld undecodable "
        "skipped, %ld alerts computed (not paged)\n",
        read, target.applied, target.duplicates, undecodable, target.alerts);
    long subjects, differ;
    if (verify(redis, cfg->state_namespace, ns, &subjects, &differ)) {
        printf("verification failed: cannot read the namespaces\n");
        rc = 1;
        goto done;
    }
    if (from >= 0)
        printf("verification: %ld subjects, %ld differ from the live namespace '%s' "
               "(expected: "
               "the rebuild started at --from-time)\n",
               subjects, differ, cfg->state_namespace);
    else if (differ == 0)
        printf("verification: all %ld subjects identical to the live namespace '%s' "
               "(scores, "
               "levels, areas, event lists)\n",
               subjects, cfg->state_namespace);
    else
        printf("verification: %ld of %ld subjects differ from the live namespace '%s' "
               "(normal if "
               "the live scorer has read more or fewer events than this rebuild)\n",
               differ, subjects, cfg->state_namespace);
    printf("to switch the scorer to '%s': stop caresignal-score, start it with --set "
           "state.namespace=%s (only the scorer: the pager keeps its de-duplication "
           "where it "
           "is). It resumes from the lowest of the rebuild's positions and its committed "
           "offsets, so it applies whatever arrived after the rebuild.\n",
           ns, ns);
done:
    replay_target_release(&target);
    cs_redis_destroy(redis);
    cs_rules_destroy(rules);
    cs_registry_destroy(reg);
    return rc;
}

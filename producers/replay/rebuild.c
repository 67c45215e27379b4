/* caresignal-replay rebuild: the risk state rebuilt from topic.events into a fresh Redis
 * namespace, without a consumer group (the live one is never moved), then compared with
 * the live namespace subject by subject. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/log.h"
#include "caresignal/reader.h"
#include "replay.h"

/* Compares every subject of the rebuilt namespace with the live one through the layout's
 * owner (cs_scorer_read: bit-identical numbers, the event list, the last alert, the
 * event keys seen by month). One pipelined read per SCAN page. @returns 0, or -1 if
 * Redis cannot be read (with the reason on stderr). */
static int verify(cs_redis_t *redis, const cs_rules_t *rules, const char *live,
                  const cs_scorer_t *rebuilt, long *subjects, long *differ)
{
    char errstr[512], cursor[32] = "0";
    *subjects = *differ = 0;
    cs_scorer_t *live_scorer = cs_scorer_new(rules, live, errstr, sizeof(errstr));
    if (!live_scorer) {
        fprintf(stderr, "caresignal-replay: verification: %s\n", errstr);
        return -1;
    }
    int rc = 0;
    do {
        char **page = NULL;
        size_t n = 0;
        cs_subject_view_t *a = NULL, *b = NULL;
        if (cs_scorer_scan(rebuilt, redis, cursor, &page, &n, errstr, sizeof(errstr)) ||
            !(a = calloc(n + 1, sizeof(*a))) || !(b = calloc(n + 1, sizeof(*b))) ||
            cs_scorer_read(rebuilt, redis, (const char *const *)page, n, a, errstr,
                           sizeof(errstr)) ||
            cs_scorer_read(live_scorer, redis, (const char *const *)page, n, b, errstr,
                           sizeof(errstr))) {
            fprintf(stderr, "caresignal-replay: verification: %s\n", errstr);
            rc = -1;
        }
        for (size_t i = 0; !rc && i < n; i++) {
            (*subjects)++;
            if (!cs_subject_view_equal(&a[i], &b[i]) && ++*differ <= 10)
                printf("  differs: %s\n", page[i]);
        }
        for (size_t i = 0; i < n; i++) {
            if (a)
                cs_subject_view_release(&a[i]);
            if (b)
                cs_subject_view_release(&b[i]);
            free(page[i]);
        }
        free(a);
        free(b);
        free(page);
    } while (!rc && strcmp(cursor, "0"));
    cs_scorer_destroy(live_scorer);
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
    if (verify(redis, rules, cfg->state_namespace, target.scorer, &subjects, &differ)) {
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
               "levels, areas, event lists, last alerts, event keys seen)\n",
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

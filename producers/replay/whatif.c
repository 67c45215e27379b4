/* caresignal-replay whatif: history replayed under the live rules and under other rules,
 * each into a scratch namespace, and the alerts compared: which the other rules would
 * add, remove or change. The scratch namespaces are deleted afterwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/alert.h"
#include "caresignal/log.h"
#include "caresignal/timeutil.h"
#include "replay.h"

/* What the comparison needs of an alert. The whole alert (a cs_alert_t, about 14 KB with
 * its recent events) is kept beside it only for --json, which prints every field. */
typedef struct brief {
    char subject[CS_SUBJECT_KEY_MAX];
    char triggered_by[CS_EVENT_KEY_MAX];
    char alert_id[33];
    cs_alert_kind_t kind;
    cs_level_t level;
    cs_reason_t reason;
    double score;
    int64_t as_of;
    size_t at; /* the alert's index in briefs_t.alerts (arrival order) */
    int matched;
} brief_t;

typedef struct briefs {
    brief_t *v;         /* sorted and re-sorted by report() */
    cs_alert_t *alerts; /* NULL unless whole: the alerts as raised, v[i].at indexes it */
    int whole;
    size_t n, cap;
} briefs_t;

static void *grow(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "caresignal-replay: out of memory\n");
        exit(1);
    }
    return q;
}

static void keep(void *opaque, const cs_alert_t *alerts, int n)
{
    briefs_t *b = opaque;
    for (int i = 0; i < n; i++) {
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 256;
            b->v = grow(b->v, b->cap * sizeof(*b->v));
            if (b->whole)
                b->alerts = grow(b->alerts, b->cap * sizeof(*b->alerts));
        }
        if (b->whole)
            b->alerts[b->n] = alerts[i];
        brief_t *x = &b->v[b->n];
        memset(x, 0, sizeof(*x));
        x->at = b->n++;
        cs_subject_key(alerts[i].subject_kind, alerts[i].subject_id, x->subject,
                       sizeof(x->subject));
        snprintf(x->triggered_by, sizeof(x->triggered_by), "%s", alerts[i].triggered_by);
        snprintf(x->alert_id, sizeof(x->alert_id), "%s", alerts[i].alert_id);
        x->kind = alerts[i].kind;
        x->level = alerts[i].level;
        x->reason = alerts[i].reason;
        x->score = alerts[i].score;
        x->as_of = alerts[i].as_of;
    }
}

static int brief_cmp(const void *a, const void *b)
{
    const brief_t *x = a, *y = b;
    int c = strcmp(x->subject, y->subject);
    return c ? c : strcmp(x->triggered_by, y->triggered_by);
}

/* For reading: each subject's alerts in time order. */
static int brief_time_cmp(const void *a, const void *b)
{
    const brief_t *x = a, *y = b;
    int c = strcmp(x->subject, y->subject);
    if (c)
        return c;
    if (x->as_of != y->as_of)
        return x->as_of < y->as_of ? -1 : 1;
    return strcmp(x->triggered_by, y->triggered_by);
}

/* The whole RiskAlert as the scorer would publish it (cs_alert_to_json: every field by
 * its schema name, as_of in epoch ms), plus "subject": the subject key it was matched
 * by. */
static json_t *alert_json(const briefs_t *side, const brief_t *b)
{
    json_t *j = cs_alert_to_json(&side->alerts[b->at]);
    if (!j || json_object_set_new(j, "subject", json_string(b->subject))) {
        fprintf(stderr, "caresignal-replay: cannot render alert %s as JSON\n",
                b->alert_id);
        exit(1);
    }
    return j;
}

static void print_brief(char sign, const brief_t *b)
{
    char when[32];
    cs_time_format(b->as_of, when, sizeof(when));
    printf("  %c %-7s %-7s %-28s at %.16s  score %6.1f  [%s] triggered by %s  id %s\n",
           sign, cs_alert_kind_names[b->kind], cs_level_names[b->level], b->subject, when,
           b->score, cs_reason_names[b->reason], b->triggered_by, b->alert_id);
}

/* (a side that raised no alerts has no array: qsort must not be given NULL) */
static void briefs_sort(briefs_t *b, int (*cmp)(const void *, const void *))
{
    if (b->n)
        qsort(b->v, b->n, sizeof(brief_t), cmp);
}

/* The comparison, matched by (subject, triggering event): an alert only the new rules
 * raise is added, one only the live rules raise removed, and one both raise at the same
 * event but differently (kind, level or reason) changed. A pair that differs only in
 * score, previous level or anything else is the same decision and is not reported. */
static void report(briefs_t *live, briefs_t *fresh, int as_json, const char *file,
                   const cs_rules_t *live_rules, const cs_rules_t *new_rules)
{
    briefs_sort(live, brief_cmp);
    briefs_sort(fresh, brief_cmp);
    /* changed alerts as (live, new) pairs, copied: both lists are re-sorted below */
    brief_t(*changed)[2] = calloc(fresh->n ? fresh->n : 1, sizeof(*changed));
    if (!changed) {
        fprintf(stderr, "caresignal-replay: out of memory\n");
        exit(1);
    }
    size_t nchanged = 0, nadded = 0, nremoved = 0;
    long counts[3][CS_LEVEL_COUNT] = {{0}}; /* added, removed, changed */
    for (size_t i = 0; i < fresh->n; i++) {
        brief_t *b = &fresh->v[i];
        brief_t *a =
            live->n ? bsearch(b, live->v, live->n, sizeof(brief_t), brief_cmp) : NULL;
        if (!a) {
            nadded++;
            counts[0][b->level]++;
            continue;
        }
        a->matched = b->matched = 1;
        if (a->kind != b->kind || a->level != b->level || a->reason != b->reason) {
            changed[nchanged][0] = *a;
            changed[nchanged++][1] = *b;
            counts[2][b->level]++;
        }
    }
    for (size_t i = 0; i < live->n; i++)
        if (!live->v[i].matched) {
            nremoved++;
            counts[1][live->v[i].level]++;
        }
    /* for reading: each subject's alerts in time order */
    briefs_sort(live, brief_time_cmp);
    briefs_sort(fresh, brief_time_cmp);
    if (as_json) {
        json_t *added = json_array(), *removed = json_array(), *ch = json_array();
        for (size_t k = 0; k < fresh->n; k++)
            if (!fresh->v[k].matched)
                json_array_append_new(added, alert_json(fresh, &fresh->v[k]));
        for (size_t k = 0; k < live->n; k++)
            if (!live->v[k].matched)
                json_array_append_new(removed, alert_json(live, &live->v[k]));
        for (size_t k = 0; k < nchanged; k++)
            json_array_append_new(ch, json_pack("{s:o, s:o}", "live",
                                                alert_json(live, &changed[k][0]), "new",
                                                alert_json(fresh, &changed[k][1])));
        json_t *c = json_object();
        static const char *const what[] = {"added", "removed", "changed"};
        for (int k = 0; k < 3; k++) {
            json_t *per = json_object();
            for (int l = 0; l < CS_LEVEL_COUNT; l++)
                json_object_set_new(per, cs_level_names[l], json_integer(counts[k][l]));
            json_object_set_new(c, what[k], per);
        }
        json_t *out = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o}", "rules",
                                new_rules->version, "live_rules", live_rules->version,
                                "alerts_live", (json_int_t)live->n, "alerts_new",
                                (json_int_t)fresh->n, "added", added, "removed", removed,
                                "changed", ch, "counts", c);
        char *text = json_dumps(out, JSON_INDENT(1));
        puts(text);
        free(text);
        json_decref(out);
        free(changed);
        return;
    }
    printf("whatif: %s (rules %s) against the live rules (%s): %zu alerts under the live "
           "rules, %zu under the new\n",
           file, new_rules->version, live_rules->version, live->n, fresh->n);
    printf("added (%zu):\n", nadded);
    for (size_t k = 0; k < fresh->n; k++)
        if (!fresh->v[k].matched)
            print_brief('+', &fresh->v[k]);
    printf("removed (%zu):\n", nremoved);
    for (size_t k = 0; k < live->n; k++)
        if (!live->v[k].matched)
            print_brief('-', &live->v[k]);
    printf("changed (%zu):\n", nchanged);
    for (size_t k = 0; k < nchanged; k++) {
        const brief_t *a = &changed[k][0], *b = &changed[k][1];
        printf("  ~ %-28s triggered by %s: %s %s [%s] id %s -> %s %s [%s] id %s\n",
               a->subject, a->triggered_by, cs_alert_kind_names[a->kind],
               cs_level_names[a->level], cs_reason_names[a->reason], a->alert_id,
               cs_alert_kind_names[b->kind], cs_level_names[b->level],
               cs_reason_names[b->reason], b->alert_id);
    }
    printf(
        "per level (of the new alert; removed: of the live one):\n  %-8s %8s %8s %8s\n",
        "level", "added", "removed", "changed");
    for (int l = 1; l < CS_LEVEL_COUNT; l++)
        printf("  %-8s %8ld %8ld %8ld\n", cs_level_names[l], counts[0][l], counts[1][l],
               counts[2][l]);
    printf("  %-8s %8ld %8ld %8ld  (clearances)\n", "NONE", counts[0][0], counts[1][0],
           counts[2][0]);
    free(changed);
}

int replay_whatif(const replay_ctx_t *ctx)
{
    const cs_config_t *cfg = ctx->cfg;
    const char *file = cs_cli_get(ctx->cli, ctx->spec, "rules");
    if (!file)
        cs_cli_fail(ctx->spec, "whatif needs --rules FILE (the rules to try)");
    int64_t from = replay_time_option(ctx, "from-time");
    int as_json = cs_cli_get(ctx->cli, ctx->spec, "json") != NULL;
    char errstr[512];
    cs_registry_t *reg = cs_registry_load(cfg->schema_registry, errstr, sizeof(errstr));
    if (!reg)
        cs_cli_fail(ctx->spec, "%s (config key 'schema.registry')", errstr);
    cs_rules_t *live_rules = cs_rules_load(cfg->rules_file, errstr, sizeof(errstr));
    if (!live_rules)
        cs_cli_fail(ctx->spec, "%s (config key 'rules.file')", errstr);
    cs_rules_t *new_rules = cs_rules_load(file, errstr, sizeof(errstr));
    if (!new_rules)
        cs_cli_fail(ctx->spec, "%s (option --rules)", errstr);
    char ns_live[128], ns_new[128];
    snprintf(ns_live, sizeof(ns_live), "%s-whatif-%d-live", cfg->state_namespace,
             (int)getpid());
    snprintf(ns_new, sizeof(ns_new), "%s-whatif-%d-new", cfg->state_namespace,
             (int)getpid());
    cs_redis_t *redis = replay_redis(ctx);
    briefs_t live = {.whole = as_json}, fresh = {.whole = as_json};
    replay_target_t targets[2];
    memset(targets, 0, sizeof(targets));
    replay_target_init(ctx, &targets[0], ns_live, live_rules, redis);
    replay_target_init(ctx, &targets[1], ns_new, new_rules, redis);
    targets[0].on_alerts = keep;
    targets[0].opaque = &live;
    targets[1].on_alerts = keep;
    targets[1].opaque = &fresh;

    int rc = 0;
    if (!ctx->execute) {
        printf(
            "whatif: would replay the events below twice — under the live rules (%s, %s) "
            "and under %s (%s) — into the scratch namespaces '%s' and '%s', compare the "
            "alerts, and delete both namespaces. Nothing is paged, the live namespace "
            "and "
            "consumer groups are not touched.\n",
            cfg->rules_file, live_rules->version, file, new_rules->version, ns_live,
            ns_new);
        rc = replay_describe_range(ctx, from) < 0;
        if (!rc)
            printf("dry run: nothing written (add --execute)\n");
        goto done;
    }
    long undecodable;
    long read = replay_events(ctx, reg, from, targets, 2, 0, "whatif", &undecodable);
    if (read < 0)
        rc = 1;
    else
        report(&live, &fresh, as_json, file, live_rules, new_rules);
    long deleted =
        replay_namespace_delete(redis, ns_live) + replay_namespace_delete(redis, ns_new);
    if (strcmp(new_rules->digest, live_rules->digest)) {
        /* the library built from the tried rules goes too (the live one stays) */
        char lib[64];
        snprintf(lib, sizeof(lib), "caresignal_%s", new_rules->digest);
        const char *argv[] = {"FUNCTION", "DELETE", lib};
        redisReply *r = cs_redis_command(redis, 3, argv, NULL, errstr, sizeof(errstr));
        if (r)
            freeReplyObject(r);
    }
    if (!as_json)
        printf("replayed %ld events; scratch namespaces deleted (%ld keys)\n", read,
               deleted);
done:
    replay_target_release(&targets[0]);
    replay_target_release(&targets[1]);
    free(live.v);
    free(fresh.v);
    free(live.alerts);
    free(fresh.alerts);
    cs_redis_destroy(redis);
    cs_rules_destroy(new_rules);
    cs_rules_destroy(live_rules);
    cs_registry_destroy(reg);
    return rc;
}

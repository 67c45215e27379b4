/* caresignal-score: canonical events from intel.events applied to the risk state in Redis
 * (one FCALL per subject per batch), level changes published as RiskAlerts; and the
 * "highest risk first" read path (--top). docs/contract/risk-model.md to
 * docs/contract/guarantees.md. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/app.h"
#include "caresignal/backoff.h"
#include "caresignal/deadletter.h"
#include "caresignal/engine.h"
#include "caresignal/log.h"
#include "caresignal/score.h"
#include "caresignal/score_stage.h"
#include "caresignal/timeutil.h"

static const cs_cli_option_t options[] = {
    {"top", "N", "print the N highest-risk subjects now (reads Redis only) and exit"},
    {"kind", "KIND", "with --top: LOCATION (default) or LOCAL_AREA"},
    {"at", "ISO-8601", "with --top: decay scores to this time instead of now"},
    {"show", NULL,
     "print what the state holds for the SUBJECTs given as arguments "
     "(LOCATION:<id>, LOCAL_AREA:<id>) and exit"},
    {"json", NULL, "with --top or --show: one JSON object per line"},
    {NULL, NULL, NULL},
};

static const cs_cli_spec_t spec = {
    "caresignal-score",
    CS_PROG_SCORE,
    "[options] | --top N | --show SUBJECT...",
    "Consumes canonical events (topic.events) as consumer group group.id, applies each\n"
    "subject's events to its risk state in Redis with one Redis function call per\n"
    "subject and batch (exactly once: redeliveries and partner duplicates are skipped;\n"
    "a batch is what arrived while Redis ran the previous one, up to score.batch.max),\n"
    "and publishes a RiskAlert to topic.alerts whenever a subject's level changes.\n"
    "Offsets are stored only after the batch's Redis replies and alert deliveries\n"
    "succeed; if Redis is unreachable it pauses, retries with backoff and resumes.\n"
    "With --top N it prints the highest-risk subjects now instead, and with --show\n"
    "SUBJECT... what the state holds for those subjects: score, as_of, area scores,\n"
    "level and since when, the 90-day list, the last alert, event keys seen by month\n"
    "(no Kafka needed; exit status 3 if a subject has no state).",
    options,
    "Examples:\n"
    "  caresignal-score --config " CS_SYSCONFDIR "/caresignal/caresignal.properties\n"
    "  caresignal-score --config " CS_SYSCONFDIR
    "/caresignal/caresignal.properties --top 10\n"
    "  caresignal-score --config ... --top 20 --kind LOCAL_AREA --json\n"
    "  caresignal-score --config ... --show LOCATION:1-101669119 --json",
};

/* ------------------------------------------------------------------ the consumer */

static int run_consumer(const cs_config_t *cfg, cs_registry_t *reg, cs_rules_t *rules,
                        cs_scorer_t *scorer, cs_redis_t *redis)
{
    char errstr[512];
    /* the worker executes on the connection the function was loaded on; the loop reads
     * start positions on its own */
    cs_redis_t *reader = cs_redis_new_from_config(cfg);
    cs_score_stage_t *stage =
        cs_score_stage_new(cfg, reg, scorer, redis, reader, errstr, sizeof(errstr));
    if (!stage)
        cs_cli_fail(&spec, "%s", errstr);
    const char *topics[] = {cfg->topic_events};
    cs_runtime_options_t opt =
        cs_app_runtime_options(cfg, topics, 1, (size_t)cfg->score_batch_max);
    const char *outputs[] = {cfg->topic_alerts, cfg->topic_deadletter};
    opt.outputs = outputs;
    opt.noutputs = 2;
    cs_runtime_handler_t handler = cs_score_stage_handler(stage);
    cs_runtime_t *rt = cs_app_runtime(&spec, cfg, &opt, &handler);
    if (cs_score_stage_start(stage, rt))
        cs_cli_fail(&spec, "cannot start the redis worker");
    cs_log_info("score started", "{s:s, s:s, s:s, s:s, s:s}", "group", cfg->group_id,
                "namespace", cfg->state_namespace, "function", cs_scorer_function(scorer),
                "rules_version", rules->version, "alerts_topic", cfg->topic_alerts);
    cs_runtime_run(rt);
    cs_log_info("score stopping", NULL);
    cs_runtime_destroy(rt);
    cs_score_stage_destroy(stage);
    cs_redis_destroy(reader);
    return cs_exit_status();
}

/* ------------------------------------------------------------------ --top */

static int run_top(const cs_config_t *cfg, const cs_cli_t *cli, cs_rules_t *rules,
                   cs_scorer_t *scorer, cs_redis_t *redis)
{
    long top;
    const char *v = cs_cli_get(cli, &spec, "top");
    if (cs_cli_parse_long(v, 1, 100000, &top))
        cs_cli_fail(&spec, "option --top: expected a number from 1 to 100000, got '%s'",
                    v);
    cs_subject_kind_t kind = CS_SUBJECT_LOCATION;
    if ((v = cs_cli_get(cli, &spec, "kind"))) {
        int k = cs_enum_index(cs_subject_kind_names, CS_SUBJECT_COUNT, v);
        if (k < 0)
            cs_cli_fail(&spec, "option --kind: expected LOCATION or LOCAL_AREA, got '%s'",
                        v);
        kind = (cs_subject_kind_t)k;
    }
    int64_t now = cs_wall_ms();
    if ((v = cs_cli_get(cli, &spec, "at")) && cs_time_parse_iso8601(v, strlen(v), &now))
        cs_cli_fail(&spec,
                    "option --at: expected an ISO-8601 time with an offset, got '%s'", v);
    int as_json = cs_cli_get(cli, &spec, "json") != NULL;
    (void)cfg;

    char errstr[512];
    if (cs_redis_connect(redis, errstr, sizeof(errstr))) {
        cs_log_fatal("redis unreachable", "{s:s}", "error", errstr);
        return 1;
    }
    /* the rank is decay-invariant (score_rank_value), so the sorted set's order is the
     * order of scores decayed to any "now" */
    char **ids = NULL;
    size_t nids = 0;
    if (cs_scorer_top(scorer, redis, kind, top, &ids, &nids, errstr, sizeof(errstr))) {
        cs_log_fatal("cannot read the rank", "{s:s}", "error", errstr);
        return 1;
    }
    const char **subjects = calloc(nids + 1, sizeof(*subjects));
    cs_subject_view_t *views = calloc(nids + 1, sizeof(*views));
    if (!subjects || !views) {
        cs_log_fatal("out of memory", NULL);
        return 1;
    }
    for (size_t i = 0; i < nids; i++)
        subjects[i] = ids[i];
    cs_err_t err =
        cs_scorer_read(scorer, redis, subjects, nids, views, errstr, sizeof(errstr));
    if (err) {
        cs_log_fatal("cannot read the state", "{s:s}", "error", errstr);
        return 1;
    }
    char when[32];
    cs_time_format(now, when, sizeof(when));
    if (!as_json)
        printf("Highest risk %s subjects at %s (scores decayed to then)\n%-4s %-26s %-8s "
               "%8s %9s "
               "%8s %9s %9s  %s\n",
               cs_subject_kind_names[kind], when, "#", "subject", "level", "score",
               "safe_care", "staffing", "abuse", "assurance", "last events");
    for (size_t i = 0; i < nids; i++) {
        const cs_subject_view_t *sv = &views[i];
        if (!sv->exists)
            continue;
        double s = cs_scorer_decay(rules, sv->score, sv->as_of, now);
        double areas[CS_AREA_COUNT];
        for (int a = 0; a < CS_AREA_COUNT; a++)
            areas[a] = cs_scorer_decay(rules, sv->area_scores[a], sv->as_of, now);
        const char *level = cs_level_names[sv->level];
        const char *subject = subjects[i];
        json_t *last =
            cs_recent_events_json(sv->events, sv->nevents < 3 ? sv->nevents : 3);
        if (as_json) {
            json_t *line = json_pack(
                "{s:i, s:s, s:s, s:f, s:I, s:{s:f, s:f, s:f, s:f}, s:O}", "rank",
                (int)i + 1, "subject", subject, "level", level, "score_now", s, "as_of",
                (json_int_t)sv->as_of, "area_scores_now", "SAFE_CARE", areas[0],
                "STAFFING", areas[1], "PROTECTION_FROM_ABUSE", areas[2], "ASSURANCE",
                areas[3], "last_events", last);
            char *text = json_dumps(line, JSON_COMPACT);
            puts(text);
            free(text);
            json_decref(line);
        } else {
            char lastbuf[512] = "";
            size_t k;
            json_t *e;
            json_array_foreach(last, k, e)
            {
                size_t len = strlen(lastbuf);
                snprintf(lastbuf + len, sizeof(lastbuf) - len, "%s%s/%s", k ? ", " : "",
                         json_string_value(json_object_get(e, "signal")),
                         json_string_value(json_object_get(e, "severity")));
            }
            printf("%-4zu %-26s %-8s %8.1f %9.1f %8.1f %9.1f %9.1f  %s\n", i + 1, subject,
                   level, s, areas[0], areas[1], areas[2], areas[3], lastbuf);
        }
        json_decref(last);
    }
    for (size_t i = 0; i < nids; i++) {
        cs_subject_view_release(&views[i]);
        free(ids[i]);
    }
    free(ids);
    free(views);
    free(subjects);
    return 0;
}

/* ------------------------------------------------------------------ --show */

/* Prints what the state holds for each subject named: one JSON object per line with
 * --json (docs/contract/redis-layout.md, "Reading a subject"), else a summary a person
 * reads. @returns 0, 1 if Redis cannot be read, 3 if a subject has no state. */
static int run_show(const cs_cli_t *cli, const cs_rules_t *rules, cs_scorer_t *scorer,
                    cs_redis_t *redis)
{
    if (!cli->nargs)
        cs_cli_fail(&spec, "--show needs one or more subjects (LOCATION:<id>, "
                           "LOCAL_AREA:<id>)");
    int as_json = cs_cli_get(cli, &spec, "json") != NULL;
    char errstr[512];
    if (cs_redis_connect(redis, errstr, sizeof(errstr))) {
        cs_log_fatal("redis unreachable", "{s:s}", "error", errstr);
        return 1;
    }
    size_t n = (size_t)cli->nargs;
    cs_subject_view_t *views = calloc(n, sizeof(*views));
    if (!views) {
        cs_log_fatal("out of memory", NULL);
        return 1;
    }
    cs_err_t err = cs_scorer_read(scorer, redis, (const char *const *)cli->args, n, views,
                                  errstr, sizeof(errstr));
    if (err == CS_ERR_INVALID_ARG)
        cs_cli_fail(&spec, "%s", errstr);
    if (err) {
        cs_log_fatal("cannot read the state", "{s:s}", "error", errstr);
        free(views);
        return 1;
    }
    int missing = 0;
    for (size_t i = 0; i < n; i++) {
        const cs_subject_view_t *v = &views[i];
        missing |= !v->exists;
        if (as_json) {
            json_t *j = cs_subject_view_json(v);
            char *text = json_dumps(j, JSON_COMPACT);
            puts(text);
            free(text);
            json_decref(j);
            continue;
        }
        if (!v->exists) {
            printf("%s: no state\n", cli->args[i]);
            continue;
        }
        char asof[32], since[32];
        cs_time_format(v->as_of, asof, sizeof(asof));
        cs_time_format(v->level_since, since, sizeof(since));
        printf("%s\n  level %s since %s\n  score %.2f at %s (%.2f now)\n", cli->args[i],
               cs_level_names[v->level], v->level_since ? since : "(never changed)",
               v->score, asof, cs_scorer_decay(rules, v->score, v->as_of, cs_wall_ms()));
        printf("  areas");
        for (int a = 0; a < CS_AREA_COUNT; a++)
            printf(" %s %.2f", cs_area_names[a], v->area_scores[a]);
        printf("\n  events applied %lld, partner duplicates %lld, assurance %lld\n",
               v->events_total, v->duplicates, v->assurance);
        if (v->has_last_alert) {
            char at[32];
            cs_time_format(v->last_alert.as_of, at, sizeof(at));
            printf("  last alert %s %s -> %s (%s) at %s, triggered by %s, id %s%s\n",
                   cs_alert_kind_names[v->last_alert.kind],
                   cs_level_names[v->last_alert.previous_level],
                   cs_level_names[v->last_alert.level],
                   cs_reason_names[v->last_alert.reason], at, v->last_alert.triggered_by,
                   v->last_alert.alert_id, v->npending ? " (not yet delivered)" : "");
        }
        printf("  %d events in the last 90 days (newest first):\n", v->nevents);
        for (int k = 0; k < v->nevents; k++) {
            char at[32];
            cs_time_format(v->events[k].occurred_at, at, sizeof(at));
            printf("    %s  %-20s %-8s %s\n", at, cs_signal_names[v->events[k].signal],
                   cs_severity_names[v->events[k].severity], v->events[k].event_key);
        }
        printf("  event keys seen by month:");
        for (int m = 0; m < v->nmonths; m++)
            printf(" %s %lld", v->months[m].month, v->months[m].event_keys);
        printf("\n");
    }
    for (size_t i = 0; i < n; i++)
        cs_subject_view_release(&views[i]);
    free(views);
    return missing ? 3 : 0;
}

int main(int argc, char **argv)
{
    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    int top = cs_cli_get(&cli, &spec, "top") != NULL;
    int show = cs_cli_get(&cli, &spec, "show") != NULL;
    if (top && show)
        cs_cli_fail(&spec, "options --top and --show: one or the other");
    if (cli.nargs && !show)
        cs_cli_fail(&spec, "unexpected argument '%s' (see --help)", cli.args[0]);
    if (!top && (cs_cli_get(&cli, &spec, "kind") || cs_cli_get(&cli, &spec, "at")))
        cs_cli_fail(&spec, "options --kind and --at go with --top");
    if (!top && !show && cs_cli_get(&cli, &spec, "json"))
        cs_cli_fail(&spec, "option --json goes with --top or --show");
    if (!top && !show)
        cs_cli_require(&spec, &cfg, CS_PROG_SCORE);

    cs_registry_t *reg = cs_app_registry(&spec, &cfg);
    cs_rules_t *rules = cs_app_rules(&spec, &cfg);
    char errstr[512];
    cs_scorer_t *scorer = cs_scorer_new_layout(rules, cfg.state_namespace,
                                               cfg.state_layout, errstr, sizeof(errstr));
    if (!scorer || cs_scorer_set_compute(scorer, !strcmp(cfg.state_engine, "scorer"),
                                         errstr, sizeof(errstr)))
        cs_cli_fail(&spec, "%s", errstr);
    cs_redis_t *redis = cs_redis_new_from_config(&cfg);
    if (!redis)
        cs_cli_fail(&spec, "out of memory");
    cs_signals_install();

    int rc;
    if (top) {
        rc = run_top(&cfg, &cli, rules, scorer, redis);
    } else if (show) {
        rc = run_show(&cli, rules, scorer, redis);
    } else {
        cs_err_t err = cs_redis_connect_retry(redis, -1, errstr, sizeof(errstr));
        if (err == CS_ERR_CONFIG)
            cs_cli_fail(&spec, "%s", errstr);
        if (err == CS_OK &&
            cs_redis_check_noeviction(redis, errstr, sizeof(errstr)) == CS_ERR_CONFIG)
            cs_cli_fail(&spec, "%s", errstr);
        if (err == CS_OK)
            err = cs_redis_function_load(redis, cs_scorer_library(scorer), errstr,
                                         sizeof(errstr));
        if (err == CS_OK)
            err = cs_scorer_claim(scorer, redis, errstr, sizeof(errstr));
        if (err == CS_ERR_INVALID_ARG) /* a namespace of the other layout */
            cs_cli_fail(&spec, "%s", errstr);
        if (err == CS_ERR_FATAL) {
            cs_log_fatal("redis refused us", "{s:s}", "error", errstr);
            rc = 1;
        } else if (err) {
            rc = cs_running() ? 1 : 0; /* stopped while waiting for Redis */
        } else {
            rc = run_consumer(&cfg, reg, rules, scorer, redis);
        }
    }
    cs_redis_destroy(redis);
    cs_scorer_destroy(scorer);
    cs_rules_destroy(rules);
    cs_registry_destroy(reg);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return rc;
}

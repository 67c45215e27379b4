/* caresignal-score: canonical events from intel.events applied to the risk state in Redis
 * (one FCALL per subject per batch), level changes published as RiskAlerts; and the
 * "highest risk first" read path (--top). docs/contract/risk-model.md to docs/contract/guarantees.md. */
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
    {"json", NULL, "with --top: one JSON object per line instead of a table"},
    {NULL, NULL, NULL},
};

static const cs_cli_spec_t spec = {
    "caresignal-score",
    CS_PROG_SCORE,
    "[options]",
    "Consumes canonical events (topic.events) as consumer group group.id, applies each\n"
    "subject's events to its risk state in Redis with one Redis function call per\n"
    "subject and batch (exactly once: redeliveries and partner duplicates are skipped;\n"
    "a batch is what arrived while Redis ran the previous one, up to score.batch.max),\n"
    "and publishes a RiskAlert to topic.alerts whenever a subject's level changes.\n"
    "Offsets are stored only after the batch's Redis replies and alert deliveries\n"
    "succeed; if Redis is unreachable it pauses, retries with backoff and resumes.\n"
    "With --top N it prints the highest-risk subjects now instead (no Kafka needed).",
    options,
    "Examples:\n"
    "  caresignal-score --config " CS_SYSCONFDIR "/caresignal/caresignal.properties\n"
    "  caresignal-score --config " CS_SYSCONFDIR "/caresignal/caresignal.properties --top 10\n"
    "  caresignal-score --config ... --top 20 --kind LOCAL_AREA --json",
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

    char errstr[512], key[256], count[32];
    if (cs_redis_connect(redis, errstr, sizeof(errstr))) {
        cs_log_fatal("redis unreachable", "{s:s}", "error", errstr);
        return 1;
    }
    /* the rank is decay-invariant (score_rank_value), so the sorted set's order is the
     * order of scores decayed to any "now" */
    cs_scorer_rank_key(scorer, kind, key, sizeof(key));
    snprintf(count, sizeof(count), "%ld", top - 1);
    const char *argv[] = {"ZREVRANGE", key, "0", count};
    redisReply *ids = cs_redis_command(redis, 4, argv, NULL, errstr, sizeof(errstr));
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        cs_log_fatal("cannot read the rank", "{s:s}", "error", ids ? ids->str : errstr);
        if (ids)
            freeReplyObject(ids);
        return 1;
    }
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    for (size_t i = 0; i < ids->elements; i++) {
        char skey[512], ekey[512];
        cs_scorer_state_key(scorer, ids->element[i]->str, skey, sizeof(skey));
        cs_scorer_events_key(scorer, ids->element[i]->str, ekey, sizeof(ekey));
        const char *hm[] = {"HMGET",         skey,
                            "score",         "as_of",
                            "level",         "area.SAFE_CARE",
                            "area.STAFFING", "area.PROTECTION_FROM_ABUSE",
                            "area.ASSURANCE"};
        cs_redis_pipe_add(p, 9, hm, NULL);
        const char *zr[] = {"ZREVRANGE", ekey, "0", "2", "WITHSCORES"};
        cs_redis_pipe_add(p, 5, zr, NULL);
    }
    if (ids->elements && cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr))) {
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
    for (size_t i = 0; i < ids->elements; i++) {
        const redisReply *h = cs_redis_pipe_reply(p, 2 * i),
                         *z = cs_redis_pipe_reply(p, 2 * i + 1);
        if (!h || h->type != REDIS_REPLY_ARRAY || h->elements != 7 || !h->element[0]->str)
            continue;
        int64_t as_of = strtoll(h->element[1]->str ? h->element[1]->str : "0", NULL, 10);
        double s = cs_scorer_decay(rules, strtod(h->element[0]->str, NULL), as_of, now);
        double areas[CS_AREA_COUNT];
        for (int a = 0; a < CS_AREA_COUNT; a++)
            areas[a] = cs_scorer_decay(
                rules, h->element[3 + a]->str ? strtod(h->element[3 + a]->str, NULL) : 0,
                as_of, now);
        const char *level = h->element[2]->str ? h->element[2]->str : "NONE";
        const char *subject = ids->element[i]->str;
        json_t *last = json_array();
        for (size_t k = 0; z && z->type == REDIS_REPLY_ARRAY && k + 1 < z->elements;
             k += 2) {
            char ek[CS_EVENT_KEY_MAX];
            int sig = 0, sev = 0;
            if (sscanf(z->element[k]->str, "%199s %d %d", ek, &sig, &sev) == 3 &&
                sig >= 0 && sig < CS_SIGNAL_COUNT && sev >= 0 && sev < CS_SEVERITY_COUNT)
                json_array_append_new(
                    last,
                    json_pack("{s:s, s:s, s:s, s:I}", "event_key", ek, "signal",
                              cs_signal_names[sig], "severity", cs_severity_names[sev],
                              "occurred_at",
                              (json_int_t)strtoll(z->element[k + 1]->str, NULL, 10)));
        }
        if (as_json) {
            json_t *line = json_pack(
                "{s:i, s:s, s:s, s:f, s:I, s:{s:f, s:f, s:f, s:f}, s:O}", "rank",
                (int)i + 1, "subject", subject, "level", level, "score_now", s, "as_of",
                (json_int_t)as_of, "area_scores_now", "SAFE_CARE", areas[0], "STAFFING",
                areas[1], "PROTECTION_FROM_ABUSE", areas[2], "ASSURANCE", areas[3],
                "last_events", last);
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
    cs_redis_pipe_destroy(p);
    freeReplyObject(ids);
    return 0;
}

int main(int argc, char **argv)
{
    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    if (cli.nargs)
        cs_cli_fail(&spec, "unexpected argument '%s' (see --help)", cli.args[0]);
    int top = cs_cli_get(&cli, &spec, "top") != NULL;
    if (!top && (cs_cli_get(&cli, &spec, "kind") || cs_cli_get(&cli, &spec, "at") ||
                 cs_cli_get(&cli, &spec, "json")))
        cs_cli_fail(&spec, "options --kind, --at and --json go with --top");
    if (!top)
        cs_cli_require(&spec, &cfg, CS_PROG_SCORE);

    cs_registry_t *reg = cs_app_registry(&spec, &cfg);
    cs_rules_t *rules = cs_app_rules(&spec, &cfg);
    char errstr[512];
    cs_scorer_t *scorer =
        cs_scorer_new(rules, cfg.state_namespace, errstr, sizeof(errstr));
    if (!scorer)
        cs_cli_fail(&spec, "%s", errstr);
    cs_redis_t *redis = cs_redis_new_from_config(&cfg);
    cs_signals_install();

    int rc;
    if (top) {
        rc = run_top(&cfg, &cli, rules, scorer, redis);
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

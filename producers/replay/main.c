/* caresignal-replay: ops tooling over the topics — rewind or fast-forward a stopped
 * consumer group, re-drive dead letters, rebuild the risk state into a fresh namespace,
 * try other rules against history. Dry run by default; --execute acts. */
#include <stdio.h>
#include <string.h>

#include "caresignal/log.h"
#include "caresignal/signals.h"
#include "caresignal/timeutil.h"
#include "replay.h"

static const cs_cli_option_t options[] = {
    {"execute", NULL,
     "act (without it: print exactly what would be done, change nothing)"},
    {"group", "G", "offsets: the consumer group to move"},
    {"topic", "T", "offsets: the topic whose offsets move"},
    {"to-time", "ISO-8601", "offsets: the first message at or after this time"},
    {"to", "WHERE", "offsets: earliest or latest"},
    {"where", "error=CODE",
     "redrive: only dead letters with this cs.error (default: all)"},
    {"since", "ISO-8601", "redrive: only dead letters written at or after this time"},
    {"until", "ISO-8601", "redrive: only dead letters written before this time"},
    {"namespace", "NS", "rebuild: the fresh Redis namespace to rebuild into"},
    {"from-time", "ISO-8601",
     "rebuild, whatif: replay events from this time (default: all)"},
    {"rules", "FILE", "whatif: the rules file to try"},
    {"json", NULL, "whatif: the report as JSON"},
    {NULL, NULL, NULL},
};

static const cs_cli_spec_t spec = {
    "caresignal-replay",
    CS_PROG_REPLAY,
    "offsets|redrive|rebuild|whatif [options]",
    "Ops tools over caresignal's topics. Every sub-command is a dry run unless --execute "
    "is\n"
    "given: it prints exactly what it would do and changes nothing. Long work shows a\n"
    "progress bar on a terminal, progress lines otherwise.\n"
    "\n"
    "  offsets --group G --topic T (--to-time ISO | --to earliest|latest)\n"
    "      move a STOPPED consumer group's committed offsets on T; prints old -> new and "
    "lag\n"
    "  redrive [--where error=CODE] [--since ISO] [--until ISO]\n"
    "      send dead letters back to the raw topic they came from (after a fix, e.g. a\n"
    "      directory update); each dead letter is re-driven once, however often it is "
    "run\n"
    "  rebuild --namespace NS [--from-time ISO]\n"
    "      replay topic.events into the fresh Redis namespace NS (no consumer group, "
    "the\n"
    "      live one untouched), verify it against the live namespace, print how to "
    "switch\n"
    "  whatif --rules FILE [--from-time ISO] [--json]\n"
    "      replay history under FILE and under the live rules into scratch namespaces "
    "and\n"
    "      report the alerts that would be added, removed or changed; cleans up after",
    options,
    "Examples:\n"
    "  caresignal-replay offsets --group caresignal-score --topic intel.events --to "
    "earliest\n"
    "  caresignal-replay redrive --where error=UNKNOWN_LOCATION --execute\n"
    "  caresignal-replay rebuild --namespace cs2 --execute\n"
    "  caresignal-replay whatif --rules /tmp/lower-inspect.json --execute",
};

int64_t replay_time_option(const replay_ctx_t *ctx, const char *option)
{
    const char *v = cs_cli_get(ctx->cli, ctx->spec, option);
    int64_t ms;
    if (!v)
        return -1;
    if (cs_time_parse_iso8601(v, strlen(v), &ms))
        cs_cli_fail(ctx->spec,
                    "option --%s: expected an ISO-8601 time with an offset, got '%s'",
                    option, v);
    return ms;
}

int main(int argc, char **argv)
{
    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    if (cli.nargs != 1)
        cs_cli_fail(&spec,
                    "expected one sub-command: offsets, redrive, rebuild or whatif (see "
                    "--help)");
    cs_cli_require(&spec, &cfg, CS_PROG_REPLAY);
    /* an option that belongs to another sub-command is a mistake worth stopping for */
    static const struct {
        const char *option, *commands;
    } allowed[] = {
        {"group", "offsets"}, {"topic", "offsets"},     {"to-time", "offsets"},
        {"to", "offsets"},    {"where", "redrive"},     {"since", "redrive"},
        {"until", "redrive"}, {"namespace", "rebuild"}, {"from-time", "rebuild whatif"},
        {"rules", "whatif"},  {"json", "whatif"}};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (cs_cli_get(&cli, &spec, allowed[i].option) &&
            !strstr(allowed[i].commands, cli.args[0]))
            cs_cli_fail(&spec, "option --%s does not go with '%s' (only: %s)",
                        allowed[i].option, cli.args[0], allowed[i].commands);
    replay_ctx_t ctx = {&spec, &cfg, &cli, cs_cli_get(&cli, &spec, "execute") != NULL};
    static const struct {
        const char *name;
        int (*run)(const replay_ctx_t *);
    } commands[] = {{"offsets", replay_offsets},
                    {"redrive", replay_redrive},
                    {"rebuild", replay_rebuild},
                    {"whatif", replay_whatif}};
    int rc = -1;
    cs_signals_install();
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(cli.args[0], commands[i].name))
            rc = commands[i].run(&ctx);
    if (rc < 0)
        cs_cli_fail(
            &spec,
            "unknown sub-command '%s': expected offsets, redrive, rebuild or whatif",
            cli.args[0]);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return rc;
}

/* caresignal command lines: shared options, --help text, exit codes 0/2 for main(). */
#include "caresignal/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/log.h"

static void cs_cli_help(const cs_cli_spec_t *spec)
{
    printf("Usage: %s %s\n\n%s\n\n", spec->program,
           spec->usage ? spec->usage : "[options]", spec->summary ? spec->summary : "");
    printf("Options:\n");
    for (const cs_cli_option_t *o = spec->options; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
        printf("  %-28s %s\n", left, o->help);
    }
    printf("  %-28s %s\n", "--config FILE",
           "read key=value configuration (repeatable); an example: " CS_SYSCONFDIR
           "/caresignal/caresignal.properties");
    printf("  %-28s %s\n", "--set KEY=VALUE",
           "override one key (repeatable, after files)");
    printf("  %-28s %s\n", "--log-level LEVEL", "debug, info, warn or error (log.level)");
    printf("  %-28s %s\n", "--help", "show this help and exit");
    printf("  %-28s %s\n", "--version", "show the version and exit");
    printf("\n");
    cs_config_print_help(stdout, spec->prog);
    if (spec->epilog)
        printf("\n%s\n", spec->epilog);
    printf("\nExit status: 0 success, 1 runtime failure, 2 bad usage or configuration.\n"
           "Logs: JSON lines on stderr.\n");
}

void cs_cli_fail(const cs_cli_spec_t *spec, const char *fmt, ...)
{
    /* one JSON line like every other line on stderr (docs/contract/configuration.md), at level fatal, its
     * message naming the key; the program name may not be set yet: set it */
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cs_log_init(spec->program, CS_LOG_FATAL);
    cs_log_fatal(msg, "{s:i}", "exit", 2);
    exit(2);
}

int cs_cli_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int cs_cli_option_index(const cs_cli_spec_t *spec, const char *name, size_t len)
{
    int i = 0;
    for (const cs_cli_option_t *o = spec->options; o && o->name; o++, i++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len))
            return i;
    return -1;
}

static void cs_cli_push(cs_cli_t *out, int idx, const char *v)
{
    const char **grown =
        realloc(out->multi[idx], (out->multi_cnt[idx] + 2) * sizeof(*grown));
    if (!grown) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    grown[out->multi_cnt[idx]++] = v;
    grown[out->multi_cnt[idx]] = NULL;
    out->multi[idx] = grown;
    out->values[idx] = v;
}

/* A secret given as --set KEY=VALUE is in /proc/<pid>/cmdline, which every local user
 * can read: overwrite its value in argv (our own memory, what the listing shows) once it
 * is parsed. @returns 1 if \p pair held a secret. */
static int cs_cli_hide_secret(const char *pair)
{
    const char *eq = strchr(pair, '=');
    if (!eq)
        return 0;
    char key[256];
    size_t n = (size_t)(eq - pair);
    while (n && (pair[n - 1] == ' ' || pair[n - 1] == '\t'))
        n--;
    const char *k = pair;
    while (n && (*k == ' ' || *k == '\t'))
        k++, n--;
    if (n >= sizeof(key))
        return 0;
    memcpy(key, k, n);
    key[n] = '\0';
    if (!cs_config_key_is_secret(key) || (n > 5 && !strcmp(key + n - 5, ".file")))
        return 0;
    memset((char *)eq + 1, 'x', strlen(eq + 1));
    return 1;
}

void cs_cli_parse(const cs_cli_spec_t *spec, int argc, char **argv, cs_config_t *cfg,
                  cs_cli_t *out)
{
    memset(out, 0, sizeof(*out));
    if (cs_config_init(cfg, spec->program) != CS_OK)
        cs_cli_fail(spec, "out of memory");

    const char **configs = calloc((size_t)argc + 1, sizeof(*configs));
    const char **sets = calloc((size_t)argc + 1, sizeof(*sets));
    out->args = calloc((size_t)argc + 1, sizeof(*out->args));
    if (!configs || !sets || !out->args)
        cs_cli_fail(spec, "out of memory");
    int nconfigs = 0, nsets = 0;
    const char *log_level = NULL;

    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "--")) {
            while (++i < argc)
                out->args[out->nargs++] = argv[i];
            break;
        }
        if (strncmp(a, "--", 2) || !a[2]) {
            out->args[out->nargs++] = a;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const char *inline_val = eq ? eq + 1 : NULL;
#define CS_IS(opt) (len == strlen(opt) && !strncmp(name, opt, len))
        if (CS_IS("help")) {
            cs_cli_help(spec);
            exit(0);
        }
        if (CS_IS("version")) {
            printf("%s %s\n", spec->program, CS_VERSION);
            exit(0);
        }
        int idx = cs_cli_option_index(spec, name, len);
        int takes_arg = CS_IS("config") || CS_IS("set") || CS_IS("log-level") ||
                        (idx >= 0 && spec->options[idx].arg);
        const char *val = inline_val;
        if (takes_arg && !val) {
            if (i + 1 >= argc)
                cs_cli_fail(spec, "option --%.*s needs a value (see --help)", (int)len,
                            name);
            val = argv[++i];
        } else if (!takes_arg && inline_val) {
            cs_cli_fail(spec, "option --%.*s takes no value", (int)len, name);
        }
        if (CS_IS("config"))
            configs[nconfigs++] = val;
        else if (CS_IS("set"))
            sets[nsets++] = val;
        else if (CS_IS("log-level"))
            log_level = val;
        else if (idx >= 0)
            cs_cli_push(out, idx, takes_arg ? val : "1");
        else
            cs_cli_fail(spec, "unknown option --%.*s (see --help)", (int)len, name);
#undef CS_IS
    }

    char errstr[512];
    for (int i = 0; i < nconfigs; i++)
        if (cs_config_load_file(cfg, configs[i], errstr, sizeof(errstr)) != CS_OK)
            cs_cli_fail(spec, "%s", errstr);
    int secret_on_command_line = 0;
    for (int i = 0; i < nsets; i++) {
        if (cs_config_set_pair(cfg, sets[i], errstr, sizeof(errstr)) != CS_OK)
            cs_cli_fail(spec, "%s (--set)", errstr);
        secret_on_command_line |= cs_cli_hide_secret(sets[i]);
    }
    if (log_level && cs_config_set(cfg, "log.level", log_level, errstr, sizeof(errstr)))
        cs_cli_fail(spec, "%s (--log-level)", errstr);
    free(configs);
    free(sets);

    cs_log_level_t lvl = CS_LOG_INFO;
    cs_log_level_parse(cfg->log_level, &lvl);
    cs_log_init(spec->program, lvl);
    if (secret_on_command_line)
        cs_log_warn(
            "a secret was given with --set: it stood in the process listing until "
            "now (blanked since); give it as a file instead (<key>.file, e.g. "
            "redis.password.file)",
            NULL);
}

void cs_cli_release(cs_cli_t *cli)
{
    if (!cli)
        return;
    for (int i = 0; i < CS_CLI_MAX_OPTIONS; i++)
        free(cli->multi[i]);
    free(cli->args);
    memset(cli, 0, sizeof(*cli));
}

const char *cs_cli_get(const cs_cli_t *cli, const cs_cli_spec_t *spec, const char *name)
{
    int idx = cs_cli_option_index(spec, name, strlen(name));
    return idx >= 0 ? cli->values[idx] : NULL;
}

void cs_cli_require(const cs_cli_spec_t *spec, const cs_config_t *cfg, unsigned prog)
{
    char errstr[512];
    if (cs_config_check_required(cfg, prog, errstr, sizeof(errstr)) != CS_OK)
        cs_cli_fail(spec, "%s", errstr);
}

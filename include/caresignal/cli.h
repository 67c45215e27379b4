/* caresignal command lines: the options every program shares, and --help from one table.
 */
#ifndef CARESIGNAL_CLI_H
#define CARESIGNAL_CLI_H

#include "caresignal/config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CS_CLI_MAX_OPTIONS 32

/** One program-specific long option. */
typedef struct cs_cli_option {
    const char *name; /**< without "--" */
    const char *arg;  /**< placeholder of its argument ("N"), NULL for a flag */
    const char *help;
} cs_cli_option_t;

/** What a program tells the parser about itself. All strings static. */
typedef struct cs_cli_spec {
    const char *program; /**< "caresignal-score" */
    unsigned prog;       /**< CS_PROG_* bit: which keys --help lists */
    const char *usage;   /**< after the program name: "[options]" */
    const char *summary; /**< a paragraph for --help */
    const cs_cli_option_t
        *options;       /**< terminated by a row with name NULL; may be NULL */
    const char *epilog; /**< extra --help text (examples), may be NULL */
} cs_cli_spec_t;

/** The parse result. Values are borrowed from argv. */
typedef struct cs_cli {
    const char
        *values[CS_CLI_MAX_OPTIONS]; /**< per spec option: last value, "1" for a flag */
    const char *
        *multi[CS_CLI_MAX_OPTIONS]; /**< per spec option: every value, NULL-ended */
    int multi_cnt[CS_CLI_MAX_OPTIONS];
    char **args; /**< positional arguments */
    int nargs;
} cs_cli_t;

/**
 * Parses \p argv for main(): defaults, then every --config FILE in order, then every
 * --set key=value in order, then --log-level; program options into \p out.
 * Accepts "--name value" and "--name=value"; "--" ends options.
 * --help and --version print to stdout and exit(0); a usage or configuration error
 * prints one line "<program>: <what, naming the key>" to stderr and exit(2).
 * Initialises logging from log.level. \p cfg must be uninitialised; the caller
 * releases it with cs_config_clear(); \p out with cs_cli_release().
 */
void cs_cli_parse(const cs_cli_spec_t *spec, int argc, char **argv, cs_config_t *cfg,
                  cs_cli_t *out);

/** Frees what cs_cli_parse allocated in \p cli. */
void cs_cli_release(cs_cli_t *cli);

/** @returns the value of option \p name (last one given), or NULL; borrowed. */
const char *cs_cli_get(const cs_cli_t *cli, const cs_cli_spec_t *spec, const char *name);

/** Stops with exit 2 and one line unless the keys \p prog requires are set. */
void cs_cli_require(const cs_cli_spec_t *spec, const cs_config_t *cfg, unsigned prog);

/** Prints "<program>: <message>" to stderr and exits 2 (usage/config error). */
void cs_cli_fail(const cs_cli_spec_t *spec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/** Parses a whole decimal number in [min,max]; @returns 0 on success. */
int cs_cli_parse_long(const char *s, long min, long max, long *out);

#ifdef __cplusplus
}
#endif
#endif

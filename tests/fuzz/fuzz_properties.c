/* caresignal fuzz target: the properties file (cs_config_init, cs_config_load_file). */
#include "fuzz_common.h"

#include "caresignal/config.h"

/* Input: the whole properties file given to --config. A file that loads is also
 * checked for required keys and read back key by key, as --help and start-up do. */
static cs_fuzz_file_t file;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        cs_fuzz_file_open(&file);
        ready = 1;
    }
    cs_config_t cfg;
    char errstr[512];
    if (cs_config_init(&cfg, "caresignal-fuzz"))
        cs_fuzz_die("cs_config_init", "out of memory");
    if (cs_config_load_file(&cfg, cs_fuzz_file_write(&file, data, size), errstr,
                            sizeof(errstr)) == CS_OK) {
        (void)cs_config_check_required(&cfg, CS_PROG_ALL, errstr, sizeof(errstr));
        for (const cs_config_key_t *k = cs_config_keys(); k->name; k++)
            (void)cs_config_get_string(&cfg, k->name);
    }
    cs_config_clear(&cfg);
    return 0;
}

/* caresignal fuzz target: the rules file (cs_rules_load). */
#include "fuzz_common.h"

#include "caresignal/rules.h"

/* Input: the whole rules file, loaded from a path as every program loads it. */
static cs_fuzz_file_t file;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        cs_fuzz_file_open(&file);
        ready = 1;
    }
    char errstr[512];
    cs_rules_t *rules =
        cs_rules_load(cs_fuzz_file_write(&file, data, size), errstr, sizeof(errstr));
    if (!rules)
        return 0;
    /* the scorer's per-event questions over every signal, severity and area */
    for (int s = 0; s < CS_SIGNAL_COUNT; s++)
        for (int v = 0; v < CS_SEVERITY_COUNT; v++) {
            (void)cs_rules_weight(rules, (cs_signal_t)s, (cs_severity_t)v);
            for (int a = 0; a < CS_AREA_COUNT; a++)
                (void)cs_rules_is_immediate(rules, (cs_signal_t)s, (cs_severity_t)v,
                                            (cs_area_t)a);
        }
    cs_rules_destroy(rules);
    return 0;
}

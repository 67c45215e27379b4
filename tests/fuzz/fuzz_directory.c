/* caresignal fuzz target: the location directory CSV (cs_directory_load). */
#include "fuzz_common.h"

#include "caresignal/directory.h"

/* Input: the whole CSV file. A directory that loads is also walked and looked up, as
 * the normaliser does for every event. */
static cs_fuzz_file_t file;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        cs_fuzz_file_open(&file);
        ready = 1;
    }
    char errstr[512];
    cs_directory_t *dir =
        cs_directory_load(cs_fuzz_file_write(&file, data, size), errstr, sizeof(errstr));
    if (!dir)
        return 0;
    size_t n = cs_directory_count(dir);
    for (size_t i = 0; i < n; i++) {
        const cs_location_t *l = cs_directory_at(dir, i);
        if (cs_directory_find(dir, l->location_id, strlen(l->location_id)) == NULL ||
            cs_directory_area_region(dir, l->local_authority_code,
                                     strlen(l->local_authority_code)) == NULL) {
            fprintf(stderr, "directory: row %zu loaded but cannot be found\n", i);
            abort();
        }
    }
    cs_directory_destroy(dir);
    return 0;
}

/* caresignal fuzz target: the schema registry file (cs_registry_load). */
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>

#include "caresignal/convert.h"
#include "caresignal/event.h"
#include "caresignal/registry.h"

/*
 * Input: the whole registry.json. It is written into a directory made once per process
 * that also holds symbolic links to the real .avsc files of schemas/, so an input can
 * name real schemas, and itself: a registry.json that is also a record schema
 * ({"type": "record", ..., "schemas": [{..., "file": "registry.json"}]}) lets the
 * fuzzer write schemas, which are then compiled as the programs compile them at
 * start-up (converters, the IntelEvent model check).
 *
 * The registry is the operator's file and names files to read: an entry naming a
 * device or another directory ("/dev/zero", "../../proc/self/mem") would make the
 * loader read without end, which says nothing about our parsing. Inputs whose
 * "file" values hold a '/' are therefore skipped, so every name stays in the
 * directory above.
 */
static char dir[64], reg_path[128];

/* Removes directory \p path and the files in it (no subdirectories are made). */
static void cs_fuzz_rmdir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

static void cs_fuzz_cleanup(void)
{
    cs_fuzz_rmdir(dir);
}

/*
 * libFuzzer often leaves by _Exit (a finding, a -runs replay), past atexit, so the
 * directory is named after its process and each start removes those of processes
 * that are gone.
 */
static void cs_fuzz_sweep(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        int pid;
        char tail;
        if (sscanf(e->d_name, "cs-fuzz-registry-%d%c", &pid, &tail) != 1 || pid <= 0 ||
            kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(p, sizeof(p), "%s/%s", base, e->d_name);
        cs_fuzz_rmdir(p);
    }
    if (d)
        closedir(d);
}

static void cs_fuzz_init(void)
{
    char schemas[4096], from[4608], to[512];
    /* in memory where there is a tmpfs: a file on disk made each write wait */
    static const char *const bases[] = {"/dev/shm", "/tmp"};
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]) && !dir[0]; i++) {
        cs_fuzz_sweep(bases[i]);
        snprintf(dir, sizeof(dir), "%s/cs-fuzz-registry-%d", bases[i], (int)getpid());
        if (mkdir(dir, 0700))
            dir[0] = '\0';
    }
    if (!dir[0])
        cs_fuzz_die("mkdir", "no writable /dev/shm or /tmp");
    atexit(cs_fuzz_cleanup);
    cs_fuzz_src("schemas", schemas, sizeof(schemas));
    DIR *d = opendir(schemas);
    if (!d)
        cs_fuzz_die("opendir", schemas);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".avsc"))
            continue;
        snprintf(from, sizeof(from), "%s/%s", schemas, e->d_name);
        snprintf(to, sizeof(to), "%s/%s", dir, e->d_name);
        if (symlink(from, to))
            cs_fuzz_die("symlink", to);
    }
    closedir(d);
    snprintf(reg_path, sizeof(reg_path), "%s/registry.json", dir);
}

/* @returns non-zero if some schemas[i].file holds a '/' (see above). */
static int cs_fuzz_names_outside(const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, 0, NULL);
    size_t i;
    json_t *entry;
    int outside = 0;
    json_array_foreach(json_object_get(root, "schemas"), i, entry)
    {
        const char *file = json_string_value(json_object_get(entry, "file"));
        if (file && strchr(file, '/'))
            outside = 1;
    }
    json_decref(root);
    return outside;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!reg_path[0])
        cs_fuzz_init();
    if (cs_fuzz_names_outside(data, size))
        return 0;
    FILE *f = fopen(reg_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f))
        cs_fuzz_die("writing", reg_path);
    char errstr[512];
    cs_registry_t *reg = cs_registry_load(reg_path, errstr, sizeof(errstr));
    if (!reg)
        return 0;
    /* what the programs do with a registry once it is loaded */
    for (size_t i = 0; i < cs_registry_count(reg); i++) {
        const cs_schema_t *s = cs_registry_at(reg, i);
        if (cs_registry_get(reg, s->id) != s || !cs_registry_latest(reg, s->subject))
            abort();
        (void)cs_schema_field_json(s, "occurred_at");
        cs_converter_destroy(cs_converter_new(s, errstr, sizeof(errstr)));
    }
    (void)cs_event_model_check(reg, errstr, sizeof(errstr));
    cs_registry_destroy(reg);
    return 0;
}

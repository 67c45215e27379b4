/* caresignal location directory: CSV parsing and lookup by location id and local area. */
#include "caresignal/directory.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/ids.h"

struct cs_directory {
    cs_location_t *locs;
    size_t n, cap;
    json_t *by_id;   /* location id -> json_integer(index) */
    json_t *by_area; /* GSS code -> json_integer(index of a location in it) */
};

void cs_directory_destroy(cs_directory_t *dir)
{
    if (!dir)
        return;
    for (size_t i = 0; i < dir->n; i++)
        free((char *)dir->locs[i].location_id); /* one allocation holds all six fields */
    free(dir->locs);
    json_decref(dir->by_id);
    json_decref(dir->by_area);
    free(dir);
}

#define CS_CSV_FIELDS 6

/*
 * Splits one CSV record (RFC 4180: fields may be quoted, "" is a quote inside quotes)
 * in place. @returns the number of fields, or -1 on an unterminated quote.
 */
static int cs_csv_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max)
            return max + 1;
        char *out = p;
        fields[n++] = out;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p)
                    return -1;
                if (*p == '"') {
                    if (p[1] == '"') {
                        *out++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *out++ = *p++;
            }
            if (*p && *p != ',')
                return -1;
        } else {
            while (*p && *p != ',')
                *out++ = *p++;
        }
        int more = *p == ',';
        if (more)
            p++;
        *out = '\0';
        if (!more)
            return n;
    }
}

static int cs_region_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              strchr(" -&',.", *s)))
            return 0;
    return 1;
}

static const char *cs_dir_header =
    "location_id,provider_id,name,local_authority_code,region,service_type";

static int cs_dir_add(cs_directory_t *dir, char **f, const char *path, int lineno,
                      char *errstr, size_t errstr_size)
{
    if (!cs_id_valid(CS_ID_LOCATION, f[0], strlen(f[0]))) {
        snprintf(errstr, errstr_size, "directory file '%s' line %d: bad location_id",
                 path, lineno);
        return -1;
    }
    if (!cs_id_valid(CS_ID_GSS, f[3], strlen(f[3]))) {
        snprintf(
            errstr, errstr_size,
            "directory file '%s' line %d: bad local_authority_code (expected a GSS code)",
            path, lineno);
        return -1;
    }
    if (!cs_region_ok(f[4])) {
        snprintf(errstr, errstr_size, "directory file '%s' line %d: bad region", path,
                 lineno);
        return -1;
    }
    if (json_object_get(dir->by_id, f[0])) {
        snprintf(errstr, errstr_size,
                 "directory file '%s' line %d: location_id %s listed twice", path, lineno,
                 f[0]);
        return -1;
    }
    if (dir->n == dir->cap) {
        size_t cap = dir->cap ? dir->cap * 2 : 1024;
        cs_location_t *grown = realloc(dir->locs, cap * sizeof(*grown));
        if (!grown)
            goto nomem;
        dir->locs = grown;
        dir->cap = cap;
    }
    size_t total = 0;
    for (int i = 0; i < CS_CSV_FIELDS; i++)
        total += strlen(f[i]) + 1;
    char *block = malloc(total), *p = block;
    if (!block)
        goto nomem;
    const char **dst[CS_CSV_FIELDS] = {
        &dir->locs[dir->n].location_id, &dir->locs[dir->n].provider_id,
        &dir->locs[dir->n].name,        &dir->locs[dir->n].local_authority_code,
        &dir->locs[dir->n].region,      &dir->locs[dir->n].service_type};
    for (int i = 0; i < CS_CSV_FIELDS; i++) {
        size_t len = strlen(f[i]) + 1;
        memcpy(p, f[i], len);
        *dst[i] = p;
        p += len;
    }
    json_object_set_new(dir->by_id, f[0], json_integer((json_int_t)dir->n));
    if (!json_object_get(dir->by_area, f[3]))
        json_object_set_new(dir->by_area, f[3], json_integer((json_int_t)dir->n));
    dir->n++;
    return 0;
nomem:
    snprintf(errstr, errstr_size, "directory file '%s': out of memory", path);
    return -1;
}

cs_directory_t *cs_directory_load(const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, errstr_size, "directory file '%s': cannot read: %s", path,
                 strerror(errno));
        return NULL;
    }
    cs_directory_t *dir = calloc(1, sizeof(*dir));
    if (!dir) {
        fclose(f);
        return NULL;
    }
    dir->by_id = json_object();
    dir->by_area = json_object();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, ok = 1;
    while (ok && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (lineno == 1) {
            /* tolerate a UTF-8 byte-order mark from spreadsheet exports */
            const char *h = strncmp(line, "\xEF\xBB\xBF", 3) ? line : line + 3;
            if (strcmp(h, cs_dir_header)) {
                snprintf(errstr, errstr_size,
                         "directory file '%s' line 1: expected the header %s", path,
                         cs_dir_header);
                ok = 0;
            }
            continue;
        }
        if (len == 0)
            continue;
        char *fields[CS_CSV_FIELDS + 1];
        int nf = cs_csv_split(line, fields, CS_CSV_FIELDS);
        if (nf < 0) {
            /* a quoted field cannot span lines here, so say so rather than miscount */
            snprintf(errstr, errstr_size,
                     "directory file '%s' line %d: unterminated quote, or text after a "
                     "closing quote",
                     path, lineno);
            ok = 0;
            break;
        }
        if (nf != CS_CSV_FIELDS) {
            snprintf(errstr, errstr_size,
                     "directory file '%s' line %d: expected %d comma-separated fields",
                     path, lineno, CS_CSV_FIELDS);
            ok = 0;
            break;
        }
        if (cs_dir_add(dir, fields, path, lineno, errstr, errstr_size))
            ok = 0;
    }
    free(line);
    if (ok && ferror(f)) {
        snprintf(errstr, errstr_size, "directory file '%s': read error", path);
        ok = 0;
    }
    fclose(f);
    if (ok && lineno == 0) {
        snprintf(errstr, errstr_size, "directory file '%s': empty", path);
        ok = 0;
    }
    if (!ok) {
        cs_directory_destroy(dir);
        return NULL;
    }
    return dir;
}

static const json_t *cs_dir_lookup(const json_t *index, const char *key, size_t len)
{
    return json_object_getn(index, key, len);
}

const cs_location_t *cs_directory_find(const cs_directory_t *dir, const char *id,
                                       size_t len)
{
    const json_t *i = cs_dir_lookup(dir->by_id, id, len);
    return i ? &dir->locs[json_integer_value(i)] : NULL;
}

const char *cs_directory_area_region(const cs_directory_t *dir, const char *la_code,
                                     size_t len)
{
    const json_t *i = cs_dir_lookup(dir->by_area, la_code, len);
    return i ? dir->locs[json_integer_value(i)].region : NULL;
}

size_t cs_directory_count(const cs_directory_t *dir)
{
    return dir->n;
}

const cs_location_t *cs_directory_at(const cs_directory_t *dir, size_t i)
{
    return i < dir->n ? &dir->locs[i] : NULL;
}

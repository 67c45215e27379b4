/* caresignal schema registry: the local registry file and its .avsc schemas. */
#include "caresignal/registry.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cs_registry {
    cs_schema_t *schemas;
    size_t n;
};

static void cs_schema_release(cs_schema_t *s)
{
    if (s->iface)
        avro_value_iface_decref(s->iface);
    if (s->avro)
        avro_schema_decref(s->avro);
    json_decref(s->json);
    json_decref(s->named);
    free((char *)s->subject);
    free((char *)s->file);
}

void cs_registry_destroy(cs_registry_t *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        cs_schema_release(&reg->schemas[i]);
    free(reg->schemas);
    free(reg);
}

/* Records every named type (record, enum, fixed) under its full name, so the JSON
 * converter can follow references such as "caresignal.Severity". Enclosed types
 * inherit the namespace of their enclosing named type (Avro's rule). The first name
 * defined twice goes to \p dup (left "" if none). */
static void cs_collect_named(json_t *type, const char *ns, json_t *named, char *dup,
                             size_t dup_size)
{
    size_t i;
    json_t *t;
    if (json_is_array(type)) {
        json_array_foreach(type, i, t) cs_collect_named(t, ns, named, dup, dup_size);
        return;
    }
    if (!json_is_object(type))
        return;
    const char *kind = json_string_value(json_object_get(type, "type"));
    if (!kind)
        return;
    if (!strcmp(kind, "array")) {
        cs_collect_named(json_object_get(type, "items"), ns, named, dup, dup_size);
        return;
    }
    if (!strcmp(kind, "map")) {
        cs_collect_named(json_object_get(type, "values"), ns, named, dup, dup_size);
        return;
    }
    if (strcmp(kind, "record") && strcmp(kind, "enum") && strcmp(kind, "fixed"))
        return;
    const char *name = json_string_value(json_object_get(type, "name"));
    const char *own_ns = json_string_value(json_object_get(type, "namespace"));
    if (!name)
        return;
    char full[512];
    if (strchr(name, '.'))
        snprintf(full, sizeof(full), "%s", name);
    else if (own_ns ? *own_ns : (ns && *ns))
        snprintf(full, sizeof(full), "%s.%s", own_ns ? own_ns : ns, name);
    else
        snprintf(full, sizeof(full), "%s", name);
    if (json_object_get(named, full) && !dup[0])
        snprintf(dup, dup_size, "%s", full);
    json_object_set(named, full, type);
    char *dot = strrchr(full, '.');
    if (dot)
        *dot = '\0';
    json_array_foreach(json_object_get(type, "fields"), i, t)
    {
        cs_collect_named(json_object_get(t, "type"), dot ? full : NULL, named, dup,
                         dup_size);
    }
}

/* The full name of named type \p name written inside namespace \p ns. */
static void cs_full_name(const char *name, const char *ns, char *out, size_t size)
{
    if (strchr(name, '.') || !ns || !*ns)
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "%s.%s", ns, name);
}

/* A record that contains itself (a field's type, however nested, naming an enclosing
 * record) has no finite value unless a union breaks the cycle, and avro-c 1.11.1 then
 * recurses without end building one (found by fuzz_registry). caresignal's schemas are
 * flat records, so any reference to an enclosing record is refused. \p outer holds the
 * enclosing records' full names. @returns 0, or -1 with \p why. */
static int cs_no_recursion(const json_t *type, const char *ns, json_t *outer, char *why,
                           size_t why_size)
{
    size_t i;
    json_t *t;
    char full[512];
    if (json_array_size(outer) > 32) {
        snprintf(why, why_size, "records nested more than 32 deep");
        return -1;
    }
    if (json_is_string(type)) {
        cs_full_name(json_string_value(type), ns, full, sizeof(full));
        json_array_foreach(outer, i,
                           t) if (!strcmp(json_string_value(t), full) ||
                                  !strcmp(json_string_value(t), json_string_value(type)))
        {
            snprintf(why, why_size, "record %.200s contains itself", full);
            return -1;
        }
        return 0;
    }
    if (json_is_array(type)) {
        json_array_foreach(type, i,
                           t) if (cs_no_recursion(t, ns, outer, why, why_size)) return -1;
        return 0;
    }
    if (!json_is_object(type))
        return 0;
    const json_t *inner = json_object_get(type, "type");
    const char *kind = json_string_value(inner);
    if (!kind || strcmp(kind, "record")) {
        if (kind && !strcmp(kind, "array"))
            return cs_no_recursion(json_object_get(type, "items"), ns, outer, why,
                                   why_size);
        if (kind && !strcmp(kind, "map"))
            return cs_no_recursion(json_object_get(type, "values"), ns, outer, why,
                                   why_size);
        return kind ? 0 : cs_no_recursion(inner, ns, outer, why, why_size);
    }
    const char *name = json_string_value(json_object_get(type, "name"));
    const char *own_ns = json_string_value(json_object_get(type, "namespace"));
    if (!name)
        return 0; /* avro-c refuses it */
    cs_full_name(name, own_ns ? own_ns : ns, full, sizeof(full));
    json_array_append_new(outer, json_string(full));
    char *dot = strrchr(full, '.');
    char inner_ns[512];
    snprintf(inner_ns, sizeof(inner_ns), "%.*s", dot ? (int)(dot - full) : 0, full);
    int rc = 0;
    json_array_foreach(json_object_get(type, "fields"), i, t) if (!rc) rc =
        cs_no_recursion(json_object_get(t, "type"), inner_ns, outer, why, why_size);
    json_array_remove(outer, json_array_size(outer) - 1);
    return rc;
}

static char *cs_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(buf, cap + 1);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int cs_load_schema(cs_schema_t *s, const char *path, char *errstr,
                          size_t errstr_size)
{
    size_t len;
    char *text = cs_read_file(path, &len);
    if (!text) {
        snprintf(errstr, errstr_size, "schema file '%s': cannot read", path);
        return -1;
    }
    json_error_t jerr;
    s->json = json_loadb(text, len, 0, &jerr);
    if (!s->json) {
        snprintf(errstr, errstr_size, "schema file '%s': line %d: %s", path, jerr.line,
                 jerr.text);
        free(text);
        return -1;
    }
    /* avro-c 1.11.1 leaks the schema it was building when a name is defined twice
     * ("Cannot save enum schema"), so such a file never reaches it */
    char dup[512] = "";
    s->named = json_object();
    cs_collect_named(s->json, NULL, s->named, dup, sizeof(dup));
    if (dup[0]) {
        snprintf(errstr, errstr_size, "schema file '%s': named type %s is defined twice",
                 path, dup);
        free(text);
        return -1;
    }
    if (avro_schema_from_json_length(text, len, &s->avro)) {
        snprintf(errstr, errstr_size, "schema file '%s': %s", path, avro_strerror());
        free(text);
        return -1;
    }
    free(text);
    if (avro_typeof(s->avro) != AVRO_RECORD) {
        snprintf(errstr, errstr_size, "schema file '%s': the top level must be a record",
                 path);
        return -1;
    }
    char why[300];
    json_t *outer = json_array();
    int recursive = cs_no_recursion(s->json, NULL, outer, why, sizeof(why));
    json_decref(outer);
    if (recursive) {
        snprintf(errstr, errstr_size, "schema file '%s': %s", path, why);
        return -1;
    }
    s->iface = avro_generic_class_from_schema(s->avro);
    if (!s->iface) {
        snprintf(errstr, errstr_size, "schema file '%s': %s", path, avro_strerror());
        return -1;
    }
    return 0;
}

cs_registry_t *cs_registry_load(const char *path, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "schema registry '%s': %s", path, jerr.text);
        return NULL;
    }
    json_t *list = json_object_get(root, "schemas");
    cs_registry_t *reg = calloc(1, sizeof(*reg));
    if (!reg || !json_is_array(list) || !json_array_size(list)) {
        snprintf(errstr, errstr_size,
                 "schema registry '%s': expected {\"schemas\": [...]}", path);
        free(reg);
        json_decref(root);
        return NULL;
    }
    reg->schemas = calloc(json_array_size(list), sizeof(cs_schema_t));
    char *dircopy = strdup(path);
    const char *dir = dircopy ? dirname(dircopy) : ".";
    size_t i;
    json_t *entry;
    json_array_foreach(list, i, entry)
    {
        json_t *jid = json_object_get(entry, "id");
        json_t *jver = json_object_get(entry, "version");
        const char *subject = json_string_value(json_object_get(entry, "subject"));
        const char *file = json_string_value(json_object_get(entry, "file"));
        if (!json_is_integer(jid) || json_integer_value(jid) <= 0 ||
            json_integer_value(jid) > INT32_MAX || !json_is_integer(jver) ||
            json_integer_value(jver) <= 0 || json_integer_value(jver) > INT32_MAX ||
            !subject || !file) {
            snprintf(
                errstr, errstr_size,
                "schema registry '%s': schemas[%zu]: needs a positive integer id and "
                "version, a subject and a file",
                path, i);
            goto fail;
        }
        cs_schema_t *s = &reg->schemas[reg->n++];
        s->id = (int)json_integer_value(jid);
        s->version = (int)json_integer_value(jver);
        s->subject = strdup(subject);
        char full[4096];
        if (file[0] == '/')
            snprintf(full, sizeof(full), "%s", file);
        else
            snprintf(full, sizeof(full), "%s/%s", dir, file);
        s->file = strdup(full);
        for (size_t j = 0; j + 1 < reg->n; j++) {
            if (reg->schemas[j].id == s->id) {
                snprintf(errstr, errstr_size, "schema registry '%s': id %d is used twice",
                         path, s->id);
                goto fail;
            }
            if (!strcmp(reg->schemas[j].subject, subject) &&
                reg->schemas[j].version == s->version) {
                snprintf(errstr, errstr_size,
                         "schema registry '%s': %s version %d is registered twice", path,
                         subject, s->version);
                goto fail;
            }
        }
        if (cs_load_schema(s, full, errstr, errstr_size))
            goto fail;
        const char *name = avro_schema_name(s->avro);
        const char *ns = avro_schema_namespace(s->avro);
        char fullname[512];
        snprintf(fullname, sizeof(fullname), "%s%s%s", ns ? ns : "", ns ? "." : "", name);
        if (strcmp(fullname, subject)) {
            snprintf(errstr, errstr_size,
                     "schema file '%s': record %s does not match its subject %s", full,
                     fullname, subject);
            goto fail;
        }
    }
    free(dircopy);
    json_decref(root);
    return reg;
fail:
    free(dircopy);
    json_decref(root);
    cs_registry_destroy(reg);
    return NULL;
}

const cs_schema_t *cs_registry_get(const cs_registry_t *reg, int id)
{
    for (size_t i = 0; i < reg->n; i++)
        if (reg->schemas[i].id == id)
            return &reg->schemas[i];
    return NULL;
}

const cs_schema_t *cs_registry_latest(const cs_registry_t *reg, const char *subject)
{
    const cs_schema_t *best = NULL;
    for (size_t i = 0; i < reg->n; i++)
        if (!strcmp(reg->schemas[i].subject, subject) &&
            (!best || reg->schemas[i].version > best->version))
            best = &reg->schemas[i];
    return best;
}

size_t cs_registry_count(const cs_registry_t *reg)
{
    return reg->n;
}

const cs_schema_t *cs_registry_at(const cs_registry_t *reg, size_t i)
{
    return i < reg->n ? &reg->schemas[i] : NULL;
}

json_t *cs_schema_field_json(const cs_schema_t *s, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(s->json, "fields"), i, f)
    {
        const char *n = json_string_value(json_object_get(f, "name"));
        if (n && !strcmp(n, name))
            return f;
    }
    return NULL;
}

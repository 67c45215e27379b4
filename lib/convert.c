/* caresignal JSON to Avro: the schema is compiled once into a small tree of nodes, then
 * each message walks that tree and the jansson value together. */
#include "caresignal/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/timeutil.h"

typedef enum cs_node_kind {
    CS_N_NULL,
    CS_N_BOOLEAN,
    CS_N_INT,
    CS_N_LONG,
    CS_N_FLOAT,
    CS_N_DOUBLE,
    CS_N_STRING,
    CS_N_BYTES,
    CS_N_FIXED,
    CS_N_ENUM,
    CS_N_RECORD,
    CS_N_ARRAY,
    CS_N_MAP,
    CS_N_UNION,
} cs_node_kind_t;

typedef enum cs_node_logical {
    CS_L_NONE,
    CS_L_TIMESTAMP_MILLIS, /* long: epoch ms, or ISO-8601 text in JSON */
    CS_L_DATE_STRING,      /* string with "format": "date": YYYY-MM-DD */
} cs_node_logical_t;

typedef struct cs_node cs_node_t;
typedef struct cs_field {
    const char *name;  /* borrowed from the schema JSON */
    const json_t *def; /* default value, NULL if none */
    cs_node_t *type;
} cs_field_t;

struct cs_node {
    cs_node_kind_t kind;
    cs_node_logical_t logical;
    /* record */
    cs_field_t *fields;
    size_t nfields;
    /* enum: symbol -> index */
    json_t *symbols;
    /* array items, map values */
    cs_node_t *items;
    /* union */
    cs_node_t **branches;
    size_t nbranches;
    int null_branch; /* -1 if none */
    /* fixed */
    size_t size;
    cs_node_t *next_alloc; /* every node, for freeing */
};

struct cs_converter {
    const cs_schema_t *schema;
    cs_node_t *root;
    cs_node_t *all;  /* list of nodes */
    json_t *by_name; /* full name -> json_integer((intptr) node) for references */
};

/* ------------------------------------------------------------------ compile */

typedef struct cs_compile {
    cs_converter_t *c;
    char *errstr;
    size_t errstr_size;
} cs_compile_t;

static cs_node_t *cs_node_alloc(cs_compile_t *cc, cs_node_kind_t kind)
{
    cs_node_t *n = calloc(1, sizeof(*n));
    if (!n) {
        snprintf(cc->errstr, cc->errstr_size, "out of memory");
        return NULL;
    }
    n->kind = kind;
    n->null_branch = -1;
    n->next_alloc = cc->c->all;
    cc->c->all = n;
    return n;
}

static cs_node_t *cs_compile_type(cs_compile_t *cc, const json_t *t, const char *ns,
                                  int depth);

static const struct {
    const char *name;
    cs_node_kind_t kind;
} cs_primitives[] = {
    {"null", CS_N_NULL},     {"boolean", CS_N_BOOLEAN}, {"int", CS_N_INT},
    {"long", CS_N_LONG},     {"float", CS_N_FLOAT},     {"double", CS_N_DOUBLE},
    {"string", CS_N_STRING}, {"bytes", CS_N_BYTES},
};

static cs_node_t *cs_compile_named_ref(cs_compile_t *cc, const char *name, const char *ns,
                                       int depth)
{
    char full[512];
    const json_t *def = json_object_get(cc->c->schema->named, name);
    if (!def && ns && !strchr(name, '.')) {
        snprintf(full, sizeof(full), "%s.%s", ns, name);
        def = json_object_get(cc->c->schema->named, full);
        name = full;
    }
    if (!def) {
        snprintf(cc->errstr, cc->errstr_size, "schema %s: unknown type '%s'",
                 cc->c->schema->subject, name);
        return NULL;
    }
    json_t *done = json_object_get(cc->c->by_name, name);
    if (done)
        return (cs_node_t *)(intptr_t)json_integer_value(done);
    return cs_compile_type(cc, def, ns, depth + 1);
}

static const char *cs_child_ns(const json_t *t, const char *ns, char *buf, size_t size)
{
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *own = json_string_value(json_object_get(t, "namespace"));
    if (name && strchr(name, '.')) {
        snprintf(buf, size, "%s", name);
        *strrchr(buf, '.') = '\0';
        return buf;
    }
    return own ? own : ns;
}

static void cs_remember(cs_compile_t *cc, const json_t *t, const char *ns, cs_node_t *n)
{
    const char *name = json_string_value(json_object_get(t, "name"));
    if (!name)
        return;
    char full[512];
    const char *own = json_string_value(json_object_get(t, "namespace"));
    if (strchr(name, '.'))
        snprintf(full, sizeof(full), "%s", name);
    else if ((own && *own) || (ns && *ns))
        snprintf(full, sizeof(full), "%s.%s", own ? own : ns, name);
    else
        snprintf(full, sizeof(full), "%s", name);
    json_object_set_new(cc->c->by_name, full, json_integer((json_int_t)(intptr_t)n));
}

static cs_node_t *cs_compile_type(cs_compile_t *cc, const json_t *t, const char *ns,
                                  int depth)
{
    if (depth > 64) {
        snprintf(cc->errstr, cc->errstr_size, "schema %s: nested too deeply",
                 cc->c->schema->subject);
        return NULL;
    }
    if (json_is_string(t)) {
        const char *name = json_string_value(t);
        for (size_t i = 0; i < sizeof(cs_primitives) / sizeof(cs_primitives[0]); i++)
            if (!strcmp(name, cs_primitives[i].name))
                return cs_node_alloc(cc, cs_primitives[i].kind);
        return cs_compile_named_ref(cc, name, ns, depth);
    }
    if (json_is_array(t)) {
        cs_node_t *n = cs_node_alloc(cc, CS_N_UNION);
        if (!n)
            return NULL;
        n->nbranches = json_array_size(t);
        n->branches = calloc(n->nbranches ? n->nbranches : 1, sizeof(*n->branches));
        for (size_t i = 0; i < n->nbranches; i++) {
            if (!(n->branches[i] =
                      cs_compile_type(cc, json_array_get(t, i), ns, depth + 1)))
                return NULL;
            if (n->branches[i]->kind == CS_N_NULL && n->null_branch < 0)
                n->null_branch = (int)i;
        }
        return n;
    }
    const char *type = json_string_value(json_object_get(t, "type"));
    if (!type) {
        snprintf(cc->errstr, cc->errstr_size, "schema %s: a type without \"type\"",
                 cc->c->schema->subject);
        return NULL;
    }
    const char *logical = json_string_value(json_object_get(t, "logicalType"));
    const char *format = json_string_value(json_object_get(t, "format"));
    cs_node_t *n = NULL;
    char nsbuf[512];
    if (!strcmp(type, "record")) {
        n = cs_node_alloc(cc, CS_N_RECORD);
        if (!n)
            return NULL;
        cs_remember(cc, t, ns, n);
        const char *cns = cs_child_ns(t, ns, nsbuf, sizeof(nsbuf));
        const json_t *fields = json_object_get(t, "fields");
        n->nfields = json_array_size(fields);
        n->fields = calloc(n->nfields ? n->nfields : 1, sizeof(*n->fields));
        for (size_t i = 0; i < n->nfields; i++) {
            const json_t *f = json_array_get(fields, i);
            n->fields[i].name = json_string_value(json_object_get(f, "name"));
            n->fields[i].def = json_object_get(f, "default");
            const json_t *ft = json_object_get(f, "type");
            /* "format" on the field itself (as in ccg.Concern's received_on) applies
             * to its string type */
            if (!(n->fields[i].type = cs_compile_type(cc, ft, cns, depth + 1)))
                return NULL;
            const char *ffmt = json_string_value(json_object_get(f, "format"));
            if (ffmt && !strcmp(ffmt, "date") && n->fields[i].type->kind == CS_N_STRING) {
                cs_node_t *dated = cs_node_alloc(cc, CS_N_STRING);
                if (!dated)
                    return NULL;
                dated->logical = CS_L_DATE_STRING;
                n->fields[i].type = dated;
            }
        }
        return n;
    }
    if (!strcmp(type, "enum")) {
        n = cs_node_alloc(cc, CS_N_ENUM);
        if (!n)
            return NULL;
        cs_remember(cc, t, ns, n);
        n->symbols = json_object();
        size_t i;
        json_t *sym;
        json_array_foreach(json_object_get(t, "symbols"), i, sym) json_object_set_new(
            n->symbols, json_string_value(sym), json_integer((json_int_t)i));
        return n;
    }
    if (!strcmp(type, "fixed")) {
        n = cs_node_alloc(cc, CS_N_FIXED);
        if (n) {
            cs_remember(cc, t, ns, n);
            n->size = (size_t)json_integer_value(json_object_get(t, "size"));
        }
        return n;
    }
    if (!strcmp(type, "array") || !strcmp(type, "map")) {
        n = cs_node_alloc(cc, type[0] == 'a' ? CS_N_ARRAY : CS_N_MAP);
        if (!n)
            return NULL;
        n->items = cs_compile_type(
            cc, json_object_get(t, type[0] == 'a' ? "items" : "values"), ns, depth + 1);
        return n->items ? n : NULL;
    }
    /* {"type": "<primitive>", ...annotations} */
    json_t *prim = json_string(type);
    n = cs_compile_type(cc, prim, ns, depth + 1);
    json_decref(prim);
    if (!n)
        return NULL;
    if (logical && !strcmp(logical, "timestamp-millis") && n->kind == CS_N_LONG)
        n->logical = CS_L_TIMESTAMP_MILLIS;
    if (format && !strcmp(format, "date") && n->kind == CS_N_STRING)
        n->logical = CS_L_DATE_STRING;
    return n;
}

void cs_converter_destroy(cs_converter_t *c)
{
    if (!c)
        return;
    for (cs_node_t *n = c->all, *next; n; n = next) {
        next = n->next_alloc;
        free(n->fields);
        free(n->branches);
        json_decref(n->symbols);
        free(n);
    }
    json_decref(c->by_name);
    free(c);
}

static cs_err_t cs_convert(const cs_node_t *n, const json_t *in, avro_value_t *out,
                           char *path, size_t plen, cs_error_t *err);

/* A default must convert cleanly: check each one now so a bad schema fails at
 * start-up, not on the first message that omits the field. */
static int cs_check_defaults(const cs_converter_t *c, char *errstr, size_t errstr_size)
{
    avro_value_t v;
    if (avro_generic_value_new(c->schema->iface, &v))
        return -1;
    int rc = 0;
    const cs_node_t *root = c->root;
    for (size_t i = 0; i < root->nfields && !rc; i++) {
        if (!root->fields[i].def)
            continue;
        avro_value_t child;
        avro_value_get_by_index(&v, i, &child, NULL);
        char path[256];
        snprintf(path, sizeof(path), "%s", root->fields[i].name);
        cs_error_t err;
        if (cs_convert(root->fields[i].type, root->fields[i].def, &child, path,
                       strlen(path), &err)) {
            snprintf(errstr, errstr_size, "schema %s: bad default of field %s",
                     c->schema->subject, root->fields[i].name);
            rc = -1;
        }
    }
    avro_value_decref(&v);
    return rc;
}

cs_converter_t *cs_converter_new(const cs_schema_t *schema, char *errstr,
                                 size_t errstr_size)
{
    cs_converter_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->schema = schema;
    c->by_name = json_object();
    cs_compile_t cc = {c, errstr, errstr_size};
    c->root = cs_compile_type(&cc, schema->json, NULL, 0);
    if (!c->root || c->root->kind != CS_N_RECORD ||
        cs_check_defaults(c, errstr, errstr_size)) {
        if (c->root && c->root->kind != CS_N_RECORD)
            snprintf(errstr, errstr_size, "schema %s: not a record", schema->subject);
        cs_converter_destroy(c);
        return NULL;
    }
    return c;
}

/* ------------------------------------------------------------------ convert */

static cs_err_t cs_type_error(cs_error_t *err, const char *path, const char *what)
{
    return cs_error_set(err, CS_ERR_FIELD_TYPE, path, "%s", what);
}

static cs_err_t cs_convert_record(const cs_node_t *n, const json_t *in, avro_value_t *out,
                                  char *path, size_t plen, cs_error_t *err)
{
    if (!json_is_object(in))
        return cs_type_error(err, path, "expected an object");
    for (size_t i = 0; i < n->nfields; i++) {
        const cs_field_t *f = &n->fields[i];
        /* path of the field: "parent.name" (or "name" at the top) */
        int w = snprintf(path + plen, 256 - plen, "%s%s", plen ? "." : "", f->name);
        size_t flen = plen + (w > 0 ? (size_t)w : 0);
        if (flen >= 256)
            flen = 255;
        const json_t *v = json_object_get(in, f->name);
        if (!v) {
            if (!f->def)
                return cs_error_set(err, CS_ERR_FIELD_MISSING, path,
                                    "required field missing");
            v = f->def;
        }
        avro_value_t child;
        avro_value_get_by_index(out, i, &child, NULL);
        cs_err_t e = cs_convert(f->type, v, &child, path, flen, err);
        path[plen] = '\0';
        if (e)
            return e;
    }
    return CS_OK;
}

static cs_err_t cs_convert(const cs_node_t *n, const json_t *in, avro_value_t *out,
                           char *path, size_t plen, cs_error_t *err)
{
    switch (n->kind) {
    case CS_N_NULL:
        if (!json_is_null(in))
            return cs_type_error(err, path, "expected null");
        avro_value_set_null(out);
        return CS_OK;
    case CS_N_BOOLEAN:
        if (!json_is_boolean(in))
            return cs_type_error(err, path, "expected true or false");
        avro_value_set_boolean(out, json_is_true(in));
        return CS_OK;
    case CS_N_INT:
        if (!json_is_integer(in) || json_integer_value(in) < INT32_MIN ||
            json_integer_value(in) > INT32_MAX)
            return cs_type_error(err, path, "expected a 32-bit integer");
        avro_value_set_int(out, (int32_t)json_integer_value(in));
        return CS_OK;
    case CS_N_LONG:
        if (json_is_integer(in)) {
            avro_value_set_long(out, json_integer_value(in));
            return CS_OK;
        }
        if (n->logical == CS_L_TIMESTAMP_MILLIS && json_is_string(in)) {
            int64_t ms;
            if (cs_time_parse_iso8601(json_string_value(in), json_string_length(in), &ms))
                return cs_type_error(
                    err, path,
                    "expected an ISO-8601 timestamp with an offset or epoch ms");
            avro_value_set_long(out, ms);
            return CS_OK;
        }
        return cs_type_error(err, path,
                             n->logical == CS_L_TIMESTAMP_MILLIS
                                 ? "expected an ISO-8601 timestamp or epoch ms"
                                 : "expected an integer");
    case CS_N_FLOAT:
    case CS_N_DOUBLE:
        if (!json_is_number(in))
            return cs_type_error(err, path, "expected a number");
        if (n->kind == CS_N_FLOAT)
            avro_value_set_float(out, (float)json_number_value(in));
        else
            avro_value_set_double(out, json_number_value(in));
        return CS_OK;
    case CS_N_STRING:
        if (!json_is_string(in))
            return cs_type_error(err, path, "expected a string");
        if (n->logical == CS_L_DATE_STRING) {
            int64_t ms;
            if (cs_date_parse(json_string_value(in), json_string_length(in), &ms))
                return cs_type_error(err, path, "expected a date YYYY-MM-DD");
        }
        avro_value_set_string_len(out, json_string_value(in), json_string_length(in) + 1);
        return CS_OK;
    case CS_N_BYTES:
    case CS_N_FIXED:
        if (!json_is_string(in) ||
            (n->kind == CS_N_FIXED && json_string_length(in) != n->size))
            return cs_type_error(err, path, "expected a string of bytes");
        if (n->kind == CS_N_BYTES)
            avro_value_set_bytes(out, (void *)json_string_value(in),
                                 json_string_length(in));
        else
            avro_value_set_fixed(out, (void *)json_string_value(in), n->size);
        return CS_OK;
    case CS_N_ENUM: {
        if (!json_is_string(in))
            return cs_type_error(err, path, "expected an enum symbol");
        const json_t *idx = json_object_get(n->symbols, json_string_value(in));
        if (!idx)
            return cs_error_set(err, CS_ERR_ENUM_UNKNOWN, path, "unknown enum symbol");
        avro_value_set_enum(out, (int)json_integer_value(idx));
        return CS_OK;
    }
    case CS_N_RECORD:
        return cs_convert_record(n, in, out, path, plen, err);
    case CS_N_ARRAY: {
        if (!json_is_array(in))
            return cs_type_error(err, path, "expected an array");
        size_t i;
        const json_t *item;
        json_array_foreach(in, i, item)
        {
            avro_value_t child;
            if (avro_value_append(out, &child, NULL))
                return cs_error_set(err, CS_ERR_NOMEM, path, "out of memory");
            int w = snprintf(path + plen, 256 - plen, "[%zu]", i);
            size_t ilen = plen + (w > 0 ? (size_t)w : 0);
            cs_err_t e =
                cs_convert(n->items, item, &child, path, ilen < 256 ? ilen : 255, err);
            path[plen] = '\0';
            if (e)
                return e;
        }
        return CS_OK;
    }
    case CS_N_MAP: {
        if (!json_is_object(in))
            return cs_type_error(err, path, "expected an object");
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)in, key, v)
        {
            avro_value_t child;
            if (avro_value_add(out, key, &child, NULL, NULL))
                return cs_error_set(err, CS_ERR_NOMEM, path, "out of memory");
            /* a map key is data, so the path names the map, never the key */
            cs_err_t e = cs_convert(n->items, v, &child, path, plen, err);
            if (e)
                return e;
        }
        return CS_OK;
    }
    case CS_N_UNION: {
        avro_value_t branch;
        if (json_is_null(in)) {
            if (n->null_branch < 0)
                return cs_type_error(err, path, "null is not allowed");
            avro_value_set_branch(out, n->null_branch, &branch);
            avro_value_set_null(&branch);
            return CS_OK;
        }
        /* the plain JSON value: the first non-null branch that accepts it */
        cs_err_t first = CS_OK;
        cs_error_t first_err = {CS_OK, "", ""};
        for (size_t i = 0; i < n->nbranches; i++) {
            if ((int)i == n->null_branch)
                continue;
            avro_value_set_branch(out, (int)i, &branch);
            cs_error_t e;
            cs_err_t rc = cs_convert(n->branches[i], in, &branch, path, plen, &e);
            if (!rc)
                return CS_OK;
            if (!first) {
                first = rc;
                first_err = e;
            }
        }
        if (first) {
            if (err)
                *err = first_err;
            return first;
        }
        return cs_type_error(err, path, "no branch of the union accepts the value");
    }
    }
    return cs_type_error(err, path, "unsupported type");
}

cs_err_t cs_converter_run(const cs_converter_t *c, const json_t *in, avro_value_t *out,
                          cs_error_t *err)
{
    char path[256] = "";
    avro_value_reset(out);
    if (!json_is_object(in))
        return cs_error_set(err, CS_ERR_NOT_OBJECT, NULL,
                            "the value is not a JSON object");
    return cs_convert_record(c->root, in, out, path, 0, err);
}

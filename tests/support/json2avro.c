/* Test tool: JSON lines on stdin -> Avro wire-format messages (hex, one per line) for a
 * schema id of the registry, so Python tests can publish Avro with kcat.
 *   cs-json2avro REGISTRY SCHEMA_ID < events.jsonl > events.hex
 * A line that does not convert prints "ERR <reason> <field>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/codec.h"
#include "caresignal/convert.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cs-json2avro REGISTRY SCHEMA_ID\n");
        return 2;
    }
    char errstr[512];
    cs_registry_t *reg = cs_registry_load(argv[1], errstr, sizeof(errstr));
    if (!reg) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    const cs_schema_t *s = cs_registry_get(reg, atoi(argv[2]));
    cs_converter_t *conv = s ? cs_converter_new(s, errstr, sizeof(errstr)) : NULL;
    if (!conv) {
        fprintf(stderr, "schema id %s: %s\n", argv[2], s ? errstr : "not registered");
        return 2;
    }
    avro_value_t v;
    avro_generic_value_new(s->iface, &v);
    cs_encoder_t *enc = cs_encoder_new();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) >= 0) {
        json_t *j = json_loads(line, 0, NULL);
        cs_error_t err;
        const uint8_t *out;
        size_t len;
        cs_err_t rc = j ? cs_converter_run(conv, j, &v, &err) : CS_ERR_JSON_SYNTAX;
        json_decref(j);
        if (rc || cs_encoder_write(enc, s->id, &v, &out, &len)) {
            printf("ERR %s %s\n", cs_err_str(rc),
                   rc == CS_ERR_JSON_SYNTAX ? "" : err.field);
            continue;
        }
        for (size_t i = 0; i < len; i++)
            printf("%02x", out[i]);
        putchar('\n');
    }
    free(line);
    cs_encoder_destroy(enc);
    avro_value_decref(&v);
    cs_converter_destroy(conv);
    cs_registry_destroy(reg);
    return 0;
}

/* caresignal fuzz target: the schema-guided JSON to Avro converter (cs_converter_run). */
#include "fuzz_common.h"

#include <jansson.h>

#include "caresignal/codec.h"
#include "caresignal/convert.h"
#include "caresignal/registry.h"

/*
 * Input: a JSON document, parsed as the normaliser and caresignal-publish parse a raw
 * value, then converted with the converter of every schema of schemas/registry.json
 * (the partner schemas the normaliser converts, and the canonical ones cs-json2avro
 * converts). Whatever a converter accepts is encoded and must pass cs_avro_check
 * and decode again: a converted value our own decoder refuses would be dead-lettered
 * by the next stage, so that is a finding too (abort).
 */
static struct {
    cs_registry_t *reg;
    size_t n;
    cs_converter_t **conv;
    avro_value_t *values, *back;
    cs_encoder_t *enc;
    cs_decoder_t *dec;
} fx;

static void cs_fuzz_init(void)
{
    char path[4096], errstr[512];
    cs_avro_allocator_install();
    fx.reg = cs_registry_load(cs_fuzz_src("schemas/registry.json", path, sizeof(path)),
                              errstr, sizeof(errstr));
    if (!fx.reg)
        cs_fuzz_die("registry", errstr);
    fx.n = cs_registry_count(fx.reg);
    fx.conv = calloc(fx.n, sizeof(*fx.conv));
    fx.values = calloc(fx.n, sizeof(*fx.values));
    fx.back = calloc(fx.n, sizeof(*fx.back));
    if (!fx.conv || !fx.values || !fx.back)
        cs_fuzz_die("calloc", NULL);
    for (size_t i = 0; i < fx.n; i++) {
        const cs_schema_t *s = cs_registry_at(fx.reg, i);
        fx.conv[i] = cs_converter_new(s, errstr, sizeof(errstr));
        if (!fx.conv[i])
            cs_fuzz_die(s->subject, errstr);
        if (avro_generic_value_new(s->iface, &fx.values[i]) ||
            avro_generic_value_new(s->iface, &fx.back[i]))
            cs_fuzz_die("avro_generic_value_new", avro_strerror());
    }
    fx.enc = cs_encoder_new();
    fx.dec = cs_decoder_new();
    if (!fx.enc || !fx.dec)
        cs_fuzz_die("codec", "out of memory");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fx.reg)
        cs_fuzz_init();
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size,
                             JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!doc)
        return 0;
    for (size_t i = 0; i < fx.n; i++) {
        const cs_schema_t *s = cs_registry_at(fx.reg, i);
        cs_error_t err;
        if (cs_converter_run(fx.conv[i], doc, &fx.values[i], &err) != CS_OK)
            continue;
        const uint8_t *out;
        size_t out_len;
        if (cs_encoder_write(fx.enc, s->id, &fx.values[i], &out, &out_len))
            cs_fuzz_die("encoding a converted value failed", s->subject);
        if (cs_decoder_read(fx.dec, s->avro, out + CS_WIRE_HEADER_SIZE,
                            out_len - CS_WIRE_HEADER_SIZE, &fx.back[i], &err)) {
            fprintf(stderr, "%s: converted value fails to decode: %s (%s)\n", s->subject,
                    err.msg, err.field);
            abort();
        }
    }
    json_decref(doc);
    return 0;
}

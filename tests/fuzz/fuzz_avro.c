/* caresignal fuzz target: Avro bytes from a partner (cs_avro_check, cs_decoder_read) and
 * canonical wire messages (cs_event_decode, cs_alert_decode). */
#include "fuzz_common.h"

#include "caresignal/alert.h"
#include "caresignal/codec.h"
#include "caresignal/event.h"
#include "caresignal/registry.h"

/*
 * Input: byte 0 picks what reads the rest. For k < number of registered schemas, the
 * rest is one Avro datum (no wire header) of the k-th schema of schemas/registry.json
 * (every partner schema and version, IntelEvent and RiskAlert), checked and decoded as
 * the normaliser does; a datum that passes the check must decode, and one that
 * decodes is encoded again. The next two values read the rest as a wire-format
 * IntelEvent or RiskAlert, as the scorer and the pager do.
 */
static struct {
    cs_registry_t *reg;
    size_t n;
    avro_value_t *values; /* one generic value per schema, reused like the normaliser's */
    cs_decoder_t *dec;
    cs_encoder_t *enc;
    cs_event_codec_t *events;
    cs_alert_codec_t *alerts;
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
    fx.values = calloc(fx.n, sizeof(*fx.values));
    if (!fx.values)
        cs_fuzz_die("calloc", NULL);
    for (size_t i = 0; i < fx.n; i++)
        if (avro_generic_value_new(cs_registry_at(fx.reg, i)->iface, &fx.values[i]))
            cs_fuzz_die("avro_generic_value_new", avro_strerror());
    fx.dec = cs_decoder_new();
    fx.enc = cs_encoder_new();
    fx.events = cs_event_codec_new(fx.reg, errstr, sizeof(errstr));
    if (!fx.events)
        cs_fuzz_die("event codec", errstr);
    fx.alerts = cs_alert_codec_new(fx.reg, errstr, sizeof(errstr));
    if (!fx.alerts)
        cs_fuzz_die("alert codec", errstr);
    if (!fx.dec || !fx.enc)
        cs_fuzz_die("codec", "out of memory");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fx.reg)
        cs_fuzz_init();
    if (size < 1)
        return 0;
    size_t pick = data[0] % (fx.n + 2);
    const uint8_t *rest = data + 1;
    size_t len = size - 1;
    cs_error_t err;
    if (pick < fx.n) {
        const cs_schema_t *s = cs_registry_at(fx.reg, pick);
        /* the check is the guard in front of avro-c: bytes it passes must decode
         * (codec.h), or hostile input reaches avro-c's own, trusting, reader */
        int checked = cs_avro_check(s->avro, rest, len, &err) == CS_OK;
        long refused = cs_avro_budget_refusals();
        if (cs_decoder_read(fx.dec, s->avro, rest, len, &fx.values[pick], &err) ==
            CS_OK) {
            const uint8_t *out;
            size_t out_len;
            if (cs_encoder_write(fx.enc, s->id, &fx.values[pick], &out, &out_len))
                cs_fuzz_die("re-encoding a decoded datum failed", s->subject);
        } else if (checked && cs_avro_budget_refusals() == refused) {
            fprintf(stderr, "%s: passed cs_avro_check, then avro-c failed: %s\n",
                    s->subject, err.msg);
            abort();
        }
    } else if (pick == fx.n) {
        cs_intel_event_t ev;
        cs_event_decode(fx.events, rest, len, &ev, &err);
    } else {
        cs_alert_t a;
        cs_alert_decode(fx.alerts, rest, len, &a, &err);
    }
    return 0;
}

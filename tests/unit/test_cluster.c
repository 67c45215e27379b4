/* Unit tests of the Redis Cluster slot rules (lib/cluster.c): CRC16 of the hash tag as
 * the cluster specification defines it, checked against redis-server 7.0's own
 * CLUSTER KEYSLOT answers, and the documented slot tags. */
#include "testenv.h"

#include <stdio.h>
#include <string.h>

#include "caresignal/redis.h"

static unsigned slot(const char *key)
{
    return cs_cluster_key_slot(key, strlen(key));
}

/* What `redis-cli cluster keyslot KEY` answers on redis-server 7.0.15 */
static void test_slots_as_redis_computes_them(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        unsigned slot;
    } cases[] = {
        {"foo", 12182},
        {"somekey", 11058},
        {"foo{hash_tag}", 2515}, /* the tag alone */
        {"{}abc", 5980},         /* an empty tag: the whole key */
        {"a{}{b}", 15033},       /* the first '{' decides, and its tag is empty */
        {"{user1000}.following", 3443},
        {"cs:{LOCATION:1-101669119}:state", 14717},
        {"{", 4092},      /* no closing brace: the whole key */
        {"x}{y}", 12222}, /* a '}' before the first '{' is not a tag's end */
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (slot(cases[i].key) != cases[i].slot)
            fail_msg("'%s': slot %u, Redis says %u", cases[i].key, slot(cases[i].key),
                     cases[i].slot);
    /* binary-safe: the length decides, not a NUL */
    assert_int_equal(cs_cluster_key_slot("foo\0bar", 3), 12182);
}

/* Every key of a subject is in one slot, whatever follows the tag */
static void test_subject_keys_share_a_slot(void **state)
{
    (void)state;
    unsigned s = slot("cs:{LOCATION:1-101669119}:state");
    assert_int_equal(slot("cs:{LOCATION:1-101669119}:events"), s);
    assert_int_equal(slot("cs:{LOCATION:1-101669119}:seen:2026-11"), s);
    assert_int_equal(slot("rebuild7:{LOCATION:1-101669119}:state"), s);
}

/* The tag of a slot is the smallest decimal integer that hashes to it, for every slot */
static void test_slot_tags(void **state)
{
    (void)state;
    for (unsigned s = 0; s < 16384; s++) {
        const char *tag = cs_cluster_slot_tag(s);
        if (!*tag || slot(tag) != s)
            fail_msg("slot %u: tag '%s' is in slot %u", s, tag, slot(tag));
        char key[64];
        snprintf(key, sizeof(key), "cs:pos:{%s}:intel.events:3", tag);
        assert_int_equal(slot(key), s);
    }
    /* the smallest: no smaller integer hashes to the same slot */
    unsigned t = 0;
    sscanf(cs_cluster_slot_tag(slot("7")), "%u", &t);
    assert_true(t <= 7);
    assert_int_equal(slot(cs_cluster_slot_tag(12182)), 12182);
    assert_true(cs_cluster_slot_tag(16384 + 5) == cs_cluster_slot_tag(5)); /* masked */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_as_redis_computes_them),
        cmocka_unit_test(test_subject_keys_share_a_slot),
        cmocka_unit_test(test_slot_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

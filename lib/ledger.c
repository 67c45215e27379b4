/* caresignal ledger: input messages in flight and their outstanding outputs (see
 * ledger.h). */
#include "caresignal/ledger.h"

#include <stdlib.h>
#include <string.h>

cs_err_t cs_ledger_init(cs_ledger_t *l)
{
    memset(l, 0, sizeof(*l));
    l->inflight = cs_inflight_new();
    return l->inflight ? CS_OK : CS_ERR_NOMEM;
}

static void cs_ledger_free(cs_ledger_t *l, cs_rt_msg_t *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        l->live = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        l->tail = m->prev;
    l->bytes -= m->bytes;
    if (m->m)
        rd_kafka_message_destroy(m->m);
    free(m);
}

void cs_ledger_clear(cs_ledger_t *l)
{
    while (l->live)
        cs_ledger_free(l, l->live);
    cs_inflight_destroy(l->inflight);
    l->inflight = NULL;
}

cs_rt_msg_t *cs_ledger_add(cs_ledger_t *l, rd_kafka_message_t *km, const char *topic,
                           int32_t partition, int64_t offset, size_t bytes)
{
    cs_rt_msg_t *m = calloc(1, sizeof(*m));
    cs_inflight_msg_t *h = m ? cs_inflight_add(l->inflight, topic, partition, offset) : NULL;
    if (!h) {
        free(m);
        return NULL;
    }
    m->m = km;
    m->topic = topic;
    m->partition = partition;
    m->offset = offset;
    m->ledger = l;
    m->h = h;
    m->holds = 1;
    m->bytes = bytes;
    m->prev = l->tail;
    if (l->tail)
        l->tail->next = m;
    else
        l->live = m;
    l->tail = m;
    l->bytes += bytes;
    return m;
}

int cs_ledger_refetched(const cs_ledger_t *l, const char *topic, int32_t partition,
                        int64_t offset)
{
    return cs_inflight_behind(l->inflight, topic, partition, offset);
}

/* Finished: the handle is done (stored once its prefix is) and the message freed. One
 * abandoned or failed stays unfinished until its partition is forgotten or the end. */
static void cs_ledger_settle(cs_rt_msg_t *m)
{
    if (m->holds > 0 || (!m->forgotten && (m->abandoned || m->failed)))
        return;
    if (!m->abandoned && !m->failed && !m->forgotten && m->ledger->on_finish)
        m->ledger->on_finish(m->ledger->finish_opaque, m);
    cs_inflight_done(m->ledger->inflight, m->h);
    cs_ledger_free(m->ledger, m);
}

void cs_rt_hold(cs_rt_msg_t *m)
{
    m->holds++;
}

void cs_rt_release(cs_rt_msg_t *m)
{
    if (--m->holds == 0)
        cs_ledger_settle(m);
}

void cs_rt_abandon(cs_rt_msg_t *m)
{
    m->abandoned = 1;
    if (--m->holds == 0 && m->forgotten)
        cs_ledger_settle(m);
}

static int cs_ledger_in(const cs_rt_msg_t *m, const rd_kafka_topic_partition_list_t *parts)
{
    return !parts || rd_kafka_topic_partition_list_find(parts, m->topic, m->partition);
}

size_t cs_ledger_busy(const cs_ledger_t *l, const rd_kafka_topic_partition_list_t *parts)
{
    size_t n = 0;
    for (const cs_rt_msg_t *m = l->live; m; m = m->next)
        if (!m->abandoned && !m->failed && !m->forgotten && cs_ledger_in(m, parts))
            n++;
    return n;
}

void cs_ledger_forget(cs_ledger_t *l, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++)
        cs_inflight_forget(l->inflight, parts->elems[i].topic, parts->elems[i].partition);
    for (cs_rt_msg_t *m = l->live, *next; m; m = next) {
        next = m->next;
        if (!cs_ledger_in(m, parts))
            continue;
        m->forgotten = 1;
        cs_ledger_settle(m); /* now, or when its last output is done */
    }
}

size_t cs_ledger_collect(cs_ledger_t *l, cs_inflight_store_cb *store, void *opaque)
{
    return cs_inflight_collect(l->inflight, store, opaque);
}

size_t cs_ledger_count(const cs_ledger_t *l)
{
    return cs_inflight_count(l->inflight);
}

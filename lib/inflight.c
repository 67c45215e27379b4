/* caresignal in-flight tracking: per partition, a FIFO of messages in offset order; the
 * finished prefix is released and its last offset + 1 reported for storing. */
#include "caresignal/inflight.h"

#include <stdlib.h>
#include <string.h>

struct cs_inflight_msg {
    struct cs_inflight_part *part;
    struct cs_inflight_msg *next;
    int64_t offset;
    int done;
};

typedef struct cs_inflight_part {
    struct cs_inflight_part *next;
    char *topic;
    int32_t partition;
    int forgotten;
    int64_t last; /* the highest offset added */
    cs_inflight_msg_t *head, *tail;
    size_t n, pending;
} cs_inflight_part_t;

struct cs_inflight {
    cs_inflight_part_t *parts; /* few (the assignment): a list is enough */
    size_t n;
};

cs_inflight_t *cs_inflight_new(void)
{
    return calloc(1, sizeof(cs_inflight_t));
}

static void cs_part_free(cs_inflight_part_t *p)
{
    for (cs_inflight_msg_t *m = p->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    free(p->topic);
    free(p);
}

void cs_inflight_destroy(cs_inflight_t *t)
{
    if (!t)
        return;
    for (cs_inflight_part_t *p = t->parts, *next; p; p = next) {
        next = p->next;
        cs_part_free(p);
    }
    free(t);
}

static cs_inflight_part_t *cs_part_find(const cs_inflight_t *t, const char *topic,
                                        int32_t partition)
{
    for (cs_inflight_part_t *p = t->parts; p; p = p->next)
        if (!p->forgotten && p->partition == partition && !strcmp(p->topic, topic))
            return p;
    return NULL;
}

cs_inflight_msg_t *cs_inflight_add(cs_inflight_t *t, const char *topic, int32_t partition,
                                   int64_t offset)
{
    cs_inflight_part_t *p = cs_part_find(t, topic, partition);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p || !(p->topic = strdup(topic))) {
            free(p);
            return NULL;
        }
        p->partition = partition;
        p->last = -1;
        p->next = t->parts;
        t->parts = p;
    }
    cs_inflight_msg_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->part = p;
    m->offset = offset;
    p->last = offset;
    if (p->tail)
        p->tail->next = m;
    else
        p->head = m;
    p->tail = m;
    p->n++;
    p->pending++;
    t->n++;
    return m;
}

void cs_inflight_done(cs_inflight_t *t, cs_inflight_msg_t *m)
{
    (void)t;
    if (m->done)
        return;
    m->done = 1;
    m->part->pending--;
}

size_t cs_inflight_collect(cs_inflight_t *t, cs_inflight_store_cb *store, void *opaque)
{
    size_t released = 0;
    for (cs_inflight_part_t **pp = &t->parts; *pp;) {
        cs_inflight_part_t *p = *pp;
        int64_t last = -1;
        while (p->head && p->head->done) {
            cs_inflight_msg_t *m = p->head;
            last = m->offset;
            p->head = m->next;
            if (!p->head)
                p->tail = NULL;
            free(m);
            p->n--;
            t->n--;
            released++;
        }
        if (last >= 0 && !p->forgotten && store)
            store(opaque, p->topic, p->partition, last + 1);
        if (p->forgotten && !p->head) {
            *pp = p->next;
            cs_part_free(p);
            continue;
        }
        pp = &p->next;
    }
    return released;
}

void cs_inflight_forget(cs_inflight_t *t, const char *topic, int32_t partition)
{
    cs_inflight_part_t *p = cs_part_find(t, topic, partition);
    if (p)
        p->forgotten = 1;
}

size_t cs_inflight_count(const cs_inflight_t *t)
{
    return t->n;
}

size_t cs_inflight_pending(const cs_inflight_t *t, const char *topic, int32_t partition)
{
    size_t n = 0;
    for (const cs_inflight_part_t *p = t->parts; p; p = p->next)
        if (!topic || (p->partition == partition && !strcmp(p->topic, topic)))
            n += p->pending;
    return n;
}

int cs_inflight_behind(const cs_inflight_t *t, const char *topic, int32_t partition,
                       int64_t offset)
{
    const cs_inflight_part_t *p = cs_part_find(t, topic, partition);
    return p && offset <= p->last;
}

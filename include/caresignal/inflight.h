/* caresignal in-flight tracking: which input messages are finished, per partition, so
 * that a consumer with many messages in flight stores a partition's offset only up to
 * the longest prefix of finished messages (at-least-once, docs/contract/guarantees.md). */
#ifndef CARESIGNAL_INFLIGHT_H
#define CARESIGNAL_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_inflight cs_inflight_t;

/** One input message in flight: a handle owned by the tracker, valid until it is done
 *  and collected (cs_inflight_collect). */
typedef struct cs_inflight_msg cs_inflight_msg_t;

/** @returns an empty tracker, or NULL when out of memory. */
cs_inflight_t *cs_inflight_new(void);

/** Frees the tracker and every handle still in it. NULL is a no-op. */
void cs_inflight_destroy(cs_inflight_t *t);

/**
 * Starts tracking the message at \p offset of \p topic (copied) / \p partition. Offsets
 * of one partition must be added in increasing order (as the consumer returns them).
 * @returns the handle, or NULL when out of memory.
 */
cs_inflight_msg_t *cs_inflight_add(cs_inflight_t *t, const char *topic, int32_t partition,
                                   int64_t offset);

/**
 * @returns non-zero if \p offset is at or below the last offset added for its partition
 * (since the partition was last forgotten): a message the client fetched again (after a
 * pause and resume, librdkafka may return what it had queued a second time), to drop.
 */
int cs_inflight_behind(const cs_inflight_t *t, const char *topic, int32_t partition,
                       int64_t offset);

/** Marks \p m finished: all its outputs are delivered (or dead-lettered). Once only. */
void cs_inflight_done(cs_inflight_t *t, cs_inflight_msg_t *m);

/** Called by cs_inflight_collect for each partition whose finished prefix grew:
 *  \p next_offset is the offset after its last finished message (the one to store). */
typedef void(cs_inflight_store_cb)(void *opaque, const char *topic, int32_t partition,
                                   int64_t next_offset);

/**
 * Releases every partition's finished prefix and reports where each now stands. A
 * message not yet finished holds back everything after it on its partition.
 * Partitions forgotten with cs_inflight_forget are released without a report.
 * @returns the number of messages released.
 */
size_t cs_inflight_collect(cs_inflight_t *t, cs_inflight_store_cb *store, void *opaque);

/**
 * The partition was revoked: its messages will never be stored by this process. Their
 * handles stay valid until done (outputs may still complete) and are then released
 * without a report. A later cs_inflight_add for the same partition starts afresh.
 */
void cs_inflight_forget(cs_inflight_t *t, const char *topic, int32_t partition);

/** @returns the number of messages not yet released (finished or not), and of those not
 *  finished on \p topic / \p partition (NULL topic: every partition). */
size_t cs_inflight_count(const cs_inflight_t *t);
size_t cs_inflight_pending(const cs_inflight_t *t, const char *topic, int32_t partition);

#ifdef __cplusplus
}
#endif
#endif

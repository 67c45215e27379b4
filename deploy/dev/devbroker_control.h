/* caresignal-devbroker's control protocol: one command line in, one fault injected into
 * the mock cluster, one reply line out. No I/O here: devbroker_socket.c serves it. */
#ifndef CS_DEVBROKER_CONTROL_H
#define CS_DEVBROKER_CONTROL_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stddef.h>
#include <stdint.h>

#include "caresignal/error.h"

/** Longest command line accepted, without its newline. */
#define CS_DEVCTL_LINE_MAX 1024
/** Longest reply line, without its newline (the status of 16 brokers fits). */
#define CS_DEVCTL_REPLY_MAX 16384
/** Most requests one errors / broker-errors command may queue. */
#define CS_DEVCTL_COUNT_MAX 10000

typedef struct cs_devctl cs_devctl_t;

/**
 * @returns a controller of \p mc, whose brokers are 1..\p brokers, or NULL if out of
 * memory. \p mc is borrowed and must outlive the controller. It assumes every broker
 * is up with no round-trip time, as rd_kafka_mock_cluster_new() leaves them, and that
 * nothing else changes them: the mock cannot be asked, so status reports what was
 * injected through this controller.
 */
cs_devctl_t *cs_devctl_new(rd_kafka_mock_cluster_t *mc, int brokers);

/** Frees \p ctl; the mock cluster is untouched. NULL is a no-op. */
void cs_devctl_destroy(cs_devctl_t *ctl);

/**
 * Executes one command \p line (NUL-terminated, without its newline) and writes its
 * reply to \p reply: one line of printable ASCII, without newline, "ok ..." or
 * "error <reason>" (truncated to \p reply_size). Every injected fault is logged as
 * one JSON line ("fault injected"), every refused command too ("control command
 * refused"). Bytes outside printable ASCII in \p line are read as '?'.
 *
 * @returns CS_OK if the reply is "ok ...", CS_ERR_INVALID_ARG for a bad command,
 *          CS_ERR_KAFKA if the mock refused it.
 * @remark The mock's calls either take its lock or post an op to its thread and wait
 *         for the answer: call this from any thread but the mock cluster's own (the
 *         devbroker calls it from its main thread).
 */
cs_err_t cs_devctl_exec(cs_devctl_t *ctl, const char *line, char *reply,
                        size_t reply_size);

/**
 * Writes the commands, what each does and an example of each, one per line, to
 * \p buf (for --help; the "help" command answers the same usages on one line).
 */
void cs_devctl_help(char *buf, size_t size);

/** @returns the Kafka api key of protocol API \p name ("Produce": 0, any case), or -1. */
int cs_devctl_api_key(const char *name);

/**
 * Resolves a librdkafka error name, with or without its RD_KAFKA_RESP_ERR_ prefix,
 * any case ("NOT_LEADER_FOR_PARTITION", "_TRANSPORT"), through rd_kafka_get_err_descs().
 * @returns CS_OK and sets \p out, or CS_ERR_NOT_FOUND.
 */
cs_err_t cs_devctl_error_code(const char *name, rd_kafka_resp_err_t *out);

#endif

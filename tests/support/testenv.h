/* Test support: throwaway redis-server processes on free loopback ports, paths. */
#ifndef CS_TESTENV_H
#define CS_TESTENV_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

typedef struct cs_test_redis {
    pid_t pid;
    int port;
    char dir[256];
} cs_test_redis_t;

/** @returns a loopback TCP port that was free a moment ago. */
int cs_test_free_port(void);

/**
 * Starts redis-server on a free loopback port in a new temporary directory, with
 * no persistence, and waits until it answers PING. The server dies with the test
 * process (PR_SET_PDEATHSIG) even if the test crashes. @returns 0 on success.
 */
int cs_test_redis_start(cs_test_redis_t *r);

/** Stops the server (SIGTERM, then SIGKILL) and removes its directory. */
void cs_test_redis_stop(cs_test_redis_t *r);

/** @returns $CS_SOURCE_DIR or "." (borrowed). */
const char *cs_test_source_dir(void);

/** Writes \p text to a new temporary file; @returns its path (static buffer rotated). */
const char *cs_test_write_temp(const char *text);

#endif

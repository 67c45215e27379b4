/* caresignal process lifecycle: stop and reload signals, interruptible sleep, clocks. */
#ifndef CARESIGNAL_SIGNALS_H
#define CARESIGNAL_SIGNALS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Installs handlers: SIGINT and SIGTERM request a stop (a second one exits at
 * once with status 1), SIGHUP requests a reload. SIGPIPE is ignored.
 */
void cs_signals_install(void);

/** @returns non-zero until a stop was requested. */
int cs_running(void);

/** Requests a stop, as SIGTERM would. */
void cs_request_stop(void);

/** Requests a stop because of a runtime failure: cs_exit_status() becomes 1. */
void cs_request_fail(void);

/** @returns the process exit status so far: 0, or 1 after cs_request_fail(). */
int cs_exit_status(void);

/** @returns non-zero once per SIGHUP received since the last call. */
int cs_reload_requested(void);

/** Sleeps up to \p ms, returning early when a stop is requested. */
void cs_sleep_ms(long ms);

/** @returns a monotonic clock in milliseconds (for timeouts and rates, never for state).
 */
int64_t cs_mono_ms(void);

/** @returns the wall clock in milliseconds since the epoch. */
int64_t cs_wall_ms(void);

#ifdef __cplusplus
}
#endif
#endif

/* caresignal progress: a progress bar on a terminal (done/total, rate, ETA), plain
 * progress lines when stderr is not a terminal. For long ops work. */
#ifndef CARESIGNAL_PROGRESS_H
#define CARESIGNAL_PROGRESS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_progress cs_progress_t;

/** Starts reporting \p what ("rebuild") towards \p total items (0 if unknown). \p what
 *  is copied. Writes to stderr. */
cs_progress_t *cs_progress_new(const char *what, int64_t total);

/** Sets the number done; redraws at most 5 times a second (lines: every 5 seconds). */
void cs_progress_update(cs_progress_t *p, int64_t done);

/** Draws the final state, ends the line and frees. NULL is a no-op. */
void cs_progress_finish(cs_progress_t *p);

#ifdef __cplusplus
}
#endif
#endif

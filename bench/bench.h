/* What the bench programs share: a small reproducible random generator and clocks. Each
 * bench program is one translation unit, so these are static inline. */
#ifndef CARESIGNAL_BENCH_H
#define CARESIGNAL_BENCH_H

#include <stdint.h>
#include <time.h>

/** xorshift64: the next value of \p state (never 0; seed it with a non-zero value). */
static inline uint64_t bench_rand(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/** @returns \p clock (CLOCK_MONOTONIC, CLOCK_REALTIME) in seconds. */
static inline double bench_now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif

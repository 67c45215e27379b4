/* caresignal backoff: exponential, capped, equal jitter. */
#include "caresignal/backoff.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "caresignal/signals.h"

void cs_backoff_init(cs_backoff_t *b, long initial_ms, long max_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    b->initial_ms = initial_ms > 0 ? initial_ms : 1;
    b->max_ms = max_ms >= b->initial_ms ? max_ms : b->initial_ms;
    /* different processes and loops draw different jitter */
    b->seed = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16) ^ (unsigned)(size_t)b;
    cs_backoff_reset(b);
}

void cs_backoff_reset(cs_backoff_t *b)
{
    b->step_ms = b->initial_ms;
    b->attempts = 0;
}

long cs_backoff_next(cs_backoff_t *b)
{
    long step = b->step_ms;
    long half = step / 2;
    long delay = half + (long)(rand_r(&b->seed) % (unsigned)(step - half + 1));
    b->step_ms = step > b->max_ms / 2 ? b->max_ms : step * 2;
    b->attempts++;
    return delay;
}

long cs_backoff_sleep(cs_backoff_t *b)
{
    long d = cs_backoff_next(b);
    cs_sleep_ms(d);
    return d;
}

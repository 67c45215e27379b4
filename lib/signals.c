/* caresignal process lifecycle: SIGINT/SIGTERM stop, SIGHUP reload, sleeping, clocks. */
#include "caresignal/signals.h"

#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t cs_stop_flag;
static volatile sig_atomic_t cs_hup_count;

static void cs_on_stop(int sig)
{
    if (cs_stop_flag)
        _exit(1); /* a second signal: the operator wants out now */
    cs_stop_flag = sig;
}

static void cs_on_hup(int sig)
{
    (void)sig;
    cs_hup_count++;
}

void cs_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = cs_on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = cs_on_hup;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cs_running(void)
{
    return !cs_stop_flag;
}

void cs_request_stop(void)
{
    cs_stop_flag = SIGTERM;
}

static volatile sig_atomic_t cs_failed;

void cs_request_fail(void)
{
    cs_failed = 1;
    cs_request_stop();
}

int cs_exit_status(void)
{
    return cs_failed ? 1 : 0;
}

int cs_reload_requested(void)
{
    static sig_atomic_t seen;
    if (cs_hup_count == seen)
        return 0;
    seen = cs_hup_count;
    return 1;
}

void cs_sleep_ms(long ms)
{
    while (ms > 0 && cs_running()) {
        long step = ms < 50 ? ms : 50;
        struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

int64_t cs_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cs_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

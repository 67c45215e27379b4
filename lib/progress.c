/* caresignal progress: bar on a terminal, periodic lines otherwise, both on stderr. */
#include "caresignal/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/signals.h"

struct cs_progress {
    char what[64];
    int64_t total, done;
    int64_t started, last_draw;
    int tty;
};

cs_progress_t *cs_progress_new(const char *what, int64_t total)
{
    cs_progress_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    snprintf(p->what, sizeof(p->what), "%s", what);
    p->total = total;
    p->started = p->last_draw = cs_mono_ms();
    p->tty = isatty(2);
    return p;
}

static void cs_progress_draw(cs_progress_t *p, int final)
{
    double secs = (double)(cs_mono_ms() - p->started) / 1000.0;
    double rate = secs > 0 ? (double)p->done / secs : 0;
    char eta[32] = "";
    if (p->total > 0 && rate > 0 && p->done < p->total) {
        long left = (long)((double)(p->total - p->done) / rate + 0.5);
        snprintf(eta, sizeof(eta), " ETA %ld:%02ld", left / 60, left % 60);
    }
    if (p->tty) {
        char bar[31];
        int fill = p->total > 0 ? (int)(30 * (double)p->done / (double)p->total) : 0;
        if (fill > 30)
            fill = 30;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(30 - fill));
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %lld/%lld %.0f/s%s   ", p->what, bar,
                (long long)p->done, (long long)p->total, rate, eta);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %lld/%lld (%.0f%%) %.0f/s%s%s\n", p->what,
                (long long)p->done, (long long)p->total,
                p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 0.0, rate,
                eta, final ? " done" : "");
    }
    fflush(stderr);
}

void cs_progress_update(cs_progress_t *p, int64_t done)
{
    if (!p)
        return;
    p->done = done;
    int64_t now = cs_mono_ms();
    if (now - p->last_draw >= (p->tty ? 200 : 5000)) {
        p->last_draw = now;
        cs_progress_draw(p, 0);
    }
}

void cs_progress_finish(cs_progress_t *p)
{
    if (!p)
        return;
    cs_progress_draw(p, 1);
    free(p);
}

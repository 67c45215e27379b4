/* caresignal fuzz targets: helpers shared by the libFuzzer harnesses (tests/fuzz/). */
#ifndef CARESIGNAL_FUZZ_COMMON_H
#define CARESIGNAL_FUZZ_COMMON_H

/* memfd_create; this header comes before any other include of a target */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef CS_FUZZ_SOURCE_DIR
#define CS_FUZZ_SOURCE_DIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_options(void);

/*
 * avro-c keeps a generic value 4 bytes past its reference count, so the pointers
 * inside one (a decoded string's buffer) are not 8-byte aligned, and LeakSanitizer
 * scans aligned words only by default: the strings of the values a target keeps for
 * its whole life would be reported as leaked. With use_unaligned=1 they are found.
 */
const char *__lsan_default_options(void)
{
    return "use_unaligned=1";
}

/* Writes "<source tree>/<rel>" into out: CS_SOURCE_DIR from the environment when set
 * (a fuzz binary copied elsewhere), else the tree it was built from. */
static inline const char *cs_fuzz_src(const char *rel, char *out, size_t size)
{
    const char *top = getenv("CS_SOURCE_DIR");
    snprintf(out, size, "%s/%s", top && *top ? top : CS_FUZZ_SOURCE_DIR, rel);
    return out;
}

/* Set-up failures are bugs of the harness or the tree, not findings: say so and stop. */
static inline void cs_fuzz_die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz set-up: %s: %s\n", what, detail ? detail : "");
    abort();
}

/*
 * One scratch file per process for the loaders that take a path: a memfd, reached as
 * /proc/self/fd/N, so the file lives in memory (a file on disk made each write wait
 * for the disk: a tenth of the speed) and a crashed run leaves nothing behind. Each
 * input rewrites it from the start.
 */
typedef struct cs_fuzz_file {
    int fd;
    char path[64];
} cs_fuzz_file_t;

static inline void cs_fuzz_file_open(cs_fuzz_file_t *f)
{
    f->fd = memfd_create("cs-fuzz-input", 0);
    if (f->fd < 0)
        cs_fuzz_die("memfd_create", NULL);
    snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
}

/* @returns the path of the scratch file now holding exactly data[0..size). */
static inline const char *cs_fuzz_file_write(cs_fuzz_file_t *f, const uint8_t *data,
                                             size_t size)
{
    if (ftruncate(f->fd, 0))
        cs_fuzz_die("ftruncate", f->path);
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(f->fd, data + done, size - done, (off_t)done);
        if (w <= 0)
            cs_fuzz_die("pwrite", f->path);
        done += (size_t)w;
    }
    return f->path;
}

#endif

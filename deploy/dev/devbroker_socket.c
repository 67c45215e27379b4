/* caresignal-devbroker's control socket: listener, per-client line buffers served with
 * poll() from the main loop (no thread), and the --send client. */
#include "devbroker_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "caresignal/log.h"
#include "caresignal/signals.h"

#define CS_DEVSOCK_CLIENTS 16
/* Replies wait here while the client does not read; room for two whole ones. */
#define CS_DEVSOCK_OUT (2 * (CS_DEVCTL_REPLY_MAX + 1))

typedef struct cs_devsock_client {
    int fd;
    int discarding; /* the current line was too long: dropped up to its newline */
    int eof;        /* the client closed its side: close once its replies are out */
    size_t inlen, outoff, outlen;
    char in[CS_DEVCTL_LINE_MAX + 1];
    char out[CS_DEVSOCK_OUT];
} cs_devsock_client_t;

struct cs_devsock {
    int fd;
    dev_t dev; /* of the socket file, so destroy removes only our own */
    ino_t ino;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    cs_devsock_client_t *clients[CS_DEVSOCK_CLIENTS];
};

static int cs_devsock_address(const char *path, struct sockaddr_un *sa, char *errstr,
                              size_t errstr_size)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path)) {
        snprintf(errstr, errstr_size,
                 "control socket path %s is longer than the %zu bytes a Unix socket "
                 "address holds",
                 path, sizeof(sa->sun_path) - 1);
        return -1;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

static int cs_devsock_flags(int fd, int nonblock)
{
    int fl = fcntl(fd, F_GETFL);
    return fcntl(fd, F_SETFD, FD_CLOEXEC) ||
           (nonblock && (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK)));
}

/* A socket file nobody listens on any more is what a killed devbroker leaves. */
static int cs_devsock_in_use(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    int e = errno;
    close(fd);
    return r == 0 || (e != ECONNREFUSED && e != ENOENT);
}

static int cs_devsock_clear_path(const char *path, const struct sockaddr_un *sa,
                                 char *errstr, size_t errstr_size)
{
    struct stat st;
    if (lstat(path, &st)) {
        if (errno == ENOENT)
            return 0;
        snprintf(errstr, errstr_size, "control socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(errstr, errstr_size,
                 "control socket %s: a file that is not a socket is there; not "
                 "replacing it",
                 path);
        return -1;
    }
    if (cs_devsock_in_use(sa)) {
        snprintf(errstr, errstr_size,
                 "control socket %s: another devbroker is serving it", path);
        return -1;
    }
    if (unlink(path) && errno != ENOENT) {
        snprintf(errstr, errstr_size,
                 "control socket %s: cannot remove the stale one: %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

cs_devsock_t *cs_devsock_listen(const char *path, char *errstr, size_t errstr_size)
{
    struct sockaddr_un sa;
    if (cs_devsock_address(path, &sa, errstr, errstr_size) ||
        cs_devsock_clear_path(path, &sa, errstr, errstr_size))
        return NULL;
    cs_devsock_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errstr, errstr_size, "control socket %s: out of memory", path);
        return NULL;
    }
    memcpy(s->path, sa.sun_path, sizeof(s->path));
    s->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s->fd < 0 || cs_devsock_flags(s->fd, 1)) {
        snprintf(errstr, errstr_size, "control socket %s: %s", path, strerror(errno));
        goto fail;
    }
    /* bind() creates the file with the umask applied: 0177 makes it 0600 from the
     * start, with no moment at which others could connect. */
    mode_t old = umask(0177);
    int r = bind(s->fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (r) {
        snprintf(errstr, errstr_size, "control socket %s: bind: %s", path, strerror(e));
        goto fail;
    }
    struct stat st;
    if (listen(s->fd, CS_DEVSOCK_CLIENTS) || stat(path, &st)) {
        snprintf(errstr, errstr_size, "control socket %s: %s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    return s;
fail:
    if (s->fd >= 0)
        close(s->fd);
    free(s);
    return NULL;
}

static void cs_devsock_close_client(cs_devsock_t *s, int i, const char *why)
{
    cs_log_debug("control client closed", "{s:i, s:s}", "slot", i, "why", why);
    close(s->clients[i]->fd);
    free(s->clients[i]);
    s->clients[i] = NULL;
}

void cs_devsock_destroy(cs_devsock_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < CS_DEVSOCK_CLIENTS; i++)
        if (s->clients[i])
            cs_devsock_close_client(s, i, "devbroker stopping");
    close(s->fd);
    struct stat st;
    if (!lstat(s->path, &st) && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
    free(s);
}

static void cs_devsock_accept(cs_devsock_t *s)
{
    for (;;) {
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                cs_log_warn("control socket: accept failed", "{s:s}", "error",
                            strerror(errno));
            return;
        }
        int slot = -1;
        for (int i = 0; i < CS_DEVSOCK_CLIENTS && slot < 0; i++)
            if (!s->clients[i])
                slot = i;
        cs_devsock_client_t *c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
        if (!c || cs_devsock_flags(fd, 1)) {
            static const char busy[] = "error too many control clients\n";
            ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w; /* best effort: the connection is refused either way */
            cs_log_warn("control client refused", "{s:s}", "why",
                        c ? strerror(errno) : "no free slot or out of memory");
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        s->clients[slot] = c;
        cs_log_debug("control client connected", "{s:i}", "slot", slot);
    }
}

/* Room for one more whole reply: otherwise the client must read before we go on. */
static int cs_devsock_room(const cs_devsock_client_t *c)
{
    return sizeof(c->out) - c->outlen >= CS_DEVCTL_REPLY_MAX + 1;
}

static void cs_devsock_answer(cs_devsock_client_t *c, cs_devctl_t *ctl, const char *line)
{
    char reply[CS_DEVCTL_REPLY_MAX];
    cs_devctl_exec(ctl, line, reply, sizeof(reply));
    size_t n = strlen(reply);
    memcpy(c->out + c->outlen, reply, n);
    c->out[c->outlen + n] = '\n';
    c->outlen += n + 1;
}

/* Answers every complete line buffered, as far as there is room for the replies. */
static void cs_devsock_lines(cs_devsock_client_t *c, cs_devctl_t *ctl)
{
    while (cs_devsock_room(c)) {
        char *nl = memchr(c->in, '\n', c->inlen);
        if (!nl) {
            if (c->inlen == CS_DEVCTL_LINE_MAX + 1 && !c->discarding) {
                char reply[80];
                snprintf(reply, sizeof(reply), "error line longer than %d bytes",
                         CS_DEVCTL_LINE_MAX);
                cs_log_warn("control command refused", "{s:s}", "reply", reply);
                size_t n = strlen(reply);
                memcpy(c->out + c->outlen, reply, n);
                c->out[c->outlen + n] = '\n';
                c->outlen += n + 1;
                c->discarding = 1;
            }
            if (c->discarding)
                c->inlen = 0;
            else if (c->eof && c->inlen > 0) { /* a last line without its newline */
                c->in[c->inlen] = '\0';
                cs_devsock_answer(c, ctl, c->in);
                c->inlen = 0;
            }
            return;
        }
        *nl = '\0';
        if (nl > c->in && nl[-1] == '\r')
            nl[-1] = '\0';
        if (c->discarding)
            c->discarding = 0; /* its error was answered when it overflowed */
        else
            cs_devsock_answer(c, ctl, c->in);
        size_t used = (size_t)(nl + 1 - c->in);
        memmove(c->in, nl + 1, c->inlen - used);
        c->inlen -= used;
    }
}

/* @returns -1 when the client is gone or broken. */
static int cs_devsock_read(cs_devsock_client_t *c, cs_devctl_t *ctl)
{
    ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    if (n == 0)
        c->eof = 1;
    c->inlen += (size_t)n;
    cs_devsock_lines(c, ctl);
    return 0;
}

static int cs_devsock_write(cs_devsock_client_t *c, cs_devctl_t *ctl)
{
    ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    c->outoff += (size_t)n;
    if (c->outoff == c->outlen)
        c->outoff = c->outlen = 0;
    else if (c->outoff > sizeof(c->out) / 2) {
        memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
        c->outlen -= c->outoff;
        c->outoff = 0;
    }
    cs_devsock_lines(c, ctl); /* lines held back while the replies did not fit */
    return 0;
}

void cs_devsock_serve(cs_devsock_t *s, cs_devctl_t *ctl, int timeout_ms)
{
    struct pollfd pfd[1 + CS_DEVSOCK_CLIENTS];
    int slot[1 + CS_DEVSOCK_CLIENTS];
    nfds_t n = 0;
    pfd[n].fd = s->fd;
    pfd[n++].events = POLLIN;
    for (int i = 0; i < CS_DEVSOCK_CLIENTS; i++) {
        cs_devsock_client_t *c = s->clients[i];
        if (!c)
            continue;
        pfd[n].fd = c->fd;
        pfd[n].events =
            (short)((c->outlen > c->outoff ? POLLOUT : 0) |
                    (!c->eof && cs_devsock_room(c) && c->inlen < sizeof(c->in) ? POLLIN
                                                                               : 0));
        pfd[n].revents = 0;
        slot[n++] = i;
    }
    if (poll(pfd, n, timeout_ms) <= 0)
        return; /* timeout, or a signal: the caller checks cs_running() */
    for (nfds_t k = 1; k < n; k++) {
        cs_devsock_client_t *c = s->clients[slot[k]];
        short ev = pfd[k].revents;
        int bad = 0;
        if (ev & (POLLIN | POLLHUP | POLLERR))
            bad = (ev & POLLERR) || cs_devsock_read(c, ctl);
        if (!bad && (ev & POLLOUT))
            bad = cs_devsock_write(c, ctl);
        if (bad)
            cs_devsock_close_client(s, slot[k], "connection error");
        else if (c->eof && c->outlen == c->outoff && c->inlen == 0)
            cs_devsock_close_client(s, slot[k], "client done");
    }
    if (pfd[0].revents & POLLIN)
        cs_devsock_accept(s);
}

/* ------------------------------------------------------------------ client */

cs_err_t cs_devsock_send(const char *path, const char *line, int timeout_ms, char *reply,
                         size_t reply_size, char *errstr, size_t errstr_size)
{
    struct sockaddr_un sa;
    if (cs_devsock_address(path, &sa, errstr, errstr_size))
        return CS_ERR_IO;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        snprintf(errstr, errstr_size,
                 "cannot connect to the control socket %s: %s (is caresignal-devbroker "
                 "--control running?)",
                 path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CS_ERR_IO;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t len = strlen(line), off = 0;
    cs_err_t r = CS_OK;
    while (r == CS_OK && off <= len) {
        /* the line, then its newline */
        ssize_t w = off < len ? send(fd, line + off, len - off, MSG_NOSIGNAL)
                              : send(fd, "\n", 1, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r = errno == EAGAIN ? CS_ERR_TIMEOUT : CS_ERR_IO;
            snprintf(errstr, errstr_size, "control socket %s: sending the command: %s",
                     path, strerror(errno));
        } else
            off += (size_t)w;
    }
    size_t got = 0;
    while (r == CS_OK) {
        char ch;
        ssize_t n = recv(fd, &ch, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = errno == EAGAIN ? CS_ERR_TIMEOUT : CS_ERR_IO;
            snprintf(errstr, errstr_size, "control socket %s: no reply%s: %s", path,
                     r == CS_ERR_TIMEOUT ? " in time" : "", strerror(errno));
        } else if (n == 0) {
            r = CS_ERR_IO;
            snprintf(errstr, errstr_size,
                     "control socket %s: the devbroker closed the connection without a "
                     "whole reply",
                     path);
        } else if (ch == '\n')
            break;
        else if (got + 1 < reply_size)
            reply[got++] = ch;
    }
    if (reply_size)
        reply[got < reply_size ? got : reply_size - 1] = '\0';
    close(fd);
    return r;
}

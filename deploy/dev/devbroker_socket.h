/* caresignal-devbroker's control socket: a Unix-domain stream socket served by the main
 * loop with poll(), and the one-command client behind --send. */
#ifndef CS_DEVBROKER_SOCKET_H
#define CS_DEVBROKER_SOCKET_H

#include <stddef.h>

#include "caresignal/error.h"
#include "devbroker_control.h"

typedef struct cs_devsock cs_devsock_t;

/**
 * Creates the socket file \p path with mode 0600 (whoever can connect can take the
 * brokers down) and listens on it. A socket file left by a killed devbroker (nobody
 * answers on it) is replaced; a live one, or a file that is not a socket, is an error.
 *
 * Call it before any thread is started: the mode is set through the process umask.
 * @returns the listener, or NULL with \p errstr written. Release with
 *          cs_devsock_destroy().
 */
cs_devsock_t *cs_devsock_listen(const char *path, char *errstr, size_t errstr_size);

/**
 * Waits up to \p timeout_ms (less if a signal arrives) for clients, accepts new ones
 * and answers every complete command line with \p ctl (borrowed). Several clients, and
 * several commands per connection, are served in turn; a client that stops reading its
 * replies is no longer read from until it does.
 */
void cs_devsock_serve(cs_devsock_t *s, cs_devctl_t *ctl, int timeout_ms);

/** Closes every client and the listener, and removes the socket file if it is still
 * the one this listener created. NULL is a no-op. */
void cs_devsock_destroy(cs_devsock_t *s);

/**
 * Client: sends \p line (one command, no newline) to the control socket at \p path and
 * reads its reply line, without newline, into \p reply.
 * @returns CS_OK when a reply was read; CS_ERR_IO (no devbroker there, connection
 *          lost) or CS_ERR_TIMEOUT (no reply within \p timeout_ms) with \p errstr
 *          written.
 */
cs_err_t cs_devsock_send(const char *path, const char *line, int timeout_ms, char *reply,
                         size_t reply_size, char *errstr, size_t errstr_size);

#endif

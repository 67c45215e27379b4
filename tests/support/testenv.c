/* Test support: throwaway redis-server processes on free loopback ports, temp files. */
#include "testenv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int cs_test_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    if (s < 0 || bind(s, (struct sockaddr *)&sin, sizeof(sin)) ||
        getsockname(s, (struct sockaddr *)&sin, &len)) {
        if (s >= 0)
            close(s);
        return -1;
    }
    close(s);
    return ntohs(sin.sin_port);
}

static int cs_test_redis_ping(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

int cs_test_redis_start(cs_test_redis_t *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/cs-test-redis-XXXXXX");
    if (!mkdtemp(r->dir))
        return -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = cs_test_free_port();
        char port[16];
        snprintf(port, sizeof(port), "%d", r->port);
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int devnull = open("/dev/null", 1);
            if (devnull >= 0) {
                dup2(devnull, 1);
                dup2(devnull, 2);
            }
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
                   "--dir", r->dir, "--save", "", "--appendonly", "no", "--daemonize",
                   "no", (char *)NULL);
            _exit(127);
        }
        r->pid = pid;
        for (int i = 0; i < 100; i++) {
            if (cs_test_redis_ping(r->port))
                return 0;
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid)
                break; /* died: port taken? try another */
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        r->pid = 0;
    }
    return -1;
}

void cs_test_redis_stop(cs_test_redis_t *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        for (int i = 0; i < 100; i++) {
            if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
                r->pid = 0;
                break;
            }
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
        if (r->pid > 0) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
        }
    }
    r->pid = 0;
    if (r->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", r->dir);
        r->dir[0] = '\0';
    }
}

const char *cs_test_source_dir(void)
{
    const char *d = getenv("CS_SOURCE_DIR");
    return d ? d : ".";
}

const char *cs_test_write_temp(const char *text)
{
    static char paths[8][64];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 64, "/tmp/cs-test-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        return NULL;
    }
    close(fd);
    return path;
}

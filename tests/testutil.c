/*  testutil.c: see testutil.h. */
#include "testutil.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char s_dir[256];

const char *tu_ipc_dir(void)
{
    if (!s_dir[0]) {
        snprintf(s_dir, sizeof s_dir, "/tmp/zchan-test-XXXXXX");
        if (!mkdtemp(s_dir))
            fail_msg("mkdtemp failed");
        setenv("ZCHAN_IPC_DIR", s_dir, 1);
    }
    return s_dir;
}

void tu_cleanup_dir(void)
{
    if (s_dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s_dir);
        s_dir[0] = 0;
    }
}

int tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        fail_msg("socket failed");
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(fd, (struct sockaddr *) &a, sizeof a) != 0)
        fail_msg("bind failed");
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *) &a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

int tu_slow(void)
{
    const char *v = getenv("ZCHAN_TEST_SLOW");
    int f = v ? atoi(v) : 1;
    return f >= 1 ? f : 1;
}

char tu_thread_state(int tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    //  "TID (COMM) STATE ...": COMM may hold spaces or parentheses.
    const char *close = strrchr(buf, ')');
    return close && close[1] == ' ' ? close[2] : 0;
}

/*  benchproc.c: see benchproc.h. */
#define _GNU_SOURCE
#include "benchproc.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

volatile sig_atomic_t g_stop;
char g_self[PATH_MAX];
char g_tmpdir[PATH_MAX];
static volatile pid_t s_pids[4096]; // live worker processes, for the signal handler

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t) w;
    }
    return 0;
}

int say(int fd, const char *fmt, ...)
{
    char buf[LINE_MAX_];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t) n > sizeof buf - 2)
        n = (int) sizeof buf - 2;
    buf[n++] = '\n';
    return write_all(fd, buf, (size_t) n);
}

bool line_take(linebuf_t *lb, char *out, size_t n)
{
    char *nl = memchr(lb->buf, '\n', lb->len);
    if (!nl)
        return false;
    size_t k = (size_t) (nl - lb->buf);
    size_t c = k < n - 1 ? k : n - 1;
    memcpy(out, lb->buf, c);
    out[c] = 0;
    lb->len -= k + 1;
    memmove(lb->buf, nl + 1, lb->len);
    return true;
}

int line_fill(linebuf_t *lb)
{
    if (lb->len == sizeof lb->buf) {
        lb->eof = true; // a line too long: a broken peer
        return -1;
    }
    ssize_t r = read(lb->fd, lb->buf + lb->len, sizeof lb->buf - lb->len);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (r <= 0) {
        lb->eof = true;
        return -1;
    }
    lb->len += (size_t) r;
    return 0;
}

int line_read(linebuf_t *lb, char *out, size_t n, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ns() + (int64_t) timeout_ms * 1000000;
    while (true) {
        if (line_take(lb, out, n))
            return 1;
        if (lb->eof || g_stop)
            return -1;
        int wait = 100;
        if (deadline >= 0) {
            int64_t left_ns = deadline - now_ns();
            if (left_ns <= 0)
                return 0;
            int64_t left = (left_ns + 999999) / 1000000;
            if (left < wait)
                wait = (int) left;
        }
        struct pollfd p = {lb->fd, POLLIN, 0};
        int rc = poll(&p, 1, wait);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc > 0 && line_fill(lb) != 0 && !memchr(lb->buf, '\n', lb->len))
            return -1;
    }
}

int pipe_hi(int fds[2])
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fds[i] = fcntl(p[i], F_DUPFD_CLOEXEC, 10);
        close(p[i]);
    }
    if (fds[0] < 0 || fds[1] < 0) {
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        return -1;
    }
    return 0;
}

int worker_pipes(int down[2], int up[2], char *err, size_t errn)
{
    if (pipe_hi(down) != 0) {
        snprintf(err, errn, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe_hi(up) != 0) {
        snprintf(err, errn, "pipe: %s", strerror(errno));
        close(down[0]);
        close(down[1]);
        return -1;
    }
    return 0;
}

int worker_spawn(pid_t *pid, char *const argv[], int in, int out)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in, WORKER_IN_FD);
    posix_spawn_file_actions_adddup2(&fa, out, WORKER_OUT_FD);
    int rc = posix_spawn(pid, g_self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc == 0)
        pid_track(*pid, true);
    close(in);
    close(out);
    return rc;
}

int worker_reap(pid_t pid, int grace_ms)
{
    int64_t deadline = now_ns() + (int64_t) grace_ms * 1000000;
    int ws = 0, status;
    pid_t r;
    while ((r = waitpid(pid, &ws, WNOHANG)) == 0 && now_ns() < deadline)
        sleep_ms(5);
    if (r == 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
            ;
        status = 1;
    } else if (r < 0)
        status = 1;
    else
        status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    pid_track(pid, false);
    return status;
}

bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

void pid_track(pid_t pid, bool add)
{
    for (size_t i = 0; i < sizeof s_pids / sizeof s_pids[0]; i++)
        if (add ? s_pids[i] == 0 : s_pids[i] == pid) {
            s_pids[i] = add ? pid : 0;
            return;
        }
}

static void s_on_signal(int sig)
{
    (void) sig;
    g_stop = 1;
    for (size_t i = 0; i < sizeof s_pids / sizeof s_pids[0]; i++)
        if (s_pids[i] > 0)
            kill(s_pids[i], SIGKILL);
}

static int s_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb, (void) flag, (void) ftw;
    remove(path);
    return 0;
}

int make_tmpdir(const char *prog)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prog);
    if (!mkdtemp(g_tmpdir)) {
        fprintf(stderr, "%s: mkdtemp %s: %s\n", prog, g_tmpdir, strerror(errno));
        return -1;
    }
    setenv("ZCHAN_IPC_DIR", g_tmpdir, 1);
    return 0;
}

void rm_tmpdir(void)
{
    if (g_tmpdir[0])
        nftw(g_tmpdir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_tmpdir[0] = 0;
}

int coordinator_setup(const char *prog, FILE **out)
{
    int outfd = dup(STDOUT_FILENO);
    *out = outfd >= 0 ? fdopen(outfd, "w") : NULL;
    if (!*out) {
        fprintf(stderr, "%s: stdout: %s\n", prog, strerror(errno));
        return -1;
    }
    dup2(STDERR_FILENO, STDOUT_FILENO);
    ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (n <= 0) {
        fprintf(stderr, "%s: /proc/self/exe: %s\n", prog, strerror(errno));
        return -1;
    }
    g_self[n] = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

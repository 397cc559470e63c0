/*  relayutil.c: see relayutil.h. */
#include "relayutil.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_PROCS 64

char ru_bin[PATH_MAX];
const char *ru_dir;
static pid_t s_procs[MAX_PROCS];
static int s_nprocs;
static int s_seq;

// ---------------------------------------------------------------------------
// Fixture

int ru_setup(void **state)
{
    (void) state;
    ru_dir = tu_ipc_dir();
    const char *bin = getenv("ZCHAN_TEST_BIN_DIR");
    snprintf(ru_bin, sizeof ru_bin, "%s", bin ? bin : "..");
    setenv("ZCHAN_TIMEOUT_MS", "3000", 1);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int ru_teardown(void **state)
{
    (void) state;
    for (int i = 0; i < s_nprocs; i++) {
        kill(s_procs[i], SIGKILL);
        waitpid(s_procs[i], NULL, 0);
    }
    s_nprocs = 0;
    return 0;
}

int ru_group_teardown(void **state)
{
    ru_teardown(state);
    tu_cleanup_dir();
    return 0;
}

// ---------------------------------------------------------------------------
// Processes

int64_t ru_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ru_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int ru_seq(void)
{
    return ++s_seq;
}

void ru_path(char *out, size_t n, const char *what)
{
    snprintf(out, n, "%s/%s-%d", ru_dir, what, ru_seq());
}

void ru_tool(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/tools/%s", ru_bin, name);
}

pid_t ru_spawn(char *const argv[], char *const env[], const char *in, const char *out, const char *err)
{
    char *envp[512];
    char **use = environ;
    if (env) {
        int n = 0;
        for (int i = 0; env[i] && n < 64; i++)
            envp[n++] = env[i];
        for (char **e = environ; *e && n < 511; e++) {
            bool overridden = false;
            for (int i = 0; env[i]; i++) {
                size_t klen = strcspn(env[i], "=") + 1;
                if (strncmp(*e, env[i], klen) == 0)
                    overridden = true;
            }
            if (!overridden)
                envp[n++] = *e;
        }
        envp[n] = NULL;
        use = envp;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err ? err : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, use);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("cannot start %s: %s", argv[0], strerror(rc));
    if (s_nprocs < MAX_PROCS)
        s_procs[s_nprocs++] = pid;
    return pid;
}

static void s_forget(pid_t pid)
{
    for (int i = 0; i < s_nprocs; i++)
        if (s_procs[i] == pid) {
            s_procs[i] = s_procs[--s_nprocs];
            return;
        }
}

int ru_wait(pid_t pid, int timeout_ms)
{
    int64_t deadline = ru_now_ms() + (int64_t) timeout_ms * tu_slow();
    int status;
    while (true) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR)
            return -2;
        if (ru_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            s_forget(pid);
            return -1;
        }
        ru_sleep_ms(5);
    }
    s_forget(pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool ru_alive(pid_t pid)
{
    int status;
    return waitpid(pid, &status, WNOHANG) == 0;
}

// ---------------------------------------------------------------------------
// Files

char *ru_slurp_n(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 1);
    size_t n = 0;
    if (f) {
        char chunk[4096];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
            buf = realloc(buf, n + got + 1);
            memcpy(buf + n, chunk, got);
            n += got;
            buf[n] = 0;
        }
        fclose(f);
    }
    if (len)
        *len = n;
    return buf;
}

char *ru_slurp(const char *path)
{
    return ru_slurp_n(path, NULL);
}

void ru_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

// ---------------------------------------------------------------------------
// CLI runs

void ru_run_free(ru_run_t *r)
{
    free(r->out);
    free(r->err);
}

ru_run_t ru_cli_v(char *const env[], const char *in, va_list ap)
{
    char *argv[40];
    char exe[2 * PATH_MAX];
    ru_tool(exe, sizeof exe, "zchan");
    argv[0] = exe;
    int n = 1;
    const char *a;
    while (n < 39 && (a = va_arg(ap, const char *)) != NULL)
        argv[n++] = (char *) a;
    argv[n] = NULL;
    char opath[PATH_MAX], epath[PATH_MAX];
    ru_path(opath, sizeof opath, "out");
    ru_path(epath, sizeof epath, "err");
    ru_run_t r;
    r.rc = ru_wait(ru_spawn(argv, env, in, opath, epath), 20000);
    r.out = ru_slurp(opath);
    r.err = ru_slurp(epath);
    if (*r.err)
        fprintf(stderr, "  [zchan %s -> %d] %s", argv[1], r.rc, r.err);
    unlink(opath);
    unlink(epath);
    return r;
}

ru_run_t ru_cli(char *const env[], const char *in, ...)
{
    va_list ap;
    va_start(ap, in);
    ru_run_t r = ru_cli_v(env, in, ap);
    va_end(ap);
    return r;
}

// ---------------------------------------------------------------------------
// The relay

void ru_relay_wait_ready(ru_relay_t *r, int nlines)
{
    int64_t deadline = ru_now_ms() + 10000 * tu_slow();
    while (true) {
        char *text = ru_slurp(r->epfile);
        int lines = 0;
        for (char *p = text; *p; p++)
            lines += *p == '\n';
        if (lines >= nlines) {
            snprintf(r->tcp, sizeof r->tcp, "%.*s", (int) strcspn(text, "\n"), text);
            free(text);
            return;
        }
        free(text);
        if (!ru_alive(r->pid)) {
            char *log = ru_slurp(r->log);
            fail_msg("the relay did not start:\n%s", log);
        }
        assert_true(ru_now_ms() < deadline);
        ru_sleep_ms(10);
    }
}

void ru_relay_start(ru_relay_t *r, const char *tcp_bind, bool ipc, ...)
{
    memset(r, 0, sizeof *r);
    ru_path(r->log, sizeof r->log, "relay.log");
    ru_path(r->epfile, sizeof r->epfile, "relay.ep");
    char exe[2 * PATH_MAX];
    ru_tool(exe, sizeof exe, "zchan-relay");
    char *argv[32] = {exe, "--bind", (char *) (tcp_bind ? tcp_bind : "tcp://127.0.0.1:0")};
    int n = 3;
    if (ipc) {
        snprintf(r->ipc, sizeof r->ipc, "ipc://relay%d", ru_seq());
        argv[n++] = "--bind";
        argv[n++] = r->ipc;
    }
    argv[n++] = "--endpoint-file";
    argv[n++] = r->epfile;
    va_list ap;
    va_start(ap, ipc);
    const char *a;
    while (n < 31 && (a = va_arg(ap, const char *)) != NULL)
        argv[n++] = (char *) a;
    va_end(ap);
    argv[n] = NULL;
    r->pid = ru_spawn(argv, NULL, NULL, NULL, r->log);
    ru_relay_wait_ready(r, ipc ? 2 : 1);
}

// ---------------------------------------------------------------------------
// Channels

void ru_wait_receivers(zchan_ctx_t *ctx, const char *uri, uint64_t n)
{
    int64_t deadline = ru_now_ms() + 10000 * tu_slow();
    zchan_t *ch = NULL;
    while (!ch && ru_now_ms() < deadline)
        if (!(ch = zchan_open(ctx, uri)))
            ru_sleep_ms(10);
    assert_non_null(ch);
    zchan_stat_t st = {0};
    while (ru_now_ms() < deadline) {
        tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
        if (st.receivers >= n)
            break;
        ru_sleep_ms(10);
    }
    zchan_destroy(&ch);
    assert_true(st.receivers >= n);
}

zchan_ctx_t *ru_ctx(void)
{
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    zchan_ctx_set_timeout(ctx, 3000);
    return ctx;
}

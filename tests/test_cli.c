/*  test_cli.c: the zchan CLI's output, exit codes, URI checks and value
    round-trips, and the library calls behind them (log stream, sender flush,
    hub lost, tcp URI parsing).

    Processes are started with posix_spawn (exec), each with its own
    environment, and recorded: the teardown kills and reaps whatever is left.
    Files live in the test's temporary ZCHAN_IPC_DIR, removed at the end.
*/
#include "testutil.h"
#include "core.h" // zchan__transport_for, parse_uri
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_PROCS 32

static char s_bin[PATH_MAX]; // the build directory
static const char *s_dir;    // the temporary runtime directory
static pid_t s_procs[MAX_PROCS];
static int s_nprocs;
static int s_seq;

// ---------------------------------------------------------------------------
// Processes

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void s_path(char *out, size_t n, const char *what)
{
    snprintf(out, n, "%s/%s-%d", s_dir, what, ++s_seq);
}

//  Starts argv with this process's environment plus env (NAME=VALUE
//  strings, NULL-terminated, may be NULL; they win), stdin, stdout and
//  stderr from/to the given files (NULL: /dev/null). Recorded for the
//  teardown.
static pid_t s_spawn(char *const argv[], char *const env[], const char *in, const char *out, const char *err)
{
    char *envp[512];
    int n = 0;
    for (int i = 0; env && env[i] && n < 64; i++)
        envp[n++] = env[i];
    for (char **e = environ; *e && n < 511; e++) {
        bool overridden = false;
        for (int i = 0; env && env[i]; i++) {
            size_t klen = strcspn(env[i], "=") + 1;
            if (strncmp(*e, env[i], klen) == 0)
                overridden = true;
        }
        if (!overridden)
            envp[n++] = *e;
    }
    envp[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
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

//  Waits for pid to exit within timeout_ms. Returns its exit code, 128 + the
//  signal that ended it, or -1 if it was still running (then it is killed).
static int s_wait(pid_t pid, int timeout_ms)
{
    int64_t deadline = s_now_ms() + (int64_t) timeout_ms * tu_slow();
    int status;
    while (true) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR)
            return -2;
        if (s_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            s_forget(pid);
            return -1;
        }
        s_sleep_ms(5);
    }
    s_forget(pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool s_alive(pid_t pid)
{
    int status;
    return waitpid(pid, &status, WNOHANG) == 0;
}

//  Reads a whole file into a new string ("" if missing); *len its length.
static char *s_slurp_n(const char *path, size_t *len)
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

static char *s_slurp(const char *path)
{
    return s_slurp_n(path, NULL);
}

static void s_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

//  A finished CLI run: exit code, stdout and stderr (free both).
typedef struct {
    int rc;
    char *out;
    char *err;
} run_t;

static void s_run_free(run_t *r)
{
    free(r->out);
    free(r->err);
}

//  Runs `zchan ARGS...` (NULL-terminated) with env added to the environment
//  and stdin from in (may be NULL), and waits for it (20 s at most).
static run_t s_cli_env(char *const env[], const char *in, ...)
{
    char *argv[40];
    char exe[2 * PATH_MAX];
    snprintf(exe, sizeof exe, "%s/tools/zchan", s_bin);
    argv[0] = exe;
    va_list ap;
    va_start(ap, in);
    int n = 1;
    const char *a;
    while (n < 39 && (a = va_arg(ap, const char *)) != NULL)
        argv[n++] = (char *) a;
    va_end(ap);
    argv[n] = NULL;
    char opath[PATH_MAX], epath[PATH_MAX];
    s_path(opath, sizeof opath, "out");
    s_path(epath, sizeof epath, "err");
    run_t r;
    r.rc = s_wait(s_spawn(argv, env, in, opath, epath), 20000);
    r.out = s_slurp(opath);
    r.err = s_slurp(epath);
    if (*r.err)
        fprintf(stderr, "  [zchan %s -> %d] %s", argv[1], r.rc, r.err);
    unlink(opath);
    unlink(epath);
    return r;
}

#define s_cli(in, ...) s_cli_env(NULL, in, __VA_ARGS__)

// ---------------------------------------------------------------------------
// The relay

typedef struct {
    pid_t pid;
    char tcp[128]; // tcp://127.0.0.1:PORT
    char log[PATH_MAX];
    char epfile[PATH_MAX];
} relay_t;

//  Starts a relay on 127.0.0.1 port 0 with extra options (NULL-terminated),
//  and waits until its endpoint file names the port.
static void s_relay_start(relay_t *r, ...)
{
    memset(r, 0, sizeof *r);
    s_path(r->log, sizeof r->log, "relay.log");
    s_path(r->epfile, sizeof r->epfile, "relay.ep");
    char exe[2 * PATH_MAX];
    snprintf(exe, sizeof exe, "%s/tools/zchan-relay", s_bin);
    char *argv[32] = {exe, "--bind", "tcp://127.0.0.1:0", "--endpoint-file", r->epfile};
    int n = 5;
    va_list ap;
    va_start(ap, r);
    const char *a;
    while (n < 31 && (a = va_arg(ap, const char *)) != NULL)
        argv[n++] = (char *) a;
    va_end(ap);
    argv[n] = NULL;
    r->pid = s_spawn(argv, NULL, NULL, NULL, r->log);
    int64_t deadline = s_now_ms() + 10000 * tu_slow();
    while (true) {
        char *text = s_slurp(r->epfile);
        if (strchr(text, '\n')) {
            snprintf(r->tcp, sizeof r->tcp, "%.*s", (int) strcspn(text, "\n"), text);
            free(text);
            return;
        }
        free(text);
        if (!s_alive(r->pid)) {
            char *log = s_slurp(r->log);
            fail_msg("the relay did not start:\n%s", log);
        }
        assert_true(s_now_ms() < deadline);
        s_sleep_ms(10);
    }
}

//  Waits until the channel at uri has n receivers attached.
static void s_wait_receivers(zchan_ctx_t *ctx, const char *uri, uint64_t n)
{
    int64_t deadline = s_now_ms() + 10000 * tu_slow();
    zchan_t *ch = NULL;
    while (!ch && s_now_ms() < deadline)
        if (!(ch = zchan_open(ctx, uri)))
            s_sleep_ms(10);
    assert_non_null(ch);
    zchan_stat_t st = {0};
    while (s_now_ms() < deadline) {
        tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
        if (st.receivers >= n)
            break;
        s_sleep_ms(10);
    }
    zchan_destroy(&ch);
    assert_true(st.receivers >= n);
}

static zchan_ctx_t *s_ctx(void)
{
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    zchan_ctx_set_timeout(ctx, 3000);
    return ctx;
}

// ---------------------------------------------------------------------------
// Fixture

static int s_setup(void **state)
{
    (void) state;
    s_dir = tu_ipc_dir();
    const char *bin = getenv("ZCHAN_TEST_BIN_DIR");
    snprintf(s_bin, sizeof s_bin, "%s", bin ? bin : "..");
    setenv("ZCHAN_TIMEOUT_MS", "3000", 1);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int s_teardown(void **state)
{
    (void) state;
    for (int i = 0; i < s_nprocs; i++) {
        kill(s_procs[i], SIGKILL);
        waitpid(s_procs[i], NULL, 0);
    }
    s_nprocs = 0;
    return 0;
}

static int s_group_teardown(void **state)
{
    s_teardown(state);
    tu_cleanup_dir();
    return 0;
}

// ---------------------------------------------------------------------------
// Logs go to stderr

//  A bad $ZCHAN_HEARTBEAT_MS makes zchan_ctx_new log a warning, every time.
static char *s_bad_hb_env[] = {"ZCHAN_HEARTBEAT_MS=-5", NULL};

//  A program of the library's (the README's hello) prints its output on
//  stdout and the library's warning on stderr, not in the output.
static void test_library_logs_to_stderr(void **state)
{
    (void) state;
    char exe[2 * PATH_MAX], opath[PATH_MAX], epath[PATH_MAX];
    snprintf(exe, sizeof exe, "%s/hello", s_bin);
    if (access(exe, X_OK) != 0)
        fail_msg("%s is not built", exe);
    s_path(opath, sizeof opath, "out");
    s_path(epath, sizeof epath, "err");
    char *argv[] = {exe, NULL};
    assert_int_equal(s_wait(s_spawn(argv, s_bad_hb_env, NULL, opath, epath), 20000), 0);
    char *out = s_slurp(opath), *err = s_slurp(epath);
    assert_string_equal(out, "Hello, World!\n");
    assert_non_null(strstr(err, "ZCHAN_HEARTBEAT_MS"));
    free(out);
    free(err);
}

//  zchan recv's stdout holds the values and nothing else, with the library
//  logging meanwhile; so does zchan send's (nothing).
static void test_cli_logs_to_stderr(void **state)
{
    (void) state;
    relay_t relay;
    s_relay_start(&relay, NULL);
    char uri[200], opath[PATH_MAX], epath[PATH_MAX];
    snprintf(uri, sizeof uri, "%s/logs", relay.tcp);
    s_path(opath, sizeof opath, "out");
    s_path(epath, sizeof epath, "err");
    char exe[2 * PATH_MAX];
    snprintf(exe, sizeof exe, "%s/tools/zchan", s_bin);
    char *argv[] = {exe, "recv", "--anycast", "-n", "2", uri, NULL};
    pid_t recv = s_spawn(argv, s_bad_hb_env, NULL, opath, epath);
    zchan_ctx_t *ctx = s_ctx();
    s_wait_receivers(ctx, uri, 1);
    run_t r = s_cli_env(s_bad_hb_env, NULL, "send", uri, "\"a\"", "[1,{\"b\":null}]", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "ZCHAN_HEARTBEAT_MS"));
    s_run_free(&r);
    assert_int_equal(s_wait(recv, 20000), 0);
    char *out = s_slurp(opath), *err = s_slurp(epath);
    assert_string_equal(out, "\"a\"\n[1,{\"b\":null}]\n");
    assert_non_null(strstr(err, "ZCHAN_HEARTBEAT_MS"));
    free(out);
    free(err);
    zchan_ctx_destroy(&ctx);
}

// ---------------------------------------------------------------------------
// Exit codes

//  A relay killed under zchan recv: exit 9 and a line on stderr, not the 0
//  of a clean close (which a relay stopped by SIGTERM gives).
static void test_recv_hub_lost(void **state)
{
    (void) state;
    char *fast_hb[] = {"ZCHAN_HEARTBEAT_MS=100", "ZCHAN_HEARTBEAT_TIMEOUT_MS=500", NULL};
    char exe[2 * PATH_MAX], uri[200], epath[PATH_MAX];
    snprintf(exe, sizeof exe, "%s/tools/zchan", s_bin);
    zchan_ctx_t *ctx = s_ctx();
    for (int kill_it = 1; kill_it >= 0; kill_it--) {
        relay_t relay;
        s_relay_start(&relay, NULL);
        snprintf(uri, sizeof uri, "%s/lost", relay.tcp);
        s_path(epath, sizeof epath, "err");
        char *argv[] = {exe, "recv", "--anycast", uri, NULL};
        pid_t recv = s_spawn(argv, fast_hb, NULL, NULL, epath);
        s_wait_receivers(ctx, uri, 1);
        kill(relay.pid, kill_it ? SIGKILL : SIGTERM);
        assert_int_equal(s_wait(relay.pid, 10000), kill_it ? 128 + SIGKILL : 0);
        int rc = s_wait(recv, 20000);
        char *err = s_slurp(epath);
        if (kill_it) {
            if (rc != 9)
                fail_msg("zchan recv exit %d after its relay was killed; stderr:\n%s", rc, err);
            assert_non_null(strstr(err, "zchan: "));
            assert_non_null(strstr(err, "hub was lost"));
        } else
            assert_int_equal(rc, 0);
        free(err);
    }
    zchan_ctx_destroy(&ctx);
}

//  A message over the relay's --max-msg-size: zchan send exits 10 with a
//  line on stderr; a message under it on the same relay is sent (exit 0).
static void test_send_over_max_size(void **state)
{
    (void) state;
    relay_t relay;
    s_relay_start(&relay, "--max-msg-size", "1k", NULL);
    char uri[200];
    snprintf(uri, sizeof uri, "%s/big", relay.tcp);
    char big[4100];
    memset(big, 'x', sizeof big);
    big[0] = '"';
    big[sizeof big - 2] = '"';
    big[sizeof big - 1] = 0;
    run_t r = s_cli(NULL, "send", "--anycast", uri, big, NULL);
    if (r.rc != 10)
        fail_msg("zchan send of a message over the hub's limit: exit %d", r.rc);
    assert_non_null(strstr(r.err, "not every message reached the channel"));
    s_run_free(&r);
    //  Several messages, the big one among them.
    r = s_cli(NULL, "send", uri, "1", big, "2", NULL);
    assert_int_equal(r.rc, 10);
    s_run_free(&r);
    r = s_cli(NULL, "send", uri, "\"small\"", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    s_run_free(&r);
    r = s_cli(NULL, "recv", "-n", "1", "-t", "5000", uri, NULL);
    assert_int_equal(r.rc, 0);
    s_run_free(&r);
    //  The senders whose connection the relay dropped are not left counted:
    //  the hub drops an attachment whose connection is gone (within about
    //  5 s; the deadline is generous).
    zchan_ctx_t *ctx = s_ctx();
    zchan_t *ch = zchan_open(ctx, uri);
    assert_non_null(ch);
    zchan_stat_t st;
    int64_t deadline = zchan__now_ms() + 30000;
    do {
        tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
        if (st.senders == 0 && st.receivers == 0)
            break;
        usleep(100 * 1000); // polling the hub's counters: there is no event to wait on
    } while (zchan__now_ms() < deadline);
    if (st.senders != 0 || st.receivers != 0)
        fail_msg("the relay still counts %" PRIu64 " senders and %" PRIu64 " receivers", (uint64_t) st.senders,
                 (uint64_t) st.receivers);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
}

//  zchan_sender_flush in the library: OK when the hub has it all, ENOTFOUND
//  once the hub dropped the connection for a message over its limit; the
//  sender then attaches again and goes on.
static void test_sender_flush(void **state)
{
    (void) state;
    zchan_ctx_t *host = s_ctx(), *client = s_ctx();
    tu_assert_rc(zchan_ctx_set_max_msg_size(host, 1024), ZCHAN_OK);
    tu_assert_rc(zchan_ctx_bind(host, "tcp://127.0.0.1:0"), ZCHAN_OK);
    char uri[200];
    snprintf(uri, sizeof uri, "%s/flush", zchan_ctx_endpoint(host, "tcp"));
    zchan_t *ch = zchan_anycast_new(client, uri, 100);
    assert_non_null(ch);
    zchan_sender_t *s = zchan_sender_new(ch);
    assert_non_null(s);
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_OK); // nothing sent
    tu_assert_rc(zchan_send_str(s, "small", 1000), ZCHAN_OK);
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_OK);
    char big[4096];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    tu_assert_rc(zchan_send_str(s, big, 1000), ZCHAN_OK);
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_ENOTFOUND);
    assert_false(zchan_sender_hub_lost(s));
    //  Reported once; the sender attaches again at its next send.
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_OK);
    tu_assert_rc(zchan_send_str(s, "after", 1000), ZCHAN_OK);
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_OK);
    assert_int_equal(zchan_sender_reattached(s), 1);
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    assert_non_null(r);
    char *text = NULL;
    tu_assert_rc(zchan_recv_str(r, &text, 5000), ZCHAN_OK);
    assert_string_equal(text, "small");
    free(text);
    tu_assert_rc(zchan_recv_str(r, &text, 5000), ZCHAN_OK);
    assert_string_equal(text, "after");
    free(text);
    assert_false(zchan_receiver_hub_lost(r));
    zchan_receiver_destroy(&r);
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&client);
    zchan_ctx_destroy(&host);
}

// ---------------------------------------------------------------------------
// URIs

//  The tcp transport's URI parser: what only a bind may take, and a host
//  with a colon that is not bracketed IPv6, are bad URIs.
static void test_tcp_uri_parse(void **state)
{
    (void) state;
    zchan_ctx_t *ctx = s_ctx();
    const zchan__transport_t *t = zchan__transport_for("tcp://x");
    assert_non_null(t);
    const char *good[] = {"127.0.0.1:7878/a", "host.example:1/a.b-c_d", "[::1]:65535/x", "h:00080/x"};
    const char *bad[] = {"*:7878/a",   "127.0.0.1:0/x", "h:1:2/x",    "h:*/x",      "h:65536/x", "h:/x",
                         ":5/x",       "h:5",           "h:5/",       "h:5/a/b",    "[::1:5/x",  "::1]:5/x",
                         "h\x1b:5/x",  "h 1:5/x",       "h:5/a\x01", "h:0000/x"};
    zchan__target_t target;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (t->parse_uri(ctx, good[i], &target) != 0)
            fail_msg("tcp://%s refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (t->parse_uri(ctx, bad[i], &target) != ZCHAN_EINVAL)
            fail_msg("tcp://%s accepted", bad[i]);
    //  The library says EINVAL at once, without a request.
    assert_null(zchan_anycast_new(ctx, "tcp://*:7878/a", 1));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    assert_null(zchan_open(ctx, "tcp://127.0.0.1:0/a"));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    //  A bind still takes port 0.
    tu_assert_rc(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    zchan_ctx_destroy(&ctx);
}

//  The CLI: bad URIs exit 3 at once with one line that escapes control
//  characters; inproc is refused; ipc without a runtime directory is
//  "unavailable", not a bad URI.
static void test_cli_uris(void **state)
{
    (void) state;
    relay_t relay;
    s_relay_start(&relay, NULL);
    const char *port = strrchr(relay.tcp, ':') + 1;
    char star[200];
    snprintf(star, sizeof star, "tcp://*:%s/x", port);
    const char *bad[] = {star, "tcp://127.0.0.1:0/x", "tcp://h:1:2/x", "tcp://127.0.0.1/x", "udp://h:1/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t0 = s_now_ms();
        run_t r = s_cli(NULL, "send", "--anycast", bad[i], "1", NULL);
        if (r.rc != 3)
            fail_msg("zchan send %s: exit %d, want 3 (bad URI)", bad[i], r.rc);
        assert_non_null(strstr(r.err, "bad URI"));
        assert_true(s_now_ms() - t0 < 3000 * tu_slow()); // no request's timeout
        s_run_free(&r);
    }
    //  inproc: the message would die with the CLI's process.
    run_t r = s_cli(NULL, "send", "--anycast", "inproc://x", "1", NULL);
    assert_int_equal(r.rc, 3);
    assert_non_null(strstr(r.err, "inproc"));
    s_run_free(&r);
    r = s_cli(NULL, "recv", "--anycast", "-t", "100", "inproc://x", NULL);
    assert_int_equal(r.rc, 3);
    s_run_free(&r);
    //  Control characters are escaped in the one-line error.
    r = s_cli(NULL, "stat", "tcp://h\x1b[2J\n:1/x", NULL);
    assert_int_equal(r.rc, 3);
    assert_null(strchr(r.err, '\x1b'));
    assert_non_null(strstr(r.err, "\\x1b[2J\\x0a"));
    assert_non_null(strchr(r.err, '\n'));
    assert_int_equal(strchr(r.err, '\n')[1], 0); // one line
    s_run_free(&r);
    //  No usable runtime directory: ipc is unavailable (exit 8), and a
    //  malformed ipc URI is still a bad URI.
    char file[PATH_MAX], env[PATH_MAX + 32];
    s_path(file, sizeof file, "plainfile");
    s_write_file(file, "x");
    snprintf(env, sizeof env, "ZCHAN_IPC_DIR=%s/sub", file);
    char *noipc[] = {env, NULL};
    r = s_cli_env(noipc, NULL, "send", "--anycast", "ipc://relay/x", "1", NULL);
    assert_int_equal(r.rc, 8);
    assert_non_null(strstr(r.err, "ipc is unavailable"));
    assert_null(strstr(r.err, "bad URI"));
    s_run_free(&r);
    r = s_cli_env(noipc, NULL, "stat", "ipc://x", NULL);
    assert_int_equal(r.rc, 8);
    s_run_free(&r);
    r = s_cli_env(noipc, NULL, "stat", "ipc://a/b/c", NULL);
    assert_int_equal(r.rc, 3);
    s_run_free(&r);
    //  A good URI still works.
    char uri[200];
    snprintf(uri, sizeof uri, "%s/ok", relay.tcp);
    r = s_cli(NULL, "send", "--anycast", uri, "1", NULL);
    assert_int_equal(r.rc, 0);
    s_run_free(&r);
}

// ---------------------------------------------------------------------------
// Values: zchan recv | zchan send copies them exactly

//  Packs the body of a reference [version, kind, key, name, uri, hubinfo]
//  with the given fields; nloc locators; curve "" for none.
static void s_pack_ref(msgpack_packer *pk, uint64_t version, uint64_t kind, const char *key, const char *uri,
                       int nloc, const char *curve)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer bp;
    msgpack_packer_init(&bp, &body, msgpack_sbuffer_write);
    msgpack_pack_array(&bp, 6);
    msgpack_pack_uint64(&bp, version);
    msgpack_pack_uint64(&bp, kind);
    const char *strs[] = {key, "name", uri};
    for (int i = 0; i < 3; i++) {
        msgpack_pack_str(&bp, strlen(strs[i]));
        msgpack_pack_str_body(&bp, strs[i], strlen(strs[i]));
    }
    msgpack_pack_map(&bp, curve[0] ? 5 : 4);
    const char *kv[] = {"host", "h1", "proc", "p1", "hub", "b1"};
    for (int i = 0; i < 6; i++) {
        msgpack_pack_str(&bp, strlen(kv[i]));
        msgpack_pack_str_body(&bp, kv[i], strlen(kv[i]));
    }
    msgpack_pack_str(&bp, 3);
    msgpack_pack_str_body(&bp, "loc", 3);
    msgpack_pack_array(&bp, (size_t) nloc);
    for (int i = 0; i < nloc; i++) {
        msgpack_pack_str(&bp, 22);
        msgpack_pack_str_body(&bp, "tcp://127.0.0.1:1/name", 22);
    }
    if (curve[0]) {
        msgpack_pack_str(&bp, 5);
        msgpack_pack_str_body(&bp, "curve", 5);
        msgpack_pack_str(&bp, strlen(curve));
        msgpack_pack_str_body(&bp, curve, strlen(curve));
    }
    msgpack_pack_ext(pk, body.size, ZCHAN_EXT_REF);
    msgpack_pack_ext_body(pk, body.data, body.size);
    msgpack_sbuffer_destroy(&body);
}

#define NVALUES 10

//  Value i of the round trip (all but the first are references that are
//  not well-formed, and float 32s), packed into msg.
static void s_pack_value(zchan_msg_t *msg, int i, const char *uri)
{
    msgpack_packer *pk = zchan_msg_packer(msg);
    const char *z85 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    switch (i) {
    case 0: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "k", uri, 1, z85); break; // well-formed
    case 1: s_pack_ref(pk, 2, ZCHAN_ANYCAST, "k", uri, 1, ""); break;                     // version 2
    case 2: s_pack_ref(pk, ZCHAN_PROTO_VERSION, 3, "k", uri, 1, ""); break;               // kind 3
    case 3: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "", uri, 1, ""); break;    // empty key
    case 4: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "k", uri, 0, ""); break;   // no locators
    case 5: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "k", uri, 1, "short"); break; // bad curve key
    case 6: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "k", "", 1, ""); break;    // empty uri
    case 7: msgpack_pack_float(pk, 0.1f); break;
    case 8:
        msgpack_pack_array(pk, 3);
        msgpack_pack_float(pk, -3.25e38f);
        msgpack_pack_float(pk, INFINITY);
        msgpack_pack_double(pk, 0.1);
        break;
    default: msgpack_pack_float(pk, 16777217.0f); break;
    }
}

//  A message's value packed again by msgpack-c: its canonical bytes.
static void s_canonical(zchan_msg_t *msg, msgpack_sbuffer *sb)
{
    const msgpack_object *o = zchan_msg_object(msg);
    assert_non_null(o);
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *o);
}

static void test_values_round_trip(void **state)
{
    (void) state;
    zchan_ctx_t *ctx = s_ctx();
    tu_assert_rc(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    char in_uri[200], out_uri[200];
    snprintf(in_uri, sizeof in_uri, "%s/in", zchan_ctx_endpoint(ctx, "tcp"));
    snprintf(out_uri, sizeof out_uri, "%s/out", zchan_ctx_endpoint(ctx, "tcp"));
    zchan_t *in = zchan_anycast_new(ctx, in_uri, 100), *out = zchan_anycast_new(ctx, out_uri, 100);
    assert_non_null(in);
    assert_non_null(out);
    zchan_sender_t *tx = zchan_sender_new(in);
    assert_non_null(tx);
    for (int i = 0; i < NVALUES; i++) {
        zchan_msg_t *msg = zchan_msg_new();
        s_pack_value(msg, i, in_uri);
        tu_assert_rc(zchan_send(tx, &msg, 1000), ZCHAN_OK);
    }
    zchan_sender_destroy(&tx);

    char count[16], lines[PATH_MAX];
    snprintf(count, sizeof count, "%d", NVALUES);
    run_t r = s_cli(NULL, "recv", "-n", count, "-t", "5000", in_uri, NULL);
    assert_int_equal(r.rc, 0);
    //  The well-formed reference prints as $chan, the malformed ones as
    //  $ext, float 32s as $float32.
    char *line = r.out;
    for (int i = 0; i < NVALUES; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        if (i == 0)
            assert_true(strncmp(line, "{\"$chan\":", 9) == 0);
        else if (i < 7)
            assert_true(strncmp(line, "{\"$ext\":[90,", 12) == 0);
        else if (i == 7)
            assert_string_equal(line, "{\"$float32\":0.1}");
        else if (i == 8)
            assert_string_equal(line, "[{\"$float32\":-3.25e+38},{\"$float32\":\"inf\"},0.1]");
        *nl = '\n';
        line = nl + 1;
    }
    s_path(lines, sizeof lines, "lines");
    s_write_file(lines, r.out);
    s_run_free(&r);

    r = s_cli(lines, "send", out_uri, NULL);
    assert_int_equal(r.rc, 0);
    s_run_free(&r);
    zchan_receiver_t *rx = zchan_receiver_new(out, 0);
    assert_non_null(rx);
    for (int i = 0; i < NVALUES; i++) {
        zchan_msg_t *got = NULL, *want = zchan_msg_new();
        tu_assert_rc(zchan_recv(rx, &got, 5000), ZCHAN_OK);
        s_pack_value(want, i, in_uri);
        msgpack_sbuffer a, b;
        s_canonical(want, &a);
        s_canonical(got, &b);
        if (i > 0 && (a.size != b.size || memcmp(a.data, b.data, a.size) != 0))
            fail_msg("value %d changed on its way through zchan recv | zchan send", i);
        if (i == 0) // a reference to in_uri, made afresh by zchan send
            assert_int_equal(zchan_msg_object(got)->type, MSGPACK_OBJECT_EXT);
        msgpack_sbuffer_destroy(&a);
        msgpack_sbuffer_destroy(&b);
        zchan_msg_destroy(&got);
        zchan_msg_destroy(&want);
    }
    zchan_receiver_destroy(&rx);
    zchan_destroy(&in);
    zchan_destroy(&out);
    zchan_ctx_destroy(&ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_library_logs_to_stderr, s_teardown),
        cmocka_unit_test_teardown(test_cli_logs_to_stderr, s_teardown),
        cmocka_unit_test_teardown(test_recv_hub_lost, s_teardown),
        cmocka_unit_test_teardown(test_send_over_max_size, s_teardown),
        cmocka_unit_test_teardown(test_sender_flush, s_teardown),
        cmocka_unit_test_teardown(test_tcp_uri_parse, s_teardown),
        cmocka_unit_test_teardown(test_cli_uris, s_teardown),
        cmocka_unit_test_teardown(test_values_round_trip, s_teardown),
    };
    return cmocka_run_group_tests(tests, s_setup, s_group_teardown);
}

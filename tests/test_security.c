/*  test_security.c: what keeps strangers out.

    - Unnamed channel names are the channels' capabilities: "zc-" and 32 hex
      digits, 128 bits from the kernel's random source, never from random()
      (which czmq seeds with the second the process started).
    - The runtime directory: made 0700 when zchan makes it; an existing one is
      used only if it is a directory (not a symlink) of the effective user
      with no group or other permissions, and its mode is never changed.
      Otherwise the context has no ipc, and says why on its log.
    - Socket files (the hub's own, a named hub's, a host-wide name's) are 0600.

    Every zchan call runs in a forked child (the parent never makes a ZeroMQ
    context, so it may fork at any time). A child writes its results to a
    pipe, one line each, and its stdout and stderr (zchan's log) to a file
    the parent reads. A child that finds something wrong says so in its log
    and _exits 3 at once (exit would wait for czmq to end a context whose
    sockets are still open); the parent fails the test with that log.
*/
#include "testutil.h"
#include "core.h" // a context's identities (zchan__hubinfo_t)
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define NAME_HEX 32 // hex digits in a generated name, at least
#define SKIP_EXIT 77

// ---------------------------------------------------------------------------
// Children

static int s_out = -1; // a child's end of its results pipe

//  In a child: a condition that must hold, else log it and exit 3.
#define K_CHECK(cond)                                                                                        \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "child: line %d: %s failed (zchan_errno %d)\n", __LINE__, #cond, zchan_errno()); \
            _exit(3);                                                                                        \
        }                                                                                                    \
    } while (0)

typedef struct {
    pid_t pid;
    int up;        // the results pipe
    char log[128]; // the child's stdout and stderr
} kid_t;

static char s_base[64]; // this run's temporary directory

//  Forks a child that runs fn(arg) and exits with what it returns. With go
//  >= 0 it first waits for a byte on go (so that several start at once).
static void s_spawn(kid_t *k, int (*fn)(const void *), const void *arg, int go)
{
    static int n;
    snprintf(k->log, sizeof k->log, "%s/child-%d.log", s_base, ++n);
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    k->pid = fork();
    assert_true(k->pid >= 0);
    if (k->pid == 0) {
        close(p[0]);
        s_out = p[1];
        int fd = open(k->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(4);
        close(fd);
        setvbuf(stdout, NULL, _IONBF, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(120);
        char c;
        if (go >= 0 && read(go, &c, 1) != 1)
            _exit(4);
        exit(fn(arg));
    }
    close(p[1]);
    k->up = p[0];
}

//  Reads everything the child writes until it closes its pipe (at exit).
//  Returns a NUL-terminated malloc'd buffer.
static char *s_read_all(kid_t *k)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while (true) {
        if (cap - len < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t got = read(k->up, buf + len, cap - len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        len += (size_t) got;
    }
    buf[len] = 0;
    close(k->up);
    return buf;
}

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

//  Reaps the child and returns its exit code; a child killed by a signal
//  fails the test.
static int s_reap(kid_t *k)
{
    int status;
    while (waitpid(k->pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    if (!WIFEXITED(status)) {
        char *log = s_slurp(k->log);
        fail_msg("child ended by signal %d; its log:\n%s", WTERMSIG(status), log);
    }
    return WEXITSTATUS(status);
}

//  Reaps the child, which must have exited 0; returns its log (malloc'd).
static char *s_reap_ok(kid_t *k)
{
    int code = s_reap(k);
    char *log = s_slurp(k->log);
    if (code != 0)
        fail_msg("child exited %d; its log:\n%s", code, log);
    return log;
}

// ---------------------------------------------------------------------------
// Unnamed channel names

//  Whether name is "zc-" and at least NAME_HEX lowercase hex digits.
static bool s_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len < 3 + NAME_HEX || strncmp(name, "zc-", 3) != 0)
        return false;
    for (size_t i = 3; i < len; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    return true;
}

static int s_hexval(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

//  One name a line: each must be well formed, and no two may share their
//  first 16 hex digits (64 bits: chance alone would take 2^32 names).
//  Returns the count.
static int s_check_names(char **names, int n)
{
    for (int i = 0; i < n; i++) {
        if (!s_name_ok(names[i]))
            fail_msg("malformed name '%s'", names[i]);
        for (int j = 0; j < i; j++)
            if (strncmp(names[i] + 3, names[j] + 3, 16) == 0)
                fail_msg("names '%s' and '%s' share their first 64 bits", names[i], names[j]);
    }
    return n;
}

//  Splits buf into lines (in place); returns how many, at most max.
static int s_lines(char *buf, char **lines, int max)
{
    int n = 0;
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    return n;
}

typedef struct {
    int count;       // unnamed channels to make
    bool srandom_1;  // call srandom(1) before each
} names_job_t;

//  Makes job->count unnamed channels (anycast and broadcast alternating) in
//  one context and writes their names, one a line.
static int s_make_names(const void *arg)
{
    const names_job_t *job = (const names_job_t *) arg;
    zchan_ctx_t *ctx = zchan_ctx_new();
    K_CHECK(ctx);
    for (int i = 0; i < job->count; i++) {
        if (job->srandom_1)
            srandom(1);
        zchan_t *ch = i % 2 ? zchan_broadcast_new(ctx, NULL, false) : zchan_anycast_new(ctx, NULL, 1);
        K_CHECK(ch);
        char uri[300];
        snprintf(uri, sizeof uri, "inproc://%s", zchan_name(ch));
        K_CHECK(strcmp(zchan_uri(ch), uri) == 0);
        dprintf(s_out, "%s\n", zchan_name(ch));
        zchan_destroy(&ch);
    }
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  A process and hub identity keep their pid and random part whatever the
//  host identity's length: with a 90-character $ZCHAN_HOST_ID they used to be
//  cut off, so two processes got the same hub identity, and a reference
//  from one looked local to the other.
static int s_print_ids(const void *arg)
{
    (void) arg;
    char host[91];
    memset(host, 'h', 90);
    host[90] = 0;
    K_CHECK(setenv("ZCHAN_HOST_ID", host, 1) == 0);
    zchan_ctx_t *ctx = zchan_ctx_new();
    K_CHECK(ctx);
    dprintf(s_out, "%d\n%s\n%s\n", (int) getpid(), ctx->info.proc, ctx->info.hub);
    zchan_ctx_destroy(&ctx);
    return 0;
}

static void test_ids_with_long_host(void **state)
{
    (void) state;
    kid_t k[2];
    char *out[2], *lines[2][4];
    for (int i = 0; i < 2; i++) {
        s_spawn(&k[i], s_print_ids, NULL, -1);
        out[i] = s_read_all(&k[i]);
        free(s_reap_ok(&k[i]));
        assert_int_equal(s_lines(out[i], lines[i], 4), 3);
        char pid[32];
        snprintf(pid, sizeof pid, "/%s/", lines[i][0]);
        const char *proc = lines[i][1], *hub = lines[i][2];
        const char *at = strstr(proc, pid);
        if (!at || strlen(at + strlen(pid)) != 16)
            fail_msg("process identity %s lacks its pid %s or its random part", proc, pid);
        if (strncmp(hub, proc, strlen(proc)) != 0 || hub[strlen(proc)] != '/')
            fail_msg("hub identity %s does not hold the process identity %s", hub, proc);
    }
    assert_string_not_equal(lines[0][2], lines[1][2]);
    free(out[0]);
    free(out[1]);
}

#define MANY 1000

//  Many names from one process are distinct, well formed, and look like 128
//  random bits: every bit of the first 128 is set in 35-65 % of 1000 names
//  (a fair bit leaves that range with odds below 1e-20). The old names had
//  bits stuck at 0 (31-bit numbers, a float's 24 bits of precision) and a
//  slow clock in their last 32 bits.
static void test_unnamed_many(void **state)
{
    (void) state;
    names_job_t job = {MANY, false};
    kid_t k;
    s_spawn(&k, s_make_names, &job, -1);
    char *out = s_read_all(&k);
    free(s_reap_ok(&k));
    static char *names[MANY + 1];
    int n = s_lines(out, names, MANY + 1);
    assert_int_equal(n, MANY);
    s_check_names(names, n);
    int ones[NAME_HEX * 4] = {0};
    for (int i = 0; i < n; i++)
        for (int d = 0; d < NAME_HEX; d++)
            for (int b = 0; b < 4; b++)
                ones[d * 4 + b] += (s_hexval(names[i][3 + d]) >> (3 - b)) & 1;
    for (int bit = 0; bit < NAME_HEX * 4; bit++)
        if (ones[bit] < MANY * 35 / 100 || ones[bit] > MANY * 65 / 100)
            fail_msg("bit %d of the names is set in %d of %d names: not random", bit, ones[bit], MANY);
    free(out);
}

#define KIDS 4
#define PER_KID 64

//  Several processes started at once (czmq seeds random() with the second)
//  make names that share nothing: no two of all of them have the same first
//  64 bits.
static void test_unnamed_across_processes(void **state)
{
    (void) state;
    names_job_t job = {PER_KID, false};
    int go[2];
    assert_int_equal(pipe(go), 0);
    kid_t k[KIDS];
    for (int i = 0; i < KIDS; i++)
        s_spawn(&k[i], s_make_names, &job, go[0]);
    char start[KIDS] = {0};
    assert_int_equal(write(go[1], start, KIDS), KIDS);
    close(go[0]);
    close(go[1]);
    char *out[KIDS];
    static char *names[KIDS * PER_KID];
    int n = 0;
    for (int i = 0; i < KIDS; i++) {
        out[i] = s_read_all(&k[i]);
        free(s_reap_ok(&k[i]));
        int got = s_lines(out[i], names + n, PER_KID + 1);
        assert_int_equal(got, PER_KID);
        n += got;
    }
    s_check_names(names, n);
    for (int i = 0; i < KIDS; i++)
        free(out[i]);
}

//  The names do not come from random(): two processes that both call
//  srandom(1) before making each channel still make names with nothing in
//  common, and so do two channels of one process.
static void test_unnamed_not_from_random(void **state)
{
    (void) state;
    names_job_t job = {2, true};
    kid_t k[2];
    char *out[2];
    static char *names[4];
    for (int i = 0; i < 2; i++)
        s_spawn(&k[i], s_make_names, &job, -1);
    for (int i = 0; i < 2; i++) {
        out[i] = s_read_all(&k[i]);
        free(s_reap_ok(&k[i]));
        assert_int_equal(s_lines(out[i], names + 2 * i, 3), 2);
    }
    s_check_names(names, 4);
    free(out[0]);
    free(out[1]);
}

//  With getrandom(2) refused (a seccomp filter on the calling thread makes
//  it fail with ENOSYS), an unnamed channel is refused with ESYS and a log
//  line that names the cause, instead of a guessable name or an abort. Named
//  channels still work.
static int s_no_getrandom(const void *arg)
{
    (void) arg;
    zchan_ctx_t *ctx = zchan_ctx_new();
    K_CHECK(ctx);
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getrandom, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "child: no seccomp here: %s\n", strerror(errno));
        zchan_ctx_destroy(&ctx);
        return SKIP_EXIT;
    }
    char byte;
    K_CHECK(syscall(SYS_getrandom, &byte, 1, 0) == -1 && errno == ENOSYS);
    K_CHECK(zchan_anycast_new(ctx, NULL, 1) == NULL);
    K_CHECK(zchan_errno() == ZCHAN_ESYS);
    K_CHECK(zchan_broadcast_new(ctx, NULL, false) == NULL);
    K_CHECK(zchan_errno() == ZCHAN_ESYS);
    zchan_t *named = zchan_anycast_new(ctx, "inproc://sec-named", 1);
    K_CHECK(named);
    zchan_destroy(&named);
    zchan_ctx_destroy(&ctx);
    return 0;
}

static void test_unnamed_without_getrandom(void **state)
{
    (void) state;
    kid_t k;
    s_spawn(&k, s_no_getrandom, NULL, -1);
    free(s_read_all(&k));
    int code = s_reap(&k);
    char *log = s_slurp(k.log);
    if (code == SKIP_EXIT) {
        free(log);
        skip();
    }
    if (code != 0)
        fail_msg("child exited %d; its log:\n%s", code, log);
    if (!strstr(log, "getrandom"))
        fail_msg("the log does not say what failed:\n%s", log);
    free(log);
}

// ---------------------------------------------------------------------------
// The runtime directory

typedef struct {
    const char *env;   // ZCHAN_IPC_DIR, NULL to unset it
    const char *xdg;   // XDG_RUNTIME_DIR, NULL to unset it
    mode_t umask;
} dir_job_t;

static void s_env(const dir_job_t *job)
{
    if (job->env)
        setenv("ZCHAN_IPC_DIR", job->env, 1);
    else
        unsetenv("ZCHAN_IPC_DIR");
    if (job->xdg)
        setenv("XDG_RUNTIME_DIR", job->xdg, 1);
    else
        unsetenv("XDG_RUNTIME_DIR");
    umask(job->umask);
}

//  The context must have no ipc: no ipc endpoint, and ipc URIs and binds
//  fail with EINVAL. Everything else works.
static int s_refused(const void *arg)
{
    s_env((const dir_job_t *) arg);
    zchan_ctx_t *ctx = zchan_ctx_new();
    K_CHECK(ctx);
    K_CHECK(zchan_ctx_endpoint(ctx, "ipc") == NULL);
    K_CHECK(zchan_anycast_new(ctx, "ipc://sec-refused", 1) == NULL);
    K_CHECK(zchan_errno() == ZCHAN_EINVAL);
    K_CHECK(zchan_open(ctx, "ipc://hub/sec-refused") == NULL);
    K_CHECK(zchan_errno() == ZCHAN_EINVAL);
    K_CHECK(zchan_ctx_bind(ctx, "ipc://sec-refused-hub") == ZCHAN_EINVAL);
    zchan_t *ch = zchan_anycast_new(ctx, NULL, 1);
    K_CHECK(ch);
    zchan_sender_t *tx = zchan_sender_new(ch);
    zchan_receiver_t *rx = zchan_receiver_new(ch, 0);
    K_CHECK(tx && rx);
    K_CHECK(zchan_send_str(tx, "still works", 5000) == ZCHAN_OK);
    char *text = NULL;
    K_CHECK(zchan_recv_str(rx, &text, 5000) == ZCHAN_OK && strcmp(text, "still works") == 0);
    free(text);
    zchan_receiver_destroy(&rx);
    zchan_sender_destroy(&tx);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Runs s_refused with ZCHAN_IPC_DIR=dir; dir (and what it points to, if a
//  symlink) must be exactly as before, and the log must name dir and why.
static void s_expect_refused(const char *dir, const char *why)
{
    struct stat before, after, tbefore, tafter;
    assert_int_equal(lstat(dir, &before), 0);
    bool link = S_ISLNK(before.st_mode);
    if (link)
        assert_int_equal(stat(dir, &tbefore), 0);
    dir_job_t job = {dir, NULL, 022};
    kid_t k;
    s_spawn(&k, s_refused, &job, -1);
    free(s_read_all(&k));
    char *log = s_reap_ok(&k);
    assert_int_equal(lstat(dir, &after), 0);
    if (after.st_mode != before.st_mode || after.st_uid != before.st_uid)
        fail_msg("%s changed: mode %o -> %o, owner %d -> %d", dir, (unsigned) before.st_mode,
                 (unsigned) after.st_mode, (int) before.st_uid, (int) after.st_uid);
    if (link) {
        assert_int_equal(stat(dir, &tafter), 0);
        if (tafter.st_mode != tbefore.st_mode)
            fail_msg("the target of %s changed mode: %o -> %o", dir, (unsigned) tbefore.st_mode,
                     (unsigned) tafter.st_mode);
    }
    if (!strstr(log, "ipc disabled") || !strstr(log, dir) || !strstr(log, why))
        fail_msg("the log does not say that ipc is disabled for %s (%s):\n%s", dir, why, log);
    //  ...and an ipc URI's failure says so too.
    if (!strstr(log, "ipc://sec-refused: this context has no ipc"))
        fail_msg("an ipc URI's failure is not explained:\n%s", log);
    //  Nothing was made inside it.
    char sub[512];
    snprintf(sub, sizeof sub, "%s/sec-refused.lock", dir);
    assert_int_not_equal(access(sub, F_OK), 0);
    free(log);
}

static void s_mkdir_mode(const char *path, mode_t mode)
{
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chmod(path, mode), 0); // exactly, whatever the umask
}

//  A shared directory (1777, as /tmp) and a 0755 one are refused and left
//  alone; so is one with only group or other execute permission.
static void test_dir_open_to_others(void **state)
{
    (void) state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/shared", s_base);
    s_mkdir_mode(dir, 01777);
    s_expect_refused(dir, "group or others have permissions");
    snprintf(dir, sizeof dir, "%s/readable", s_base);
    s_mkdir_mode(dir, 0755);
    s_expect_refused(dir, "group or others have permissions");
    snprintf(dir, sizeof dir, "%s/searchable", s_base);
    s_mkdir_mode(dir, 0701);
    s_expect_refused(dir, "group or others have permissions");
}

//  A symlink, even to a private directory of the user, and a plain file.
static void test_dir_not_a_directory(void **state)
{
    (void) state;
    char target[300], link[300], file[300];
    snprintf(target, sizeof target, "%s/private", s_base);
    s_mkdir_mode(target, 0700);
    snprintf(link, sizeof link, "%s/link", s_base);
    assert_int_equal(symlink(target, link), 0);
    s_expect_refused(link, "symbolic link");
    snprintf(file, sizeof file, "%s/file", s_base);
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    s_expect_refused(file, "not a directory");
}

//  A private directory that belongs to someone else (only root can make one
//  to test with).
static void test_dir_of_another_user(void **state)
{
    (void) state;
    if (geteuid() != 0)
        skip();
    char dir[300];
    snprintf(dir, sizeof dir, "%s/theirs", s_base);
    s_mkdir_mode(dir, 0700);
    assert_int_equal(chown(dir, 65534, 65534), 0);
    s_expect_refused(dir, "owned by another user");
}

//  The context's ipc works: its own socket, a host-wide name and a named hub,
//  each socket file 0600, and a message through the host-wide name.
static int s_ipc_works(const void *arg)
{
    const dir_job_t *job = (const dir_job_t *) arg;
    s_env(job);
    zchan_ctx_t *ctx = zchan_ctx_new();
    K_CHECK(ctx);
    const char *ep = zchan_ctx_endpoint(ctx, "ipc");
    K_CHECK(ep && strncmp(ep, "ipc://", 6) == 0);
    dprintf(s_out, "%s\n", ep + 6);
    K_CHECK(zchan_ctx_bind(ctx, "ipc://sec-hub") == ZCHAN_OK);
    zchan_t *ch = zchan_anycast_new(ctx, "ipc://sec-hostwide", 1);
    K_CHECK(ch);
    zchan_t *other = zchan_anycast_new(ctx, "ipc://sec-hub/sec-named", 1);
    K_CHECK(other);
    //  The socket files, as the parent will find them while this child waits.
    char dir[512];
    snprintf(dir, sizeof dir, "%.*s", (int) (strrchr(ep + 6, '/') - (ep + 6)), ep + 6);
    dprintf(s_out, "%s/sec-hub.hub\n%s/sec-hostwide.sock\n", dir, dir);
    zchan_sender_t *tx = zchan_sender_new(ch);
    zchan_receiver_t *rx = zchan_receiver_new(ch, 0);
    K_CHECK(tx && rx);
    K_CHECK(zchan_send_str(tx, "over ipc", 5000) == ZCHAN_OK);
    char *text = NULL;
    K_CHECK(zchan_recv_str(rx, &text, 5000) == ZCHAN_OK && strcmp(text, "over ipc") == 0);
    free(text);
    //  Stat them here too: the parent reads the pipe only at the end.
    const char *files[] = {ep + 6, NULL, NULL};
    char hub[600], host[600];
    snprintf(hub, sizeof hub, "%s/sec-hub.hub", dir);
    snprintf(host, sizeof host, "%s/sec-hostwide.sock", dir);
    files[1] = hub;
    files[2] = host;
    for (int i = 0; i < 3; i++) {
        struct stat st;
        K_CHECK(stat(files[i], &st) == 0 && S_ISSOCK(st.st_mode));
        if ((st.st_mode & 0777) != 0600) {
            fprintf(stderr, "child: %s has mode %o, not 0600\n", files[i], (unsigned) (st.st_mode & 0777));
            _exit(3);
        }
    }
    zchan_receiver_destroy(&rx);
    zchan_sender_destroy(&tx);
    zchan_destroy(&other);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Runs s_ipc_works with job; dir must then be a 0700 directory of ours.
static void s_expect_works(const dir_job_t *job, const char *dir)
{
    kid_t k;
    s_spawn(&k, s_ipc_works, job, -1);
    char *out = s_read_all(&k);
    free(s_reap_ok(&k));
    char *lines[4];
    assert_int_equal(s_lines(out, lines, 4), 3);
    char want[512];
    snprintf(want, sizeof want, "%s/hub-", dir);
    if (strncmp(lines[0], want, strlen(want)) != 0)
        fail_msg("the hub's socket %s is not in %s", lines[0], dir);
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(st.st_mode & 07777, 0700);
    free(out);
}

//  A fresh $ZCHAN_IPC_DIR is made 0700 and works, and so is a fresh
//  $XDG_RUNTIME_DIR/zchan, whatever the umask; socket files are 0600 under
//  the usual umask, which alone would make them 0755.
static void test_dir_fresh(void **state)
{
    (void) state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/fresh", s_base);
    dir_job_t job = {dir, NULL, 022};
    s_expect_works(&job, dir);
    //  A umask that takes the owner's bits: zchan sets the mode it made.
    snprintf(dir, sizeof dir, "%s/fresh-umask", s_base);
    dir_job_t strict = {dir, NULL, 0277};
    s_expect_works(&strict, dir);
    //  The XDG place, when $ZCHAN_IPC_DIR is unset.
    char xdg[200];
    snprintf(xdg, sizeof xdg, "%s/xdg", s_base);
    s_mkdir_mode(xdg, 0700);
    snprintf(dir, sizeof dir, "%s/zchan", xdg);
    dir_job_t x = {NULL, xdg, 022};
    s_expect_works(&x, dir);
}

//  An existing private directory of ours is used as it is.
static void test_dir_existing_private(void **state)
{
    (void) state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/mine", s_base);
    s_mkdir_mode(dir, 0700);
    dir_job_t job = {dir, NULL, 022};
    s_expect_works(&job, dir);
}

//  A $XDG_RUNTIME_DIR/zchan that someone left open is refused like any other
//  (the default places get the same checks as $ZCHAN_IPC_DIR).
static void test_dir_xdg_open(void **state)
{
    (void) state;
    char xdg[300], dir[320];
    snprintf(xdg, sizeof xdg, "%s/xdg-open", s_base);
    s_mkdir_mode(xdg, 0700);
    snprintf(dir, sizeof dir, "%s/zchan", xdg);
    s_mkdir_mode(dir, 0755);
    dir_job_t job = {NULL, xdg, 022};
    kid_t k;
    s_spawn(&k, s_refused, &job, -1);
    free(s_read_all(&k));
    char *log = s_reap_ok(&k);
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    if (!strstr(log, dir) || !strstr(log, "ipc disabled"))
        fail_msg("the log does not name %s:\n%s", dir, log);
    free(log);
}

// ---------------------------------------------------------------------------

static int s_setup(void **state)
{
    (void) state;
    snprintf(s_base, sizeof s_base, "/tmp/zchan-sec-XXXXXX");
    assert_non_null(mkdtemp(s_base));
    //  Children that do not choose their runtime directory use this one.
    char dir[300];
    snprintf(dir, sizeof dir, "%s/default", s_base);
    assert_int_equal(mkdir(dir, 0700), 0);
    setenv("ZCHAN_IPC_DIR", dir, 1);
    return 0;
}

static int s_teardown(void **state)
{
    (void) state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s_base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_with_long_host),
        cmocka_unit_test(test_unnamed_many),
        cmocka_unit_test(test_unnamed_across_processes),
        cmocka_unit_test(test_unnamed_not_from_random),
        cmocka_unit_test(test_unnamed_without_getrandom),
        cmocka_unit_test(test_dir_open_to_others),
        cmocka_unit_test(test_dir_not_a_directory),
        cmocka_unit_test(test_dir_of_another_user),
        cmocka_unit_test(test_dir_fresh),
        cmocka_unit_test(test_dir_existing_private),
        cmocka_unit_test(test_dir_xdg_open),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}

/*  test_netns.c: several hosts on one machine, with network namespaces.

    Three namespaces stand for three hosts: H runs the hub (a context bound
    on tcp), S a sender, R a receiver. Veth pairs link S and R to H on private
    addresses: 10.77.1.2 (S) - 10.77.1.1 (H), 10.77.2.2 (R) - 10.77.2.1 (H).
    Nothing is routed beyond them: all traffic stays inside namespaces this
    test made. Each role is a child of the conducting parent (which never
    makes a context) that enters its namespace with setns() before it makes
    its context, so it is a process "on" that host; each has its own
    ZCHAN_HOST_ID, so only tcp is used between them.

    While the sender streams (paced) to the receiver through the hub, R's
    link is taken down and up twice, and the loss must match the docs
    (docs/ARCHITECTURE.md, "Dead peers"), with the default heartbeats
    (1 s, timeout 5 s):

    A. down for 1.5 s, less than the heartbeat timeout: TCP carries on, the
       connection survives, traffic resumes, and nothing is lost.
    B. down for 8 s, longer than the timeout: ZeroMQ's heartbeats drop the
       connection at both ends. The hub finds the receiver dead and counts
       what it held in `lost` (at most its credit window, min(capacity, 16)).
       The receiver stops with ECLOSED (its probe is unanswered, or answered
       CLOSED once reconnected), makes a new receiver, and traffic resumes.
       Nothing is delivered twice; sent - received <= lost <= window.

    It skips (cmocka skip) when namespaces cannot be made: not root, no `ip`,
    or the kernel refuses. Namespaces, links and processes are removed at the
    end, after a failure too, and stale ones of a killed earlier run at start.
*/
#include "testutil.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PORT 7870
#define NS_CAPACITY 10
#define NS_MAX 30000      // the most messages the sender sends
#define NS_SHORT_MS 1500  // A: shorter than the heartbeat timeout
#define NS_LONG_MS 8000   // B: longer than it
#define NS_RESUME 600     // messages that must flow after a fault

static int s_slow = 1;
static int s_wait_ms;
static int s_recv_ms;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
    char name[128];
    char uri[256];
    char host_id[64];
    char netns[64];    // namespace the child enters first
    int id;
    int nsenders;
    int count;
    bool gapless;
} job_t;

// ---------------------------------------------------------------------------
// The child side (as in test_multiproc.c)

static int s_up = -1;   // child to parent
static int s_down = -1; // parent to child
static char s_in[4096];
static size_t s_inlen;

static void __attribute__((noreturn)) c_die(int line, const char *what, int rc)
{
    fprintf(stderr, "test_netns child %d: line %d: %s failed (%s)\n", (int) getpid(), line, what,
            rc >= 0 ? zchan_strerror(rc) : "check");
    _exit(3);
}

#define C_CHECK(cond)                                                                                      \
    do {                                                                                                   \
        if (!(cond))                                                                                       \
            c_die(__LINE__, #cond, -1);                                                                    \
    } while (0)

//  A zchan call must return want.
#define C_RC(call, want)                                                                                   \
    do {                                                                                                   \
        int c_rc_ = (call);                                                                                \
        if (c_rc_ != (want))                                                                               \
            c_die(__LINE__, #call, c_rc_);                                                                 \
    } while (0)

//  A constructor must not return NULL.
#define C_NEW(var, call)                                                                                   \
    do {                                                                                                   \
        (var) = (call);                                                                                    \
        if (!(var))                                                                                        \
            c_die(__LINE__, #call, zchan_errno());                                                         \
    } while (0)

static void s_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(4); // the parent is gone
        p += w;
        n -= (size_t) w;
    }
}

//  Sends one line to the parent.
static void c_say(const char *fmt, ...)
{
    static char line[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    C_CHECK(n > 0 && (size_t) n < sizeof line - 1);
    line[n++] = '\n';
    s_write_all(s_up, line, (size_t) n);
}

//  Waits for one line from the parent (the watchdog bounds the wait).
static void c_hear(char *line, size_t n)
{
    while (true) {
        char *nl = memchr(s_in, '\n', s_inlen);
        if (nl) {
            size_t len = (size_t) (nl - s_in);
            C_CHECK(len < n);
            memcpy(line, s_in, len);
            line[len] = 0;
            memmove(s_in, nl + 1, s_inlen - len - 1);
            s_inlen -= len + 1;
            return;
        }
        C_CHECK(s_inlen < sizeof s_in);
        ssize_t r = read(s_down, s_in + s_inlen, sizeof s_in - s_inlen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            _exit(5); // the parent is gone
        s_inlen += (size_t) r;
    }
}

static void c_expect(const char *word)
{
    char line[256];
    c_hear(line, sizeof line);
    if (strcmp(line, word) != 0) {
        fprintf(stderr, "test_netns child %d: expected \"%s\", heard \"%s\"\n", (int) getpid(), word, line);
        _exit(3);
    }
}

static zchan_ctx_t *c_ctx_new(void)
{
    zchan_ctx_t *ctx;
    C_NEW(ctx, zchan_ctx_new());
    return ctx;
}

//  Sends [sid, seq].
static int c_send_tag(zchan_sender_t *s, int sid, int seq, int timeout_ms)
{
    zchan_msg_t *m;
    C_NEW(m, zchan_msg_new());
    msgpack_packer *pk = zchan_msg_packer(m);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, sid);
    msgpack_pack_int(pk, seq);
    int rc = zchan_send(s, &m, timeout_ms);
    zchan_msg_destroy(&m);
    return rc;
}

//  What a receiver got: a bit per (sender, seq), and what was wrong.
typedef struct {
    int nsenders, count;
    bool gapless;
    uint8_t *bits;
    int *last; // per sender, -1 before the first
    long got, dups, order, bad;
} tally_t;

static void tally_init(tally_t *t, const job_t *job)
{
    memset(t, 0, sizeof *t);
    t->nsenders = job->nsenders;
    t->count = job->count;
    t->gapless = job->gapless;
    t->bits = calloc((size_t) (t->nsenders * t->count + 7) / 8, 1);
    t->last = malloc(sizeof(int) * (size_t) (t->nsenders + 1));
    C_CHECK(t->bits && t->last);
    for (int i = 0; i <= t->nsenders; i++)
        t->last[i] = -1;
}

static void tally_fini(tally_t *t)
{
    free(t->bits);
    free(t->last);
}

//  Tallies one received message; anything unexpected is counted, not trusted.
static void tally_msg(tally_t *t, zchan_msg_t *m)
{
    const msgpack_object *o = zchan_msg_object(m);
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2
        || o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER
        || o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.array.ptr[0].via.u64 < 1
        || o->via.array.ptr[0].via.u64 > (uint64_t) t->nsenders
        || o->via.array.ptr[1].via.u64 >= (uint64_t) t->count) {
        t->bad++;
        return;
    }
    int sid = (int) o->via.array.ptr[0].via.u64, seq = (int) o->via.array.ptr[1].via.u64;
    size_t bit = (size_t) (sid - 1) * (size_t) t->count + (size_t) seq;
    if (t->bits[bit / 8] & (1u << (bit % 8))) {
        t->dups++;
        return;
    }
    t->bits[bit / 8] |= (uint8_t) (1u << (bit % 8));
    t->got++;
    if (t->gapless ? seq != t->last[sid] + 1 : seq <= t->last[sid])
        t->order++;
    t->last[sid] = seq;
}

//  "RESULT got dups order bad dropped HEXBITS"
static void c_report(const tally_t *t, uint64_t dropped)
{
    size_t nbytes = (size_t) (t->nsenders * t->count + 7) / 8;
    char *hex = malloc(nbytes * 2 + 1);
    C_CHECK(hex);
    for (size_t i = 0; i < nbytes; i++)
        snprintf(hex + 2 * i, 3, "%02x", t->bits[i]);
    hex[nbytes * 2] = 0;
    c_say("RESULT %ld %ld %ld %ld %llu %s", t->got, t->dups, t->order, t->bad, (unsigned long long) dropped, hex);
    free(hex);
}

// ---------------------------------------------------------------------------
// Child roles

//  The hub "host": binds both link addresses, creates the channel, says "URI"
//  (as the sender reaches it), then obeys "STAT", "CLOSE" and "EXIT".
static int child_hub(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    char ep[64], uri[256];
    snprintf(ep, sizeof ep, "tcp://10.77.1.1:%d", NS_PORT);
    C_RC(zchan_ctx_bind(ctx, ep), ZCHAN_OK);
    snprintf(ep, sizeof ep, "tcp://10.77.2.1:%d", NS_PORT);
    C_RC(zchan_ctx_bind(ctx, ep), ZCHAN_OK);
    snprintf(uri, sizeof uri, "tcp://10.77.1.1:%d/%s", NS_PORT, job->name);
    zchan_t *ch;
    C_NEW(ch, zchan_anycast_new(ctx, uri, NS_CAPACITY));
    c_say("URI %s", uri);
    while (true) {
        char line[64];
        c_hear(line, sizeof line);
        if (strcmp(line, "CLOSE") == 0) {
            C_RC(zchan_close(ch), ZCHAN_OK);
            c_say("CLOSED");
        } else if (strcmp(line, "STAT") == 0) {
            zchan_stat_t st;
            C_RC(zchan_stat(ch, &st), ZCHAN_OK);
            c_say("STAT %llu %llu %llu %llu", (unsigned long long) st.sent, (unsigned long long) st.delivered,
                  (unsigned long long) st.lost, (unsigned long long) st.receivers);
        } else if (strcmp(line, "EXIT") == 0)
            break;
        else
            C_CHECK(!"a known command");
    }
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Whether the parent wrote a line; never blocks.
static bool c_has_line(void)
{
    if (memchr(s_in, '\n', s_inlen))
        return true;
    struct pollfd pfd = {s_down, POLLIN, 0};
    return poll(&pfd, 1, 0) > 0;
}

//  Streams [1, seq] at about 1000 a second after "GO", saying "AT n" every
//  100, until "STOP"; then flushes and says "SENT n".
static int child_sender(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_open(ctx, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(ch));
    c_say("READY");
    c_expect("GO");
    int n = 0;
    while (n < NS_MAX && !c_has_line()) {
        C_RC(c_send_tag(s, 1, n, s_recv_ms), ZCHAN_OK);
        n++;
        if (n % 100 == 0)
            c_say("AT %d", n);
        usleep(1000); // a steady stream, so that the faults land mid-stream
    }
    if (n < NS_MAX)
        c_expect("STOP");
    zchan_sender_destroy(&s);
    c_say("SENT %d", n);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Receives until the channel is closed. A receiver stopped while the
//  channel is open (its hub lost it) is replaced: "REATTACH MS" tells when.
static int child_receiver(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_open(ctx, job->uri));
    zchan_receiver_t *r;
    C_NEW(r, zchan_receiver_new(ch, 0));
    c_say("READY");
    tally_t t;
    tally_init(&t, job);
    int64_t t0 = s_now_ms();
    while (true) {
        zchan_msg_t *m = NULL;
        int rc = zchan_recv(r, &m, s_recv_ms);
        if (rc == ZCHAN_ECLOSED) {
            zchan_stat_t st;
            int64_t deadline = s_now_ms() + s_recv_ms;
            while ((rc = zchan_stat(ch, &st)) == ZCHAN_ETIMEDOUT && s_now_ms() < deadline)
                ;
            C_RC(rc, ZCHAN_OK);
            if (st.closed)
                break;
            zchan_receiver_destroy(&r);
            while (!(r = zchan_receiver_new(ch, 0)) && zchan_errno() == ZCHAN_ETIMEDOUT && s_now_ms() < deadline)
                ;
            C_CHECK(r != NULL);
            c_say("REATTACH %lld", (long long) (s_now_ms() - t0));
            continue;
        }
        C_RC(rc, ZCHAN_OK);
        tally_msg(&t, m);
        zchan_msg_destroy(&m);
    }
    c_report(&t, 0);
    tally_fini(&t);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

typedef struct {
    char name[32];
    pid_t pid; // 0 once reaped
    int up;    // read: lines from the child
    int down;  // write: lines to the child
    char buf[32768];
    size_t len;
    bool eof;
    int status;
} kid_t;

#define MAX_KIDS 16
static kid_t s_kids[MAX_KIDS];
static int s_nkids;

static int s_watchdog_s(void)
{
    return 55 * s_slow;
}

//  Forks a child that runs fn(job) and exits with what it returns.
static kid_t *spawn(const char *name, int (*fn)(const job_t *), const job_t *job)
{
    if (s_nkids >= MAX_KIDS)
        fail_msg("too many children");
    int up[2], down[2];
    if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0)
        fail_msg("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        //  cmocka's handlers would longjmp into the parent's test: not here.
        const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT, SIGALRM, SIGTERM, SIGINT};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(98);
        for (int i = 0; i < s_nkids; i++) {
            if (s_kids[i].up >= 0)
                close(s_kids[i].up);
            if (s_kids[i].down >= 0)
                close(s_kids[i].down);
        }
        close(up[0]);
        close(down[1]);
        s_up = up[1];
        s_down = down[0];
        alarm((unsigned) s_watchdog_s());
        if (job->netns[0]) {
            char path[128];
            snprintf(path, sizeof path, "/run/netns/%s", job->netns);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
                fprintf(stderr, "test_netns child: cannot enter %s: %s\n", job->netns, strerror(errno));
                _exit(7);
            }
            close(fd);
        }
        if (job->host_id[0])
            setenv("ZCHAN_HOST_ID", job->host_id, 1);
        exit(fn(job));
    }
    close(up[1]);
    close(down[0]);
    kid_t *k = &s_kids[s_nkids++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->pid = pid;
    k->up = up[0];
    k->down = down[1];
    return k;
}

//  Reads what the child wrote, waiting until deadline. false on timeout.
static bool p_fill(kid_t *k, int64_t deadline)
{
    if (k->eof)
        return true;
    long left = (long) (deadline - s_now_ms());
    struct pollfd pfd = {k->up, POLLIN, 0};
    int rc = poll(&pfd, 1, left > 0 ? (int) left : 0);
    if (rc < 0 && errno == EINTR)
        return true;
    if (rc <= 0)
        return false;
    if (k->len == sizeof k->buf)
        fail_msg("%s: line too long", k->name);
    ssize_t r = read(k->up, k->buf + k->len, sizeof k->buf - k->len);
    if (r < 0 && errno == EINTR)
        return true;
    if (r <= 0)
        k->eof = true;
    else
        k->len += (size_t) r;
    return true;
}

static const char *s_describe(int status)
{
    static char d[64];
    if (WIFEXITED(status))
        snprintf(d, sizeof d, "exit code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(d, sizeof d, "killed by signal %d%s", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? " (watchdog)" : "");
    else
        snprintf(d, sizeof d, "status %#x", status);
    return d;
}

//  Waits for the child to end (its pipe closes), reaps it, returns its status.
static int p_reap(kid_t *k)
{
    int64_t deadline = s_now_ms() + s_wait_ms;
    while (!k->eof) {
        if (k->len == sizeof k->buf)
            k->len = 0; // unread chatter: not needed any more
        if (!p_fill(k, deadline)) {
            kill(k->pid, SIGKILL);
            fail_msg("%s did not exit within %d ms", k->name, s_wait_ms);
        }
    }
    int status = 0;
    while (waitpid(k->pid, &status, 0) < 0 && errno == EINTR)
        ;
    k->pid = 0;
    k->status = status;
    close(k->up);
    close(k->down);
    k->up = k->down = -1;
    return status;
}

static void p_exit0(kid_t *k)
{
    int status = p_reap(k);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s ended with %s", k->name, s_describe(status));
}

//  Waits for one line from the child.
static void p_hear(kid_t *k, char *line, size_t n)
{
    int64_t deadline = s_now_ms() + s_wait_ms;
    while (true) {
        char *nl = memchr(k->buf, '\n', k->len);
        if (nl) {
            size_t len = (size_t) (nl - k->buf);
            if (len >= n)
                fail_msg("%s: line too long", k->name);
            memcpy(line, k->buf, len);
            line[len] = 0;
            memmove(k->buf, nl + 1, k->len - len - 1);
            k->len -= len + 1;
            return;
        }
        if (k->eof) {
            int status = p_reap(k);
            fail_msg("%s ended (%s) while the test waited for a line from it", k->name, s_describe(status));
        }
        if (!p_fill(k, deadline))
            fail_msg("%s said nothing within %d ms", k->name, s_wait_ms);
    }
}

//  Waits for a line that starts with word; returns the rest (static storage).
static const char *p_expect(kid_t *k, const char *word)
{
    static char line[16384];
    p_hear(k, line, sizeof line);
    size_t n = strlen(word);
    if (strncmp(line, word, n) != 0 || (line[n] != 0 && line[n] != ' '))
        fail_msg("%s said \"%.200s\", expected \"%s\"", k->name, line, word);
    return line[n] ? line + n + 1 : line + n;
}

static void p_say(kid_t *k, const char *line)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s\n", line);
    if (write(k->down, buf, (size_t) n) != n)
        fail_msg("cannot talk to %s: %s", k->name, strerror(errno));
}

//  Kills and reaps every child still running (after a failure).
static void p_kill_all(void)
{
    for (int i = 0; i < s_nkids; i++) {
        kid_t *k = &s_kids[i];
        if (k->pid > 0) {
            kill(k->pid, SIGKILL);
            while (waitpid(k->pid, NULL, 0) < 0 && errno == EINTR)
                ;
            k->pid = 0;
        }
        if (k->up >= 0)
            close(k->up);
        if (k->down >= 0)
            close(k->down);
        k->up = k->down = -1;
    }
    s_nkids = 0;
}

//  A receiver's report, parsed.
typedef struct {
    long got, dups, order, bad;
    unsigned long long dropped;
    uint8_t *bits;
    size_t nbits;
} result_t;

//  Result bitmaps, freed by the teardown. Held here, not only by a test's
//  locals, so that a child forked after a failed test inherits nothing
//  unreachable (valgrind would report it in the child).
#define MAX_BITMAPS 16
static uint8_t *s_bitmaps[MAX_BITMAPS];
static int s_nbitmaps;

static void s_bitmaps_free(void)
{
    for (int i = 0; i < s_nbitmaps; i++)
        free(s_bitmaps[i]);
    s_nbitmaps = 0;
}

static void p_result(kid_t *k, result_t *res, size_t nbits)
{
    const char *rest = p_expect(k, "RESULT");
    int off = 0;
    memset(res, 0, sizeof *res);
    if (sscanf(rest, "%ld %ld %ld %ld %llu %n", &res->got, &res->dups, &res->order, &res->bad, &res->dropped, &off)
        != 5)
        fail_msg("%s: bad result line", k->name);
    const char *hex = rest + off;
    size_t nbytes = (nbits + 7) / 8;
    if (strlen(hex) != nbytes * 2)
        fail_msg("%s: result bitmap of %zu hex digits, expected %zu", k->name, strlen(hex), nbytes * 2);
    if (s_nbitmaps == MAX_BITMAPS)
        fail_msg("too many results");
    res->bits = calloc(nbytes, 1);
    assert_non_null(res->bits);
    s_bitmaps[s_nbitmaps++] = res->bits;
    res->nbits = nbits;
    for (size_t i = 0; i < nbytes; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            fail_msg("%s: bad result bitmap", k->name);
        res->bits[i] = (uint8_t) v;
    }
}

// ---------------------------------------------------------------------------
// Namespaces

static char s_ns[3][32];   // H, S, R; "" when not made
static char s_rlink[32];   // R's end of its link to H
static char s_skip_why[256];

//  Runs an ip command quietly; true if it succeeded.
static bool s_ip(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 32, fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t) n >= sizeof cmd - 32)
        return false;
    strcat(cmd, " >/dev/null 2>&1");
    return system(cmd) == 0;
}

//  Removes the namespaces this run made (their veth links go with them).
static void s_ns_cleanup(void)
{
    for (int i = 0; i < 3; i++)
        if (s_ns[i][0]) {
            s_ip("ip netns delete %s", s_ns[i]);
            s_ns[i][0] = 0;
        }
}

//  Removes namespaces left by an earlier run of this test that was killed
//  (zcnt-PID-*, PID no longer alive).
static void s_ns_stale(void)
{
    DIR *d = opendir("/run/netns");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid;
        char role;
        if (sscanf(e->d_name, "zcnt-%d-%c", &pid, &role) == 2 && pid != getpid() && kill(pid, 0) != 0
            && errno == ESRCH)
            s_ip("ip netns delete %s", e->d_name);
    }
    closedir(d);
}

//  Makes H, S and R and their links. false (s_skip_why says why) if
//  namespaces cannot be made here; fails the test if a later step fails.
static bool s_ns_setup(void)
{
    if (geteuid() != 0) {
        snprintf(s_skip_why, sizeof s_skip_why, "not root");
        return false;
    }
    if (!s_ip("ip -V")) {
        snprintf(s_skip_why, sizeof s_skip_why, "no ip command (iproute2)");
        return false;
    }
    s_ns_stale();
    const char roles[3] = {'h', 's', 'r'};
    int pid = (int) getpid();
    for (int i = 0; i < 3; i++) {
        snprintf(s_ns[i], sizeof s_ns[i], "zcnt-%d-%c", pid, roles[i]);
        if (!s_ip("ip netns add %s", s_ns[i])) {
            s_ns[i][0] = 0;
            s_ns_cleanup();
            snprintf(s_skip_why, sizeof s_skip_why, "ip netns add refused (no permission or no kernel support)");
            return false;
        }
        if (!s_ip("ip -n %s link set lo up", s_ns[i]))
            fail_msg("cannot bring lo up in %s", s_ns[i]);
    }
    //  S <-> H on 10.77.1.0/24, R <-> H on 10.77.2.0/24. Link names are
    //  made in the root namespace first, so they must be unique there.
    for (int k = 1; k <= 2; k++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "zc%d%c0", pid % 10000000, roles[k]);
        snprintf(b, sizeof b, "zc%d%c1", pid % 10000000, roles[k]);
        if (!s_ip("ip link add %s type veth peer name %s", a, b) || !s_ip("ip link set %s netns %s", a, s_ns[k])
            || !s_ip("ip link set %s netns %s", b, s_ns[0])
            || !s_ip("ip -n %s addr add 10.77.%d.2/24 dev %s", s_ns[k], k, a)
            || !s_ip("ip -n %s addr add 10.77.%d.1/24 dev %s", s_ns[0], k, b)
            || !s_ip("ip -n %s link set %s up", s_ns[k], a) || !s_ip("ip -n %s link set %s up", s_ns[0], b)) {
            s_ip("ip link delete %s", a);
            fail_msg("cannot make the veth link %s-%s", a, b);
        }
        if (k == 2)
            snprintf(s_rlink, sizeof s_rlink, "%s", a);
    }
    return true;
}

//  Takes R's link down for ms, then up again.
static void s_link_cut(int ms)
{
    if (!s_ip("ip -n %s link set %s down", s_ns[2], s_rlink))
        fail_msg("cannot take %s down", s_rlink);
    usleep((useconds_t) ms * 1000); // the fault's length is the point: nothing to wait for
    if (!s_ip("ip -n %s link set %s up", s_ns[2], s_rlink))
        fail_msg("cannot bring %s up", s_rlink);
}

// ---------------------------------------------------------------------------
// The test

static int s_teardown(void **state)
{
    (void) state;
    p_kill_all();
    s_ns_cleanup();
    s_bitmaps_free();
    return 0;
}

//  Reads the sender's "AT n" lines until n >= target.
static int p_until(kid_t *send, int target)
{
    int at = 0;
    while (at < target)
        at = atoi(p_expect(send, "AT"));
    return at;
}

static void p_ns_stat(kid_t *hub, unsigned long long v[4])
{
    p_say(hub, "STAT");
    const char *rest = p_expect(hub, "STAT");
    if (sscanf(rest, "%llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3]) != 4)
        fail_msg("bad STAT line: %s", rest);
}

static void test_link_down_up(void **state)
{
    (void) state;
    s_nkids = 0;
    if (!s_ns_setup()) {
        print_message("test_netns: SKIPPED: cannot make network namespaces here: %s\n", s_skip_why);
        skip();
    }
    job_t hj = {0};
    snprintf(hj.name, sizeof hj.name, "netns-%d", (int) getpid());
    snprintf(hj.netns, sizeof hj.netns, "%s", s_ns[0]);
    snprintf(hj.host_id, sizeof hj.host_id, "zcnt-host-h");
    kid_t *hub = spawn("hub (H)", child_hub, &hj);
    const char *uri = p_expect(hub, "URI");
    job_t sj = {0}, rj = {0};
    snprintf(sj.uri, sizeof sj.uri, "%s", uri);
    snprintf(rj.uri, sizeof rj.uri, "tcp://10.77.2.1:%d/%s", NS_PORT, hj.name);
    sj.nsenders = rj.nsenders = 1;
    sj.count = rj.count = NS_MAX;
    sj.id = 1;
    snprintf(sj.netns, sizeof sj.netns, "%s", s_ns[1]);
    snprintf(rj.netns, sizeof rj.netns, "%s", s_ns[2]);
    snprintf(sj.host_id, sizeof sj.host_id, "zcnt-host-s");
    snprintf(rj.host_id, sizeof rj.host_id, "zcnt-host-r");
    kid_t *recv = spawn("receiver (R)", child_receiver, &rj);
    p_expect(recv, "READY");
    kid_t *send = spawn("sender (S)", child_sender, &sj);
    p_expect(send, "READY");
    p_say(send, "GO");
    int at = p_until(send, 500);

    //  A: a short cut. Nothing is lost, nobody is dropped.
    s_link_cut(NS_SHORT_MS);
    int64_t t0 = s_now_ms();
    int before = at;
    at = p_until(send, at + NS_RESUME);
    long resume_a = (long) (s_now_ms() - t0);
    unsigned long long sa[4];
    p_ns_stat(hub, sa);
    assert_int_equal(sa[2], 0); // lost
    assert_int_equal(sa[3], 1); // the same receiver

    //  B: a long cut. The connection is dropped; what the receiver held is
    //  counted lost; it stops, attaches again, and traffic resumes.
    before = at;
    s_link_cut(NS_LONG_MS);
    t0 = s_now_ms();
    at = p_until(send, before + NS_RESUME);
    long resume_b = (long) (s_now_ms() - t0);
    p_say(send, "STOP");
    int sent = atoi(p_expect(send, "SENT"));
    p_exit0(send);
    p_say(hub, "CLOSE");
    p_expect(hub, "CLOSED");
    long reattach_ms = atol(p_expect(recv, "REATTACH"));
    result_t res;
    p_result(recv, &res, NS_MAX);
    p_exit0(recv);
    unsigned long long sb[4];
    p_ns_stat(hub, sb);
    p_say(hub, "EXIT");
    p_exit0(hub);
    s_ns_cleanup();

    const unsigned long long window = NS_CAPACITY < 16 ? NS_CAPACITY : 16;
    assert_int_equal(res.bad, 0);
    assert_int_equal(res.dups, 0);
    assert_int_equal(res.order, 0);
    assert_int_equal(sb[0], (unsigned long long) sent);
    long missing = sent - res.got;
    assert_true(missing >= 0);
    assert_true((unsigned long long) missing <= sb[2]);
    assert_true(sb[2] <= window);
    print_message("netns: A, %d ms down: resumed in %ld ms, lost 0; B, %d ms down: the receiver re-attached at "
                  "%ld ms, traffic resumed %ld ms after the link came up; sent %d, received %ld, STAT lost %llu "
                  "(bound %llu)\n",
                  NS_SHORT_MS, resume_a, NS_LONG_MS, reattach_ms, resume_b, sent, res.got, sb[2], window);
}

int main(void)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        s_slow = 4;
    s_wait_ms = 40000 * s_slow;
    s_recv_ms = 30000 * s_slow;
    signal(SIGPIPE, SIG_IGN);
    //  The documented defaults, whatever the environment says.
    unsetenv("ZCHAN_HEARTBEAT_MS");
    unsetenv("ZCHAN_HEARTBEAT_TIMEOUT_MS");
    tu_ipc_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_link_down_up, s_teardown),
    };
    int failed = cmocka_run_group_tests_name("hosts in network namespaces", tests, NULL, NULL);
    p_kill_all();
    s_ns_cleanup();
    tu_cleanup_dir();
    return failed ? 1 : 0;
}

/*  test_multiproc.c: channels between real processes, over ipc and over tcp.

    The parent process only conducts: it never makes a zchan or ZeroMQ
    context, so it may fork at any moment. Every role (a channel's host, a
    sender, a receiver) runs in a child of its own, which makes its own
    context. A child talks to the parent over two pipes, one line per
    message: handshakes ("READY", "GO", "CLOSE") and results ("RESULT ...",
    with a bitmap of the messages it got). Children never call cmocka: C_CHECK
    prints what failed and exits with code 3, and the parent fails the test on
    any exit code but 0. Every child has a watchdog alarm() and dies with the
    parent (PR_SET_PDEATHSIG); the teardown kills and reaps whatever a failed
    test left running. All waits are handshakes on the pipes, with a deadline.

    ZCHAN_IPC_DIR is one fresh directory for the whole program, removed at the
    end. tcp hubs bind 127.0.0.1 port 0 and report the port they got.
*/
#include "testutil.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

// ---------------------------------------------------------------------------
// Settings

static bool s_tcp;          // the transport of the group being run
static int s_slow = 1;      // timing factor: 4 under valgrind
static int s_wait_ms;       // longest the parent waits for one line or exit
static int s_recv_ms;       // longest a child waits for one message

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  What a child is to do: one struct for every role, copied by fork.
typedef struct {
    char name[128];    // channel name to create (hosts)
    char uri[256];     // channel to join
    char host_id[64];  // ZCHAN_HOST_ID for the child, "" to keep the real one
    int id;            // sender id, 1-based
    int nsenders;      // senders whose messages a receiver tallies
    int count;         // messages per sender
    size_t capacity;   // anycast capacity (hosts)
    size_t limit;      // broadcast receiver limit
    bool broadcast;    // the host makes a broadcast channel
    bool gapless;      // a receiver must get every seq of every sender, in order
    int die_after;     // a receiver stops reading after this many and waits to die
    bool self_exit;    // ...and then calls _exit itself
} job_t;

// ---------------------------------------------------------------------------
// The child side

static int s_up = -1;   // child to parent
static int s_down = -1; // parent to child
static char s_in[4096];
static size_t s_inlen;

static void __attribute__((noreturn)) c_die(int line, const char *what, int rc)
{
    fprintf(stderr, "test_multiproc child %d: line %d: %s failed (%s)\n", (int) getpid(), line, what,
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
        fprintf(stderr, "test_multiproc child %d: expected \"%s\", heard \"%s\"\n", (int) getpid(), word, line);
        _exit(3);
    }
}

static zchan_ctx_t *c_ctx_new(void)
{
    zchan_ctx_t *ctx;
    C_NEW(ctx, zchan_ctx_new());
    return ctx;
}

//  In tcp mode, makes the context listen on 127.0.0.1, port 0, and returns
//  the endpoint it got; NULL in ipc mode.
static const char *c_bind_tcp(zchan_ctx_t *ctx)
{
    if (!s_tcp)
        return NULL;
    C_RC(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    const char *ep;
    C_NEW(ep, zchan_ctx_endpoint(ctx, "tcp"));
    C_CHECK(strncmp(ep, "tcp://127.0.0.1:", 16) == 0 && atoi(ep + 16) > 0);
    return ep;
}

//  The URI of channel name hosted by ctx: "TCP-ENDPOINT/NAME" in tcp mode
//  (binding first), the host-wide "ipc://NAME" in ipc mode.
static void c_host_uri(zchan_ctx_t *ctx, const char *name, char *uri, size_t n)
{
    const char *ep = c_bind_tcp(ctx);
    if (ep)
        snprintf(uri, n, "%s/%s", ep, name);
    else
        snprintf(uri, n, "ipc://%s", name);
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
// Child roles for the message-flow tests

//  Hosts one channel: says "URI ...", then obeys "CLOSE" and "EXIT".
static int child_host(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    char uri[256];
    c_host_uri(ctx, job->name, uri, sizeof uri);
    zchan_t *ch;
    if (job->broadcast)
        C_NEW(ch, zchan_broadcast_new(ctx, uri, false));
    else
        C_NEW(ch, zchan_anycast_new(ctx, uri, job->capacity));
    c_say("URI %s", uri);
    while (true) {
        char line[64];
        c_hear(line, sizeof line);
        if (strcmp(line, "CLOSE") == 0) {
            C_RC(zchan_close(ch), ZCHAN_OK);
            c_say("CLOSED");
        } else if (strcmp(line, "EXIT") == 0)
            break;
        else
            C_CHECK(!"a known command");
    }
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Joins the channel, says "READY" when attached, sends count tagged
//  messages after "GO", and exits once zchan_sender_destroy has returned.
static int child_sender(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_open(ctx, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(ch));
    c_say("READY");
    c_expect("GO");
    for (int seq = 0; seq < job->count; seq++)
        C_RC(c_send_tag(s, job->id, seq, s_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s); // everything sent has reached the channel
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Joins the channel, says "READY" once its receiver exists, receives until
//  the channel is closed and drained, and reports. With die_after, it stops
//  reading after that many, reports what it consumed, says "HOLDING" and
//  waits to be killed (or _exits) with what the hub had handed it unread.
static int child_receiver(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_open(ctx, job->uri));
    zchan_receiver_t *r;
    C_NEW(r, zchan_receiver_new(ch, job->limit));
    c_say("READY");
    tally_t t;
    tally_init(&t, job);
    while (true) {
        if (job->die_after > 0 && t.got + t.bad + t.dups == job->die_after) {
            c_report(&t, 0);
            c_say("HOLDING");
            if (job->self_exit)
                _exit(0);
            char line[64];
            c_hear(line, sizeof line);
            _exit(6); // should have been killed
        }
        zchan_msg_t *m = NULL;
        int rc = zchan_recv(r, &m, s_recv_ms);
        if (rc == ZCHAN_ECLOSED)
            break;
        C_RC(rc, ZCHAN_OK);
        tally_msg(&t, m);
        zchan_msg_destroy(&m);
    }
    c_report(&t, zchan_receiver_dropped(r));
    tally_fini(&t);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

// ---------------------------------------------------------------------------
// The parent side: children, lines, exits

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

static void p_kill(kid_t *k)
{
    kill(k->pid, SIGKILL);
    int status = p_reap(k);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("%s ended with %s before it was killed", k->name, s_describe(status));
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

//  A channel name no other test (or run) uses.
static void s_name(char *out, size_t n, const char *what)
{
    static int seq;
    snprintf(out, n, "mp%d-%d-%s-%s", (int) getpid(), ++seq, s_tcp ? "tcp" : "ipc", what);
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

static bool s_bit(const result_t *r, size_t i)
{
    return (r->bits[i / 8] >> (i % 8)) & 1;
}

static int s_setup(void **state)
{
    (void) state;
    s_nkids = 0;
    return 0;
}

static int s_teardown(void **state)
{
    (void) state;
    p_kill_all();
    s_bitmaps_free();
    return 0;
}

// ---------------------------------------------------------------------------
// 1. Anycast: 3 sender and 3 receiver processes on a channel a fourth hosts.

#define ANY_SENDERS 3
#define ANY_RECEIVERS 3
#define ANY_COUNT 2000

static void test_anycast(void **state)
{
    (void) state;
    job_t hj = {0};
    s_name(hj.name, sizeof hj.name, "any");
    hj.capacity = ZCHAN_ANYCAST_CAPACITY;
    kid_t *host = spawn("anycast host", child_host, &hj);
    job_t j = {0};
    snprintf(j.uri, sizeof j.uri, "%s", p_expect(host, "URI"));
    j.nsenders = ANY_SENDERS;
    j.count = ANY_COUNT;
    kid_t *recv[ANY_RECEIVERS], *send[ANY_SENDERS];
    for (int i = 0; i < ANY_RECEIVERS; i++)
        recv[i] = spawn("anycast receiver", child_receiver, &j);
    //  All receivers attached before the first send, so the load can spread.
    for (int i = 0; i < ANY_RECEIVERS; i++)
        p_expect(recv[i], "READY");
    for (int i = 0; i < ANY_SENDERS; i++) {
        j.id = i + 1;
        send[i] = spawn("anycast sender", child_sender, &j);
    }
    for (int i = 0; i < ANY_SENDERS; i++)
        p_expect(send[i], "READY");
    int64_t t0 = s_now_ms();
    for (int i = 0; i < ANY_SENDERS; i++)
        p_say(send[i], "GO");
    //  A sender exits only after zchan_sender_destroy returned: all it sent
    //  has reached the channel, so the close loses nothing.
    for (int i = 0; i < ANY_SENDERS; i++)
        p_exit0(send[i]);
    p_say(host, "CLOSE");
    p_expect(host, "CLOSED");
    size_t nbits = (size_t) ANY_SENDERS * ANY_COUNT;
    result_t res[ANY_RECEIVERS];
    for (int i = 0; i < ANY_RECEIVERS; i++) {
        p_result(recv[i], &res[i], nbits);
        p_exit0(recv[i]); // drained, saw ECLOSED, and exited cleanly
    }
    int64_t t1 = s_now_ms();
    p_say(host, "EXIT");
    p_exit0(host);
    long total = 0;
    for (int i = 0; i < ANY_RECEIVERS; i++) {
        assert_int_equal(res[i].bad, 0);
        assert_int_equal(res[i].dups, 0);
        assert_int_equal(res[i].order, 0); // each sender's messages in order here
        assert_true(res[i].got > 0);       // the load is spread
        total += res[i].got;
    }
    //  Exactly once: every message at exactly one receiver.
    for (size_t b = 0; b < nbits; b++) {
        int at = 0;
        for (int i = 0; i < ANY_RECEIVERS; i++)
            at += s_bit(&res[i], b);
        if (at != 1)
            fail_msg("message (%zu, %zu) arrived %d times", b / ANY_COUNT + 1, b % ANY_COUNT, at);
    }
    assert_int_equal(total, (long) nbits);
    print_message("anycast over %s: %ld messages in %lld ms, spread %ld/%ld/%ld\n", s_tcp ? "tcp" : "ipc", total,
                  (long long) (t1 - t0), res[0].got, res[1].got, res[2].got);
}

// ---------------------------------------------------------------------------
// 2. Broadcast: every receiver process gets every message, once, in order.

#define BC_SENDERS 2
#define BC_RECEIVERS 3
#define BC_COUNT 2000

static void test_broadcast(void **state)
{
    (void) state;
    job_t hj = {0};
    s_name(hj.name, sizeof hj.name, "bc");
    hj.broadcast = true;
    kid_t *host = spawn("broadcast host", child_host, &hj);
    job_t j = {0};
    snprintf(j.uri, sizeof j.uri, "%s", p_expect(host, "URI"));
    j.nsenders = BC_SENDERS;
    j.count = BC_COUNT;
    j.gapless = true;
    j.limit = (size_t) BC_SENDERS * BC_COUNT; // room for all: nothing may be dropped
    kid_t *recv[BC_RECEIVERS], *send[BC_SENDERS];
    for (int i = 0; i < BC_RECEIVERS; i++)
        recv[i] = spawn("broadcast receiver", child_receiver, &j);
    //  No slow joiner: a receiver is live once zchan_receiver_new returned,
    //  which it says before any sender starts.
    for (int i = 0; i < BC_RECEIVERS; i++)
        p_expect(recv[i], "READY");
    for (int i = 0; i < BC_SENDERS; i++) {
        j.id = i + 1;
        send[i] = spawn("broadcast sender", child_sender, &j);
    }
    for (int i = 0; i < BC_SENDERS; i++)
        p_expect(send[i], "READY");
    for (int i = 0; i < BC_SENDERS; i++)
        p_say(send[i], "GO");
    for (int i = 0; i < BC_SENDERS; i++)
        p_exit0(send[i]);
    p_say(host, "CLOSE");
    p_expect(host, "CLOSED");
    size_t nbits = (size_t) BC_SENDERS * BC_COUNT;
    result_t res[BC_RECEIVERS];
    for (int i = 0; i < BC_RECEIVERS; i++) {
        p_result(recv[i], &res[i], nbits);
        p_exit0(recv[i]);
    }
    p_say(host, "EXIT");
    p_exit0(host);
    for (int i = 0; i < BC_RECEIVERS; i++) {
        assert_int_equal(res[i].bad, 0);
        assert_int_equal(res[i].dups, 0);
        assert_int_equal(res[i].order, 0); // every seq of every sender, in order
        assert_int_equal(res[i].dropped, 0);
        assert_int_equal(res[i].got, (long) nbits);
    }
}

// ---------------------------------------------------------------------------
// 3. References across processes: an unnamed channel of A reaches B inside
//    an array; B answers on it, then sends a channel of its own inside a map.

//  B: hosts the named channel, answers A's reference.
static int child_ref_b(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    char uri[256];
    c_host_uri(ctx, job->name, uri, sizeof uri);
    zchan_t *named, *theirs, *mine;
    C_NEW(named, zchan_anycast_new(ctx, uri, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *r, *rmine;
    C_NEW(r, zchan_receiver_new(named, 0));
    c_say("URI %s", uri);
    //  ["ping", ref]
    zchan_msg_t *m = NULL;
    C_RC(zchan_recv(r, &m, s_recv_ms), ZCHAN_OK);
    const msgpack_object *o = zchan_msg_object(m);
    C_CHECK(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2);
    C_CHECK(o->via.array.ptr[0].type == MSGPACK_OBJECT_STR && o->via.array.ptr[0].via.str.size == 4
            && memcmp(o->via.array.ptr[0].via.str.ptr, "ping", 4) == 0);
    //  Not a reference: EINVAL.
    C_CHECK(zchan_msg_chan(ctx, &o->via.array.ptr[0]) == NULL && zchan_errno() == ZCHAN_EINVAL);
    C_NEW(theirs, zchan_msg_chan(ctx, &o->via.array.ptr[1]));
    zchan_msg_destroy(&m);
    C_CHECK(zchan_kind(theirs) == ZCHAN_ANYCAST);
    C_CHECK(strncmp(zchan_name(theirs), "zc-", 3) == 0);
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(theirs));
    C_RC(zchan_send_str(s, "pong", s_recv_ms), ZCHAN_OK);
    //  {"reply_to": ref, "n": 7} on A's channel.
    C_NEW(mine, zchan_anycast_new(ctx, NULL, ZCHAN_ANYCAST_CAPACITY));
    C_NEW(rmine, zchan_receiver_new(mine, 0));
    C_NEW(m, zchan_msg_new());
    msgpack_packer *pk = zchan_msg_packer(m);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "n", 1);
    msgpack_pack_int(pk, 7);
    msgpack_pack_str(pk, 8);
    msgpack_pack_str_body(pk, "reply_to", 8);
    C_RC(zchan_msg_pack_chan(m, mine), ZCHAN_OK);
    C_RC(zchan_send(s, &m, s_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    int64_t v = 0;
    C_RC(zchan_recv_int(rmine, &v, s_recv_ms), ZCHAN_OK);
    C_CHECK(v == 4242);
    c_say("GOT %lld", (long long) v);
    c_expect("EXIT");
    zchan_receiver_destroy(&rmine);
    zchan_receiver_destroy(&r);
    zchan_destroy(&mine);
    zchan_destroy(&theirs);
    zchan_destroy(&named);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  A: makes an unnamed channel, sends a reference to it to B, gets B's
//  answer on it, then uses B's own channel from the map.
static int child_ref_a(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    c_bind_tcp(ctx); // in tcp mode, A's own references must carry tcp
    zchan_t *reply, *named, *back;
    C_NEW(reply, zchan_anycast_new(ctx, NULL, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *r;
    C_NEW(r, zchan_receiver_new(reply, 0));
    C_NEW(named, zchan_open(ctx, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(named));
    zchan_msg_t *m;
    C_NEW(m, zchan_msg_new());
    msgpack_packer *pk = zchan_msg_packer(m);
    msgpack_pack_array(pk, 2);
    msgpack_pack_str(pk, 4);
    msgpack_pack_str_body(pk, "ping", 4);
    C_RC(zchan_msg_pack_chan(m, reply), ZCHAN_OK);
    C_RC(zchan_send(s, &m, s_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    char *str = NULL;
    C_RC(zchan_recv_str(r, &str, s_recv_ms), ZCHAN_OK);
    C_CHECK(strcmp(str, "pong") == 0);
    free(str);
    C_RC(zchan_recv(r, &m, s_recv_ms), ZCHAN_OK);
    const msgpack_object *o = zchan_msg_object(m);
    C_CHECK(o && o->type == MSGPACK_OBJECT_MAP);
    const msgpack_object *ref = NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 8 && memcmp(k->via.str.ptr, "reply_to", 8) == 0)
            ref = &o->via.map.ptr[i].val;
    }
    C_CHECK(ref);
    C_NEW(back, zchan_msg_chan(ctx, ref));
    zchan_msg_destroy(&m);
    C_NEW(s, zchan_sender_new(back));
    C_RC(zchan_send_int(s, 4242, s_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    c_say("DONE");
    zchan_receiver_destroy(&r);
    zchan_destroy(&back);
    zchan_destroy(&named);
    zchan_destroy(&reply);
    zchan_ctx_destroy(&ctx);
    return 0;
}

static void test_references(void **state)
{
    (void) state;
    job_t jb = {0}, ja = {0};
    s_name(jb.name, sizeof jb.name, "refs");
    if (s_tcp) {
        //  Other "hosts": their ipc and inproc locators are out of reach, so
        //  each reference is opened over tcp.
        snprintf(jb.host_id, sizeof jb.host_id, "mp-host-b");
        snprintf(ja.host_id, sizeof ja.host_id, "mp-host-a");
    }
    kid_t *b = spawn("refs B", child_ref_b, &jb);
    snprintf(ja.uri, sizeof ja.uri, "%s", p_expect(b, "URI"));
    kid_t *a = spawn("refs A", child_ref_a, &ja);
    p_expect(a, "DONE");
    p_exit0(a);
    p_expect(b, "GOT");
    p_say(b, "EXIT");
    p_exit0(b);
}

// ---------------------------------------------------------------------------
// 4. A receiver process dies mid-stream, holding messages the hub handed it.
//
//    What it consumed (returned from zchan_recv) is gone with it. What the
//    hub had handed it and it had not reported consumed is counted lost, at
//    most its credit window: nothing reaches two receivers. Everything else
//    must reach the surviving receivers, exactly once among them, and the
//    senders must complete. (tests/test_faults.c checks the lost count.)

#define DEAD_SENDERS 2
#define DEAD_SURVIVORS 2
#define DEAD_COUNT 1500
#define DEAD_AFTER 100

static void test_dead_receiver(void **state)
{
    (void) state;
    job_t hj = {0};
    s_name(hj.name, sizeof hj.name, "dead");
    hj.capacity = ZCHAN_ANYCAST_CAPACITY;
    kid_t *host = spawn("dead-peer host", child_host, &hj);
    job_t j = {0};
    snprintf(j.uri, sizeof j.uri, "%s", p_expect(host, "URI"));
    j.nsenders = DEAD_SENDERS;
    j.count = DEAD_COUNT;
    kid_t *surv[DEAD_SURVIVORS], *send[DEAD_SENDERS];
    for (int i = 0; i < DEAD_SURVIVORS; i++)
        surv[i] = spawn("surviving receiver", child_receiver, &j);
    job_t dj = j;
    dj.die_after = DEAD_AFTER;
    //  ipc: SIGKILL; tcp: _exit without any clean-up. Under valgrind, which
    //  would report the threads _exit abandons, SIGKILL for both.
    dj.self_exit = s_tcp && s_slow == 1;
    kid_t *dead = spawn("dying receiver", child_receiver, &dj);
    for (int i = 0; i < DEAD_SURVIVORS; i++)
        p_expect(surv[i], "READY");
    p_expect(dead, "READY");
    for (int i = 0; i < DEAD_SENDERS; i++) {
        j.id = i + 1;
        send[i] = spawn("sender", child_sender, &j);
    }
    for (int i = 0; i < DEAD_SENDERS; i++)
        p_expect(send[i], "READY");
    for (int i = 0; i < DEAD_SENDERS; i++)
        p_say(send[i], "GO");
    size_t nbits = (size_t) DEAD_SENDERS * DEAD_COUNT;
    result_t dres, res[DEAD_SURVIVORS];
    p_result(dead, &dres, nbits);
    p_expect(dead, "HOLDING");
    if (dj.self_exit)
        p_exit0(dead);
    else
        p_kill(dead);
    //  The senders complete: the dead receiver's share is not stuck.
    for (int i = 0; i < DEAD_SENDERS; i++)
        p_exit0(send[i]);
    p_say(host, "CLOSE");
    p_expect(host, "CLOSED");
    for (int i = 0; i < DEAD_SURVIVORS; i++) {
        p_result(surv[i], &res[i], nbits);
        p_exit0(surv[i]);
    }
    p_say(host, "EXIT");
    p_exit0(host);
    assert_int_equal(dres.got, DEAD_AFTER);
    assert_int_equal(dres.bad + dres.dups, 0);
    long again = 0, missing = 0;
    for (size_t b = 0; b < nbits; b++) {
        int at = 0;
        for (int i = 0; i < DEAD_SURVIVORS; i++)
            at += s_bit(&res[i], b);
        if (at > 1)
            fail_msg("message (%zu, %zu) reached %d survivors", b / DEAD_COUNT + 1, b % DEAD_COUNT, at);
        if (at == 0 && !s_bit(&dres, b))
            missing++;
        if (at == 1 && s_bit(&dres, b))
            again++;
    }
    for (int i = 0; i < DEAD_SURVIVORS; i++) {
        assert_int_equal(res[i].bad + res[i].dups, 0);
        assert_true(res[i].got > 0);
    }
    //  Nothing twice; lost at most what it held: its credit window, which is
    //  min(capacity, 16) messages.
    assert_int_equal(again, 0);
    assert_true(missing <= ZCHAN_ANYCAST_CAPACITY);
    print_message("dead receiver over %s: it consumed %ld, survivors got %ld + %ld, %ld lost\n",
                  s_tcp ? "tcp" : "ipc", dres.got, res[0].got, res[1].got, missing);
}

// ---------------------------------------------------------------------------
// 5. Host-wide ipc://NAME: the first creator hosts it, a later creator joins.
//    A stale socket file left by a killed host is never trusted: opening the
//    name finds nothing, and the next creator takes it over.

//  Obeys commands on one ipc name, one at a time, each answered by a line.
static int child_ipc_party(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch = NULL;
    zchan_sender_t *s = NULL;
    zchan_receiver_t *r = NULL;
    int64_t v;
    while (true) {
        char line[64];
        c_hear(line, sizeof line);
        if (strcmp(line, "NEW") == 0) { // create or join
            C_NEW(ch, zchan_anycast_new(ctx, job->uri, ZCHAN_ANYCAST_CAPACITY));
            c_say("OK");
        } else if (strcmp(line, "OPEN") == 0) { // join only
            C_NEW(ch, zchan_open(ctx, job->uri));
            c_say("OK");
        } else if (strcmp(line, "OPEN-GONE") == 0) {
            int64_t t0 = s_now_ms();
            zchan_t *none = zchan_open(ctx, job->uri);
            C_CHECK(none == NULL);
            c_say("ERR %d %lld", zchan_errno(), (long long) (s_now_ms() - t0));
        } else if (strcmp(line, "RECEIVER") == 0) {
            C_NEW(r, zchan_receiver_new(ch, 0));
            c_say("OK");
        } else if (strncmp(line, "SEND ", 5) == 0) {
            if (!s)
                C_NEW(s, zchan_sender_new(ch));
            C_RC(zchan_send_int(s, atoll(line + 5), s_recv_ms), ZCHAN_OK);
            c_say("OK");
        } else if (strcmp(line, "RECV") == 0) {
            C_RC(zchan_recv_int(r, &v, s_recv_ms), ZCHAN_OK);
            c_say("GOT %lld", (long long) v);
        } else if (strcmp(line, "DROP") == 0) { // let go of everything
            zchan_sender_destroy(&s);
            zchan_receiver_destroy(&r);
            zchan_destroy(&ch);
            c_say("OK");
        } else if (strcmp(line, "EXIT") == 0)
            break;
        else
            C_CHECK(!"a known command");
    }
    zchan_sender_destroy(&s);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

static void s_ask(kid_t *k, const char *cmd, const char *answer)
{
    p_say(k, cmd);
    p_expect(k, answer);
}

static void test_ipc_host_wide(void **state)
{
    (void) state;
    job_t j = {0};
    char name[128];
    s_name(name, sizeof name, "hw");
    snprintf(j.uri, sizeof j.uri, "ipc://%s", name);
    kid_t *p1 = spawn("ipc first creator", child_ipc_party, &j);
    kid_t *p2 = spawn("ipc joiner", child_ipc_party, &j);
    s_ask(p1, "NEW", "OK"); // creates: p1 hosts it
    s_ask(p1, "RECEIVER", "OK");
    s_ask(p2, "NEW", "OK"); // the same call joins
    s_ask(p2, "SEND 1", "OK");
    s_ask(p1, "RECV", "GOT");
    //  Now the other way.
    s_ask(p2, "RECEIVER", "OK");
    p_say(p1, "DROP"); // p1's receiver goes: p2's is the only one
    p_expect(p1, "OK");
    s_ask(p1, "NEW", "OK"); // joins its own channel again
    s_ask(p1, "SEND 2", "OK");
    p_say(p2, "RECV");
    assert_string_equal(p_expect(p2, "GOT"), "2");
    s_ask(p2, "DROP", "OK");
    //  The host dies without cleaning up: its socket file stays behind.
    p_kill(p1);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.sock", tu_ipc_dir(), name);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    //  Joining finds nobody behind it, at once rather than after a timeout.
    p_say(p2, "OPEN-GONE");
    const char *err = p_expect(p2, "ERR");
    int code = -1;
    long long ms = -1;
    assert_int_equal(sscanf(err, "%d %lld", &code, &ms), 2);
    if (code != ZCHAN_ENOTFOUND)
        fail_msg("zchan_open on a dead host's name: %s", zchan_strerror(code));
    assert_true(ms < 1000 * s_slow);
    p_say(p2, "EXIT");
    p_exit0(p2);
    //  The next creator takes the name over, and a later process reaches it.
    kid_t *p3 = spawn("ipc second creator", child_ipc_party, &j);
    kid_t *p4 = spawn("ipc late joiner", child_ipc_party, &j);
    s_ask(p3, "NEW", "OK");
    s_ask(p3, "RECEIVER", "OK");
    s_ask(p4, "OPEN", "OK");
    s_ask(p4, "SEND 3", "OK");
    p_say(p3, "RECV");
    assert_string_equal(p_expect(p3, "GOT"), "3");
    s_ask(p4, "DROP", "OK");
    p_say(p4, "EXIT");
    p_exit0(p4);
    p_say(p3, "EXIT");
    p_exit0(p3);
    //  A host that exits cleanly removes the name's socket and lock files.
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof path, "%s/%s.lock", tu_ipc_dir(), name);
    assert_int_equal(stat(path, &st), -1);
}

// ---------------------------------------------------------------------------
// 6. Port 0 and the advertised host: a hub bound to tcp://0.0.0.0:0 reports
//    its real port, and its references, advertising 127.0.0.1 (set by call,
//    or by $ZCHAN_ADVERTISE), work from a process of another "host" (another
//    ZCHAN_HOST_ID: ipc and inproc are out of its reach).

//  The far side: hosts an inbox over tcp, opens the references it gets.
static int child_adv_far(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    char uri[256];
    c_host_uri(ctx, job->name, uri, sizeof uri);
    zchan_t *inbox;
    C_NEW(inbox, zchan_anycast_new(ctx, uri, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *r;
    C_NEW(r, zchan_receiver_new(inbox, 0));
    c_say("URI %s", uri);
    zchan_msg_t *m = NULL;
    C_RC(zchan_recv(r, &m, s_recv_ms), ZCHAN_OK);
    const msgpack_object *o = zchan_msg_object(m);
    C_CHECK(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2);
    const char *labels[] = {"by-call", "by-env"};
    for (int i = 0; i < 2; i++) {
        zchan_t *ch;
        C_NEW(ch, zchan_msg_chan(ctx, &o->via.array.ptr[i]));
        zchan_sender_t *s;
        C_NEW(s, zchan_sender_new(ch));
        C_RC(zchan_send_str(s, labels[i], s_recv_ms), ZCHAN_OK);
        zchan_sender_destroy(&s);
        zchan_destroy(&ch);
    }
    zchan_msg_destroy(&m);
    c_say("DONE");
    zchan_receiver_destroy(&r);
    zchan_destroy(&inbox);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Binds tcp://0.0.0.0:0; checks the reported port.
static void c_bind_any(zchan_ctx_t *ctx)
{
    C_RC(zchan_ctx_bind(ctx, "tcp://0.0.0.0:0"), ZCHAN_OK);
    const char *ep;
    C_NEW(ep, zchan_ctx_endpoint(ctx, "tcp"));
    C_CHECK(strncmp(ep, "tcp://0.0.0.0:", 14) == 0);
    int port = atoi(ep + 14);
    C_CHECK(port > 0 && port < 65536);
}

static int child_adv_near(const job_t *job)
{
    zchan_ctx_t *a = c_ctx_new();
    c_bind_any(a);
    C_RC(zchan_ctx_set_advertise(a, ""), ZCHAN_EINVAL);
    C_RC(zchan_ctx_set_advertise(a, "127.0.0.1"), ZCHAN_OK);
    setenv("ZCHAN_ADVERTISE", "127.0.0.1", 1);
    zchan_ctx_t *b = c_ctx_new();
    c_bind_any(b);
    zchan_t *cha, *chb, *inbox;
    C_NEW(cha, zchan_anycast_new(a, NULL, ZCHAN_ANYCAST_CAPACITY));
    C_NEW(chb, zchan_anycast_new(b, NULL, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *ra, *rb;
    C_NEW(ra, zchan_receiver_new(cha, 0));
    C_NEW(rb, zchan_receiver_new(chb, 0));
    C_NEW(inbox, zchan_open(a, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(inbox));
    zchan_msg_t *m;
    C_NEW(m, zchan_msg_new());
    msgpack_pack_array(zchan_msg_packer(m), 2);
    C_RC(zchan_msg_pack_chan(m, cha), ZCHAN_OK);
    C_RC(zchan_msg_pack_chan(m, chb), ZCHAN_OK);
    C_RC(zchan_send(s, &m, s_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    char *str = NULL;
    C_RC(zchan_recv_str(ra, &str, s_recv_ms), ZCHAN_OK);
    C_CHECK(strcmp(str, "by-call") == 0);
    free(str);
    C_RC(zchan_recv_str(rb, &str, s_recv_ms), ZCHAN_OK);
    C_CHECK(strcmp(str, "by-env") == 0);
    free(str);
    c_say("DONE");
    zchan_receiver_destroy(&ra);
    zchan_receiver_destroy(&rb);
    zchan_destroy(&inbox);
    zchan_destroy(&cha);
    zchan_destroy(&chb);
    zchan_ctx_destroy(&b);
    zchan_ctx_destroy(&a);
    return 0;
}

static void test_advertise(void **state)
{
    (void) state;
    job_t jf = {0}, jn = {0};
    s_name(jf.name, sizeof jf.name, "adv");
    snprintf(jf.host_id, sizeof jf.host_id, "mp-far-host");
    snprintf(jn.host_id, sizeof jn.host_id, "mp-near-host");
    kid_t *far = spawn("advertise far side", child_adv_far, &jf);
    snprintf(jn.uri, sizeof jn.uri, "%s", p_expect(far, "URI"));
    kid_t *near = spawn("advertise near side", child_adv_near, &jn);
    p_expect(far, "DONE");
    p_expect(near, "DONE");
    p_exit0(far);
    p_exit0(near);
}

// ---------------------------------------------------------------------------
// 7. The host of a channel is gone: using a reference to it, a URI of it, or
//    a receiver made before fails with ENOTFOUND or ETIMEDOUT within the
//    context's timeout, and never hangs.

#define GONE_TIMEOUT_MS 400

//  The host: makes an unnamed and a named channel, sends a reference to the
//  unnamed one to the client's inbox, reports the named one's URI.
static int child_gone_host(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    char uri[256];
    c_host_uri(ctx, job->name, uri, sizeof uri);
    zchan_t *named, *unnamed, *inbox;
    C_NEW(named, zchan_anycast_new(ctx, uri, ZCHAN_ANYCAST_CAPACITY));
    C_NEW(unnamed, zchan_anycast_new(ctx, NULL, ZCHAN_ANYCAST_CAPACITY));
    C_NEW(inbox, zchan_open(ctx, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(inbox));
    zchan_msg_t *m;
    C_NEW(m, zchan_msg_new());
    C_RC(zchan_msg_pack_chan(m, unnamed), ZCHAN_OK);
    C_RC(zchan_send(s, &m, s_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    zchan_destroy(&inbox);
    c_say("URI %s", uri);
    c_expect("EXIT");
    zchan_destroy(&named);
    zchan_destroy(&unnamed);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  The client: gets the reference and attaches a receiver while the host
//  lives; after "GO" (the host is gone), every use must fail in time.
static int child_gone_client(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_ctx_set_timeout(ctx, GONE_TIMEOUT_MS);
    const int bound = GONE_TIMEOUT_MS + 1500 * s_slow; // the timeout and scheduling slack
    char uri[256], line[300];
    c_host_uri(ctx, job->name, uri, sizeof uri);
    zchan_t *inbox, *ch, *named;
    C_NEW(inbox, zchan_anycast_new(ctx, uri, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *rin, *early;
    C_NEW(rin, zchan_receiver_new(inbox, 0));
    c_say("URI %s", uri);
    zchan_msg_t *ref = NULL;
    C_RC(zchan_recv(rin, &ref, s_recv_ms), ZCHAN_OK);
    C_NEW(ch, zchan_msg_chan(ctx, zchan_msg_object(ref)));
    C_NEW(early, zchan_receiver_new(ch, 0));
    c_hear(line, sizeof line);
    C_CHECK(strncmp(line, "URI ", 4) == 0);
    c_say("ATTACHED");
    c_expect("GO");
    //  A receiver made while the host lived times out, and goes in time.
    int64_t t0 = s_now_ms();
    zchan_msg_t *m = NULL;
    C_RC(zchan_recv(early, &m, GONE_TIMEOUT_MS), ZCHAN_ETIMEDOUT);
    zchan_receiver_destroy(&early);
    C_CHECK(s_now_ms() - t0 < GONE_TIMEOUT_MS + bound);
    //  New senders and receivers, a close, and an open by URI all fail.
    t0 = s_now_ms();
    C_CHECK(zchan_sender_new(ch) == NULL);
    C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND || zchan_errno() == ZCHAN_ETIMEDOUT);
    C_CHECK(s_now_ms() - t0 < bound);
    t0 = s_now_ms();
    C_CHECK(zchan_receiver_new(ch, 0) == NULL);
    C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND || zchan_errno() == ZCHAN_ETIMEDOUT);
    C_CHECK(s_now_ms() - t0 < bound);
    t0 = s_now_ms();
    int rc = zchan_close(ch);
    C_CHECK(rc == ZCHAN_ENOTFOUND || rc == ZCHAN_ETIMEDOUT);
    C_CHECK(s_now_ms() - t0 < bound);
    zchan_destroy(&ch);
    //  Opening the reference again: refused at once (no socket file left), or
    //  a handle whose use fails as above.
    t0 = s_now_ms();
    zchan_t *again = zchan_msg_chan(ctx, zchan_msg_object(ref));
    if (again) {
        C_CHECK(zchan_sender_new(again) == NULL);
        C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND || zchan_errno() == ZCHAN_ETIMEDOUT);
        zchan_destroy(&again);
    } else
        C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND);
    C_CHECK(s_now_ms() - t0 < bound);
    zchan_msg_destroy(&ref);
    t0 = s_now_ms();
    named = zchan_open(ctx, line + 4);
    C_CHECK(named == NULL);
    C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND || zchan_errno() == ZCHAN_ETIMEDOUT);
    C_CHECK(s_now_ms() - t0 < bound);
    c_say("DONE");
    zchan_receiver_destroy(&rin);
    zchan_destroy(&inbox);
    zchan_ctx_destroy(&ctx);
    return 0;
}

static void test_gone_host(void **state)
{
    (void) state;
    job_t jc = {0}, jh = {0};
    s_name(jc.name, sizeof jc.name, "gone-inbox");
    s_name(jh.name, sizeof jh.name, "gone-named");
    if (s_tcp) {
        snprintf(jc.host_id, sizeof jc.host_id, "mp-gone-client");
        snprintf(jh.host_id, sizeof jh.host_id, "mp-gone-host");
    }
    kid_t *client = spawn("gone-host client", child_gone_client, &jc);
    snprintf(jh.uri, sizeof jh.uri, "%s", p_expect(client, "URI"));
    kid_t *host = spawn("gone host", child_gone_host, &jh);
    char line[300];
    snprintf(line, sizeof line, "URI %s", p_expect(host, "URI"));
    p_say(client, line);
    p_expect(client, "ATTACHED");
    //  ipc: killed, its socket files left behind; tcp: a clean exit.
    if (s_tcp) {
        p_say(host, "EXIT");
        p_exit0(host);
    } else
        p_kill(host);
    p_say(client, "GO");
    p_expect(client, "DONE");
    p_exit0(client);
}

// ---------------------------------------------------------------------------

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    //  Under valgrind everything is slower: stretch the deadlines.
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        s_slow = 4;
    s_wait_ms = 40000 * s_slow;
    s_recv_ms = 30000 * s_slow;
    signal(SIGPIPE, SIG_IGN); // a dead child's pipe is an error, not a signal
    tu_ipc_dir();
    const struct CMUnitTest ipc_tests[] = {
        T(test_anycast), T(test_broadcast), T(test_references), T(test_dead_receiver), T(test_ipc_host_wide),
        T(test_gone_host),
    };
    const struct CMUnitTest tcp_tests[] = {
        T(test_anycast), T(test_broadcast), T(test_references), T(test_dead_receiver), T(test_advertise),
        T(test_gone_host),
    };
    int failed = 0;
    s_tcp = false;
    failed += cmocka_run_group_tests_name("multi-process over ipc", ipc_tests, NULL, NULL);
    s_tcp = true;
    failed += cmocka_run_group_tests_name("multi-process over tcp", tcp_tests, NULL, NULL);
    p_kill_all();
    tu_cleanup_dir();
    return failed ? 1 : 0;
}

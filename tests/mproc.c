/*  mproc.c: see mproc.h. */
#include "mproc.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int mp_slow = 1;
int mp_wait_ms = 40000;
int mp_recv_ms = 30000;
bool mp_tcp;
volatile int *mp_progress;

void mp_init(void)
{
    //  Under valgrind everything is slower: stretch the deadlines.
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        mp_slow = 4;
    mp_wait_ms = 40000 * mp_slow;
    mp_recv_ms = 30000 * mp_slow;
    signal(SIGPIPE, SIG_IGN);
    //  Never unmapped: children inherit it, and it dies with the process.
    void *p = mmap(NULL, MP_MAX_SENDERS * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "mproc: mmap: %s\n", strerror(errno));
        exit(1);
    }
    mp_progress = p;
}

int64_t mp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// ---------------------------------------------------------------------------
// The child side

static int s_up = -1;   // child to parent
static int s_down = -1; // parent to child
static char s_in[4096];
static size_t s_inlen;

void c_die(int line, const char *what, int rc)
{
    fprintf(stderr, "%s child %d: line %d: %s failed (%s)\n", program_invocation_short_name, (int) getpid(), line,
            what, rc >= 0 ? zchan_strerror(rc) : "check");
    _exit(3);
}

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

void c_say(const char *fmt, ...)
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

void c_hear(char *line, size_t n)
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

void c_expect(const char *word)
{
    char line[256];
    c_hear(line, sizeof line);
    if (strcmp(line, word) != 0) {
        fprintf(stderr, "%s child %d: expected \"%s\", heard \"%s\"\n", program_invocation_short_name,
                (int) getpid(), word, line);
        _exit(3);
    }
}

bool c_has_line(void)
{
    if (memchr(s_in, '\n', s_inlen))
        return true;
    struct pollfd pfd = {s_down, POLLIN, 0};
    return poll(&pfd, 1, 0) > 0;
}

zchan_ctx_t *c_ctx_new(void)
{
    zchan_ctx_t *ctx;
    C_NEW(ctx, zchan_ctx_new());
    return ctx;
}

const char *c_bind_tcp(zchan_ctx_t *ctx, bool tcp)
{
    if (!tcp)
        return NULL;
    C_RC(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    const char *ep;
    C_NEW(ep, zchan_ctx_endpoint(ctx, "tcp"));
    C_CHECK(strncmp(ep, "tcp://127.0.0.1:", 16) == 0 && atoi(ep + 16) > 0);
    return ep;
}

void c_host_uri(zchan_ctx_t *ctx, bool tcp, const char *name, char *uri, size_t n)
{
    const char *ep = c_bind_tcp(ctx, tcp);
    if (ep)
        snprintf(uri, n, "%s/%s", ep, name);
    else
        snprintf(uri, n, "ipc://%s", name);
}

int c_send_tag(zchan_sender_t *s, int sid, int seq, int timeout_ms)
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

void tally_init(tally_t *t, int nsenders, int count, bool gapless)
{
    memset(t, 0, sizeof *t);
    t->nsenders = nsenders;
    t->count = count;
    t->gapless = gapless;
    t->bits = calloc((size_t) (t->nsenders * t->count + 7) / 8, 1);
    t->last = malloc(sizeof(int) * (size_t) (t->nsenders + 1));
    C_CHECK(t->bits && t->last);
    for (int i = 0; i <= t->nsenders; i++)
        t->last[i] = -1;
}

void tally_fini(tally_t *t)
{
    free(t->bits);
    free(t->last);
}

void tally_msg(tally_t *t, zchan_msg_t *m)
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

void c_report(const tally_t *t, uint64_t dropped)
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
// Roles

//  "STAT sent delivered dropped lost receivers senders depth"
void c_say_stat(zchan_t *ch)
{
    zchan_stat_t st;
    C_RC(zchan_stat(ch, &st), ZCHAN_OK);
    c_say("STAT %llu %llu %llu %llu %llu %llu %llu", (unsigned long long) st.sent,
          (unsigned long long) st.delivered, (unsigned long long) st.dropped, (unsigned long long) st.lost,
          (unsigned long long) st.receivers, (unsigned long long) st.senders, (unsigned long long) st.depth);
}

void c_host_serve(zchan_t *ch)
{
    while (true) {
        char line[64];
        c_hear(line, sizeof line);
        if (strcmp(line, "CLOSE") == 0) {
            C_RC(zchan_close(ch), ZCHAN_OK);
            c_say("CLOSED");
        } else if (strcmp(line, "STAT") == 0)
            c_say_stat(ch);
        else if (strncmp(line, "WATCH ", 6) == 0) {
            uint64_t want = (uint64_t) atoi(line + 6);
            int64_t t0 = mp_now_ms();
            zchan_stat_t st;
            while (true) {
                C_RC(zchan_stat(ch, &st), ZCHAN_OK);
                if (st.receivers == want)
                    break;
                usleep(10000); // a poll of the hub's view: there is no event to wait for
            }
            c_say("GONE %lld", (long long) (mp_now_ms() - t0));
        } else if (strcmp(line, "EXIT") == 0)
            return;
        else
            C_CHECK(!"a known command");
    }
}

int role_host(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    char uri[256];
    c_host_uri(ctx, mp_tcp, job->name, uri, sizeof uri);
    zchan_t *ch;
    if (job->broadcast)
        C_NEW(ch, zchan_broadcast_new(ctx, uri, false));
    else
        C_NEW(ch, zchan_anycast_new(ctx, uri, job->capacity));
    c_say("URI %s", uri);
    c_host_serve(ch);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Joins the channel, says "READY" when attached, sends tagged messages after
//  "GO" (saying "HALF" after job->half of them), counts each send that
//  returned in mp_progress, and exits once zchan_sender_destroy has returned.
int role_sender(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_open(ctx, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(ch));
    c_say("READY");
    c_expect("GO");
    int n = job->send_count ? job->send_count : job->count;
    for (int seq = 0; seq < n; seq++) {
        C_RC(c_send_tag(s, job->id, seq, mp_recv_ms), ZCHAN_OK);
        if (job->id < MP_MAX_SENDERS)
            mp_progress[job->id] = seq + 1;
        if (seq + 1 == job->half)
            c_say("HALF");
    }
    zchan_sender_destroy(&s); // everything sent has reached the channel
    c_say("SENT");
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Joins the channel, says "READY" once its receiver exists, receives until
//  the channel is closed and drained, and reports. With die_after, it stops
//  reading after that many, reports, says "HOLDING" and waits to be killed
//  (or with self_exit, _exits) with what the hub had handed it unread. With leave_after, it reports after
//  that many, destroys its receiver (gracefully) and exits. With wait_read, it
//  reads nothing until "READ".
int role_receiver(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_open(ctx, job->uri));
    zchan_receiver_t *r;
    C_NEW(r, zchan_receiver_new(ch, job->limit));
    c_say("READY");
    if (job->wait_read)
        c_expect("READ");
    tally_t t;
    tally_init(&t, job->nsenders, job->count, job->gapless);
    while (true) {
        long seen = t.got + t.bad + t.dups;
        if (job->die_after > 0 && seen == job->die_after) {
            c_report(&t, 0);
            c_say("HOLDING");
            if (job->self_exit)
                _exit(0);
            char line[64];
            c_hear(line, sizeof line);
            _exit(6); // should have been killed
        }
        if (job->leave_after > 0 && seen == job->leave_after)
            break;
        zchan_msg_t *m = NULL;
        int rc = zchan_recv(r, &m, mp_recv_ms);
        if (rc == ZCHAN_ECLOSED)
            break;
        C_RC(rc, ZCHAN_OK);
        tally_msg(&t, m);
        zchan_msg_destroy(&m);
        if (job->pause_us > 0)
            usleep((useconds_t) job->pause_us);
    }
    c_report(&t, zchan_receiver_dropped(r));
    tally_fini(&t);
    zchan_receiver_destroy(&r);
    c_say("LEFT");
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

// ---------------------------------------------------------------------------
// The parent side: children, lines, exits

#define MAX_KIDS 16
static kid_t s_kids[MAX_KIDS];
static int s_nkids;

//  Result bitmaps, freed by p_kill_all. Held here, not only by a test's
//  locals, so that a child forked after a failed test inherits nothing
//  unreachable (valgrind would report it in the child).
#define MAX_BITMAPS 16
static uint8_t *s_bitmaps[MAX_BITMAPS];
static int s_nbitmaps;

//  In a fresh child: the default signal handling, death with the parent, the
//  other children's pipe ends closed, and the watchdog.
static void s_child_init(pid_t parent, int up[2], int down[2])
{
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
    s_inlen = 0;
    alarm((unsigned) (55 * mp_slow));
}

//  In the child: enters the job's network namespace and takes its host id.
static void s_child_place(const job_t *job)
{
    if (job->netns[0]) {
        char path[128];
        snprintf(path, sizeof path, "/run/netns/%s", job->netns);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
            fprintf(stderr, "%s child: cannot enter %s: %s\n", program_invocation_short_name, job->netns,
                    strerror(errno));
            _exit(7);
        }
        close(fd);
    }
    if (job->host_id[0])
        setenv("ZCHAN_HOST_ID", job->host_id, 1);
}

kid_t *p_spawn(const char *name, int (*fn)(const job_t *job), const job_t *job)
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
        s_child_init(parent, up, down);
        s_child_place(job);
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
static bool s_fill(kid_t *k, int64_t deadline)
{
    if (k->eof)
        return true;
    long left = (long) (deadline - mp_now_ms());
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

const char *mp_describe(int status)
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

int p_reap(kid_t *k)
{
    int64_t deadline = mp_now_ms() + mp_wait_ms;
    while (!k->eof) {
        if (k->len == sizeof k->buf)
            k->len = 0; // unread chatter: not needed any more
        if (!s_fill(k, deadline)) {
            kill(k->pid, SIGKILL);
            fail_msg("%s did not exit within %d ms", k->name, mp_wait_ms);
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

void p_exit0(kid_t *k)
{
    int status = p_reap(k);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s ended with %s", k->name, mp_describe(status));
}

void p_kill(kid_t *k)
{
    kill(k->pid, SIGKILL);
    int status = p_reap(k);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("%s ended with %s before it was killed", k->name, mp_describe(status));
}

void p_hear(kid_t *k, char *line, size_t n)
{
    int64_t deadline = mp_now_ms() + mp_wait_ms;
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
            fail_msg("%s ended (%s) while the test waited for a line from it", k->name, mp_describe(status));
        }
        if (!s_fill(k, deadline))
            fail_msg("%s said nothing within %d ms", k->name, mp_wait_ms);
    }
}

const char *p_expect(kid_t *k, const char *word)
{
    static char line[16384];
    p_hear(k, line, sizeof line);
    size_t n = strlen(word);
    if (strncmp(line, word, n) != 0 || (line[n] != 0 && line[n] != ' '))
        fail_msg("%s said \"%.200s\", expected \"%s\"", k->name, line, word);
    return line[n] ? line + n + 1 : line + n;
}

void p_say(kid_t *k, const char *line)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s\n", line);
    if (write(k->down, buf, (size_t) n) != n)
        fail_msg("cannot talk to %s: %s", k->name, strerror(errno));
}

void p_go(kid_t **kids, int n)
{
    for (int i = 0; i < n; i++)
        p_expect(kids[i], "READY");
    for (int i = 0; i < n; i++)
        p_say(kids[i], "GO");
}

kid_t *p_spawn_host(const char *name, const job_t *hj, job_t *j)
{
    kid_t *host = p_spawn(name, role_host, hj);
    memset(j, 0, sizeof *j);
    snprintf(j->uri, sizeof j->uri, "%s", p_expect(host, "URI"));
    return host;
}

void p_kill_all(void)
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
    for (int i = 0; i < s_nbitmaps; i++)
        free(s_bitmaps[i]);
    s_nbitmaps = 0;
}

void p_result(kid_t *k, result_t *res, size_t nbits)
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

bool mp_bit(const result_t *r, size_t i)
{
    return (r->bits[i / 8] >> (i % 8)) & 1;
}

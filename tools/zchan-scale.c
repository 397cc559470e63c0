/*  zchan-scale: how zchan's costs grow with the count (docs/BENCHMARKS.md,
    "Scale"). One line per size step, on this host, loopback only.

    Figures
    - channels:  one hub (this process) hosting N idle channels, N = 1 up to
                 --max-channels in steps. Unnamed channels, anycast and
                 broadcast alternating, handles kept. RSS and open fds after
                 each step; bytes per idle channel and fds per channel in each
                 step. Then the same with host-wide "ipc://NAME" channels (a
                 lock file and a listening socket each) up to
                 --max-ipc-names.
    - broadcast: one sender process into one broadcast channel hosted here;
                 R receivers (R = 1, 10, 100, 1000) spread over worker
                 processes of at most --per-process receivers each, every
                 worker serving all its receivers from one thread with
                 zchan_select. Delivered messages per second (each receipt by
                 each receiver counts), ns per delivery, and the hub's RSS and
                 fds per attached receiver.
    - anycast:   S sender processes (S = 1, 10, 100) into one anycast channel
                 hosted here, one worker process with --anycast-receivers
                 receivers; total msgs/s, and exactly-once: every (sender,
                 sequence) pair is received once, in order per receiver.

    Workers are this program re-executed with the internal --role option (no
    fork after a ZeroMQ context exists), talking to the coordinator over two
    pipes (fds 3 and 4) with one-line text commands: "ready", "go", "done",
    "result ...", "quit". Every process raises RLIMIT_NOFILE to its hard
    limit. ipc uses a private mkdtemp directory (ZCHAN_IPC_DIR); tcp uses
    127.0.0.1 on a port the kernel picks.
*/
#define _GNU_SOURCE
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zchan.h>
#include "benchproc.h"
#include <zmq.h>

#define MAX_WORKERS 1024
#define MAX_STEPS 16
#define MIN_SIZE 12 // sender id (4 bytes) and sequence (8 bytes)

// ---------------------------------------------------------------------------
// Small helpers

static FILE *g_out;

//  Resident set size of this process, in bytes (/proc/self/statm).
static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, res = 0;
    if (!f)
        return -1;
    if (fscanf(f, "%lld %lld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

//  Bytes the process has allocated with malloc and not freed, over all
//  arenas (mallinfo2: in use in the heaps, plus mmap'd chunks). Unlike RSS,
//  it does not hide what reuses memory freed earlier, and it counts a large
//  calloc whole even while its pages are untouched.
static long long heap_bytes(void)
{
    struct mallinfo2 m = mallinfo2();
    return (long long) (m.uordblks + m.hblkhd);
}

//  Open file descriptors of this process (/proc/self/fd, less the one that
//  reads it).
static long fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

//  Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft one.
static long raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long) rl.rlim_cur;
}

static long share(long total, long n, long i)
{
    return total / n + (i < total % n ? 1 : 0);
}

//  Payload: a msgpack bin of size bytes: sender id (4), sequence (8), then
//  a pattern.
static zchan_msg_t *msg_make(uint32_t id, uint64_t seq, size_t size)
{
    char buf[4096];
    memcpy(buf, &id, 4);
    memcpy(buf + 4, &seq, 8);
    for (size_t i = MIN_SIZE; i < size; i++)
        buf[i] = (char) ((i * 31 + 7) & 0xff);
    zchan_msg_t *m = zchan_msg_new();
    if (!m)
        return NULL;
    msgpack_packer *pk = zchan_msg_packer(m);
    if (msgpack_pack_bin(pk, size) != 0 || msgpack_pack_bin_body(pk, buf, size) != 0)
        zchan_msg_destroy(&m);
    return m;
}

//  Reads the id and sequence of a payload; false if it is not one of ours.
static bool msg_read(zchan_msg_t *m, size_t size, uint32_t *id, uint64_t *seq)
{
    const msgpack_object *o = zchan_msg_object(m);
    if (!o || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != size)
        return false;
    const char *p = o->via.bin.ptr;
    if (size > MIN_SIZE && p[size - 1] != (char) (((size - 1) * 31 + 7) & 0xff))
        return false;
    memcpy(id, p, 4);
    memcpy(seq, p + 4, 8);
    return true;
}

// ---------------------------------------------------------------------------
// Line-based control pipes


// ---------------------------------------------------------------------------
// Workers

typedef enum { R_NONE, R_BSEND, R_BRECV, R_ASEND, R_ARECV, R_N } role_t;
static const char *role_names[R_N] = {"", "bsend", "brecv", "asend", "arecv"};

typedef struct {
    role_t role;
    char ep[512];   // the channel's URI
    long n;         // receivers in this process
    long count;     // to send; brecv: expected per receiver
    long id;        // sender id
    long senders;   // arecv: S
    long total;     // arecv: messages over all senders
    long limit;     // brecv: broadcast receiver limit
    long size;
    long stall_ms;  // a receive or send without progress this long fails
    long phase_ms;  // waiting this long for a command fails
    long timeout_ms; // senders: their context's timeout once attached (0: the library's)
    long parent;
} wargs_t;

//  The result a receiving worker reports (one line).
typedef struct {
    long count;           // messages received, all receivers of the process
    int64_t last;         // last receipt (ns, CLOCK_MONOTONIC)
    long bad;             // not our payload
    long dropped;         // broadcast: lost to the limit
    long min_each, max_each; // per-receiver counts
    long dups;            // anycast: (sender, seq) received twice
    long missing;         // anycast: never received; broadcast: neither received nor counted dropped
    long disorder;        // out of order within a receiver (per sender)
    int stalled;
    long untold;          // broadcast: at the end of a receiver's stream, not received and
                          // not yet counted in its zchan_receiver_dropped (see below)
} wres_t;

static int wfail(const wargs_t *w, linebuf_t *lb, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int wfail(const wargs_t *w, linebuf_t *lb, const char *fmt, ...)
{
    (void) lb;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "zchan-scale: %s %ld: %s\n", role_names[w->role], w->id, msg);
    say(WORKER_OUT_FD, "error %s %ld: %s", role_names[w->role], w->id, msg);
    return 1;
}

//  Waits for cmd; -1 on EOF or timeout.
static int await_cmd(const wargs_t *w, linebuf_t *lb, const char *cmd)
{
    char line[128];
    while (true) {
        if (line_read(lb, line, sizeof line, (int) w->phase_ms) != 1)
            return -1;
        if (!strcmp(line, cmd))
            return 0;
    }
}

static int sender_role(const wargs_t *w, linebuf_t *lb, zchan_ctx_t *ctx, zchan_t *ch)
{
    zchan_sender_t *s = zchan_sender_new(ch);
    if (!s)
        return wfail(w, lb, "zchan_sender_new: %s", zchan_strerror(zchan_errno()));
    if (w->timeout_ms > 0)
        zchan_ctx_set_timeout(ctx, (int) w->timeout_ms); // bounds each flush request
    say(WORKER_OUT_FD, "ready");
    if (await_cmd(w, lb, "go") != 0) {
        zchan_sender_destroy(&s);
        return 0; // the coordinator gave up
    }
    for (long i = 0; i < w->count; i++) {
        zchan_msg_t *m = msg_make((uint32_t) w->id, (uint64_t) i, (size_t) w->size);
        int e = m ? zchan_send(s, &m, (int) w->stall_ms) : ZCHAN_ENOMEM;
        if (e != ZCHAN_OK) {
            zchan_msg_destroy(&m);
            zchan_sender_destroy(&s);
            return wfail(w, lb, "send %ld of %ld: %s", i + 1, w->count, zchan_strerror(e));
        }
    }
    //  "done" must mean that every message reached the channel: the
    //  coordinator closes it next, and what reaches the hub after the close
    //  is lost (counted in zchan_stat's lost). A broadcast send never waits,
    //  so the sender can be far ahead of a hub that has R deliveries to make
    //  per message; one flush waits only for the context's timeout (5 s by
    //  default), and one that times out says nothing: flush again, until the
    //  hub confirms or the phase's time is up. (zchan_sender_destroy flushes
    //  once too, but on a timeout only logs.)
    int64_t give_up = now_ns() + (int64_t) w->phase_ms * 1000000;
    int e;
    long tries = 0;
    do
        tries++;
    while ((e = zchan_sender_flush(s)) == ZCHAN_ETIMEDOUT && now_ns() < give_up);
    if (e != ZCHAN_OK) {
        zchan_sender_destroy(&s);
        return wfail(w, lb, "flush after %ld sends (%ld tries): %s: not all of them reached the channel",
                     w->count, tries, zchan_strerror(e));
    }
    zchan_sender_destroy(&s);
    say(WORKER_OUT_FD, "done %ld %ld", w->count, tries);
    return 0;
}

typedef struct {
    zchan_receiver_t *r;
    long idx;
} rindex_t;

static int cmp_rindex(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) ((const rindex_t *) a)->r, y = (uintptr_t) ((const rindex_t *) b)->r;
    return x < y ? -1 : x > y;
}

//  n receivers served by one thread with zchan_select, until every one of
//  them has seen the close. brecv: each receiver must get sequences 0..count-1
//  in order. arecv: each (sender, seq) must arrive exactly once, in order
//  per sender within a receiver.
static int receiver_role(const wargs_t *w, linebuf_t *lb, zchan_t *ch)
{
    bool any = w->role == R_ARECV;
    long n = w->n, S = any ? w->senders : 1;
    int rc = 1;
    wres_t res = {0};
    zchan_receiver_t **rs = calloc((size_t) n, sizeof *rs);
    rindex_t *index = calloc((size_t) n, sizeof *index);
    long *count = calloc((size_t) n, sizeof *count);
    uint64_t *next = calloc((size_t) (n * S), sizeof *next); // per receiver (and sender): next seq
    unsigned char **seen = any ? calloc((size_t) S, sizeof *seen) : NULL;
    zchan_select_t *sel = zchan_select_new();
    if (!rs || !index || !count || !next || (any && !seen) || !sel) {
        wfail(w, lb, "out of memory");
        goto out;
    }
    for (long i = 0; any && i < S; i++)
        if (!(seen[i] = calloc((size_t) share(w->total, S, i) + 1, 1))) {
            wfail(w, lb, "out of memory");
            goto out;
        }
    for (long i = 0; i < n; i++) {
        if (!(rs[i] = zchan_receiver_new(ch, (size_t) w->limit))) {
            wfail(w, lb, "zchan_receiver_new %ld of %ld: %s", i + 1, n, zchan_strerror(zchan_errno()));
            goto out;
        }
        index[i] = (rindex_t){rs[i], i};
        zchan_select_add_receiver(sel, rs[i]);
    }
    qsort(index, (size_t) n, sizeof *index, cmp_rindex);
    say(WORKER_OUT_FD, "ready");
    long stopped = 0;
    while (stopped < n) {
        zchan_receiver_t *r = zchan_select_wait(sel, (int) w->stall_ms);
        if (!r) {
            int e = zchan_errno();
            if (e == ZCHAN_ECLOSED)
                break;
            if (e == ZCHAN_ETIMEDOUT) {
                res.stalled = 1;
                break;
            }
            wfail(w, lb, "select: %s", zchan_strerror(e));
            goto out;
        }
        rindex_t key = {r, 0};
        rindex_t *hit = bsearch(&key, index, (size_t) n, sizeof *index, cmp_rindex);
        long ri = hit ? hit->idx : 0;
        zchan_msg_t *m = NULL;
        int e = zchan_recv(r, &m, 0);
        if (e == ZCHAN_ECLOSED) {
            stopped++;
            continue;
        }
        if (e == ZCHAN_ETIMEDOUT)
            continue;
        if (e != ZCHAN_OK) {
            res.bad++;
            continue;
        }
        int64_t t = now_ns();
        uint32_t id;
        uint64_t seq;
        if (!msg_read(m, (size_t) w->size, &id, &seq) || (any ? (long) id >= S : id != 0)) {
            res.bad++;
            zchan_msg_destroy(&m);
            continue;
        }
        zchan_msg_destroy(&m);
        res.count++;
        res.last = t;
        count[ri]++;
        uint64_t *nx = &next[ri * S + (any ? id : 0)];
        if (any) {
            if (seq < *nx)
                res.disorder++;
            *nx = seq + 1;
            if (seq >= (uint64_t) share(w->total, S, id))
                res.bad++;
            else if (seen[id][seq]++)
                res.dups++;
        } else {
            //  A gap is what the hub dropped (its count is checked below);
            //  going back is disorder.
            if (seq < *nx)
                res.disorder++;
            *nx = seq + 1;
        }
    }
    res.min_each = LONG_MAX;
    for (long i = 0; i < n; i++) {
        long dropped = (long) zchan_receiver_dropped(rs[i]);
        res.dropped += dropped;
        if (!any) {
            //  Every message is received or dropped by the hub. A receiver
            //  learns its drop count with each delivery, so every gap before
            //  its last receipt is counted; but the hub also drops a new
            //  message that does not fit its byte limits, and one dropped
            //  after a receiver's last delivery is counted only at the hub.
            //  So what is neither received nor counted here must lie after
            //  the last receipt (the coordinator checks it against the hub's
            //  count); more, or less than nothing, is a loss.
            long off = w->count - count[i] - dropped, tail = w->count - (long) next[i];
            if (off < 0)
                res.missing += -off;
            else if (off > tail)
                res.missing += off - tail;
            else
                res.untold += off;
        }
        if (count[i] < res.min_each)
            res.min_each = count[i];
        if (count[i] > res.max_each)
            res.max_each = count[i];
    }
    for (long i = 0; any && i < S; i++)
        for (long q = 0; q < share(w->total, S, i); q++)
            if (!seen[i][q])
                res.missing++;
    say(WORKER_OUT_FD, "result %ld %" PRId64 " %ld %ld %ld %ld %ld %ld %ld %d %ld", res.count, res.last, res.bad,
        res.dropped, res.min_each, res.max_each, res.dups, res.missing, res.disorder, res.stalled, res.untold);
    rc = await_cmd(w, lb, "quit") == 0 ? 0 : wfail(w, lb, "no quit from the coordinator");
out:
    zchan_select_destroy(&sel);
    for (long i = 0; rs && i < n; i++)
        zchan_receiver_destroy(&rs[i]);
    for (long i = 0; seen && i < S; i++)
        free(seen[i]);
    free(seen);
    free(next);
    free(count);
    free(index);
    free(rs);
    return rc;
}

static int worker_main(int argc, char **argv)
{
    wargs_t w = {.stall_ms = 20000, .phase_ms = 300000, .size = 16};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--role")) {
            for (int r = 1; r < R_N; r++)
                if (!strcmp(v, role_names[r]))
                    w.role = (role_t) r;
        } else if (!strcmp(k, "--ep"))
            snprintf(w.ep, sizeof w.ep, "%s", v);
        else {
            static const char *keys[] = {"--n", "--count", "--id", "--senders", "--total", "--limit",
                                         "--size", "--stall", "--phase", "--ctx-timeout", "--parent"};
            long *vals[] = {&w.n, &w.count, &w.id, &w.senders, &w.total, &w.limit,
                            &w.size, &w.stall_ms, &w.phase_ms, &w.timeout_ms, &w.parent};
            for (size_t j = 0; j < sizeof keys / sizeof keys[0]; j++)
                if (!strcmp(k, keys[j]))
                    *vals[j] = atol(v);
        }
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL); // die with the coordinator
    if (w.parent && getppid() != (pid_t) w.parent)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    if (w.role == R_NONE || fcntl(WORKER_IN_FD, F_GETFD) < 0 || fcntl(WORKER_OUT_FD, F_GETFD) < 0) {
        fprintf(stderr, "zchan-scale: --role is internal: the coordinator starts workers with it\n");
        return 2;
    }
    dup2(STDERR_FILENO, STDOUT_FILENO); // library logs must not reach the coordinator's results
    raise_nofile();
    //  Each receiver is one ZeroMQ socket in czmq's context, whose default
    //  limit is 1024 sockets: make room before zchan creates the context.
    if (w.n + 64 > 1000) {
        zsys_handler_set(NULL);
        zsys_set_max_sockets((size_t) w.n + 64);
    }
    linebuf_t lb = {.fd = WORKER_IN_FD};
    int rc = 1;
    zchan_ctx_t *ctx = zchan_ctx_new();
    zchan_t *ch = NULL;
    if (!ctx) {
        wfail(&w, &lb, "zchan_ctx_new: %s", zchan_strerror(zchan_errno()));
        goto out;
    }
    if (!(ch = zchan_open(ctx, w.ep))) {
        wfail(&w, &lb, "zchan_open %s: %s", w.ep, zchan_strerror(zchan_errno()));
        goto out;
    }
    if (w.role == R_BSEND || w.role == R_ASEND) {
        rc = sender_role(&w, &lb, ctx, ch);
        if (rc == 0)
            rc = await_cmd(&w, &lb, "quit") == 0 ? 0 : wfail(&w, &lb, "no quit from the coordinator");
    } else
        rc = receiver_role(&w, &lb, ch);
out:
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return rc;
}

// ---------------------------------------------------------------------------
// The coordinator: workers

typedef struct {
    pid_t pid;
    int to_fd;
    linebuf_t from;
    wargs_t w;
    char line[LINE_MAX_]; // the last report collected
    bool got;
} child_t;


static int child_start(child_t *c, const wargs_t *w, char *err, size_t errn)
{
    int down[2], up[2];
    memset(c, 0, sizeof *c);
    c->to_fd = c->from.fd = -1;
    c->pid = -1;
    if (worker_pipes(down, up, err, errn) != 0)
        return -1;
    c->w = *w;
    enum { NK = 13 };
    const char *keys[NK] = {"--role",  "--ep",    "--n",    "--count", "--id",      "--senders", "--total",
                            "--limit", "--size", "--stall", "--phase", "--ctx-timeout", "--parent"};
    char vals[NK][sizeof w->ep];
    snprintf(vals[0], sizeof vals[0], "%s", role_names[w->role]);
    snprintf(vals[1], sizeof vals[1], "%s", w->ep);
    long nums[NK] = {0,       0,           w->n,        w->count,       w->id, w->senders, w->total, w->limit,
                     w->size, w->stall_ms, w->phase_ms, w->timeout_ms, (long) getpid()};
    for (int i = 2; i < NK; i++)
        snprintf(vals[i], sizeof vals[i], "%ld", nums[i]);
    char *argv[2 * NK + 2];
    int n = 0;
    argv[n++] = g_self;
    for (int i = 0; i < NK; i++) {
        argv[n++] = (char *) keys[i];
        argv[n++] = vals[i];
    }
    argv[n] = NULL;
    int rc = worker_spawn(&c->pid, argv, down[0], up[1]);
    if (rc != 0) {
        snprintf(err, errn, "cannot start a %s worker: %s", role_names[w->role], strerror(rc));
        close(down[1]);
        close(up[0]);
        c->pid = -1;
        return -1;
    }
    c->to_fd = down[1];
    c->from.fd = up[0];
    return 0;
}

//  Closes a worker's pipes and reaps it, killing it after grace_ms. Returns
//  its exit status.
static int child_finish(child_t *c, int grace_ms)
{
    if (c->pid <= 0)
        return 0;
    if (c->to_fd >= 0)
        close(c->to_fd);
    c->to_fd = -1;
    int status = worker_reap(c->pid, grace_ms);
    if (c->from.fd >= 0)
        close(c->from.fd);
    c->from.fd = -1;
    c->pid = -1;
    return status;
}

//  Ends workers: "quit", then reaps them. Returns the first non-zero status.
static int kids_end(child_t *kids, int n, bool kill_first)
{
    int worst = 0;
    for (int i = 0; i < n; i++)
        if (kids[i].pid > 0) {
            if (kill_first)
                kill(kids[i].pid, SIGKILL);
            else
                say(kids[i].to_fd, "quit");
        }
    for (int i = 0; i < n; i++) {
        int st = child_finish(&kids[i], 10000);
        if (st && !worst)
            worst = st;
    }
    return worst;
}

static void kids_say(child_t *kids, int n, const char *cmd)
{
    for (int i = 0; i < n; i++)
        if (kids[i].pid > 0)
            say(kids[i].to_fd, "%s", cmd);
}

//  Waits until each of kids[0..n) has reported a line starting with prefix
//  (kept in its line). An "error" report, an exit or the deadline fails.
static int collect(child_t *kids, int n, const char *prefix, int64_t deadline, char *err, size_t errn)
{
    struct pollfd *pfd = calloc((size_t) n + 1, sizeof *pfd);
    int *idx = calloc((size_t) n + 1, sizeof *idx);
    int left = n, rc = -1;
    size_t plen = strlen(prefix);
    if (!pfd || !idx) {
        snprintf(err, errn, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        kids[i].got = false;
    while (left > 0) {
        int np = 0;
        for (int i = 0; i < n; i++) {
            child_t *c = &kids[i];
            char line[LINE_MAX_];
            while (!c->got && line_take(&c->from, line, sizeof line)) {
                if (!strncmp(line, "error ", 6)) {
                    snprintf(err, errn, "%.400s", line + 6);
                    goto out;
                }
                if (!strncmp(line, prefix, plen) && (line[plen] == 0 || line[plen] == ' ')) {
                    snprintf(c->line, sizeof c->line, "%s", line);
                    c->got = true;
                    left--;
                }
            }
            if (c->got)
                continue;
            if (c->from.eof) {
                snprintf(err, errn, "%s worker %ld ended before reporting '%s'", role_names[c->w.role], c->w.id,
                         prefix);
                goto out;
            }
            pfd[np] = (struct pollfd){c->from.fd, POLLIN, 0};
            idx[np++] = i;
        }
        if (left == 0)
            break;
        if (g_stop) {
            snprintf(err, errn, "interrupted");
            goto out;
        }
        if (now_ns() > deadline) {
            snprintf(err, errn, "timed out waiting for '%s' from %d worker(s)", prefix, left);
            goto out;
        }
        int r = poll(pfd, (nfds_t) np, 100);
        for (int k = 0; k < np && r > 0; k++)
            if (pfd[k].revents)
                line_fill(&kids[idx[k]].from);
    }
    rc = 0;
out:
    free(pfd);
    free(idx);
    return rc;
}

static bool parse_result(const char *line, wres_t *r)
{
    memset(r, 0, sizeof *r);
    return sscanf(line, "result %ld %" SCNd64 " %ld %ld %ld %ld %ld %ld %ld %d %ld", &r->count, &r->last, &r->bad,
                  &r->dropped, &r->min_each, &r->max_each, &r->dups, &r->missing, &r->disorder, &r->stalled,
                  &r->untold)
           == 11;
}

// ---------------------------------------------------------------------------
// The coordinator: options and output

typedef enum { F_CHANNELS, F_BROADCAST, F_ANYCAST, F_N } figure_t;
static const char *fig_names[F_N] = {"channels", "broadcast", "anycast"};

typedef struct {
    bool figs[F_N];
    bool tcp;
    bool quick;
    bool csv;
    bool verbose;
    long max_channels, max_ipc_names, max_receivers, max_senders;
    long per_process;
    long budget;        // broadcast: deliveries per step
    long bcast_max;     // broadcast: most messages per step
    long any_count;     // anycast: messages per step, over all senders
    long any_receivers;
    long capacity;
    long size;
    long stall_ms;
    long timeout_s;
    long sender_timeout_ms; // the senders' context timeout (0: the library's)
    long hub_max_bytes;     // this hub's channel byte limit (0: the library's)
} options_t;

typedef struct {
    zchan_ctx_t *ctx;
    const char *tcp_hub;
    const options_t *o;
    int seq;
} env_t;

static void usage(FILE *f)
{
    fprintf(f,
"Usage: zchan-scale [OPTION]...\n"
"How zchan's costs grow with the count, one line per size step. Everything\n"
"runs on this host (loopback only); the channels live in this process's hub.\n"
"\n"
"Figures:\n"
"  channels   N idle channels in one hub (unnamed, anycast and broadcast\n"
"             alternating, handles kept): RSS and open fds after each step,\n"
"             bytes and fds per channel; then host-wide ipc://NAME channels\n"
"  broadcast  1 sender process, R receivers on one broadcast channel, spread\n"
"             over worker processes (one zchan_select thread each):\n"
"             deliveries/s, ns per delivery, hub RSS and fds per receiver\n"
"  anycast    S sender processes into one anycast channel, receivers in one\n"
"             worker process: msgs/s and exactly-once (no loss, no duplicate)\n"
"\n"
"Options:\n"
"  -f, --figure LIST        channels,broadcast,anycast or all (default all)\n"
"  -t, --transport T        ipc (default) or tcp, for broadcast and anycast\n"
"      --quick              smaller maxima (10-30 s): channels 2000,\n"
"                           receivers 100, senders 10, fewer messages\n"
"      --max-channels N     largest channel step (default 10000); steps are\n"
"                           1, N/10, N/4, N/2, N\n"
"      --max-ipc-names N    largest host-wide ipc://NAME step (default\n"
"                           max-channels/4; 0 skips it)\n"
"      --max-receivers N    largest broadcast step (default 1000); steps are\n"
"                           1, 10, 100, 1000... up to N, and N\n"
"      --max-senders N      largest anycast step (default 100, at most %d)\n"
"      --per-process N      broadcast receivers per worker process (default 250)\n"
"      --budget N           broadcast deliveries per step (default 1000000,\n"
"                           quick 500000): messages = budget / R, at least\n"
"                           100\n"
"      --bcast-max N        most broadcast messages per step (default 20000,\n"
"                           quick 10000)\n"
"      --anycast-count N    anycast messages per step over all senders\n"
"                           (default 100000, quick 30000)\n"
"      --anycast-receivers N  anycast receivers (default 2)\n"
"      --capacity N         anycast capacity (default %d, the library's)\n"
"      --size N             payload bytes, %d..4096 (default 16)\n"
"      --csv                CSV on stdout: figure,count,metric,value,unit,transport\n"
"  -v, --verbose            progress on stderr\n"
"      --stall-ms MS        a worker without progress this long fails (20000)\n"
"      --timeout S          a step longer than S seconds fails (300)\n"
"      --sender-timeout MS  the sender processes' context timeout, which\n"
"                           bounds each flush request (default the\n"
"                           library's: 5000, or $ZCHAN_TIMEOUT_MS); a sender\n"
"                           flushes until the hub confirms, then says done\n"
"      --hub-max-bytes N    this hub's byte limit per channel\n"
"                           (ZCHAN_LIMIT_CHANNEL_BYTES; default the library's)\n"
"  -h, --help               this help\n"
"\n"
"Broadcast receivers get a limit equal to the message count, so that limit\n"
"drops nothing. A step whose R x M messages (counted as --size + 133 B each:\n"
"headers and the hub's overhead) exceed the hub's byte limits may drop by\n"
"design: those drops are reported (dropped), and each receiver's gaps must\n"
"match the hub's count. Any other drop, and losses, duplicates or disorder,\n"
"make the exit status 1.\n",
            MAX_WORKERS - 8, ZCHAN_ANYCAST_CAPACITY, MIN_SIZE);
}

static int parse_options(int argc, char **argv, options_t *o)
{
    static const struct option longs[] = {
        {"figure", required_argument, NULL, 'f'},       {"transport", required_argument, NULL, 't'},
        {"quick", no_argument, NULL, 'q'},              {"max-channels", required_argument, NULL, 1},
        {"max-ipc-names", required_argument, NULL, 2},  {"max-receivers", required_argument, NULL, 3},
        {"max-senders", required_argument, NULL, 4},    {"per-process", required_argument, NULL, 5},
        {"budget", required_argument, NULL, 6},         {"bcast-max", required_argument, NULL, 7},
        {"anycast-count", required_argument, NULL, 8},  {"anycast-receivers", required_argument, NULL, 9},
        {"capacity", required_argument, NULL, 10},      {"size", required_argument, NULL, 11},
        {"csv", no_argument, NULL, 12},                 {"stall-ms", required_argument, NULL, 13},
        {"timeout", required_argument, NULL, 14},       {"sender-timeout", required_argument, NULL, 15},
        {"hub-max-bytes", required_argument, NULL, 16}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},               {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    long v[17];
    for (int i = 0; i < 17; i++)
        v[i] = -1;
    bool any_fig = false;
    o->stall_ms = 20000;
    o->timeout_s = 300;
    int c;
    while ((c = getopt_long(argc, argv, "f:t:qvh", longs, NULL)) != -1) {
        switch (c) {
        case 'f': {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int k;
                for (k = 0; k < F_N && strcmp(t, fig_names[k]); k++)
                    ;
                if (!strcmp(t, "all"))
                    for (k = 0; k < F_N; k++)
                        o->figs[k] = true;
                else if (k == F_N) {
                    fprintf(stderr, "zchan-scale: unknown figure '%s'\n", t);
                    return -1;
                } else
                    o->figs[k] = true;
            }
            any_fig = true;
            break;
        }
        case 't':
            if (!strcmp(optarg, "tcp"))
                o->tcp = true;
            else if (strcmp(optarg, "ipc")) {
                fprintf(stderr, "zchan-scale: --transport is ipc or tcp\n");
                return -1;
            }
            break;
        case 'q': o->quick = true; break;
        case 'v': o->verbose = true; break;
        case 'h': usage(stdout); exit(0);
        case 12: o->csv = true; break;
        default:
            if (c >= 1 && c <= 16 && c != 12) {
                static const long lim[17][2] = {{0, 0},          {1, 1000000}, {0, 1000000}, {1, 100000},
                                                {1, MAX_WORKERS - 8}, {1, 10000}, {1, 1L << 40}, {1, 1L << 24},
                                                {1, 1L << 40},   {1, 64},      {0, 1L << 24}, {MIN_SIZE, 4096},
                                                {0, 0},          {100, 3600000}, {1, 86400}, {1, 3600000},
                                                {1, 1L << 40}};
                if (!parse_long(optarg, lim[c][0], lim[c][1], &v[c])) {
                    fprintf(stderr, "zchan-scale: bad value '%s' for --%s (%ld..%ld)\n", optarg,
                            longs[c + 2].name, lim[c][0], lim[c][1]);
                    return -1;
                }
                break;
            }
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "zchan-scale: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!any_fig)
        for (int k = 0; k < F_N; k++)
            o->figs[k] = true;
    o->max_channels = v[1] >= 0 ? v[1] : o->quick ? 2000 : 10000;
    o->max_ipc_names = v[2] >= 0 ? v[2] : o->max_channels / 4;
    o->max_receivers = v[3] >= 0 ? v[3] : o->quick ? 100 : 1000;
    o->max_senders = v[4] >= 0 ? v[4] : o->quick ? 10 : 100;
    o->per_process = v[5] >= 0 ? v[5] : 250;
    o->budget = v[6] >= 0 ? v[6] : o->quick ? 500000 : 1000000;
    o->bcast_max = v[7] >= 0 ? v[7] : o->quick ? 10000 : 20000;
    o->any_count = v[8] >= 0 ? v[8] : o->quick ? 30000 : 100000;
    o->any_receivers = v[9] >= 0 ? v[9] : 2;
    o->capacity = v[10] >= 0 ? v[10] : ZCHAN_ANYCAST_CAPACITY;
    o->size = v[11] >= 0 ? v[11] : 16;
    if (v[13] >= 0)
        o->stall_ms = v[13];
    if (v[14] >= 0)
        o->timeout_s = v[14];
    if (v[15] >= 0)
        o->sender_timeout_ms = v[15];
    if (v[16] >= 0)
        o->hub_max_bytes = v[16];
    if ((o->max_receivers + o->per_process - 1) / o->per_process + 1 > MAX_WORKERS - 8) {
        fprintf(stderr, "zchan-scale: too many worker processes: raise --per-process\n");
        return -1;
    }
    return 0;
}

static void csv_row(const options_t *o, const char *fig, long count, const char *metric, double value,
                    const char *unit, const char *transport)
{
    if (!o->csv)
        return;
    if (value == (double) (long long) value)
        fprintf(g_out, "%s,%ld,%s,%lld,%s,%s\n", fig, count, metric, (long long) value, unit, transport);
    else
        fprintf(g_out, "%s,%ld,%s,%.6g,%s,%s\n", fig, count, metric, value, unit, transport);
    fflush(g_out);
}

//  Human output goes to stdout, or to stderr with --csv.
static void human(const options_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void human(const options_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(o->csv ? stderr : g_out, fmt, ap);
    va_end(ap);
    fflush(o->csv ? stderr : g_out);
}

//  Sorted, distinct steps: the given ones up to max, and max.
static int make_steps(const long *cand, int ncand, long max, long *steps)
{
    int n = 0;
    for (int i = 0; i < ncand && n < MAX_STEPS - 1; i++)
        if (cand[i] >= 1 && cand[i] < max && (n == 0 || cand[i] > steps[n - 1]))
            steps[n++] = cand[i];
    steps[n++] = max;
    return n;
}

static void chan_uri(env_t *e, const char *what, char *out, size_t n)
{
    int seq = ++e->seq;
    if (e->tcp_hub)
        snprintf(out, n, "%s/scale-%s-%d", e->tcp_hub, what, seq);
    else
        snprintf(out, n, "ipc://scale-%s-%d-%d", what, (int) getpid(), seq);
}

// ---------------------------------------------------------------------------
// Figure 1: idle channels in one hub

//  One series: creates channels up to each step, measuring after each.
static bool channel_series(env_t *e, const char *fig, const char *transport, bool ipc_named, bool keep, long max)
{
    const options_t *o = e->o;
    long cand[] = {1, max / 10, max / 4, max / 2};
    long steps[MAX_STEPS];
    int nsteps = make_steps(cand, 4, max, steps);
    zchan_t **chs = calloc((size_t) max, sizeof *chs);
    if (!chs) {
        fprintf(stderr, "zchan-scale: out of memory\n");
        return false;
    }
    bool ok = true;
    long made = 0, prev_n = 0, prev_fds = 0, first_fds = 0;
    long long prev_rss = 0, first_rss = 0, prev_heap = 0, first_heap = 0;
    human(o, "\n%s: one hub, %s channels, anycast and broadcast alternating, handles %s\n", fig,
          ipc_named ? "host-wide ipc://NAME" : "unnamed", keep ? "kept" : "destroyed (the hub's cost alone)");
    human(o, "%8s %11s %11s %6s %13s %13s %13s %10s\n", "channels", "RSS KiB", "heap KiB", "fds", "RSS B/ch", "heap B/ch",
          "fds/ch", "create us");
    for (int s = 0; s < nsteps && ok && !g_stop; s++) {
        int64_t t0 = now_ns();
        long from = made;
        for (; made < steps[s]; made++) {
            char uri[256] = "";
            const char *u = NULL;
            if (ipc_named) {
                snprintf(uri, sizeof uri, "ipc://scale-idle-%d-%ld", (int) getpid(), made);
                u = uri;
            }
            chs[made] = made % 2 ? zchan_broadcast_new(e->ctx, u, false)
                                 : zchan_anycast_new(e->ctx, u, ZCHAN_ANYCAST_CAPACITY);
            if (!chs[made]) {
                fprintf(stderr, "zchan-scale: *** FAILED: %s: channel %ld: %s (fds %ld) ***\n", fig, made + 1,
                        zchan_strerror(zchan_errno()), fd_count());
                ok = false;
                break;
            }
            if (!keep)
                zchan_destroy(&chs[made]);
        }
        if (!ok)
            break;
        double step_ns = (double) (now_ns() - t0);
        long long rss = rss_bytes(), heap = heap_bytes();
        long fds = fd_count();
        char per[32] = "-", perh[32] = "-", perfd[32] = "-";
        if (s > 0) {
            snprintf(per, sizeof per, "%.0f", (double) (rss - prev_rss) / (double) (made - prev_n));
            snprintf(perh, sizeof perh, "%.0f", (double) (heap - prev_heap) / (double) (made - prev_n));
            csv_row(o, fig, made, "heap_per_channel_step", (double) (heap - prev_heap) / (double) (made - prev_n),
                    "B", transport);
            snprintf(perfd, sizeof perfd, "%.3f", (double) (fds - prev_fds) / (double) (made - prev_n));
            csv_row(o, fig, made, "rss_per_channel_step", (double) (rss - prev_rss) / (double) (made - prev_n), "B",
                    transport);
            csv_row(o, fig, made, "fds_per_channel_step", (double) (fds - prev_fds) / (double) (made - prev_n),
                    "count", transport);
        } else {
            first_rss = rss;
            first_heap = heap;
            first_fds = fds;
        }
        human(o, "%8ld %11lld %11lld %6ld %13s %13s %13s %10.1f\n", made, rss / 1024, heap / 1024, fds, per, perh, perfd,
              made > from ? step_ns / 1e3 / (double) (made - from) : 0.0);
        csv_row(o, fig, made, "rss_kib", (double) (rss / 1024), "KiB", transport);
        csv_row(o, fig, made, "heap_kib", (double) (heap / 1024), "KiB", transport);
        csv_row(o, fig, made, "fds", (double) fds, "count", transport);
        csv_row(o, fig, made, "create_us", made > from ? step_ns / 1e3 / (double) (made - from) : 0, "us",
                transport);
        prev_rss = rss;
        prev_heap = heap;
        prev_fds = fds;
        prev_n = made;
    }
    if (ok && made > 1) {
        double per = (double) (prev_rss - first_rss) / (double) (made - 1);
        double perh = (double) (prev_heap - first_heap) / (double) (made - 1);
        human(o, "%s: %.0f B RSS, %.0f B heap per idle channel (1 -> %ld); fds %+ld over the whole range\n", fig,
              per, perh, made, prev_fds - first_fds);
        csv_row(o, fig, made, "bytes_per_channel", per, "B", transport);
        csv_row(o, fig, made, "heap_bytes_per_channel", perh, "B", transport);
        csv_row(o, fig, made, "fds_growth", (double) (prev_fds - first_fds), "count", transport);
    }
    for (long i = 0; i < made; i++) {
        if (ipc_named && chs[i])
            zchan_close(chs[i]);
        zchan_destroy(&chs[i]);
    }
    free(chs);
    return ok;
}

static bool figure_channels(env_t *e)
{
    const options_t *o = e->o;
    bool ok = channel_series(e, "channels", "inproc", false, true, o->max_channels);
    if (!g_stop)
        ok = channel_series(e, "channels_hub_only", "inproc", false, false, o->max_channels) && ok;
    long max_ipc = o->max_ipc_names;
    if (max_ipc > 0 && !g_stop) {
        //  Each host-wide name holds two fds (its lock file and its listening
        //  socket): stay clear of the fd limit.
        long room = (raise_nofile() - fd_count() - 200) / 2;
        if (max_ipc > room) {
            human(o, "channels_ipc_named: capped at %ld channels by RLIMIT_NOFILE\n", room);
            max_ipc = room;
        }
        if (max_ipc > 0)
            ok = channel_series(e, "channels_ipc_named", "ipc", true, true, max_ipc) && ok;
    }
    return ok;
}

// ---------------------------------------------------------------------------
// Figure 2: broadcast fan-out

typedef struct {
    bool ok;
    double rate, ns_per, sent_rate, secs;
    long messages, deliveries, procs;
    double rss_per_rx, heap_per_rx, fds_per_rx;
    long long rss_peak_delta;
    long dropped, lost, dups;
    bool may_drop; // broadcast: R x M messages exceed the hub's byte limits
    long untold;   // broadcast: of dropped, those only the hub had counted
    char err[512];
} step_t;

static void broadcast_step(env_t *e, long R, step_t *st)
{
    const options_t *o = e->o;
    memset(st, 0, sizeof *st);
    long M = o->budget / R;
    if (M > o->bcast_max)
        M = o->bcast_max;
    if (M < 100)
        M = 100;
    long P = (R + o->per_process - 1) / o->per_process;
    st->messages = M;
    st->procs = P;
    //  The receivers' limit (M) drops nothing, but the hub's byte limits
    //  count what it holds for receivers that lag: each message's bytes (the
    //  msgpack bin header at most 5) and an overhead (64 B today; 128 here to
    //  stay on the safe side). A step that could need more may drop by design.
    uint64_t need = (uint64_t) R * (uint64_t) M * (uint64_t) (o->size + 5 + 128);
    uint64_t cap = zchan_ctx_limit(e->ctx, ZCHAN_LIMIT_CHANNEL_BYTES);
    uint64_t all = zchan_ctx_limit(e->ctx, ZCHAN_LIMIT_QUEUED_BYTES);
    st->may_drop = need > (all < cap ? all : cap);
    int64_t deadline = now_ns() + (int64_t) o->timeout_s * 1000000000;
    child_t *kids = calloc((size_t) P + 1, sizeof *kids);
    int nk = 0;
    char uri[256];
    zchan_t *ch = NULL;
    if (!kids) {
        snprintf(st->err, sizeof st->err, "out of memory");
        return;
    }
    chan_uri(e, "bcast", uri, sizeof uri);
    if (!(ch = zchan_broadcast_new(e->ctx, uri, false))) {
        snprintf(st->err, sizeof st->err, "zchan_broadcast_new %s: %s", uri, zchan_strerror(zchan_errno()));
        goto out;
    }
    long long rss0 = rss_bytes(), heap0 = heap_bytes();
    long fd0 = fd_count();
    for (long i = 0; i < P; i++) {
        wargs_t w = {.role = R_BRECV, .n = share(R, P, i), .count = M, .id = i, .limit = M, .size = o->size,
                     .stall_ms = o->stall_ms, .phase_ms = o->timeout_s * 1000};
        snprintf(w.ep, sizeof w.ep, "%s", uri);
        if (child_start(&kids[nk], &w, st->err, sizeof st->err) != 0)
            goto out;
        nk++;
    }
    if (collect(kids, nk, "ready", deadline, st->err, sizeof st->err) != 0)
        goto out;
    //  Every receiver is attached: what the hub holds per receiver, before
    //  any message (the pipes to the workers are two fds each).
    long long rss1 = rss_bytes(), heap1 = heap_bytes();
    long fd1 = fd_count();
    st->rss_per_rx = (double) (rss1 - rss0) / (double) R;
    st->heap_per_rx = (double) (heap1 - heap0) / (double) R;
    st->fds_per_rx = (double) (fd1 - fd0 - 2 * P) / (double) R;
    wargs_t w = {.role = R_BSEND, .count = M, .id = 0, .size = o->size, .stall_ms = o->stall_ms,
                 .phase_ms = o->timeout_s * 1000, .timeout_ms = o->sender_timeout_ms};
    snprintf(w.ep, sizeof w.ep, "%s", uri);
    if (child_start(&kids[nk], &w, st->err, sizeof st->err) != 0)
        goto out;
    nk++;
    if (collect(kids + P, 1, "ready", deadline, st->err, sizeof st->err) != 0)
        goto out;
    int64_t t0 = now_ns();
    kids_say(kids + P, 1, "go");
    if (collect(kids + P, 1, "done", deadline, st->err, sizeof st->err) != 0)
        goto out;
    if (o->verbose) // "done COUNT FLUSHES": how many flush requests it took
        fprintf(stderr, "zchan-scale: sender: %s\n", kids[P].line);
    long long rss2 = rss_bytes();
    int rc = zchan_close(ch); // the sender has flushed: every receiver drains, then stops
    if (rc != ZCHAN_OK) {
        snprintf(st->err, sizeof st->err, "zchan_close: %s", zchan_strerror(rc));
        goto out;
    }
    if (collect(kids, (int) P, "result", deadline, st->err, sizeof st->err) != 0)
        goto out;
    //  The hub's own count, for a failure's message: messages it took in
    //  (fewer than M: the close overtook the sender's last ones), and lost
    //  (those that reached it after the close) and dropped.
    char hub[160] = "";
    zchan_stat_t hs;
    bool have_hs = zchan_stat(ch, &hs) == ZCHAN_OK;
    if (have_hs)
        snprintf(hub, sizeof hub, "; hub: %" PRIu64 " of %ld messages taken in, %" PRIu64 " lost after the close so far, %" PRIu64
                 " dropped", hs.sent, M, hs.lost, hs.dropped);
    int64_t last = t0;
    long untold = 0;
    for (long i = 0; i < P; i++) {
        wres_t r;
        if (!parse_result(kids[i].line, &r)) {
            snprintf(st->err, sizeof st->err, "malformed report '%.200s'", kids[i].line);
            goto out;
        }
        st->deliveries += r.count;
        st->dropped += r.dropped;
        untold += r.untold;
        if (r.last > last)
            last = r.last;
        //  Drops are by design only where the step exceeds the hub's byte
        //  limits; even then each receiver's gaps must be what the hub counted.
        if (r.bad || r.missing || r.disorder || r.stalled || ((r.dropped || r.untold) && !st->may_drop)) {
            snprintf(st->err, sizeof st->err,
                     "LOSS: worker %ld: per receiver %ld..%ld of %ld, %ld neither received nor counted dropped, "
                     "%ld bad, %ld dropped%s, %ld out of order%s%s",
                     i, r.min_each, r.max_each, M, r.missing, r.bad, r.dropped,
                     r.dropped && !st->may_drop ? " (within the hub's byte limits)" : "", r.disorder,
                     r.stalled ? ", stalled" : "", hub);
            goto out;
        }
    }
    //  Drops at the end of a stream that only the hub counted: the hub's
    //  total must cover them exactly.
    if (untold > 0) {
        if (!have_hs || hs.dropped != (uint64_t) (st->dropped + untold)) {
            snprintf(st->err, sizeof st->err,
                     "LOSS: %ld deliveries at the ends of receivers' streams neither received nor counted dropped "
                     "by them, and the hub's dropped count does not cover them%s", untold, hub);
            goto out;
        }
        st->dropped += untold;
        st->untold = untold;
    }
    st->lost = R * M - st->deliveries - st->dropped;
    st->secs = (double) (last - t0) / 1e9;
    if (st->secs <= 0)
        st->secs = 1e-9;
    st->rate = (double) st->deliveries / st->secs;
    st->ns_per = 1e9 / st->rate;
    st->sent_rate = (double) M / st->secs;
    st->rss_peak_delta = rss2 - rss1;
    st->ok = st->lost == 0;
    if (!st->ok)
        snprintf(st->err, sizeof st->err, "LOSS: %ld of %ld deliveries%s", st->lost, R * M, hub);
    int worst = kids_end(kids, nk, false);
    nk = 0;
    if (worst && st->ok) {
        st->ok = false;
        snprintf(st->err, sizeof st->err, "a worker exited with status %d", worst);
    }
out:
    kids_end(kids, nk, true);
    zchan_destroy(&ch);
    free(kids);
}

static bool figure_broadcast(env_t *e, const char *tr)
{
    const options_t *o = e->o;
    long cand[] = {1, 10, 100, 1000, 10000};
    long steps[MAX_STEPS];
    int nsteps = make_steps(cand, 5, o->max_receivers, steps);
    bool ok = true;
    human(o, "\nbroadcast: 1 sender process, R receivers on one channel, %ld B, %s; receivers in processes of "
             "<= %ld, one select thread each\n", o->size, tr, o->per_process);
    human(o, "%6s %5s %7s %10s %6s %12s %8s %6s %12s %11s %6s %7s\n", "R", "procs", "msgs", "deliveries", "secs",
          "deliveries/s", "ns/deliv", "growth", "hub heap B/rx", "hub RSS B/rx", "fds/rx", "dropped");
    double prev_ns = 0;
    long prev_r = 0;
    for (int s = 0; s < nsteps && !g_stop; s++) {
        long R = steps[s];
        step_t st;
        if (o->verbose)
            fprintf(stderr, "zchan-scale: broadcast R=%ld\n", R);
        broadcast_step(e, R, &st);
        if (!st.ok) {
            ok = false;
            human(o, "%6ld  *** FAILED: %s\n", R, st.err);
            fprintf(stderr, "zchan-scale: *** FAILED: broadcast R=%ld: %s ***\n", R, st.err);
            csv_row(o, "broadcast", R, "failed", 1, "flag", tr);
            continue;
        }
        if (st.dropped)
            human(o, "%6ld  note: %ld deliveries dropped by design: R x %ld messages of %ld B exceed the hub's "
                     "byte limits (zchan_ctx_limit; --hub-max-bytes); every gap matched the hub's counts (%ld "
                     "at the ends of streams, counted by the hub only)\n",
                  R, st.dropped, st.messages, o->size, st.untold);
        char growth[32] = "-";
        if (prev_ns > 0)
            snprintf(growth, sizeof growth, "x%.2f", st.ns_per / prev_ns);
        human(o, "%6ld %5ld %7ld %10ld %6.2f %12.0f %8.0f %6s %12.0f %11.0f %6.2f %7ld\n", R, st.procs,
              st.messages, st.deliveries, st.secs, st.rate, st.ns_per, growth, st.heap_per_rx, st.rss_per_rx,
              st.fds_per_rx, st.dropped);
        csv_row(o, "broadcast", R, "messages", (double) st.messages, "count", tr);
        csv_row(o, "broadcast", R, "processes", (double) st.procs, "count", tr);
        csv_row(o, "broadcast", R, "deliveries", (double) st.deliveries, "count", tr);
        csv_row(o, "broadcast", R, "seconds", st.secs, "s", tr);
        csv_row(o, "broadcast", R, "deliveries_per_s", st.rate, "msg/s", tr);
        csv_row(o, "broadcast", R, "ns_per_delivery", st.ns_per, "ns", tr);
        csv_row(o, "broadcast", R, "sent_per_s", st.sent_rate, "msg/s", tr);
        csv_row(o, "broadcast", R, "hub_rss_per_receiver", st.rss_per_rx, "B", tr);
        csv_row(o, "broadcast", R, "hub_heap_per_receiver", st.heap_per_rx, "B", tr);
        csv_row(o, "broadcast", R, "hub_fds_per_receiver", st.fds_per_rx, "count", tr);
        csv_row(o, "broadcast", R, "hub_rss_growth_while_sending", (double) st.rss_peak_delta, "B", tr);
        csv_row(o, "broadcast", R, "dropped", (double) st.dropped, "count", tr);
        csv_row(o, "broadcast", R, "lost", (double) st.lost, "count", tr);
        prev_ns = st.ns_per;
        prev_r = R;
    }
    (void) prev_r;
    return ok;
}

// ---------------------------------------------------------------------------
// Figure 3: anycast fan-in

static void anycast_step(env_t *e, long S, step_t *st)
{
    const options_t *o = e->o;
    memset(st, 0, sizeof *st);
    long T = o->any_count;
    st->messages = T;
    st->procs = S + 1;
    int64_t deadline = now_ns() + (int64_t) o->timeout_s * 1000000000;
    child_t *kids = calloc((size_t) S + 1, sizeof *kids);
    int nk = 0;
    char uri[256];
    zchan_t *ch = NULL;
    if (!kids) {
        snprintf(st->err, sizeof st->err, "out of memory");
        return;
    }
    chan_uri(e, "any", uri, sizeof uri);
    if (!(ch = zchan_anycast_new(e->ctx, uri, (size_t) o->capacity))) {
        snprintf(st->err, sizeof st->err, "zchan_anycast_new %s: %s", uri, zchan_strerror(zchan_errno()));
        goto out;
    }
    wargs_t w = {.role = R_ARECV, .n = o->any_receivers, .senders = S, .total = T, .size = o->size,
                 .stall_ms = o->stall_ms, .phase_ms = o->timeout_s * 1000};
    snprintf(w.ep, sizeof w.ep, "%s", uri);
    if (child_start(&kids[nk], &w, st->err, sizeof st->err) != 0)
        goto out;
    nk++;
    if (collect(kids, 1, "ready", deadline, st->err, sizeof st->err) != 0)
        goto out;
    long fd0 = fd_count();
    for (long i = 0; i < S; i++) {
        wargs_t ws = {.role = R_ASEND, .count = share(T, S, i), .id = i, .size = o->size, .stall_ms = o->stall_ms,
                      .phase_ms = o->timeout_s * 1000, .timeout_ms = o->sender_timeout_ms};
        snprintf(ws.ep, sizeof ws.ep, "%s", uri);
        if (child_start(&kids[nk], &ws, st->err, sizeof st->err) != 0)
            goto out;
        nk++;
    }
    if (collect(kids + 1, (int) S, "ready", deadline, st->err, sizeof st->err) != 0)
        goto out;
    long fd1 = fd_count();
    st->fds_per_rx = (double) (fd1 - fd0 - 2 * S) / (double) S; // hub fds per sender
    int64_t t0 = now_ns();
    kids_say(kids + 1, (int) S, "go");
    if (collect(kids + 1, (int) S, "done", deadline, st->err, sizeof st->err) != 0)
        goto out;
    int rc = zchan_close(ch);
    if (rc != ZCHAN_OK) {
        snprintf(st->err, sizeof st->err, "zchan_close: %s", zchan_strerror(rc));
        goto out;
    }
    if (collect(kids, 1, "result", deadline, st->err, sizeof st->err) != 0)
        goto out;
    wres_t r;
    if (!parse_result(kids[0].line, &r)) {
        snprintf(st->err, sizeof st->err, "malformed report '%.200s'", kids[0].line);
        goto out;
    }
    st->deliveries = r.count;
    st->lost = r.missing;
    st->dups = r.dups;
    st->secs = (double) ((r.last > t0 ? r.last : t0) - t0) / 1e9;
    if (st->secs <= 0)
        st->secs = 1e-9;
    st->rate = (double) r.count / st->secs;
    st->ns_per = 1e9 / st->rate;
    st->ok = r.count == T && !r.missing && !r.dups && !r.bad && !r.disorder && !r.stalled;
    if (!st->ok)
        snprintf(st->err, sizeof st->err,
                 "EXACTLY-ONCE FAILED: %ld of %ld received, %ld missing, %ld duplicated, %ld bad, %ld out of order%s",
                 r.count, T, r.missing, r.dups, r.bad, r.disorder, r.stalled ? ", stalled" : "");
    int worst = kids_end(kids, nk, false);
    nk = 0;
    if (worst && st->ok) {
        st->ok = false;
        snprintf(st->err, sizeof st->err, "a worker exited with status %d", worst);
    }
out:
    kids_end(kids, nk, true);
    zchan_destroy(&ch);
    free(kids);
}

static bool figure_anycast(env_t *e, const char *tr)
{
    const options_t *o = e->o;
    long cand[] = {1, 10, 100, 1000};
    long steps[MAX_STEPS];
    int nsteps = make_steps(cand, 4, o->max_senders, steps);
    bool ok = true;
    human(o, "\nanycast: S sender processes into one channel (capacity %ld), %ld receivers in one process, "
             "%ld B, %s\n", o->capacity, o->any_receivers, o->size, tr);
    human(o, "%6s %8s %8s %11s %9s %7s %10s %8s %6s %12s\n", "S", "msgs", "secs", "msgs/s", "ns/msg", "growth",
          "missing", "dups", "order", "hub fd/sndr");
    double prev_ns = 0;
    for (int s = 0; s < nsteps && !g_stop; s++) {
        long S = steps[s];
        step_t st;
        if (o->verbose)
            fprintf(stderr, "zchan-scale: anycast S=%ld\n", S);
        anycast_step(e, S, &st);
        if (!st.ok) {
            ok = false;
            human(o, "%6ld  *** FAILED: %s\n", S, st.err);
            fprintf(stderr, "zchan-scale: *** FAILED: anycast S=%ld: %s ***\n", S, st.err);
            csv_row(o, "anycast", S, "failed", 1, "flag", tr);
            continue;
        }
        char growth[32] = "-";
        if (prev_ns > 0)
            snprintf(growth, sizeof growth, "x%.2f", st.ns_per / prev_ns);
        human(o, "%6ld %8ld %8.2f %11.0f %9.0f %7s %10ld %8ld %6s %12.2f\n", S, st.messages, st.secs, st.rate,
              st.ns_per, growth, st.lost, st.dups, "ok", st.fds_per_rx);
        csv_row(o, "anycast", S, "messages", (double) st.messages, "count", tr);
        csv_row(o, "anycast", S, "seconds", st.secs, "s", tr);
        csv_row(o, "anycast", S, "msgs_per_s", st.rate, "msg/s", tr);
        csv_row(o, "anycast", S, "ns_per_msg", st.ns_per, "ns", tr);
        csv_row(o, "anycast", S, "missing", (double) st.lost, "count", tr);
        csv_row(o, "anycast", S, "duplicates", (double) st.dups, "count", tr);
        csv_row(o, "anycast", S, "hub_fds_per_sender", st.fds_per_rx, "count", tr);
        prev_ns = st.ns_per;
    }
    return ok;
}

// ---------------------------------------------------------------------------
// The coordinator: main

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--role"))
        return worker_main(argc, argv);
    options_t o;
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    //  Results go to the real stdout (g_out); stdout itself to stderr.
    if (coordinator_setup("zchan-scale", &g_out) != 0)
        return 2;
    long nofile = raise_nofile();

    if (make_tmpdir("zchan-scale") != 0)
        return 2;

    int rc = 0;
    env_t e = {.o = &o};
    const char *tr = o.tcp ? "tcp" : "ipc";
    e.ctx = zchan_ctx_new();
    if (!e.ctx) {
        fprintf(stderr, "zchan-scale: zchan_ctx_new: %s\n", zchan_strerror(zchan_errno()));
        rc = 2;
        goto done;
    }
    if (o.tcp) {
        int err = zchan_ctx_bind(e.ctx, "tcp://127.0.0.1:0");
        e.tcp_hub = err == ZCHAN_OK ? zchan_ctx_endpoint(e.ctx, "tcp") : NULL;
        if (!e.tcp_hub) {
            fprintf(stderr, "zchan-scale: cannot listen on tcp://127.0.0.1: %s\n",
                    zchan_strerror(err ? err : zchan_errno()));
            rc = 2;
            goto done;
        }
    }
    if (o.hub_max_bytes > 0) {
        int err = zchan_ctx_set_limit(e.ctx, ZCHAN_LIMIT_CHANNEL_BYTES, (uint64_t) o.hub_max_bytes);
        if (err != ZCHAN_OK) {
            fprintf(stderr, "zchan-scale: --hub-max-bytes: %s\n", zchan_strerror(err));
            rc = 2;
            goto done;
        }
    }
    if (o.csv)
        fprintf(g_out, "figure,count,metric,value,unit,transport\n");
    human(&o, "zchan-scale: %ld CPUs, RLIMIT_NOFILE %ld, pid %d\n", sysconf(_SC_NPROCESSORS_ONLN), nofile,
          (int) getpid());
    int64_t t0 = now_ns();
    if (o.figs[F_CHANNELS] && !g_stop && !figure_channels(&e))
        rc = 1;
    if (o.figs[F_BROADCAST] && !g_stop && !figure_broadcast(&e, tr))
        rc = 1;
    if (o.figs[F_ANYCAST] && !g_stop && !figure_anycast(&e, tr))
        rc = 1;
    human(&o, "\nzchan-scale: %.1f s%s\n", (double) (now_ns() - t0) / 1e9,
          rc ? ", *** SOME STEPS FAILED ***" : "");
    if (g_stop) {
        fprintf(stderr, "zchan-scale: interrupted\n");
        rc = 130;
    }
done:
    zchan_ctx_destroy(&e.ctx);
    rm_tmpdir();
    fclose(g_out);
    return rc;
}

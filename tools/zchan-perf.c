/*  zchan-perf: throughput and latency of zchan channels, measured against raw
    libzmq, and nng when it is compiled in, in the same run, over inproc, ipc
    and tcp (loopback only).

    Workloads
    - anycast:   S senders, R receivers, one anycast channel. Baseline: PUSH/PULL.
    - broadcast: S senders, R receivers, one broadcast channel. Baseline: PUB/SUB
                 (with a probe handshake, so there is no slow-joiner loss).
    - pingpong:  one pinger, one ponger, two anycast channels ("ping", "pong").
                 Baseline: REQ/REP.

    Topology. The coordinator (this process, as started by the user) hosts the
    zchan channels in its hub, and spawns every sender and receiver as a
    worker: a thread for inproc, a separate process (this program re-executed
    with the internal --role option) for ipc and tcp. So a zchan message goes
    sender -> hub (coordinator) -> receiver. The raw baseline has the same
    shape by default (--baseline proxy): the coordinator runs a zmq_proxy
    (PULL|PUSH, XSUB|XPUB or ROUTER|DEALER) and every worker connects to one of
    its two bound sockets. --baseline direct measures raw libzmq without the
    middle hop instead (receivers, publishers or the REP socket bind).
    nng (ZCHAN_PERF_NNG) runs the raw shapes with nng's push/pull, pub/sub and
    req/rep sockets; its proxy forwards between raw-mode sockets, as
    nng_device does.

    Measurement. Every worker attaches, then says "ready"; the coordinator
    takes the start time on CLOCK_MONOTONIC (system-wide, so comparable across
    processes) and says "go". Receivers stamp each receipt on the same clock.
    Throughput = messages received / (last receipt - start). Pingpong times
    each round trip in the pinger and reports rate, median, p99 and max.
    Receivers check every payload (type, size, first and last byte) and the
    coordinator checks the counts: any loss fails the case and the exit code.

    Workers talk to the coordinator over two pipes (fds 3 and 4 in a worker
    process) with one-line text commands and reports.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <msgpack.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zchan.h>
#include "benchproc.h"
#include <zmq.h>
#ifdef ZCHAN_PERF_NNG
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#endif

extern char **environ;

#define MAX_SIZES 16
#define MAX_PEERS 64
#define WORKER_IN_FD 3
#define WORKER_OUT_FD 4
#define PROBE_SIZE 5

typedef enum { WL_ANYCAST, WL_BROADCAST, WL_PINGPONG, WL_N } workload_t;
static const char *wl_names[WL_N] = {"anycast", "broadcast", "pingpong"};

typedef enum { TR_INPROC, TR_IPC, TR_TCP, TR_N } transport_t;
static const char *tr_names[TR_N] = {"inproc", "ipc", "tcp"};

//  The implementations measured side by side. nng is compiled in only when
//  the build found it (ZCHAN_PERF_NNG).
typedef enum { IMPL_ZCHAN, IMPL_RAW, IMPL_NNG, IMPL_N } impl_t;
static const char *impl_names[IMPL_N] = {"zchan", "raw", "nng"};
#ifdef ZCHAN_PERF_NNG
#define HAVE_NNG true
#else
#define HAVE_NNG false
#endif
//  nng's message queues (NNG_OPT_SENDBUF, NNG_OPT_RECVBUF): its maximum,
//  8192, by default. Raw PUB/SUB gets unlimited high-water marks, and nng's
//  pub/sub drops when a queue is full and has no unlimited setting. For
//  push/pull the size made no difference on the machine of docs/BENCHMARKS.md.
#define NNG_BUF_DEFAULT 8192
typedef enum { BL_PROXY, BL_DIRECT } baseline_t;

typedef enum {
    R_NONE,
    R_ZSEND, R_ZRECV, R_ZPING, R_ZPONG,         // zchan
    R_PUSH, R_PULL, R_PUB, R_SUB, R_REQ, R_REP, // raw libzmq
    R_NPUSH, R_NPULL, R_NPUB, R_NSUB, R_NREQ, R_NREP, // nng
    R_N
} role_t;
static const char *role_names[R_N] = {"", "zsend", "zrecv", "zping", "zpong", "push", "pull", "pub", "sub",
                                      "req", "rep", "npush", "npull", "npub", "nsub", "nreq", "nrep"};

// ---------------------------------------------------------------------------
// Small helpers

static FILE *g_out;                    // results (the original stdout)

static void put_payload(char *buf, size_t size)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (char) ((i * 31 + 7) & 0xff);
}

static bool payload_ok(const char *p, size_t n, size_t size)
{
    if (n != size)
        return false;
    if (size == 0)
        return true;
    return p[0] == (char) 7 && p[size - 1] == (char) (((size - 1) * 31 + 7) & 0xff);
}

//  Copies s into d (n bytes), truncating.
static void copy_str(char *d, size_t n, const char *s)
{
    size_t k = strlen(s);
    if (k >= n)
        k = n - 1;
    memcpy(d, s, k);
    d[k] = 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t) n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---------------------------------------------------------------------------
// Line-based control pipes


// ---------------------------------------------------------------------------
// Workers

typedef struct {
    role_t role;
    char ep[4096];          // zchan: channel URI; raw: endpoint(s), comma-separated
    char ep2[256];          // zping / zpong: the other channel's URI
    bool bind;              // raw: bind ep (reported in "ready EP") instead of connecting
    size_t size;            // payload bytes (the msgpack bin body)
    long count;             // to send; to receive (broadcast, pingpong); 0: anycast receiver
    long warmup;            // pingpong: round trips before the measured ones
    int id;
    int peers;              // sub: publishers whose probes to wait for
    long limit;             // zrecv: broadcast receiver limit
    int nng_buf;            // nng: NNG_OPT_SENDBUF and NNG_OPT_RECVBUF, in messages
    int host;               // zping / zpong: 1 if each hosts the channel it receives on
    long capacity;          // zping / zpong with host: their channels' capacity
    int stall_ms;           // a send or receive that makes no progress this long fails
    int phase_ms;           // waiting for a command this long fails
    int in_fd, out_fd;
    zchan_ctx_t *zctx;      // thread workers share the coordinator's contexts;
    void *rctx;             // process workers make their own (NULL here)
    int status;
} worker_t;

typedef struct {
    long count;
    int64_t first, last; // receipt times (ns, CLOCK_MONOTONIC)
    uint64_t dropped;
    long bad;
    int stalled;
    int64_t p50, p99, max; // pingpong round trips (ns)
} result_t;

static int wfail(worker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wfail(worker_t *w, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "zchan-perf: %s %d: %s\n", role_names[w->role], w->id, msg);
    say(w->out_fd, "error %s %d: %s", role_names[w->role], w->id, msg);
    return 1;
}

static void report(worker_t *w, const result_t *r)
{
    say(w->out_fd, "result %ld %" PRId64 " %" PRId64 " %" PRIu64 " %ld %d %" PRId64 " %" PRId64 " %" PRId64,
        r->count, r->first, r->last, r->dropped, r->bad, r->stalled, r->p50, r->p99, r->max);
}

//  Waits for the command cmd; "go" lines are skipped when waiting for
//  another command. 0, or -1 (EOF, timeout, or "quit" when waiting for "go").
static int await_cmd(worker_t *w, linebuf_t *lb, const char *cmd)
{
    char line[128];
    while (true) {
        int rc = line_read(lb, line, sizeof line, w->phase_ms);
        if (rc != 1)
            return -1;
        if (strcmp(line, cmd) == 0)
            return 0;
        if (strcmp(line, "go") != 0)
            return -1;
    }
}

static void latency_stats(int64_t *rtt, long n, result_t *r)
{
    if (n <= 0)
        return;
    qsort(rtt, (size_t) n, sizeof *rtt, cmp_i64);
    r->p50 = rtt[n / 2];
    long k = (n * 99 + 99) / 100 - 1; // nearest rank
    r->p99 = rtt[k < 0 ? 0 : k >= n ? n - 1 : k];
    r->max = rtt[n - 1];
}

// --- zchan workers

static zchan_msg_t *zmsg_make(const char *payload, size_t size)
{
    zchan_msg_t *m = zchan_msg_new();
    if (!m)
        return NULL;
    msgpack_packer *pk = zchan_msg_packer(m);
    if (msgpack_pack_bin(pk, size) != 0 || msgpack_pack_bin_body(pk, payload, size) != 0)
        zchan_msg_destroy(&m);
    return m;
}

static bool zmsg_ok(zchan_msg_t *m, size_t size)
{
    const msgpack_object *o = zchan_msg_object(m);
    return o && o->type == MSGPACK_OBJECT_BIN && payload_ok(o->via.bin.ptr, o->via.bin.size, size);
}

//  Pingpong with each side hosting its own channel: makes *mine (unnamed,
//  in ctx's hub) and trades references with the other side over s and r
//  (the pinger receives first, the ponger sends first), opening theirs.
//  Over tcp, the hub binds a tcp port and the worker's host id is its own,
//  so that the other side opens the reference over tcp, not ipc.
static int peers_setup(worker_t *w, zchan_ctx_t *ctx, zchan_sender_t *s, zchan_receiver_t *r, zchan_t **mine,
                       zchan_t **theirs)
{
    if (!strncmp(w->ep, "tcp://", 6) && zchan_ctx_bind(ctx, "tcp://127.0.0.1:0") != ZCHAN_OK)
        return zchan_errno();
    if (!(*mine = zchan_anycast_new(ctx, NULL, (size_t) w->capacity)))
        return zchan_errno();
    for (int step = 0; step < 2; step++) {
        bool send = (w->role == R_ZPONG) == (step == 0);
        zchan_msg_t *m = NULL;
        int e;
        if (send) {
            m = zchan_msg_new();
            e = !m ? ZCHAN_ENOMEM : zchan_msg_pack_chan(m, *mine);
            if (e == ZCHAN_OK)
                e = zchan_send(s, &m, w->stall_ms);
        } else {
            e = zchan_recv(r, &m, w->stall_ms);
            if (e == ZCHAN_OK && !(*theirs = zchan_msg_chan(ctx, zchan_msg_object(m))))
                e = zchan_errno();
        }
        zchan_msg_destroy(&m);
        if (e != ZCHAN_OK)
            return e;
    }
    return ZCHAN_OK;
}

static int zchan_worker(worker_t *w, linebuf_t *lb, char *payload)
{
    zchan_ctx_t *ctx = w->zctx;
    zchan_t *ch = NULL, *ch2 = NULL;
    zchan_sender_t *s = NULL;
    zchan_receiver_t *r = NULL;
    int64_t *rtt = NULL;
    int rc = 1;
    result_t res = {0};
    if (!ctx && w->host && !strncmp(w->ep, "tcp://", 6)) {
        //  Another host as far as references go: the other side opens ours over tcp.
        char id[64];
        snprintf(id, sizeof id, "zchan-perf-%ld-%d", (long) getpid(), w->role);
        setenv("ZCHAN_HOST_ID", id, 1);
    }
    if (!ctx && !(ctx = zchan_ctx_new())) {
        wfail(w, "zchan_ctx_new: %s", zchan_strerror(zchan_errno()));
        goto out;
    }
    //  zsend: sender on ep. zrecv: receiver on ep. zping: sender on ep,
    //  receiver on ep2. zpong: receiver on ep, sender on ep2.
    if (!(ch = zchan_open(ctx, w->ep))) {
        wfail(w, "zchan_open %s: %s", w->ep, zchan_strerror(zchan_errno()));
        goto out;
    }
    if ((w->role == R_ZPING || w->role == R_ZPONG) && !(ch2 = zchan_open(ctx, w->ep2))) {
        wfail(w, "zchan_open %s: %s", w->ep2, zchan_strerror(zchan_errno()));
        goto out;
    }
    zchan_t *sch = w->role == R_ZSEND || w->role == R_ZPING ? ch : w->role == R_ZPONG ? ch2 : NULL;
    zchan_t *rch = w->role == R_ZRECV || w->role == R_ZPONG ? ch : w->role == R_ZPING ? ch2 : NULL;
    if (sch && !(s = zchan_sender_new(sch))) {
        wfail(w, "zchan_sender_new: %s", zchan_strerror(zchan_errno()));
        goto out;
    }
    if (rch && !(r = zchan_receiver_new(rch, (size_t) w->limit))) {
        wfail(w, "zchan_receiver_new: %s", zchan_strerror(zchan_errno()));
        goto out;
    }
    if (w->role == R_ZPING && !(rtt = malloc(sizeof *rtt * (size_t) (w->count > 0 ? w->count : 1)))) {
        wfail(w, "out of memory");
        goto out;
    }
    if ((w->role == R_ZPING || w->role == R_ZPONG) && w->host) {
        //  Each side hosts the channel it receives on, and the two trade
        //  references over the coordinator's channels, which then go.
        zchan_t *mine = NULL, *theirs = NULL;
        int e = peers_setup(w, ctx, s, r, &mine, &theirs);
        zchan_sender_destroy(&s);
        zchan_receiver_destroy(&r);
        zchan_destroy(&ch);
        zchan_destroy(&ch2);
        ch = mine;
        ch2 = theirs;
        if (e != ZCHAN_OK || !(s = zchan_sender_new(theirs)) || !(r = zchan_receiver_new(mine, 0))) {
            wfail(w, "pingpong setup: %s", zchan_strerror(e != ZCHAN_OK ? e : zchan_errno()));
            goto out;
        }
    }
    say(w->out_fd, "ready");
    if (await_cmd(w, lb, "go") != 0) {
        rc = 0; // the coordinator gave up: leave quietly
        goto out;
    }
    switch (w->role) {
    case R_ZSEND:
        for (long i = 0; i < w->count; i++) {
            zchan_msg_t *m = zmsg_make(payload, w->size);
            int e = m ? zchan_send(s, &m, w->stall_ms) : ZCHAN_ENOMEM;
            if (e != ZCHAN_OK) {
                zchan_msg_destroy(&m);
                wfail(w, "send %ld of %ld: %s", i + 1, w->count, zchan_strerror(e));
                goto out;
            }
        }
        zchan_sender_destroy(&s); // flushes: all it sent has reached the channel
        say(w->out_fd, "done %ld", w->count);
        break;
    case R_ZRECV:
        while (true) {
            zchan_msg_t *m = NULL;
            int e = zchan_recv(r, &m, w->stall_ms);
            if (e == ZCHAN_OK) {
                int64_t t = now_ns();
                if (zmsg_ok(m, w->size)) {
                    if (res.count++ == 0)
                        res.first = t;
                    res.last = t;
                } else
                    res.bad++;
                zchan_msg_destroy(&m);
            } else if (e == ZCHAN_ECLOSED)
                break;
            else if (e == ZCHAN_ETIMEDOUT) {
                res.stalled = 1;
                break;
            } else if (e == ZCHAN_EPROTO)
                res.bad++;
            else {
                wfail(w, "recv: %s", zchan_strerror(e));
                goto out;
            }
        }
        res.dropped = zchan_receiver_dropped(r);
        report(w, &res);
        break;
    case R_ZPING:
    case R_ZPONG: {
        long total = w->warmup + w->count;
        for (long i = 0; i < total; i++) {
            int64_t t0 = now_ns();
            zchan_msg_t *m = NULL;
            int e = ZCHAN_OK;
            if (w->role == R_ZPING) {
                m = zmsg_make(payload, w->size);
                e = m ? zchan_send(s, &m, w->stall_ms) : ZCHAN_ENOMEM;
                zchan_msg_destroy(&m);
            }
            if (e == ZCHAN_OK)
                e = zchan_recv(r, &m, w->stall_ms);
            if (e == ZCHAN_OK && !zmsg_ok(m, w->size))
                e = ZCHAN_EPROTO;
            if (e == ZCHAN_OK && w->role == R_ZPONG)
                e = zchan_send(s, &m, w->stall_ms); // echo the received message as it is
            zchan_msg_destroy(&m);
            if (e != ZCHAN_OK) {
                wfail(w, "round trip %ld of %ld: %s", i + 1, total, zchan_strerror(e));
                goto out;
            }
            int64_t t1 = now_ns();
            if (w->role == R_ZPING && i >= w->warmup) {
                if (i == w->warmup)
                    res.first = t0;
                res.last = t1;
                rtt[res.count++] = t1 - t0;
            }
        }
        if (w->role == R_ZPING) {
            //  Detach now, while the other side (which may host the channel)
            //  is still there to answer.
            zchan_sender_destroy(&s);
            latency_stats(rtt, res.count, &res);
            report(w, &res);
        } else {
            zchan_sender_destroy(&s);
            say(w->out_fd, "done %ld", total);
        }
        break;
    }
    default: break;
    }
    rc = await_cmd(w, lb, "quit") == 0 ? 0 : wfail(w, "no quit from the coordinator");
out:
    free(rtt);
    zchan_sender_destroy(&s);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
    zchan_destroy(&ch2);
    if (!w->zctx)
        zchan_ctx_destroy(&ctx);
    return rc;
}

// --- raw libzmq workers

static int raw_setup(worker_t *w, void *sock, char *bound, size_t n)
{
    int zero = 0, tmo = w->stall_ms;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (w->role == R_PUB || w->role == R_SUB) {
        //  Unlimited queues: PUB/SUB drops at its high-water mark, and a
        //  lossless baseline is what zchan's broadcast is compared with.
        zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero);
    }
    if (w->role == R_SUB)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
    bound[0] = 0;
    if (w->bind) {
        if (zmq_bind(sock, w->ep) != 0)
            return wfail(w, "bind %s: %s", w->ep, zmq_strerror(zmq_errno()));
        zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &n);
        return 0;
    }
    char eps[sizeof w->ep];
    snprintf(eps, sizeof eps, "%s", w->ep);
    char *save = NULL;
    for (char *ep = strtok_r(eps, ",", &save); ep; ep = strtok_r(NULL, ",", &save))
        if (zmq_connect(sock, ep) != 0)
            return wfail(w, "connect %s: %s", ep, zmq_strerror(zmq_errno()));
    return 0;
}

//  raw pull: receives until told to drain; then reports its count after
//  50 ms without a message, as often as asked, until "quit".
static int raw_pull(worker_t *w, linebuf_t *lb, void *sock, size_t plen)
{
    result_t res = {0};
    int idle_ms = -1; // >= 0 while draining
    int64_t idle_since = 0;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (true) {
        zmq_pollitem_t items[2] = {{sock, 0, ZMQ_POLLIN, 0}, {NULL, lb->fd, ZMQ_POLLIN, 0}};
        bool draining = idle_ms >= 0;
        int rc = zmq_poll(items, 2, draining ? 10 : w->phase_ms);
        if (rc < 0 && zmq_errno() != EINTR) {
            zmq_msg_close(&msg);
            return wfail(w, "poll: %s", zmq_strerror(zmq_errno()));
        }
        if (items[0].revents & ZMQ_POLLIN) {
            while (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) >= 0) {
                int64_t t = now_ns();
                const char *p = zmq_msg_data(&msg);
                if (zmq_msg_size(&msg) == plen && payload_ok(p + plen - w->size, w->size, w->size)) {
                    if (res.count++ == 0)
                        res.first = t;
                    res.last = t;
                } else
                    res.bad++;
                idle_since = t;
            }
        }
        if (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
            char line[128];
            if (line_fill(lb) != 0 && !memchr(lb->buf, '\n', lb->len))
                break;
            while (line_take(lb, line, sizeof line)) {
                if (strcmp(line, "drain") == 0) {
                    idle_ms = 50;
                    idle_since = now_ns();
                } else if (strcmp(line, "quit") == 0) {
                    zmq_msg_close(&msg);
                    return 0;
                }
            }
        }
        if (idle_ms >= 0 && now_ns() - idle_since >= (int64_t) idle_ms * 1000000) {
            report(w, &res);
            idle_ms = -1;
        }
        if (rc == 0 && !draining) {
            zmq_msg_close(&msg);
            return wfail(w, "no command from the coordinator");
        }
    }
    zmq_msg_close(&msg);
    return 0; // EOF: the coordinator gave up
}

static int raw_worker(worker_t *w, linebuf_t *lb, char *payload)
{
    static const int types[R_N] = {[R_PUSH] = ZMQ_PUSH, [R_PULL] = ZMQ_PULL, [R_PUB] = ZMQ_PUB,
                                   [R_SUB] = ZMQ_SUB, [R_REQ] = ZMQ_REQ, [R_REP] = ZMQ_REP};
    void *ctx = w->rctx;
    void *sock = NULL;
    int64_t *rtt = NULL;
    int rc = 1;
    result_t res = {0};
    char bound[256];
    //  The same bytes as a zchan message: a msgpack bin of size bytes.
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_bin(&pk, w->size);
    msgpack_pack_bin_body(&pk, payload, w->size);
    const size_t plen = sb.size;
    zmq_msg_t msg;
    zmq_msg_init(&msg);

    if (!ctx && !(ctx = zmq_ctx_new())) {
        wfail(w, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto out;
    }
    if (!(sock = zmq_socket(ctx, types[w->role]))) {
        wfail(w, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        goto out;
    }
    if (raw_setup(w, sock, bound, sizeof bound) != 0)
        goto out;
    if (w->role == R_REQ && !(rtt = malloc(sizeof *rtt * (size_t) (w->count > 0 ? w->count : 1)))) {
        wfail(w, "out of memory");
        goto out;
    }
    if (w->role == R_SUB) {
        //  Ready once a probe from every publisher came through: the
        //  subscription is live end to end.
        bool seen[MAX_PEERS] = {false};
        int nseen = 0;
        while (nseen < w->peers) {
            if (zmq_msg_recv(&msg, sock, 0) < 0) {
                wfail(w, "no probe from %d publishers: %s", w->peers - nseen, zmq_strerror(zmq_errno()));
                goto out;
            }
            const unsigned char *p = zmq_msg_data(&msg);
            if (zmq_msg_size(&msg) == PROBE_SIZE && p[0] == 'P') {
                uint32_t id;
                memcpy(&id, p + 1, 4);
                if (id < MAX_PEERS && !seen[id]) {
                    seen[id] = true;
                    nseen++;
                }
            }
        }
    }
    if (w->bind)
        say(w->out_fd, "ready %s", bound);
    else
        say(w->out_fd, "ready");

    if (w->role == R_PULL) {
        rc = raw_pull(w, lb, sock, plen);
        goto out;
    }
    if (w->role == R_PUB) {
        //  Probe until "go", so subscribers can tell their subscription is live.
        unsigned char probe[PROBE_SIZE] = {'P'};
        uint32_t id = (uint32_t) w->id;
        memcpy(probe + 1, &id, 4);
        while (true) {
            zmq_send(sock, probe, sizeof probe, ZMQ_DONTWAIT);
            char line[128];
            int l = line_read(lb, line, sizeof line, 1);
            if (l < 0 || (l == 1 && strcmp(line, "go") != 0)) {
                rc = 0;
                goto out;
            }
            if (l == 1)
                break;
        }
    } else if (w->role != R_SUB && w->role != R_REP && await_cmd(w, lb, "go") != 0) {
        rc = 0;
        goto out;
    }
    switch (w->role) {
    case R_PUSH:
    case R_PUB:
        for (long i = 0; i < w->count; i++)
            if (zmq_send(sock, sb.data, plen, 0) != (int) plen) {
                wfail(w, "send %ld of %ld: %s", i + 1, w->count, zmq_strerror(zmq_errno()));
                goto out;
            }
        say(w->out_fd, "done %ld", w->count);
        break;
    case R_SUB:
        while (res.count < w->count) {
            if (zmq_msg_recv(&msg, sock, 0) < 0) {
                if (zmq_errno() == EAGAIN) {
                    res.stalled = 1;
                    break;
                }
                wfail(w, "recv: %s", zmq_strerror(zmq_errno()));
                goto out;
            }
            int64_t t = now_ns();
            const char *p = zmq_msg_data(&msg);
            if (zmq_msg_size(&msg) == PROBE_SIZE && p[0] == 'P')
                continue;
            if (zmq_msg_size(&msg) == plen && payload_ok(p + plen - w->size, w->size, w->size)) {
                if (res.count++ == 0)
                    res.first = t;
                res.last = t;
            } else
                res.bad++;
        }
        report(w, &res);
        break;
    case R_REQ:
    case R_REP: {
        long total = w->warmup + w->count;
        for (long i = 0; i < total; i++) {
            int64_t t0 = now_ns();
            bool ok = true;
            if (w->role == R_REQ)
                ok = zmq_send(sock, sb.data, plen, 0) == (int) plen;
            ok = ok && zmq_msg_recv(&msg, sock, 0) >= 0;
            if (ok && (zmq_msg_size(&msg) != plen
                       || !payload_ok((const char *) zmq_msg_data(&msg) + plen - w->size, w->size, w->size))) {
                wfail(w, "round trip %ld: bad payload", i + 1);
                goto out;
            }
            if (ok && w->role == R_REP)
                ok = zmq_msg_send(&msg, sock, 0) >= 0; // echo the received message as it is
            if (!ok) {
                wfail(w, "round trip %ld of %ld: %s", i + 1, total, zmq_strerror(zmq_errno()));
                goto out;
            }
            int64_t t1 = now_ns();
            if (w->role == R_REQ && i >= w->warmup) {
                if (i == w->warmup)
                    res.first = t0;
                res.last = t1;
                rtt[res.count++] = t1 - t0;
            }
        }
        if (w->role == R_REQ) {
            latency_stats(rtt, res.count, &res);
            report(w, &res);
        } else
            say(w->out_fd, "done %ld", total);
        break;
    }
    default: break;
    }
    rc = await_cmd(w, lb, "quit") == 0 ? 0 : wfail(w, "no quit from the coordinator");
out:
    free(rtt);
    zmq_msg_close(&msg);
    msgpack_sbuffer_destroy(&sb);
    if (sock)
        zmq_close(sock);
    if (ctx && !w->rctx)
        zmq_ctx_term(ctx);
    return rc;
}

// --- nng workers (the same jobs as the raw libzmq ones, with nng's sockets)

#ifdef ZCHAN_PERF_NNG
//  Opens the socket for the role and sets what is tuned: queues of nng_buf
//  messages each way (as far as the protocol has them), no receive size
//  limit (nng's default of 1 MiB would refuse a 1 MiB payload plus its
//  msgpack header), and the stall timeout on sends and receives.
static int nng_open_role(worker_t *w, nng_socket *sock)
{
    int rc;
    switch (w->role) {
    case R_NPUSH: rc = nng_push0_open(sock); break;
    case R_NPULL: rc = nng_pull0_open(sock); break;
    case R_NPUB: rc = nng_pub0_open(sock); break;
    case R_NSUB: rc = nng_sub0_open(sock); break;
    case R_NREQ: rc = nng_req0_open(sock); break;
    default: rc = nng_rep0_open(sock); break;
    }
    if (rc != 0)
        return wfail(w, "nng open: %s", nng_strerror(rc));
    bool sends = w->role == R_NPUSH || w->role == R_NPUB;
    bool recvs = w->role == R_NPULL || w->role == R_NSUB;
    if (sends && (rc = nng_socket_set_int(*sock, NNG_OPT_SENDBUF, w->nng_buf)) != 0)
        return wfail(w, "nng %s: %s", NNG_OPT_SENDBUF, nng_strerror(rc));
    if (recvs && (rc = nng_socket_set_int(*sock, NNG_OPT_RECVBUF, w->nng_buf)) != 0)
        return wfail(w, "nng %s: %s", NNG_OPT_RECVBUF, nng_strerror(rc));
    if ((rc = nng_socket_set_size(*sock, NNG_OPT_RECVMAXSZ, 0)) != 0)
        return wfail(w, "nng %s: %s", NNG_OPT_RECVMAXSZ, nng_strerror(rc));
    nng_socket_set_ms(*sock, NNG_OPT_SENDTIMEO, w->stall_ms);
    nng_socket_set_ms(*sock, NNG_OPT_RECVTIMEO, w->stall_ms);
    if (w->role == R_NSUB && (rc = nng_socket_set(*sock, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0)
        return wfail(w, "nng subscribe: %s", nng_strerror(rc));
    return 0;
}

//  Listens on w->ep (the bound URL, with the kernel's port for tcp, goes to
//  bound), or dials every URL of the comma list w->ep, waiting for each.
static int nng_attach(worker_t *w, nng_socket sock, char *bound, size_t n)
{
    int rc;
    bound[0] = 0;
    if (w->bind) {
        nng_listener l;
        if ((rc = nng_listen(sock, w->ep, &l, 0)) != 0)
            return wfail(w, "listen %s: %s", w->ep, nng_strerror(rc));
        if (strncmp(w->ep, "tcp://", 6) == 0) {
            int port = 0;
            if ((rc = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port)) != 0)
                return wfail(w, "%s: %s", NNG_OPT_TCP_BOUND_PORT, nng_strerror(rc));
            snprintf(bound, n, "tcp://127.0.0.1:%d", port);
        } else
            copy_str(bound, n, w->ep);
        return 0;
    }
    char eps[sizeof w->ep];
    snprintf(eps, sizeof eps, "%s", w->ep);
    char *save = NULL;
    for (char *ep = strtok_r(eps, ",", &save); ep; ep = strtok_r(NULL, ",", &save))
        if ((rc = nng_dial(sock, ep, NULL, 0)) != 0)
            return wfail(w, "dial %s: %s", ep, nng_strerror(rc));
    return 0;
}

//  nng pull and sub: as raw_pull, waiting on NNG_OPT_RECVFD and the command
//  pipe. A sub (w->count > 0) skips probes and reports as soon as it has
//  w->count messages; nng's pub/sub drops when its queues are full, so it
//  also reports when told to drain (after a quiet spell), to show the loss
//  instead of stalling.
static int nng_pull(worker_t *w, linebuf_t *lb, nng_socket sock, size_t plen)
{
    result_t res = {0};
    bool sub = w->role == R_NSUB, reported = false;
    int idle_ms = -1; // >= 0 while draining
    int64_t idle_since = 0;
    int rfd = -1, rc = nng_socket_get_int(sock, NNG_OPT_RECVFD, &rfd);
    if (rc != 0)
        return wfail(w, "%s: %s", NNG_OPT_RECVFD, nng_strerror(rc));
    while (true) {
        struct pollfd items[2] = {{rfd, POLLIN, 0}, {lb->fd, POLLIN, 0}};
        bool draining = idle_ms >= 0;
        int prc = poll(items, 2, draining ? 10 : w->phase_ms);
        if (prc < 0 && errno != EINTR)
            return wfail(w, "poll: %s", strerror(errno));
        if (items[0].revents & POLLIN) {
            nng_msg *m;
            while (nng_recvmsg(sock, &m, NNG_FLAG_NONBLOCK) == 0) {
                int64_t t = now_ns();
                const char *p = nng_msg_body(m);
                if (sub && nng_msg_len(m) == PROBE_SIZE && p[0] == 'P')
                    ; // a publisher's probe: not data
                else if (nng_msg_len(m) == plen && payload_ok(p + plen - w->size, w->size, w->size)) {
                    if (res.count++ == 0)
                        res.first = t;
                    res.last = t;
                } else
                    res.bad++;
                nng_msg_free(m);
                idle_since = t;
            }
            if (sub && !reported && res.count >= w->count) {
                report(w, &res);
                reported = true;
            }
        }
        if (items[1].revents & (POLLIN | POLLERR | POLLHUP)) {
            char line[128];
            if (line_fill(lb) != 0 && !memchr(lb->buf, '\n', lb->len))
                break;
            while (line_take(lb, line, sizeof line)) {
                if (strcmp(line, "drain") == 0 && !reported) {
                    idle_ms = 50;
                    idle_since = now_ns();
                } else if (strcmp(line, "quit") == 0)
                    return 0;
            }
        }
        if (idle_ms >= 0 && now_ns() - idle_since >= (int64_t) idle_ms * 1000000) {
            report(w, &res);
            idle_ms = -1;
        }
        if (prc == 0 && !draining)
            return wfail(w, "no command from the coordinator");
    }
    return 0; // EOF: the coordinator gave up
}

static int nng_worker(worker_t *w, linebuf_t *lb, char *payload)
{
    nng_socket sock = NNG_SOCKET_INITIALIZER;
    bool open = false;
    int64_t *rtt = NULL;
    int rc = 1, e;
    result_t res = {0};
    char bound[256];
    //  The same bytes as a zchan message: a msgpack bin of size bytes.
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_bin(&pk, w->size);
    msgpack_pack_bin_body(&pk, payload, w->size);
    const size_t plen = sb.size;
    nng_msg *m = NULL;

    if (nng_open_role(w, &sock) != 0)
        goto out;
    open = true;
    if (nng_attach(w, sock, bound, sizeof bound) != 0)
        goto out;
    if (w->role == R_NREQ && !(rtt = malloc(sizeof *rtt * (size_t) (w->count > 0 ? w->count : 1)))) {
        wfail(w, "out of memory");
        goto out;
    }
    if (w->role == R_NSUB) {
        //  Ready once a probe from every publisher came through.
        bool seen[MAX_PEERS] = {false};
        int nseen = 0;
        while (nseen < w->peers) {
            if ((e = nng_recvmsg(sock, &m, 0)) != 0) {
                wfail(w, "no probe from %d publishers: %s", w->peers - nseen, nng_strerror(e));
                goto out;
            }
            const unsigned char *p = nng_msg_body(m);
            if (nng_msg_len(m) == PROBE_SIZE && p[0] == 'P') {
                uint32_t id;
                memcpy(&id, p + 1, 4);
                if (id < MAX_PEERS && !seen[id]) {
                    seen[id] = true;
                    nseen++;
                }
            }
            nng_msg_free(m);
            m = NULL;
        }
    }
    if (w->bind)
        say(w->out_fd, "ready %s", bound);
    else
        say(w->out_fd, "ready");

    if (w->role == R_NPULL || w->role == R_NSUB) {
        rc = nng_pull(w, lb, sock, plen);
        goto out;
    }
    if (w->role == R_NPUB) {
        unsigned char probe[PROBE_SIZE] = {'P'};
        uint32_t id = (uint32_t) w->id;
        memcpy(probe + 1, &id, 4);
        while (true) {
            nng_send(sock, probe, sizeof probe, NNG_FLAG_NONBLOCK);
            char line[128];
            int l = line_read(lb, line, sizeof line, 1);
            if (l < 0 || (l == 1 && strcmp(line, "go") != 0)) {
                rc = 0;
                goto out;
            }
            if (l == 1)
                break;
        }
    } else if (w->role != R_NSUB && w->role != R_NREP && await_cmd(w, lb, "go") != 0) {
        rc = 0;
        goto out;
    }
    switch (w->role) {
    case R_NPUSH:
    case R_NPUB:
        for (long i = 0; i < w->count; i++)
            if ((e = nng_send(sock, sb.data, plen, 0)) != 0) {
                wfail(w, "send %ld of %ld: %s", i + 1, w->count, nng_strerror(e));
                goto out;
            }
        say(w->out_fd, "done %ld", w->count);
        break;
    case R_NREQ:
    case R_NREP: {
        long total = w->warmup + w->count;
        for (long i = 0; i < total; i++) {
            int64_t t0 = now_ns();
            e = 0;
            if (w->role == R_NREQ)
                e = nng_send(sock, sb.data, plen, 0);
            if (e == 0)
                e = nng_recvmsg(sock, &m, 0);
            if (e == 0 && (nng_msg_len(m) != plen
                           || !payload_ok((const char *) nng_msg_body(m) + plen - w->size, w->size, w->size))) {
                wfail(w, "round trip %ld: bad payload", i + 1);
                goto out;
            }
            if (e == 0 && w->role == R_NREP) {
                e = nng_sendmsg(sock, m, 0); // echo the received message as it is; takes m
                if (e == 0)
                    m = NULL;
            }
            if (m) {
                nng_msg_free(m);
                m = NULL;
            }
            if (e != 0) {
                wfail(w, "round trip %ld of %ld: %s", i + 1, total, nng_strerror(e));
                goto out;
            }
            int64_t t1 = now_ns();
            if (w->role == R_NREQ && i >= w->warmup) {
                if (i == w->warmup)
                    res.first = t0;
                res.last = t1;
                rtt[res.count++] = t1 - t0;
            }
        }
        if (w->role == R_NREQ) {
            latency_stats(rtt, res.count, &res);
            report(w, &res);
        } else
            say(w->out_fd, "done %ld", total);
        break;
    }
    default: break;
    }
    rc = await_cmd(w, lb, "quit") == 0 ? 0 : wfail(w, "no quit from the coordinator");
out:
    free(rtt);
    if (m)
        nng_msg_free(m);
    msgpack_sbuffer_destroy(&sb);
    if (open)
        nng_close(sock);
    return rc;
}
#endif

static int worker_run(worker_t *w)
{
    linebuf_t lb = {.fd = w->in_fd};
    char *payload = malloc(w->size ? w->size : 1);
    if (!payload)
        return wfail(w, "out of memory");
    put_payload(payload, w->size);
    int rc;
    if (w->role <= R_ZPONG)
        rc = zchan_worker(w, &lb, payload);
    else if (w->role <= R_REP)
        rc = raw_worker(w, &lb, payload);
    else {
#ifdef ZCHAN_PERF_NNG
        rc = nng_worker(w, &lb, payload);
#else
        rc = wfail(w, "nng is not compiled into this zchan-perf");
#endif
    }
    free(payload);
    return rc;
}

static void *worker_thread(void *arg)
{
    worker_t *w = (worker_t *) arg;
    w->status = worker_run(w);
    close(w->in_fd);
    close(w->out_fd);
    return NULL;
}

//  The entry point of a worker process: zchan-perf --role NAME --key value...
static int worker_main(int argc, char **argv)
{
    worker_t w = {.in_fd = WORKER_IN_FD, .out_fd = WORKER_OUT_FD, .stall_ms = 10000, .phase_ms = 120000};
    long parent = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--role")) {
            for (int r = 1; r < R_N; r++)
                if (!strcmp(v, role_names[r]))
                    w.role = (role_t) r;
        } else if (!strcmp(k, "--ep"))
            snprintf(w.ep, sizeof w.ep, "%s", v);
        else if (!strcmp(k, "--ep2"))
            snprintf(w.ep2, sizeof w.ep2, "%s", v);
        else if (!strcmp(k, "--bind"))
            w.bind = atoi(v) != 0;
        else if (!strcmp(k, "--size"))
            w.size = (size_t) strtoull(v, NULL, 10);
        else if (!strcmp(k, "--count"))
            w.count = atol(v);
        else if (!strcmp(k, "--warmup"))
            w.warmup = atol(v);
        else if (!strcmp(k, "--host"))
            w.host = atoi(v);
        else if (!strcmp(k, "--capacity"))
            w.capacity = atol(v);
        else if (!strcmp(k, "--id"))
            w.id = atoi(v);
        else if (!strcmp(k, "--peers"))
            w.peers = atoi(v);
        else if (!strcmp(k, "--limit"))
            w.limit = atol(v);
        else if (!strcmp(k, "--nngbuf"))
            w.nng_buf = atoi(v);
        else if (!strcmp(k, "--stall"))
            w.stall_ms = atoi(v);
        else if (!strcmp(k, "--phase"))
            w.phase_ms = atoi(v);
        else if (!strcmp(k, "--parent"))
            parent = atol(v);
    }
    //  Die with the coordinator, whatever happens to it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent && getppid() != (pid_t) parent)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    if (w.role == R_NONE || fcntl(w.in_fd, F_GETFD) < 0 || fcntl(w.out_fd, F_GETFD) < 0) {
        fprintf(stderr, "zchan-perf: --role is internal: the coordinator starts workers with it\n");
        return 2;
    }
    //  Library logging to stdout would go to the coordinator's results.
    dup2(STDERR_FILENO, STDOUT_FILENO);
    return worker_run(&w);
}

// ---------------------------------------------------------------------------
// The coordinator: options

typedef struct {
    bool workloads[WL_N];
    bool transports[TR_N];
    size_t sizes[MAX_SIZES];
    int nsizes;
    long count;     // 0: default by size and workload
    int senders, receivers;
    size_t capacity;
    bool pp_hub;    // pingpong: both channels in the coordinator's hub (else each side hosts its own)
    int repeat;
    long warmup;    // -1: default
    long limit;     // zchan broadcast receiver limit; 0: the count (lossless)
    baseline_t baseline;
    bool run[IMPL_N];  // the implementations to measure
    int nng_buf;       // nng queues, in messages
    bool csv;
    bool verbose;
    int stall_ms;
    int timeout_s;
} options_t;

static void usage(FILE *f)
{
    fprintf(f,
"Usage: zchan-perf [OPTION]...\n"
"Measures zchan channels against raw libzmq, in the same run, on this host.\n"
"The channels live in the hub of this process; every sender and receiver is a\n"
"worker that attaches to them (see --baseline for the raw side).\n"
"\n"
"Workloads and shapes:\n"
"  -w, --workload W     anycast, broadcast, pingpong or all; a comma list, or\n"
"                       repeat the option (default: all)\n"
"                         anycast:   S senders -> 1 anycast channel -> R receivers;\n"
"                                    raw: PUSH/PULL\n"
"                         broadcast: S senders -> 1 broadcast channel -> R receivers,\n"
"                                    each gets every message; raw: PUB/SUB\n"
"                         pingpong:  round trips over two anycast channels;\n"
"                                    raw: REQ/REP\n"
"  -s, --senders S      senders for anycast and broadcast (default 1)\n"
"  -r, --receivers R    receivers for anycast and broadcast (default 2)\n"
"  -t, --transport T    inproc, ipc, tcp or all; a comma list, or repeat\n"
"                       (default: all). inproc runs workers as threads of one\n"
"                       process; ipc and tcp run each worker as a process.\n"
"                       tcp listens on 127.0.0.1 only, on ports the kernel picks.\n"
"      --size N         message payload in bytes; repeatable; K and M suffixes\n"
"                       (1024-based) are accepted\n"
"      --sizes LIST     comma list of sizes, or \"all\" for 16,1K,64K,1M (default)\n"
"  -n, --count N        messages per run, over all senders (anycast, broadcast),\n"
"                       or measured round trips (pingpong). Default by size:\n"
"                       anycast and broadcast 40000 (<=64 B), 30000 (<=1 KiB),\n"
"                       5000 (<=64 KiB), 300 (<=1 MiB), then 300 MiB/size;\n"
"                       pingpong 2000 (<=1 KiB), 1000 (<=64 KiB), 100\n"
"      --warmup N       pingpong round trips before the measured ones (default\n"
"                       count/10, at least 10)\n"
"      --capacity N     anycast channel capacity (default %d, the library default)\n"
"      --pp-host H      pingpong's zchan channels: peers (default): each side\n"
"                       hosts the channel it receives on and sends the other a\n"
"                       reference to it, as a request/reply pair would; hub:\n"
"                       both in the coordinator's hub (two hops each way)\n"
"      --limit N        zchan broadcast receiver limit (default: the count, so a\n"
"                       slow receiver loses nothing; the library default is %d).\n"
"                       A smaller limit lets the hub drop, and the run then fails\n"
"                       as lossy\n"
"\n"
"Baseline:\n"
"      --baseline B     proxy (default): raw sockets through a zmq_proxy in the\n"
"                       coordinator, the same two hops as zchan's hub;\n"
"                       direct: raw sockets connected to each other, one hop\n"
"      --impl LIST      the implementations to run, a comma list of zchan, raw\n"
"                       and nng; \"both\" is zchan,raw; \"all\" (default) is every\n"
"                       one compiled in (nng: %s). Ratios need zchan in the list\n"
"      --nng-buf N      nng's NNG_OPT_SENDBUF and NNG_OPT_RECVBUF, in messages\n"
"                       (default %d, nng's maximum: its pub/sub drops when they\n"
"                       are full). nng runs the same shape as raw (proxy:\n"
"                       threads forwarding between raw-mode sockets)\n"
"      --repeat N       run each case N times, the implementations in rotating\n"
"                       order, and report medians; each ratio is the median of\n"
"                       the N per-run ratios (default 1)\n"
"\n"
"Output and limits:\n"
"      --csv            CSV with a header row instead of the table\n"
"  -v, --verbose        progress on stderr\n"
"      --stall-ms MS    a worker that makes no progress for MS fails (default 10000)\n"
"      --timeout S      a case that takes longer than S seconds fails (default 300)\n"
"  -h, --help           this help\n"
"\n"
"Internal: --role NAME (and its arguments) runs one worker; the coordinator\n"
"re-executes itself with it for ipc and tcp.\n"
"\n"
"Time runs on CLOCK_MONOTONIC from the start barrier (every worker attached,\n"
"then \"go\") to the last receipt; msgs/s counts messages received (a broadcast\n"
"to R receivers counts R). MB/s is payload bytes (10^6) per second; pingpong\n"
"counts both directions; rt/s is round trips per second. ratio = zchan msgs/s\n"
"/ raw (or nng) msgs/s, or rt/s for pingpong (> 1: zchan faster).\n"
"A lost, duplicated or damaged message fails its case: the row says so, stderr\n"
"says so, and the exit status is 1.\n",
            ZCHAN_ANYCAST_CAPACITY, ZCHAN_BROADCAST_LIMIT, HAVE_NNG ? "compiled in" : "not compiled in",
            NNG_BUF_DEFAULT);
}

static bool parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    if (*end == 'k' || *end == 'K')
        v *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1024 * 1024, end++;
    if (*end == 'i' && end[1] == 'B')
        end += 2;
    else if (*end == 'B')
        end++;
    if (*end || v > (1ULL << 30))
        return false;
    *out = (size_t) v;
    return true;
}

static bool parse_list(const char *arg, const char *const *names, int n, bool *set)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool found = false;
        for (int i = 0; i < n; i++)
            if (!strcmp(t, names[i]) || !strcmp(t, "all")) {
                set[i] = true;
                found = true;
            }
        if (!found)
            return false;
    }
    return true;
}

static int parse_options(int argc, char **argv, options_t *o)
{
    static const struct option longs[] = {
        {"workload", required_argument, NULL, 'w'}, {"senders", required_argument, NULL, 's'},
        {"receivers", required_argument, NULL, 'r'}, {"transport", required_argument, NULL, 't'},
        {"size", required_argument, NULL, 'S'},     {"sizes", required_argument, NULL, 'Z'},
        {"count", required_argument, NULL, 'n'},    {"warmup", required_argument, NULL, 'W'},
        {"capacity", required_argument, NULL, 'C'}, {"baseline", required_argument, NULL, 'B'},
        {"limit", required_argument, NULL, 'L'},    {"pp-host", required_argument, NULL, 'P'},
        {"impl", required_argument, NULL, 'I'},     {"repeat", required_argument, NULL, 'R'},
        {"nng-buf", required_argument, NULL, 'N'},
        {"csv", no_argument, NULL, 'c'},            {"verbose", no_argument, NULL, 'v'},
        {"stall-ms", required_argument, NULL, 'T'}, {"timeout", required_argument, NULL, 'O'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->senders = 1;
    o->receivers = 2;
    o->capacity = ZCHAN_ANYCAST_CAPACITY;
    o->repeat = 1;
    o->warmup = -1;
    o->run[IMPL_ZCHAN] = o->run[IMPL_RAW] = true;
    o->run[IMPL_NNG] = HAVE_NNG;
    o->nng_buf = NNG_BUF_DEFAULT;
    o->stall_ms = 10000;
    o->timeout_s = 300;
    bool any_wl = false, any_tr = false;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "w:s:r:t:n:vh", longs, NULL)) != -1) {
        switch (c) {
        case 'w':
            if (!parse_list(optarg, wl_names, WL_N, o->workloads))
                goto bad;
            any_wl = true;
            break;
        case 't':
            if (!parse_list(optarg, tr_names, TR_N, o->transports))
                goto bad;
            any_tr = true;
            break;
        case 's':
        case 'r':
            if (!parse_long(optarg, 1, MAX_PEERS, &v))
                goto bad;
            *(c == 's' ? &o->senders : &o->receivers) = (int) v;
            break;
        case 'S':
            if (o->nsizes == MAX_SIZES || !parse_size(optarg, &o->sizes[o->nsizes]))
                goto bad;
            o->nsizes++;
            break;
        case 'Z': {
            if (!strcmp(optarg, "all")) {
                const size_t all[] = {16, 1024, 65536, 1048576};
                for (int i = 0; i < 4 && o->nsizes < MAX_SIZES; i++)
                    o->sizes[o->nsizes++] = all[i];
                break;
            }
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o->nsizes == MAX_SIZES || !parse_size(t, &o->sizes[o->nsizes]))
                    goto bad;
                o->nsizes++;
            }
            break;
        }
        case 'n':
            if (!parse_long(optarg, 1, 100000000, &o->count))
                goto bad;
            break;
        case 'W':
            if (!parse_long(optarg, 0, 10000000, &o->warmup))
                goto bad;
            break;
        case 'C':
            if (!parse_long(optarg, 0, 1000000, &v))
                goto bad;
            o->capacity = (size_t) v;
            break;
        case 'P':
            if (!strcmp(optarg, "hub"))
                o->pp_hub = true;
            else if (!strcmp(optarg, "peers"))
                o->pp_hub = false;
            else
                goto bad;
            break;
        case 'L':
            if (!parse_long(optarg, 1, 1L << 24, &o->limit))
                goto bad;
            break;
        case 'B':
            if (!strcmp(optarg, "proxy"))
                o->baseline = BL_PROXY;
            else if (!strcmp(optarg, "direct"))
                o->baseline = BL_DIRECT;
            else
                goto bad;
            break;
        case 'I': {
            //  A comma list of zchan, raw and nng; "both" is zchan,raw and
            //  "all" is every implementation compiled in.
            bool set[IMPL_N] = {false};
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                bool found = false;
                for (int i = 0; i < IMPL_N; i++)
                    if (!strcmp(t, impl_names[i]) || !strcmp(t, "all")
                        || (!strcmp(t, "both") && i != IMPL_NNG)) {
                        if (i == IMPL_NNG && !HAVE_NNG && strcmp(t, "nng") == 0) {
                            fprintf(stderr, "zchan-perf: nng is not compiled in (build with libnng-dev "
                                            "installed, ZCHAN_PERF_NNG=ON)\n");
                            return -1;
                        }
                        if (i != IMPL_NNG || HAVE_NNG)
                            set[i] = true;
                        found = true;
                    }
                if (!found)
                    goto bad;
            }
            memcpy(o->run, set, sizeof set);
            break;
        }
        case 'N':
            if (!parse_long(optarg, 1, 8192, &v))
                goto bad;
            o->nng_buf = (int) v;
            break;
        case 'R':
            if (!parse_long(optarg, 1, 100, &v))
                goto bad;
            o->repeat = (int) v;
            break;
        case 'T':
            if (!parse_long(optarg, 100, 3600000, &v))
                goto bad;
            o->stall_ms = (int) v;
            break;
        case 'O':
            if (!parse_long(optarg, 1, 86400, &v))
                goto bad;
            o->timeout_s = (int) v;
            break;
        case 'c': o->csv = true; break;
        case 'v': o->verbose = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        continue;
    bad:
        for (const struct option *l = longs; l->name; l++)
            if (l->val == c)
                fprintf(stderr, "zchan-perf: bad value for --%s: '%s' (see --help)\n", l->name, optarg);
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "zchan-perf: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!any_wl)
        for (int i = 0; i < WL_N; i++)
            o->workloads[i] = true;
    if (!any_tr)
        for (int i = 0; i < TR_N; i++)
            o->transports[i] = true;
    if (o->nsizes == 0) {
        const size_t all[] = {16, 1024, 65536, 1048576};
        for (int i = 0; i < 4; i++)
            o->sizes[o->nsizes++] = all[i];
    }
    return 0;
}

static long default_count(workload_t wl, size_t size)
{
    if (wl == WL_PINGPONG)
        return size <= 1024 ? 2000 : size <= 65536 ? 1000 : 100;
    if (size <= 64)
        return 40000;
    if (size <= 1024)
        return 30000;
    if (size <= 65536)
        return 5000;
    if (size <= 1048576)
        return 300;
    long n = (long) ((300UL << 20) / size);
    return n < 20 ? 20 : n;
}

// ---------------------------------------------------------------------------
// The coordinator: workers

typedef struct {
    worker_t w;
    bool is_thread, started;
    pid_t pid;
    pthread_t thread;
    int to_fd;
    linebuf_t from;
    char line[LINE_MAX_]; // the last report collected
} child_t;

#define MAX_KIDS (2 * MAX_PEERS + 2)

static int child_start(child_t *c, const worker_t *w, bool thread, char *err, size_t errn)
{
    int down[2], up[2];
    memset(c, 0, sizeof *c);
    c->to_fd = c->from.fd = -1;
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
    c->w = *w;
    c->to_fd = down[1];
    c->from.fd = up[0];
    c->is_thread = thread;
    int rc;
    if (thread) {
        c->w.in_fd = down[0];
        c->w.out_fd = up[1];
        rc = pthread_create(&c->thread, NULL, worker_thread, &c->w);
        if (rc != 0) {
            close(down[0]);
            close(up[1]);
        }
    } else {
        //  The worker's parameters as "--key value" pairs.
        enum { NKEYS = 16 };
        char vals[NKEYS][sizeof w->ep + 1];
        const char *keys[NKEYS] = {"--role",  "--ep",    "--ep2",   "--bind",  "--size",
                                   "--count", "--warmup", "--id",   "--peers", "--limit",
                                   "--stall", "--phase", "--parent", "--nngbuf", "--host", "--capacity"};
        snprintf(vals[0], sizeof vals[0], "%s", role_names[w->role]);
        snprintf(vals[1], sizeof vals[1], "%s", w->ep);
        snprintf(vals[2], sizeof vals[2], "%s", w->ep2);
        snprintf(vals[3], sizeof vals[3], "%d", w->bind);
        snprintf(vals[4], sizeof vals[4], "%zu", w->size);
        snprintf(vals[5], sizeof vals[5], "%ld", w->count);
        snprintf(vals[6], sizeof vals[6], "%ld", w->warmup);
        snprintf(vals[7], sizeof vals[7], "%d", w->id);
        snprintf(vals[8], sizeof vals[8], "%d", w->peers);
        snprintf(vals[9], sizeof vals[9], "%ld", w->limit);
        snprintf(vals[10], sizeof vals[10], "%d", w->stall_ms);
        snprintf(vals[11], sizeof vals[11], "%d", w->phase_ms);
        snprintf(vals[12], sizeof vals[12], "%ld", (long) getpid());
        snprintf(vals[13], sizeof vals[13], "%d", w->nng_buf);
        snprintf(vals[14], sizeof vals[14], "%d", w->host);
        snprintf(vals[15], sizeof vals[15], "%ld", w->capacity);
        char *argv[2 * NKEYS + 2];
        int n = 0;
        argv[n++] = g_self;
        for (int i = 0; i < NKEYS; i++) {
            argv[n++] = (char *) keys[i];
            argv[n++] = vals[i];
        }
        argv[n] = NULL;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, down[0], WORKER_IN_FD);
        posix_spawn_file_actions_adddup2(&fa, up[1], WORKER_OUT_FD);
        rc = posix_spawn(&c->pid, g_self, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc == 0)
            pid_track(c->pid, true);
        close(down[0]);
        close(up[1]);
    }
    if (rc != 0) {
        snprintf(err, errn, "cannot start a %s worker: %s", role_names[w->role], strerror(rc));
        close(c->to_fd);
        close(c->from.fd);
        c->to_fd = c->from.fd = -1;
        return -1;
    }
    c->started = true;
    return 0;
}

//  Ends a worker: closes its pipes and joins or reaps it (killing a process
//  that has not exited after grace_ms). Returns its exit status.
static int child_finish(child_t *c, int grace_ms)
{
    if (!c->started)
        return 0;
    int status = 0;
    if (c->to_fd >= 0)
        close(c->to_fd);
    c->to_fd = -1;
    if (c->is_thread) {
        pthread_join(c->thread, NULL);
        status = c->w.status;
    } else {
        int64_t deadline = now_ns() + (int64_t) grace_ms * 1000000;
        int ws = 0;
        pid_t r;
        while ((r = waitpid(c->pid, &ws, WNOHANG)) == 0 && now_ns() < deadline)
            sleep_ms(5);
        if (r == 0) {
            kill(c->pid, SIGKILL);
            while (waitpid(c->pid, &ws, 0) < 0 && errno == EINTR)
                ;
            status = 1;
        } else if (r < 0)
            status = 1;
        else
            status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
        pid_track(c->pid, false);
    }
    if (c->from.fd >= 0)
        close(c->from.fd);
    c->from.fd = -1;
    c->started = false;
    return status;
}

static void kids_abort(child_t *kids, int n)
{
    for (int i = 0; i < n; i++)
        if (kids[i].started && !kids[i].is_thread)
            kill(kids[i].pid, SIGKILL);
    for (int i = 0; i < n; i++)
        child_finish(&kids[i], 1000);
}

static int kids_say(child_t *kids, int n, const char *cmd)
{
    for (int i = 0; i < n; i++)
        if (kids[i].started && say(kids[i].to_fd, "%s", cmd) != 0)
            return -1;
    return 0;
}

//  Waits until each of kids[0..n) has reported a line starting with prefix
//  (stored in its line). An "error" report, an exit or the deadline fails.
static int collect(child_t *kids, int n, const char *prefix, int64_t deadline, char *err, size_t errn)
{
    bool got[MAX_KIDS] = {false};
    int left = n;
    size_t plen = strlen(prefix);
    while (left > 0) {
        struct pollfd pfd[MAX_KIDS];
        int idx[MAX_KIDS], np = 0;
        for (int i = 0; i < n; i++) {
            if (got[i])
                continue;
            char line[LINE_MAX_];
            while (!got[i] && line_take(&kids[i].from, line, sizeof line)) {
                if (!strncmp(line, "error ", 6)) {
                    copy_str(err, errn, line + 6);
                    return -1;
                }
                if (!strncmp(line, prefix, plen) && (line[plen] == 0 || line[plen] == ' ')) {
                    copy_str(kids[i].line, sizeof kids[i].line, line);
                    got[i] = true;
                    left--;
                }
            }
            if (got[i])
                continue;
            if (kids[i].from.eof) {
                snprintf(err, errn, "%s worker %d ended before reporting '%s'", role_names[kids[i].w.role],
                         kids[i].w.id, prefix);
                return -1;
            }
            pfd[np] = (struct pollfd){kids[i].from.fd, POLLIN, 0};
            idx[np++] = i;
        }
        if (left == 0)
            break;
        if (g_stop) {
            snprintf(err, errn, "interrupted");
            return -1;
        }
        if (now_ns() > deadline) {
            snprintf(err, errn, "timed out waiting for '%s' from %d worker(s)", prefix, left);
            return -1;
        }
        int rc = poll(pfd, (nfds_t) np, 100);
        if (rc < 0 && errno != EINTR) {
            snprintf(err, errn, "poll: %s", strerror(errno));
            return -1;
        }
        for (int k = 0; k < np && rc > 0; k++)
            if (pfd[k].revents)
                line_fill(&kids[idx[k]].from);
    }
    return 0;
}

static bool parse_result(const char *line, result_t *r)
{
    memset(r, 0, sizeof *r);
    return sscanf(line, "result %ld %" SCNd64 " %" SCNd64 " %" SCNu64 " %ld %d %" SCNd64 " %" SCNd64 " %" SCNd64,
                  &r->count, &r->first, &r->last, &r->dropped, &r->bad, &r->stalled, &r->p50, &r->p99, &r->max)
           == 9;
}

// ---------------------------------------------------------------------------
// The coordinator: one run

typedef struct {
    bool ok;
    char err[512];
    long received;
    double elapsed_s;
    double msgs_per_s, mb_per_s;
    double p50_us, p99_us, max_us;
} run_t;

typedef struct {
    const options_t *o;
    workload_t wl;
    transport_t tr;
    size_t size;
    long count;
    long warmup;
    zchan_ctx_t *zctx;     // the coordinator's: hosts the channels
    const char *tcp_hub;   // its tcp endpoint
    void *rctx;            // raw libzmq context of the coordinator
} case_t;

static int g_seq;

static worker_t worker_base(const case_t *k, role_t role, int id)
{
    worker_t w = {0};
    w.role = role;
    w.size = k->size;
    w.id = id;
    w.stall_ms = k->o->stall_ms;
    w.phase_ms = k->o->timeout_s * 1000;
    if (k->tr == TR_INPROC) {
        w.zctx = k->zctx;
        w.rctx = k->rctx;
    }
    return w;
}

static long share(long total, int n, int i)
{
    return total / n + (i < total % n ? 1 : 0);
}

//  Checks the results of a throughput run and fills the rates.
static void throughput(const case_t *k, child_t *rx, int nrx, int64_t t0, long expect_each, long expect_all,
                       run_t *run)
{
    long sum = 0;
    int64_t last = t0;
    for (int i = 0; i < nrx; i++) {
        result_t r;
        if (!parse_result(rx[i].line, &r)) {
            snprintf(run->err, sizeof run->err, "malformed report '%.200s'", rx[i].line);
            return;
        }
        if (r.bad || r.dropped || (expect_each >= 0 && r.count != expect_each)) {
            char of[32] = "";
            if (expect_each >= 0)
                snprintf(of, sizeof of, " of %ld", expect_each);
            snprintf(run->err, sizeof run->err, "LOSS: receiver %d got %ld%s messages (%ld damaged, %" PRIu64
                     " dropped%s)", i, r.count, of, r.bad, r.dropped, r.stalled ? ", stalled" : "");
            return;
        }
        sum += r.count;
        if (r.count && r.last > last)
            last = r.last;
    }
    if (sum != expect_all) {
        snprintf(run->err, sizeof run->err, "%s: receivers got %ld messages, %ld were sent", sum < expect_all ? "LOSS" : "DUPLICATES", sum, expect_all);
        return;
    }
    run->received = sum;
    run->elapsed_s = (double) (last - t0) / 1e9;
    if (run->elapsed_s <= 0)
        run->elapsed_s = 1e-9;
    run->msgs_per_s = (double) sum / run->elapsed_s;
    run->mb_per_s = (double) sum * (double) k->size / run->elapsed_s / 1e6;
    run->ok = true;
}

static void latency(const case_t *k, const char *line, run_t *run)
{
    result_t r;
    if (!parse_result(line, &r) || r.count != k->count) {
        snprintf(run->err, sizeof run->err, "pinger reported '%.200s', expected %ld round trips", line, k->count);
        return;
    }
    run->received = r.count;
    run->elapsed_s = (double) (r.last - r.first) / 1e9;
    if (run->elapsed_s <= 0)
        run->elapsed_s = 1e-9;
    run->msgs_per_s = (double) r.count / run->elapsed_s;
    run->mb_per_s = 2.0 * (double) r.count * (double) k->size / run->elapsed_s / 1e6;
    run->p50_us = (double) r.p50 / 1e3;
    run->p99_us = (double) r.p99 / 1e3;
    run->max_us = (double) r.max / 1e3;
    run->ok = true;
}

static void chan_uri(const case_t *k, const char *what, char *out, size_t n)
{
    int seq = ++g_seq;
    if (k->tr == TR_INPROC)
        snprintf(out, n, "inproc://perf-%s-%d", what, seq);
    else if (k->tr == TR_IPC)
        snprintf(out, n, "ipc://perf-%s-%d-%d", what, (int) getpid(), seq);
    else
        snprintf(out, n, "%s/perf-%s-%d", k->tcp_hub, what, seq);
}

static void run_zchan(const case_t *k, run_t *run)
{
    const options_t *o = k->o;
    bool thread = k->tr == TR_INPROC;
    int64_t deadline = now_ns() + (int64_t) o->timeout_s * 1000000000;
    child_t *kids = calloc(MAX_KIDS, sizeof *kids);
    int nk = 0;
    char uri[256], uri2[256] = "";
    zchan_t *ch = NULL, *ch2 = NULL;
    char *err = run->err;
    size_t errn = sizeof run->err;
    if (!kids) {
        snprintf(err, errn, "out of memory");
        return;
    }

    if (k->wl == WL_PINGPONG) {
        chan_uri(k, "ping", uri, sizeof uri);
        chan_uri(k, "pong", uri2, sizeof uri2);
        ch = zchan_anycast_new(k->zctx, uri, o->capacity);
        ch2 = ch ? zchan_anycast_new(k->zctx, uri2, o->capacity) : NULL;
    } else {
        chan_uri(k, k->wl == WL_ANYCAST ? "any" : "bcast", uri, sizeof uri);
        ch = k->wl == WL_ANYCAST ? zchan_anycast_new(k->zctx, uri, o->capacity)
                                 : zchan_broadcast_new(k->zctx, uri, false);
    }
    if (!ch || (k->wl == WL_PINGPONG && !ch2)) {
        snprintf(err, errn, "cannot create channel %s: %s", uri, zchan_strerror(zchan_errno()));
        goto out;
    }
    //  Receivers first, then senders.
    int nrx = k->wl == WL_PINGPONG ? 1 : o->receivers;
    int ntx = k->wl == WL_PINGPONG ? 1 : o->senders;
    for (int i = 0; i < nrx + ntx; i++) {
        bool rx = i < nrx;
        int id = rx ? i : i - nrx;
        worker_t w;
        if (k->wl == WL_PINGPONG) {
            w = worker_base(k, rx ? R_ZPONG : R_ZPING, 0);
            w.count = k->count;
            w.warmup = k->warmup;
            w.host = !o->pp_hub;
            w.capacity = (long) o->capacity;
        } else {
            w = worker_base(k, rx ? R_ZRECV : R_ZSEND, id);
            w.count = rx ? 0 : share(k->count, ntx, id);
            //  A broadcast receiver keeps everything: a lossless run.
            w.limit = k->wl != WL_BROADCAST ? 0 : o->limit ? o->limit : k->count < (1L << 24) ? k->count : (1L << 24);
        }
        snprintf(w.ep, sizeof w.ep, "%s", uri);
        snprintf(w.ep2, sizeof w.ep2, "%s", uri2);
        if (child_start(&kids[nk], &w, thread, err, errn) != 0)
            goto out;
        nk++;
    }
    if (collect(kids, nk, "ready", deadline, err, errn) != 0)
        goto out;
    int64_t t0 = now_ns();
    if (kids_say(kids, nk, "go") != 0) {
        snprintf(err, errn, "a worker went away before the start");
        goto out;
    }
    if (k->wl == WL_PINGPONG) {
        if (collect(kids + 1, 1, "result", deadline, err, errn) != 0 || collect(kids, 1, "done", deadline, err, errn) != 0)
            goto out;
        latency(k, kids[1].line, run);
    } else {
        if (collect(kids + nrx, ntx, "done", deadline, err, errn) != 0)
            goto out;
        //  Every sender has flushed; the close reaches each receiver after
        //  the data, which it drains before it sees the close.
        int rc = zchan_close(ch);
        if (rc != ZCHAN_OK) {
            snprintf(err, errn, "zchan_close: %s", zchan_strerror(rc));
            goto out;
        }
        if (collect(kids, nrx, "result", deadline, err, errn) != 0)
            goto out;
        throughput(k, kids, nrx, t0, k->wl == WL_BROADCAST ? k->count : -1,
                   k->wl == WL_BROADCAST ? k->count * nrx : k->count, run);
    }
    kids_say(kids, nk, "quit");
    for (int i = 0; i < nk; i++) {
        int st = child_finish(&kids[i], 10000);
        if (st != 0 && run->ok) {
            run->ok = false;
            snprintf(err, errn, "%s worker %d exited with status %d", role_names[kids[i].w.role], kids[i].w.id, st);
        }
    }
    nk = 0;
out:
    kids_abort(kids, nk);
    if (ch && k->wl == WL_PINGPONG) {
        zchan_close(ch);
        if (ch2)
            zchan_close(ch2);
    }
    zchan_destroy(&ch);
    zchan_destroy(&ch2);
    free(kids);
}

// --- raw libzmq

typedef struct {
    void *front, *back, *ctl, *ctl_peer;
    pthread_t thread;
    bool running;
} proxy_t;

static void *proxy_main(void *arg)
{
    proxy_t *p = (proxy_t *) arg;
    zmq_proxy_steerable(p->front, p->back, NULL, p->ctl);
    return NULL;
}

static void proxy_stop(proxy_t *p)
{
    if (p->running) {
        zmq_send(p->ctl_peer, "TERMINATE", 9, 0);
        pthread_join(p->thread, NULL);
        p->running = false;
    }
    void **socks[] = {&p->front, &p->back, &p->ctl, &p->ctl_peer};
    for (int i = 0; i < 4; i++)
        if (*socks[i]) {
            zmq_close(*socks[i]);
            *socks[i] = NULL;
        }
}

//  A bind endpoint for the transport: name distinguishes it in the run.
static void raw_bind_ep(const case_t *k, const char *name, int seq, char *out, size_t n)
{
    if (k->tr == TR_INPROC)
        snprintf(out, n, "inproc://raw-%s-%d", name, seq);
    else if (k->tr == TR_IPC)
        snprintf(out, n, "ipc://%.200s/raw-%.8s-%d.sock", g_tmpdir, name, seq);
    else
        snprintf(out, n, "tcp://127.0.0.1:*");
}

static int proxy_start(const case_t *k, proxy_t *p, char *fep, char *bep, size_t n, char *err, size_t errn)
{
    int ft = k->wl == WL_ANYCAST ? ZMQ_PULL : k->wl == WL_BROADCAST ? ZMQ_XSUB : ZMQ_ROUTER;
    int bt = k->wl == WL_ANYCAST ? ZMQ_PUSH : k->wl == WL_BROADCAST ? ZMQ_XPUB : ZMQ_DEALER;
    int seq = ++g_seq, zero = 0;
    char ctl[64];
    snprintf(ctl, sizeof ctl, "inproc://perf-proxy-ctl-%d", seq);
    memset(p, 0, sizeof *p);
    p->front = zmq_socket(k->rctx, ft);
    p->back = zmq_socket(k->rctx, bt);
    p->ctl = zmq_socket(k->rctx, ZMQ_PAIR);
    p->ctl_peer = zmq_socket(k->rctx, ZMQ_PAIR);
    if (!p->front || !p->back || !p->ctl || !p->ctl_peer) {
        snprintf(err, errn, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    void *socks[] = {p->front, p->back, p->ctl, p->ctl_peer};
    for (int i = 0; i < 4; i++)
        zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
    if (k->wl == WL_BROADCAST)
        for (int i = 0; i < 2; i++) {
            zmq_setsockopt(socks[i], ZMQ_SNDHWM, &zero, sizeof zero);
            zmq_setsockopt(socks[i], ZMQ_RCVHWM, &zero, sizeof zero);
        }
    raw_bind_ep(k, "front", seq, fep, n);
    if (zmq_bind(p->front, fep) != 0) {
        snprintf(err, errn, "bind %s: %s", fep, zmq_strerror(zmq_errno()));
        return -1;
    }
    size_t len = n;
    zmq_getsockopt(p->front, ZMQ_LAST_ENDPOINT, fep, &len);
    raw_bind_ep(k, "back", seq, bep, n);
    if (zmq_bind(p->back, bep) != 0) {
        snprintf(err, errn, "bind %s: %s", bep, zmq_strerror(zmq_errno()));
        return -1;
    }
    len = n;
    zmq_getsockopt(p->back, ZMQ_LAST_ENDPOINT, bep, &len);
    if (zmq_bind(p->ctl, ctl) != 0 || zmq_connect(p->ctl_peer, ctl) != 0) {
        snprintf(err, errn, "proxy control: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        snprintf(err, errn, "cannot start the proxy thread");
        return -1;
    }
    p->running = true;
    return 0;
}

// --- nng's proxy: forwarding threads between two raw-mode sockets

#ifdef ZCHAN_PERF_NNG
//  What nng_device does, by hand: nng_device in nng 1.5.2 can leave
//  nng_close blocked forever once the device runs (nanomsg/nng#1503, seen
//  here at the end of a broadcast run), so each direction is a thread that
//  moves messages with nng_recvmsg and nng_sendmsg and looks at the stop flag
//  at least every 100 ms.
typedef struct {
    nng_socket from, to;
    atomic_bool *stop;
    pthread_t thread;
    bool running;
} nfwd_t;

typedef struct {
    nng_socket front, back;
    bool open[2];
    atomic_bool stop;
    nfwd_t fwd[2]; // front -> back; back -> front (pingpong's replies)
} nproxy_t;

static void *nfwd_main(void *arg)
{
    nfwd_t *f = (nfwd_t *) arg;
    nng_msg *m = NULL;
    while (!atomic_load(f->stop)) {
        if (!m) {
            int rc = nng_recvmsg(f->from, &m, 0);
            if (rc == NNG_ETIMEDOUT)
                continue;
            if (rc != 0)
                break;
        }
        int rc = nng_sendmsg(f->to, m, 0); // takes m on success
        if (rc == 0)
            m = NULL;
        else if (rc != NNG_ETIMEDOUT)
            break;
    }
    if (m)
        nng_msg_free(m);
    return NULL;
}

static void nproxy_stop(nproxy_t *p)
{
    atomic_store(&p->stop, true);
    for (int i = 0; i < 2; i++)
        if (p->fwd[i].running) {
            pthread_join(p->fwd[i].thread, NULL);
            p->fwd[i].running = false;
        }
    if (p->open[0])
        nng_close(p->front);
    if (p->open[1])
        nng_close(p->back);
    p->open[0] = p->open[1] = false;
}

//  The nng counterpart of proxy_start: anycast PULL|PUSH, broadcast SUB|PUB,
//  pingpong REP|REQ, all raw mode, with the workers' queues and no receive
//  size limit. Fills the two URLs to dial.
static int nproxy_start(const case_t *k, nproxy_t *p, char *fep, char *bep, size_t n, char *err, size_t errn)
{
    int rc = 0;
    memset(p, 0, sizeof *p);
    atomic_init(&p->stop, false);
    if (k->wl == WL_ANYCAST) {
        if ((rc = nng_pull0_open_raw(&p->front)) == 0)
            p->open[0] = true, rc = nng_push0_open_raw(&p->back);
    } else if (k->wl == WL_BROADCAST) {
        if ((rc = nng_sub0_open_raw(&p->front)) == 0)
            p->open[0] = true, rc = nng_pub0_open_raw(&p->back);
    } else if ((rc = nng_rep0_open_raw(&p->front)) == 0)
        p->open[0] = true, rc = nng_req0_open_raw(&p->back);
    if (rc != 0) {
        snprintf(err, errn, "nng proxy open: %s", nng_strerror(rc));
        return -1;
    }
    p->open[1] = true;
    nng_socket socks[2] = {p->front, p->back};
    char *eps[2] = {fep, bep};
    for (int i = 0; i < 2; i++) {
        //  Not every raw socket has both queues: what is there is set.
        nng_socket_set_int(socks[i], NNG_OPT_RECVBUF, k->o->nng_buf);
        nng_socket_set_int(socks[i], NNG_OPT_SENDBUF, k->o->nng_buf);
        nng_socket_set_size(socks[i], NNG_OPT_RECVMAXSZ, 0);
        nng_socket_set_ms(socks[i], NNG_OPT_RECVTIMEO, 100);
        nng_socket_set_ms(socks[i], NNG_OPT_SENDTIMEO, 100);
        int seq = ++g_seq;
        if (k->tr == TR_INPROC)
            snprintf(eps[i], n, "inproc://nng-proxy-%d", seq);
        else if (k->tr == TR_IPC)
            snprintf(eps[i], n, "ipc://%.200s/nng-proxy-%d.sock", g_tmpdir, seq);
        else
            snprintf(eps[i], n, "tcp://127.0.0.1:0");
        nng_listener l;
        if ((rc = nng_listen(socks[i], eps[i], &l, 0)) != 0) {
            snprintf(err, errn, "nng listen %s: %s", eps[i], nng_strerror(rc));
            return -1;
        }
        int port = 0;
        if (k->tr == TR_TCP) {
            if ((rc = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port)) != 0) {
                snprintf(err, errn, "nng %s: %s", NNG_OPT_TCP_BOUND_PORT, nng_strerror(rc));
                return -1;
            }
            snprintf(eps[i], n, "tcp://127.0.0.1:%d", port);
        }
    }
    int nfwd = k->wl == WL_PINGPONG ? 2 : 1;
    for (int i = 0; i < nfwd; i++) {
        p->fwd[i] = (nfwd_t){.from = i ? p->back : p->front, .to = i ? p->front : p->back, .stop = &p->stop};
        if (pthread_create(&p->fwd[i].thread, NULL, nfwd_main, &p->fwd[i]) != 0) {
            snprintf(err, errn, "cannot start the nng proxy thread");
            return -1;
        }
        p->fwd[i].running = true;
    }
    return 0;
}
#endif

//  The raw libzmq baseline, or with nng the same shapes over nng's sockets.
static void run_raw(const case_t *k, bool nng, run_t *run)
{
    const options_t *o = k->o;
    bool thread = k->tr == TR_INPROC;
    int64_t deadline = now_ns() + (int64_t) o->timeout_s * 1000000000;
    child_t *kids = calloc(MAX_KIDS, sizeof *kids);
    int nk = 0;
    proxy_t proxy = {0};
#ifdef ZCHAN_PERF_NNG
    nproxy_t nproxy = {0};
#endif
    char fep[256] = "", bep[256] = "";
    char *err = run->err;
    size_t errn = sizeof run->err;
    bool direct = o->baseline == BL_DIRECT;
    int nrx = k->wl == WL_PINGPONG ? 1 : o->receivers;
    int ntx = k->wl == WL_PINGPONG ? 1 : o->senders;
    role_t rrole = k->wl == WL_ANYCAST ? R_PULL : k->wl == WL_BROADCAST ? R_SUB : R_REP;
    role_t trole = k->wl == WL_ANYCAST ? R_PUSH : k->wl == WL_BROADCAST ? R_PUB : R_REQ;
    if (nng) {
        rrole = (role_t) (rrole + (R_NPUSH - R_PUSH));
        trole = (role_t) (trole + (R_NPUSH - R_PUSH));
    }
    //  Receivers are kids[0..nrx), senders kids[nrx..nrx+ntx).
    child_t *rx = kids, *tx = kids + nrx;
    if (!kids) {
        snprintf(err, errn, "out of memory");
        return;
    }

    if (!direct && !nng && proxy_start(k, &proxy, fep, bep, sizeof fep, err, errn) != 0)
        goto out;
#ifdef ZCHAN_PERF_NNG
    if (!direct && nng && nproxy_start(k, &nproxy, fep, bep, sizeof fep, err, errn) != 0)
        goto out;
#endif
    //  Direct: the binding side starts first and reports where it listens:
    //  the pullers (anycast), the publishers (broadcast) or the REP (pingpong).
    bool rx_binds = direct && k->wl != WL_BROADCAST;
    bool tx_binds = direct && k->wl == WL_BROADCAST;
    char list[sizeof kids[0].w.ep] = "";
    for (int pass = 0; pass < 2; pass++) {
        bool do_rx = direct ? (pass == 0) == rx_binds : pass == 0;
        int first = do_rx ? 0 : nrx, n = do_rx ? nrx : ntx;
        for (int i = 0; i < n; i++) {
            worker_t w = worker_base(k, do_rx ? rrole : trole, i);
            w.bind = do_rx ? rx_binds : tx_binds;
            w.nng_buf = o->nng_buf;
            if (w.bind && nng) {
                int seq = ++g_seq;
                if (k->tr == TR_INPROC)
                    snprintf(w.ep, sizeof w.ep, "inproc://nng-%s-%d", role_names[w.role], seq);
                else if (k->tr == TR_IPC)
                    snprintf(w.ep, sizeof w.ep, "ipc://%.200s/%.8s-%d.sock", g_tmpdir, role_names[w.role], seq);
                else
                    snprintf(w.ep, sizeof w.ep, "tcp://127.0.0.1:0");
            } else if (w.bind) {
                raw_bind_ep(k, role_names[w.role], ++g_seq, w.ep, sizeof w.ep);
            } else
                snprintf(w.ep, sizeof w.ep, "%s", direct ? list : do_rx ? bep : fep);
            if (k->wl == WL_PINGPONG) {
                w.count = k->count;
                w.warmup = k->warmup;
            } else if (do_rx)
                w.count = k->wl == WL_BROADCAST ? k->count : 0;
            else
                w.count = share(k->count, ntx, i);
            w.peers = ntx;
            if (child_start(&kids[first + i], &w, thread, err, errn) != 0)
                goto out;
            nk = nrx + ntx; // the ones not started yet are skipped when ending
        }
        if (direct && pass == 0) {
            //  Only the binders are running: collect where they listen.
            //  (Subscribers report ready after probes, so publishers bind first.)
            if (collect(kids + first, n, "ready", deadline, err, errn) != 0)
                goto out;
            for (int i = 0; i < n; i++) {
                const char *ep = kids[first + i].line + 6;
                size_t used = strlen(list);
                if (used + strlen(ep) + 2 > sizeof list) {
                    snprintf(err, errn, "too many endpoints for --baseline direct");
                    goto out;
                }
                if (used)
                    list[used++] = ',';
                copy_str(list + used, sizeof list - used, ep);
            }
        }
    }
    if (direct) {
        //  The binders' ready lines are consumed: collect the others'.
        child_t *others = rx_binds ? tx : rx;
        if (collect(others, rx_binds ? ntx : nrx, "ready", deadline, err, errn) != 0)
            goto out;
    } else if (collect(kids, nk, "ready", deadline, err, errn) != 0)
        goto out;
    int64_t t0 = now_ns();
    if (kids_say(kids, nk, "go") != 0) {
        snprintf(err, errn, "a worker went away before the start");
        goto out;
    }
    if (k->wl == WL_PINGPONG) {
        if (collect(tx, 1, "result", deadline, err, errn) != 0 || collect(rx, 1, "done", deadline, err, errn) != 0)
            goto out;
        latency(k, tx[0].line, run);
    } else if (k->wl == WL_BROADCAST) {
        if (collect(tx, ntx, "done", deadline, err, errn) != 0)
            goto out;
        //  nng's subscribers may have lost messages: they report what they
        //  got after a quiet spell.
        if (nng && kids_say(rx, nrx, "drain") != 0) {
            snprintf(err, errn, "a subscriber went away");
            goto out;
        }
        if (collect(rx, nrx, "result", deadline, err, errn) != 0)
            goto out;
        throughput(k, rx, nrx, t0, k->count, k->count * nrx, run);
    } else {
        if (collect(tx, ntx, "done", deadline, err, errn) != 0)
            goto out;
        //  PUSH/PULL has no end: ask the pullers for their counts after a
        //  quiet spell, until they add up or stop growing for stall-ms.
        long prev = -1;
        int64_t stall_until = now_ns() + (int64_t) o->stall_ms * 1000000;
        while (true) {
            if (kids_say(rx, nrx, "drain") != 0 || collect(rx, nrx, "result", deadline, err, errn) != 0)
                goto out;
            long sum = 0;
            for (int i = 0; i < nrx; i++) {
                result_t r;
                if (parse_result(rx[i].line, &r))
                    sum += r.count;
            }
            if (sum >= k->count || now_ns() > stall_until)
                break;
            if (sum > prev) {
                prev = sum;
                stall_until = now_ns() + (int64_t) o->stall_ms * 1000000;
            }
        }
        throughput(k, rx, nrx, t0, -1, k->count, run);
    }
    kids_say(kids, nk, "quit");
    for (int i = 0; i < nk; i++) {
        int st = child_finish(&kids[i], 10000);
        if (st != 0 && run->ok) {
            run->ok = false;
            snprintf(err, errn, "%s worker %d exited with status %d", role_names[kids[i].w.role], kids[i].w.id, st);
        }
    }
    nk = 0;
out:
    kids_abort(kids, nk);
    proxy_stop(&proxy);
#ifdef ZCHAN_PERF_NNG
    nproxy_stop(&nproxy);
#endif
    free(kids);
}

// ---------------------------------------------------------------------------
// The coordinator: output

static const char *fmt_size(size_t s, char *buf, size_t n)
{
    if (s >= 1048576 && s % 1048576 == 0)
        snprintf(buf, n, "%zu MiB", s / 1048576);
    else if (s >= 1024 && s % 1024 == 0)
        snprintf(buf, n, "%zu KiB", s / 1024);
    else
        snprintf(buf, n, "%zu B", s);
    return buf;
}

static const char *fmt_rate(double v, char *buf, size_t n)
{
    if (v >= 1e6)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.1fk", v / 1e3);
    else
        snprintf(buf, n, "%.0f", v);
    return buf;
}

typedef struct {
    bool ran[IMPL_N], ok[IMPL_N];
    char err[IMPL_N][512];
    double rate[IMPL_N], mb[IMPL_N], p50[IMPL_N], p99[IMPL_N], max[IMPL_N];
    double ratio[IMPL_N]; // zchan's rate over this implementation's (median of per-run ratios)
    bool has_ratio[IMPL_N];
} row_t;

//  The implementations shown as columns of the table: zchan and raw always,
//  nng when it runs.
static int table_impls(const options_t *o)
{
    return o->run[IMPL_NNG] ? 3 : 2;
}

static void print_header(const options_t *o, workload_t wl)
{
    if (o->csv)
        return;
    int ni = table_impls(o);
    fprintf(g_out, "\n%-9s %-6s %7s %7s |", "workload", "trans", "size", "count");
    char h1[32], h2[32];
    for (int i = 0; i < ni; i++) {
        if (wl == WL_PINGPONG) {
            snprintf(h1, sizeof h1, "%s rt/s", impl_names[i]);
            fprintf(g_out, " %10s %8s %8s %8s |", h1, "p50 us", "p99 us", "max us");
        } else {
            snprintf(h1, sizeof h1, "%s msg/s", impl_names[i]);
            snprintf(h2, sizeof h2, "%s MB/s", impl_names[i]);
            fprintf(g_out, " %11s %10s |", h1, h2);
        }
    }
    fprintf(g_out, " %9s", "zchan/raw");
    if (ni > 2)
        fprintf(g_out, " %9s", "zchan/nng");
    fprintf(g_out, "  status\n");
}

static void print_row(const options_t *o, workload_t wl, transport_t tr, size_t size, long count, const row_t *r)
{
    char status[1700] = "ok";
    for (int i = 0; i < IMPL_N; i++)
        if (r->ran[i] && !r->ok[i]) {
            size_t used = strcmp(status, "ok") ? strlen(status) : 0;
            snprintf(status + used, sizeof status - used, "%sFAILED %s: %s", used ? "; " : "", impl_names[i],
                     r->err[i]);
        }
    if (o->csv) {
        //  Columns: see the header in main. zchan and raw first (as before
        //  nng existed), then nng's group, then the status.
        fprintf(g_out, "%s,%s,%zu,%ld,%d,%d,%s,%d", wl_names[wl], tr_names[tr], size, count,
                wl == WL_PINGPONG ? 1 : o->senders, wl == WL_PINGPONG ? 1 : o->receivers,
                o->baseline == BL_PROXY ? "proxy" : "direct", o->repeat);
        for (int i = 0; i < 2; i++)
            if (r->ran[i] && r->ok[i])
                fprintf(g_out, ",%.1f,%.3f", r->rate[i], r->mb[i]);
            else
                fprintf(g_out, ",,");
        if (r->has_ratio[IMPL_RAW])
            fprintf(g_out, ",%.4f", r->ratio[IMPL_RAW]);
        else
            fprintf(g_out, ",");
        for (int i = 0; i < 2; i++)
            if (wl == WL_PINGPONG && r->ran[i] && r->ok[i])
                fprintf(g_out, ",%.1f,%.1f,%.1f", r->p50[i], r->p99[i], r->max[i]);
            else
                fprintf(g_out, ",,,");
        if (r->ran[IMPL_NNG] && r->ok[IMPL_NNG])
            fprintf(g_out, ",%.1f,%.3f", r->rate[IMPL_NNG], r->mb[IMPL_NNG]);
        else
            fprintf(g_out, ",,");
        if (r->has_ratio[IMPL_NNG])
            fprintf(g_out, ",%.4f", r->ratio[IMPL_NNG]);
        else
            fprintf(g_out, ",");
        if (wl == WL_PINGPONG && r->ran[IMPL_NNG] && r->ok[IMPL_NNG])
            fprintf(g_out, ",%.1f,%.1f,%.1f", r->p50[IMPL_NNG], r->p99[IMPL_NNG], r->max[IMPL_NNG]);
        else
            fprintf(g_out, ",,,");
        //  Quote the status: error messages may hold commas.
        fprintf(g_out, ",\"");
        for (const char *p = status; *p; p++) {
            if (*p == '"')
                fputc('"', g_out);
            fputc(*p, g_out);
        }
        fprintf(g_out, "\"\n");
        fflush(g_out);
        return;
    }
    int ni = table_impls(o);
    char sz[32], a[32];
    fprintf(g_out, "%-9s %-6s %7s %7ld |", wl_names[wl], tr_names[tr], fmt_size(size, sz, sizeof sz), count);
    for (int i = 0; i < ni; i++) {
        bool have = r->ran[i] && r->ok[i];
        if (wl == WL_PINGPONG) {
            if (have)
                fprintf(g_out, " %10s %8.1f %8.1f %8.1f |", fmt_rate(r->rate[i], a, sizeof a), r->p50[i], r->p99[i],
                        r->max[i]);
            else
                fprintf(g_out, " %10s %8s %8s %8s |", "-", "-", "-", "-");
        } else {
            if (have)
                fprintf(g_out, " %11s %10.2f |", fmt_rate(r->rate[i], a, sizeof a), r->mb[i]);
            else
                fprintf(g_out, " %11s %10s |", "-", "-");
        }
    }
    for (int i = 1; i < ni; i++) {
        char ratio[32] = "-";
        if (r->has_ratio[i])
            snprintf(ratio, sizeof ratio, "%.3f", r->ratio[i]);
        fprintf(g_out, " %9s", ratio);
    }
    fprintf(g_out, "  %s\n", status);
    fflush(g_out);
}

// ---------------------------------------------------------------------------
// The coordinator: main

static bool run_case(case_t *k, row_t *row)
{
    const options_t *o = k->o;
    double rate[IMPL_N][100], mb[IMPL_N][100], p50[IMPL_N][100], p99[IMPL_N][100], mx[IMPL_N][100];
    double ratio[IMPL_N][100];
    int nok[IMPL_N] = {0}, nratio[IMPL_N] = {0};
    int order[IMPL_N], n = 0;
    for (int i = 0; i < IMPL_N; i++)
        if (o->run[i])
            order[n++] = i;
    memset(row, 0, sizeof *row);
    bool all_ok = true;
    for (int rep = 0; rep < o->repeat && !g_stop; rep++) {
        run_t res[IMPL_N];
        memset(res, 0, sizeof res);
        for (int j = 0; j < n && !g_stop; j++) {
            //  Rotate which implementation goes first, so drift hits all alike.
            int impl = order[(j + rep) % n];
            if (o->verbose)
                fprintf(stderr, "zchan-perf: %s %s %zu B x %ld, %s, run %d of %d\n", wl_names[k->wl],
                        tr_names[k->tr], k->size, k->count, impl_names[impl], rep + 1, o->repeat);
            row->ran[impl] = true;
            if (impl == IMPL_ZCHAN)
                run_zchan(k, &res[impl]);
            else
                run_raw(k, impl == IMPL_NNG, &res[impl]);
            if (g_stop && !res[impl].ok && !res[impl].err[0])
                snprintf(res[impl].err, sizeof res[impl].err, "interrupted");
            if (!res[impl].ok) {
                all_ok = false;
                fprintf(stderr, "zchan-perf: *** FAILED: %s %s %zu B, %s: %s ***\n", wl_names[k->wl],
                        tr_names[k->tr], k->size, impl_names[impl], res[impl].err);
                copy_str(row->err[impl], sizeof row->err[impl], res[impl].err);
                continue;
            }
            int m = nok[impl]++;
            rate[impl][m] = res[impl].msgs_per_s;
            mb[impl][m] = res[impl].mb_per_s;
            p50[impl][m] = res[impl].p50_us;
            p99[impl][m] = res[impl].p99_us;
            mx[impl][m] = res[impl].max_us;
        }
        for (int i = 1; i < IMPL_N; i++)
            if (res[IMPL_ZCHAN].ok && res[i].ok)
                ratio[i][nratio[i]++] = res[IMPL_ZCHAN].msgs_per_s / res[i].msgs_per_s;
    }
    for (int i = 0; i < IMPL_N; i++) {
        row->ok[i] = row->ran[i] && nok[i] == o->repeat;
        if (nok[i]) {
            row->rate[i] = median(rate[i], nok[i]);
            row->mb[i] = median(mb[i], nok[i]);
            row->p50[i] = median(p50[i], nok[i]);
            row->p99[i] = median(p99[i], nok[i]);
            row->max[i] = median(mx[i], nok[i]);
        }
        if (i > 0 && nratio[i] && row->ok[IMPL_ZCHAN] && row->ok[i]) {
            row->ratio[i] = median(ratio[i], nratio[i]);
            row->has_ratio[i] = true;
        }
    }
    return all_ok;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--role"))
        return worker_main(argc, argv);

    options_t o;
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    //  Results go to the real stdout (g_out); stdout itself to stderr.
    if (coordinator_setup("zchan-perf", &g_out) != 0)
        return 2;

    //  A private runtime directory for every ipc socket and lock file, zchan's
    //  and raw libzmq's; the workers inherit it. Removed at exit.
    const char *tmp = getenv("TMPDIR");
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/zchan-perf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_tmpdir)) {
        fprintf(stderr, "zchan-perf: mkdtemp %s: %s\n", g_tmpdir, strerror(errno));
        return 2;
    }
    setenv("ZCHAN_IPC_DIR", g_tmpdir, 1);

    int rc = 0;
    zchan_ctx_t *zctx = NULL;
    void *rctx = NULL;
    const char *tcp_hub = NULL;
    if (o.run[IMPL_ZCHAN]) {
        zctx = zchan_ctx_new();
        if (!zctx) {
            fprintf(stderr, "zchan-perf: zchan_ctx_new: %s\n", zchan_strerror(zchan_errno()));
            rc = 2;
            goto done;
        }
        if (o.transports[TR_TCP]) {
            int e = zchan_ctx_bind(zctx, "tcp://127.0.0.1:0");
            tcp_hub = e == ZCHAN_OK ? zchan_ctx_endpoint(zctx, "tcp") : NULL;
            if (!tcp_hub) {
                fprintf(stderr, "zchan-perf: cannot listen on tcp://127.0.0.1: %s\n", zchan_strerror(e ? e : zchan_errno()));
                rc = 2;
                goto done;
            }
        }
    }
    if (o.run[IMPL_RAW] && !(rctx = zmq_ctx_new())) {
        fprintf(stderr, "zchan-perf: zmq_ctx_new: %s\n", zmq_strerror(zmq_errno()));
        rc = 2;
        goto done;
    }
    if (o.csv)
        fprintf(g_out, "workload,transport,size,count,senders,receivers,baseline,repeat,zchan_msgs_per_s,"
                       "zchan_mb_per_s,raw_msgs_per_s,raw_mb_per_s,ratio,zchan_p50_us,zchan_p99_us,zchan_max_us,"
                       "raw_p50_us,raw_p99_us,raw_max_us,nng_msgs_per_s,nng_mb_per_s,ratio_nng,nng_p50_us,"
                       "nng_p99_us,nng_max_us,status\n");
    else {
        fprintf(g_out, "zchan-perf: S=%d senders, R=%d receivers, anycast capacity %zu, baseline %s, %d run(s) per case",
                o.senders, o.receivers, o.capacity, o.baseline == BL_PROXY ? "proxy (same hops as zchan)" : "direct",
                o.repeat);
        fprintf(g_out, "%s\n", o.repeat > 1 ? ", medians" : "");
#ifdef ZCHAN_PERF_NNG
        if (o.run[IMPL_NNG])
            fprintf(g_out, "zchan-perf: nng %s, same shape as raw; NNG_OPT_SENDBUF/RECVBUF %d messages, "
                           "NNG_OPT_RECVMAXSZ unlimited\n", nng_version(), o.nng_buf);
#endif
    }
    for (int wl = 0; wl < WL_N && !g_stop; wl++) {
        if (!o.workloads[wl])
            continue;
        print_header(&o, (workload_t) wl);
        for (int tr = 0; tr < TR_N && !g_stop; tr++) {
            if (!o.transports[tr])
                continue;
            for (int si = 0; si < o.nsizes && !g_stop; si++) {
                case_t k = {.o = &o, .wl = (workload_t) wl, .tr = (transport_t) tr, .size = o.sizes[si],
                            .zctx = zctx, .tcp_hub = tcp_hub, .rctx = rctx};
                k.count = o.count ? o.count : default_count(k.wl, k.size);
                k.warmup = o.warmup >= 0 ? o.warmup : (k.count / 10 < 10 ? 10 : k.count / 10);
                row_t row;
                if (!run_case(&k, &row))
                    rc = 1;
                print_row(&o, k.wl, k.tr, k.size, k.count, &row);
            }
        }
    }
    if (g_stop) {
        fprintf(stderr, "zchan-perf: interrupted\n");
        rc = 130;
    } else if (rc == 1)
        fprintf(stderr, "zchan-perf: *** SOME CASES FAILED: see the status column ***\n");
done:
    zchan_ctx_destroy(&zctx);
    if (rctx)
        zmq_ctx_term(rctx);
    rm_tmpdir();
    fclose(g_out);
    return rc;
}

/*  worker_raw.c: the raw libzmq implementation of the worker roles (perf.h):
    PUSH/PULL for anycast, PUB/SUB for broadcast, REQ/REP for pingpong. The
    messages carry the same bytes as zchan's: a msgpack bin of the payload.
*/
#define _GNU_SOURCE
#include "perf.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    void *ctx; // w->rctx (a thread worker), or its own
    void *sock;
    msgpack_sbuffer sb; // what is sent
    size_t plen;        // its size
    zmq_msg_t msg;      // what was received
} s_state_t;

//  A failed zmq call's error, never 0.
static int s_errno(void)
{
    int e = zmq_errno();
    return e ? e : EIO;
}

// ---------------------------------------------------------------------------
// Setup

static void s_sockopts(const worker_t *w, void *sock)
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
}

//  Binds w->ep (the bound endpoint goes to bound), or connects to every
//  endpoint of the comma list w->ep.
static int s_attach(worker_t *w, void *sock, char *bound, size_t n)
{
    bound[0] = 0;
    if (w->bind) {
        if (zmq_bind(sock, w->ep) != 0)
            return perf_wfail(w, "bind %s: %s", w->ep, zmq_strerror(zmq_errno()));
        zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &n);
        return 0;
    }
    char eps[sizeof w->ep];
    snprintf(eps, sizeof eps, "%s", w->ep);
    char *save = NULL;
    for (char *ep = strtok_r(eps, ",", &save); ep; ep = strtok_r(NULL, ",", &save))
        if (zmq_connect(sock, ep) != 0)
            return perf_wfail(w, "connect %s: %s", ep, zmq_strerror(zmq_errno()));
    return 0;
}

//  A subscriber is ready once a probe from every publisher came through:
//  the subscription is live end to end.
static int s_await_probes(worker_t *w, s_state_t *st)
{
    bool seen[MAX_PEERS] = {false};
    int nseen = 0;
    while (nseen < w->peers) {
        if (zmq_msg_recv(&st->msg, st->sock, 0) < 0)
            return perf_wfail(w, "no probe from %d publishers: %s", w->peers - nseen, zmq_strerror(zmq_errno()));
        perf_probe_seen(zmq_msg_data(&st->msg), zmq_msg_size(&st->msg), seen, &nseen);
    }
    return 0;
}

static int s_setup(wrun_t *x)
{
    static const int types[R_N] = {[R_PUSH] = ZMQ_PUSH, [R_PULL] = ZMQ_PULL, [R_PUB] = ZMQ_PUB,
                                   [R_SUB] = ZMQ_SUB,   [R_REQ] = ZMQ_REQ,   [R_REP] = ZMQ_REP};
    worker_t *w = x->w;
    s_state_t *st = x->impl;
    zmq_msg_init(&st->msg);
    perf_wire_payload(&st->sb, x->payload, w->size);
    st->plen = st->sb.size;
    if (!(st->ctx = w->rctx) && !(st->ctx = zmq_ctx_new()))
        return perf_wfail(w, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    if (!(st->sock = zmq_socket(st->ctx, types[w->role])))
        return perf_wfail(w, "zmq_socket: %s", zmq_strerror(zmq_errno()));
    s_sockopts(w, st->sock);
    if (s_attach(w, st->sock, x->bound, sizeof x->bound) != 0)
        return 1;
    return w->role == R_SUB ? s_await_probes(w, st) : 0;
}

static void s_teardown(wrun_t *x)
{
    s_state_t *st = x->impl;
    zmq_msg_close(&st->msg);
    msgpack_sbuffer_destroy(&st->sb);
    if (st->sock)
        zmq_close(st->sock);
    if (st->ctx && !x->w->rctx)
        zmq_ctx_term(st->ctx);
}

// ---------------------------------------------------------------------------
// The work

static int s_send(wrun_t *x)
{
    s_state_t *st = x->impl;
    return zmq_send(st->sock, st->sb.data, st->plen, 0) == (int) st->plen ? 0 : s_errno();
}

static void s_probe(wrun_t *x, const void *probe, size_t n)
{
    s_state_t *st = x->impl;
    zmq_send(st->sock, probe, n, ZMQ_DONTWAIT);
}

//  Takes every message waiting, counting it.
static void s_take_all(wrun_t *x, s_state_t *st, drain_t *d)
{
    while (zmq_msg_recv(&st->msg, st->sock, ZMQ_DONTWAIT) >= 0) {
        int64_t t = now_ns();
        perf_count(&x->res, perf_wire_ok(x, zmq_msg_data(&st->msg), zmq_msg_size(&st->msg), st->plen), t);
        d->idle_since = t;
    }
}

//  A puller receives until told to drain; then reports its count after
//  50 ms without a message, as often as asked, until "quit".
static int s_pull(wrun_t *x, s_state_t *st)
{
    worker_t *w = x->w;
    drain_t d = {.idle_ms = -1};
    while (true) {
        zmq_pollitem_t items[2] = {{st->sock, 0, ZMQ_POLLIN, 0}, {NULL, x->lb->fd, ZMQ_POLLIN, 0}};
        bool draining = d.idle_ms >= 0;
        int rc = zmq_poll(items, 2, draining ? 10 : w->phase_ms);
        if (rc < 0 && zmq_errno() != EINTR)
            return perf_wfail(w, "poll: %s", zmq_strerror(zmq_errno()));
        if (items[0].revents & ZMQ_POLLIN)
            s_take_all(x, st, &d);
        if ((items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) && perf_drain_cmds(x, &d, true) != 0)
            return 0; // "quit", or the coordinator gave up
        perf_drain_tick(x, &d);
        if (rc == 0 && !draining)
            return perf_wfail(w, "no command from the coordinator");
    }
}

//  A subscriber receives its count, skipping probes, or stops when nothing
//  comes for the stall time.
static int s_sub(wrun_t *x, s_state_t *st)
{
    worker_t *w = x->w;
    while (x->res.count < w->count) {
        if (zmq_msg_recv(&st->msg, st->sock, 0) < 0) {
            if (zmq_errno() == EAGAIN) {
                x->res.stalled = 1;
                break;
            }
            return perf_wfail(w, "recv: %s", zmq_strerror(zmq_errno()));
        }
        int64_t t = now_ns();
        const void *p = zmq_msg_data(&st->msg);
        size_t n = zmq_msg_size(&st->msg);
        if (!perf_is_probe(p, n))
            perf_count(&x->res, perf_wire_ok(x, p, n, st->plen), t);
    }
    perf_report(w, &x->res);
    return 0;
}

static int s_receive(wrun_t *x)
{
    s_state_t *st = x->impl;
    return x->w->role == R_PULL ? s_pull(x, st) : s_sub(x, st);
}

static int s_round_trip(wrun_t *x)
{
    s_state_t *st = x->impl;
    bool ok = true;
    if (x->w->role == R_REQ)
        ok = zmq_send(st->sock, st->sb.data, st->plen, 0) == (int) st->plen;
    ok = ok && zmq_msg_recv(&st->msg, st->sock, 0) >= 0;
    if (ok && !perf_wire_ok(x, zmq_msg_data(&st->msg), zmq_msg_size(&st->msg), st->plen))
        return RT_BAD_PAYLOAD;
    if (ok && x->w->role == R_REP)
        ok = zmq_msg_send(&st->msg, st->sock, 0) >= 0; // echo the received message as it is
    return ok ? 0 : s_errno();
}

const perf_worker_ops_t perf_raw_ops = {
    .state_size = sizeof(s_state_t),
    .setup = s_setup,
    .send = s_send,
    .flush = NULL,
    .receive = s_receive,
    .round_trip = s_round_trip,
    .probe = s_probe,
    .strerror = zmq_strerror,
    .teardown = s_teardown,
};

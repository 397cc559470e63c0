/*  worker_zchan.c: the zchan implementation of the worker roles (perf.h).

    zsend: a sender on ep. zrecv: a receiver on ep. zping: a sender on ep and
    a receiver on ep2. zpong: a receiver on ep and a sender on ep2. With
    w->host, the pinger and the ponger then trade references to channels of
    their own and go on over those.
*/
#define _GNU_SOURCE
#include "perf.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    zchan_ctx_t *ctx; // w->zctx (a thread worker), or its own
    zchan_t *ch, *ch2;
    zchan_sender_t *s;
    zchan_receiver_t *r;
} s_state_t;

static zchan_msg_t *s_msg_make(const char *payload, size_t size)
{
    zchan_msg_t *m = zchan_msg_new();
    if (!m)
        return NULL;
    msgpack_packer *pk = zchan_msg_packer(m);
    if (msgpack_pack_bin(pk, size) != 0 || msgpack_pack_bin_body(pk, payload, size) != 0)
        zchan_msg_destroy(&m);
    return m;
}

static bool s_msg_ok(zchan_msg_t *m, size_t size)
{
    const msgpack_object *o = zchan_msg_object(m);
    return o && o->type == MSGPACK_OBJECT_BIN && perf_payload_ok(o->via.bin.ptr, o->via.bin.size, size);
}

static bool s_pingpong(const worker_t *w)
{
    return w->role == R_ZPING || w->role == R_ZPONG;
}

// ---------------------------------------------------------------------------
// Setup

static int s_ctx(worker_t *w, s_state_t *st)
{
    st->ctx = w->zctx;
    if (st->ctx)
        return 0;
    if (w->host && !strncmp(w->ep, "tcp://", 6)) {
        //  Another host as far as references go: the other side opens ours over tcp.
        char id[64];
        snprintf(id, sizeof id, "zchan-perf-%ld-%d", (long) getpid(), w->role);
        setenv("ZCHAN_HOST_ID", id, 1);
    }
    if (!(st->ctx = zchan_ctx_new()))
        return perf_wfail(w, "zchan_ctx_new: %s", zchan_strerror(zchan_errno()));
    return 0;
}

//  The one-hop shape: creates the channel w->ep names in this worker's
//  context, which then hosts it, and puts its URI in x->bound. Over tcp the
//  context listens on a port of its own first (w->ep is then
//  tcp://127.0.0.1:0/NAME).
static int s_host(wrun_t *x, s_state_t *st)
{
    worker_t *w = x->w;
    char uri[sizeof x->bound];
    perf_copy_str(uri, sizeof uri, w->ep);
    if (!strncmp(w->ep, "tcp://", 6)) {
        const char *name = strrchr(w->ep, '/') + 1; // "tcp://" has one
        int e = zchan_ctx_bind(st->ctx, "tcp://127.0.0.1:0");
        const char *ep = e == ZCHAN_OK ? zchan_ctx_endpoint(st->ctx, "tcp") : NULL;
        if (!ep)
            return perf_wfail(w, "cannot listen on tcp://127.0.0.1: %s", zchan_strerror(e ? e : zchan_errno()));
        snprintf(uri, sizeof uri, "%s/%s", ep, name);
    }
    st->ch = w->bcast ? zchan_broadcast_new(st->ctx, uri, false) : zchan_anycast_new(st->ctx, uri, (size_t) w->capacity);
    if (!st->ch)
        return perf_wfail(w, "cannot create channel %s: %s", uri, zchan_strerror(zchan_errno()));
    perf_copy_str(x->bound, sizeof x->bound, uri);
    return 0;
}

//  Opens the channels (unless this worker hosts its own) and attaches to
//  them as the role does.
static int s_attach(worker_t *w, s_state_t *st)
{
    if (!st->ch && !(st->ch = zchan_open(st->ctx, w->ep)))
        return perf_wfail(w, "zchan_open %s: %s", w->ep, zchan_strerror(zchan_errno()));
    if (s_pingpong(w) && !(st->ch2 = zchan_open(st->ctx, w->ep2)))
        return perf_wfail(w, "zchan_open %s: %s", w->ep2, zchan_strerror(zchan_errno()));
    zchan_t *sch = w->role == R_ZSEND || w->role == R_ZPING ? st->ch : w->role == R_ZPONG ? st->ch2 : NULL;
    zchan_t *rch = w->role == R_ZRECV || w->role == R_ZPONG ? st->ch : w->role == R_ZPING ? st->ch2 : NULL;
    if (sch && !(st->s = zchan_sender_new(sch)))
        return perf_wfail(w, "zchan_sender_new: %s", zchan_strerror(zchan_errno()));
    if (rch && !(st->r = zchan_receiver_new(rch, (size_t) w->limit)))
        return perf_wfail(w, "zchan_receiver_new: %s", zchan_strerror(zchan_errno()));
    return 0;
}

//  One step of the reference trade: sends a reference to mine, or receives
//  a reference and opens it as *theirs.
static int s_trade_step(worker_t *w, s_state_t *st, bool send, zchan_t *mine, zchan_t **theirs)
{
    zchan_msg_t *m = NULL;
    int e;
    if (send) {
        m = zchan_msg_new();
        e = !m ? ZCHAN_ENOMEM : zchan_msg_pack_chan(m, mine);
        if (e == ZCHAN_OK)
            e = zchan_send(st->s, &m, w->stall_ms);
    } else {
        e = zchan_recv(st->r, &m, w->stall_ms);
        if (e == ZCHAN_OK && !(*theirs = zchan_msg_chan(st->ctx, zchan_msg_object(m))))
            e = zchan_errno();
    }
    zchan_msg_destroy(&m);
    return e;
}

//  Pingpong with each side hosting its own channel: makes *mine (unnamed,
//  in the context's hub) and trades references with the other side over
//  the coordinator's channels (the pinger receives first, the ponger sends
//  first), opening theirs. Over tcp, the hub binds a tcp port and the
//  worker's host id is its own, so that the other side opens the reference
//  over tcp, not ipc.
static int s_peers_setup(worker_t *w, s_state_t *st, zchan_t **mine, zchan_t **theirs)
{
    if (!strncmp(w->ep, "tcp://", 6) && zchan_ctx_bind(st->ctx, "tcp://127.0.0.1:0") != ZCHAN_OK)
        return zchan_errno();
    if (!(*mine = zchan_anycast_new(st->ctx, NULL, (size_t) w->capacity)))
        return zchan_errno();
    for (int step = 0; step < 2; step++) {
        int e = s_trade_step(w, st, (w->role == R_ZPONG) == (step == 0), *mine, theirs);
        if (e != ZCHAN_OK)
            return e;
    }
    return ZCHAN_OK;
}

//  Each side hosts the channel it receives on, and the two trade references
//  over the coordinator's channels, which then go.
static int s_swap_to_peers(worker_t *w, s_state_t *st)
{
    zchan_t *mine = NULL, *theirs = NULL;
    int e = s_peers_setup(w, st, &mine, &theirs);
    zchan_sender_destroy(&st->s);
    zchan_receiver_destroy(&st->r);
    zchan_destroy(&st->ch);
    zchan_destroy(&st->ch2);
    st->ch = mine;
    st->ch2 = theirs;
    if (e != ZCHAN_OK || !(st->s = zchan_sender_new(theirs)) || !(st->r = zchan_receiver_new(mine, 0)))
        return perf_wfail(w, "pingpong setup: %s", zchan_strerror(e != ZCHAN_OK ? e : zchan_errno()));
    return 0;
}

static int s_setup(wrun_t *x)
{
    worker_t *w = x->w;
    s_state_t *st = x->impl;
    if (s_ctx(w, st) != 0 || (w->bind && s_host(x, st) != 0) || s_attach(w, st) != 0)
        return 1;
    if (s_pingpong(w) && w->host)
        return s_swap_to_peers(w, st);
    return 0;
}

static void s_teardown(wrun_t *x)
{
    s_state_t *st = x->impl;
    zchan_sender_destroy(&st->s);
    zchan_receiver_destroy(&st->r);
    zchan_destroy(&st->ch);
    zchan_destroy(&st->ch2);
    if (!x->w->zctx)
        zchan_ctx_destroy(&st->ctx);
}

// ---------------------------------------------------------------------------
// The work

static int s_send(wrun_t *x)
{
    s_state_t *st = x->impl;
    zchan_msg_t *m = s_msg_make(x->payload, x->w->size);
    int e = m ? zchan_send(st->s, &m, x->w->stall_ms) : ZCHAN_ENOMEM;
    zchan_msg_destroy(&m);
    return e;
}

//  Destroying the sender flushes: all it sent has reached the channel.
static void s_flush(wrun_t *x)
{
    s_state_t *st = x->impl;
    zchan_sender_destroy(&st->s);
}

//  With w->use_select: waits in zchan_select on the receiver and a timer
//  that never fires (an hour), as a program with a timeout or a ticker
//  does, then reads with zchan_recv(..., 0). ETIMEDOUT after the stall time
//  without the receiver being ready.
static int s_select_recv(s_state_t *st, zchan_select_t *sel, zchan_timer_t *tm, zchan_msg_t **m, int stall_ms)
{
    while (true) {
        void *ready = zchan_select_wait(sel, stall_ms);
        if (!ready)
            return zchan_errno();
        if (ready == (void *) tm) {
            zchan_timer_wait(tm, NULL, 0); // never here: an hour has not passed
            continue;
        }
        int e = zchan_recv(st->r, m, 0);
        if (e != ZCHAN_ETIMEDOUT)
            return e;
    }
}

//  Receives until the channel is closed and drained, or nothing comes for
//  the stall time.
static int s_receive(wrun_t *x)
{
    s_state_t *st = x->impl;
    worker_t *w = x->w;
    zchan_select_t *sel = NULL;
    zchan_timer_t *tm = NULL;
    if (w->use_select) {
        sel = zchan_select_new();
        tm = zchan_timer_new(3600LL * 1000000, ZCHAN_SKIP_MISSED_AND_RESYNC);
        if (!sel || !tm || zchan_select_add_receiver(sel, st->r) != ZCHAN_OK
            || zchan_select_add_timer(sel, tm) != ZCHAN_OK) {
            int e = zchan_errno();
            zchan_select_destroy(&sel);
            zchan_timer_destroy(&tm);
            return perf_wfail(w, "select setup: %s", zchan_strerror(e));
        }
    }
    int rc = 0;
    while (true) {
        zchan_msg_t *m = NULL;
        int e = sel ? s_select_recv(st, sel, tm, &m, w->stall_ms) : zchan_recv(st->r, &m, w->stall_ms);
        if (e == ZCHAN_OK) {
            int64_t t = now_ns();
            perf_count(&x->res, s_msg_ok(m, w->size), t);
            zchan_msg_destroy(&m);
        } else if (e == ZCHAN_ECLOSED)
            break;
        else if (e == ZCHAN_ETIMEDOUT) {
            x->res.stalled = 1;
            break;
        } else if (e == ZCHAN_EPROTO)
            x->res.bad++;
        else {
            rc = perf_wfail(w, "%s: %s", sel ? "select or recv" : "recv", zchan_strerror(e));
            break;
        }
    }
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&tm);
    if (rc != 0)
        return rc;
    x->res.dropped = zchan_receiver_dropped(st->r);
    perf_report(w, &x->res);
    return 0;
}

static int s_round_trip(wrun_t *x)
{
    s_state_t *st = x->impl;
    worker_t *w = x->w;
    zchan_msg_t *m = NULL;
    int e = ZCHAN_OK;
    if (w->role == R_ZPING) {
        m = s_msg_make(x->payload, w->size);
        e = m ? zchan_send(st->s, &m, w->stall_ms) : ZCHAN_ENOMEM;
        zchan_msg_destroy(&m);
    }
    if (e == ZCHAN_OK)
        e = zchan_recv(st->r, &m, w->stall_ms);
    if (e == ZCHAN_OK && !s_msg_ok(m, w->size))
        e = ZCHAN_EPROTO;
    if (e == ZCHAN_OK && w->role == R_ZPONG)
        e = zchan_send(st->s, &m, w->stall_ms); // echo the received message as it is
    zchan_msg_destroy(&m);
    return e;
}

const perf_worker_ops_t perf_zchan_ops = {
    .state_size = sizeof(s_state_t),
    .setup = s_setup,
    .send = s_send,
    .flush = s_flush,
    .receive = s_receive,
    .round_trip = s_round_trip,
    .probe = NULL,
    .strerror = zchan_strerror,
    .teardown = s_teardown,
};

/*  worker_nng.c: the nng implementation of the worker roles (perf.h), the
    same jobs as the raw libzmq ones with nng's push/pull, pub/sub and
    req/rep sockets. Compiled only when the build found nng (ZCHAN_PERF_NNG).
*/
#define _GNU_SOURCE
#include "perf.h"
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    nng_socket sock;
    bool open;
    msgpack_sbuffer sb; // what is sent
    size_t plen;        // its size
    nng_msg *m;         // what was received, until freed
} s_state_t;

// ---------------------------------------------------------------------------
// Setup

static int s_open_socket(worker_t *w, nng_socket *sock)
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
    return rc == 0 ? 0 : perf_wfail(w, "nng open: %s", nng_strerror(rc));
}

//  Sets what is tuned: queues of nng_buf messages each way (as far as the
//  protocol has them), no receive size limit (nng's default of 1 MiB would
//  refuse a 1 MiB payload plus its msgpack header), and the stall timeout
//  on sends and receives.
static int s_sockopts(worker_t *w, nng_socket sock)
{
    int rc;
    bool sends = w->role == R_NPUSH || w->role == R_NPUB;
    bool recvs = w->role == R_NPULL || w->role == R_NSUB;
    if (sends && (rc = nng_socket_set_int(sock, NNG_OPT_SENDBUF, w->nng_buf)) != 0)
        return perf_wfail(w, "nng %s: %s", NNG_OPT_SENDBUF, nng_strerror(rc));
    if (recvs && (rc = nng_socket_set_int(sock, NNG_OPT_RECVBUF, w->nng_buf)) != 0)
        return perf_wfail(w, "nng %s: %s", NNG_OPT_RECVBUF, nng_strerror(rc));
    if ((rc = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 0)) != 0)
        return perf_wfail(w, "nng %s: %s", NNG_OPT_RECVMAXSZ, nng_strerror(rc));
    nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, w->stall_ms);
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, w->stall_ms);
    if (w->role == R_NSUB && (rc = nng_socket_set(sock, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0)
        return perf_wfail(w, "nng subscribe: %s", nng_strerror(rc));
    return 0;
}

//  Listens on w->ep (the bound URL, with the kernel's port for tcp, goes to
//  bound).
static int s_listen(worker_t *w, nng_socket sock, char *bound, size_t n)
{
    int rc;
    nng_listener l;
    if ((rc = nng_listen(sock, w->ep, &l, 0)) != 0)
        return perf_wfail(w, "listen %s: %s", w->ep, nng_strerror(rc));
    if (strncmp(w->ep, "tcp://", 6) != 0) {
        perf_copy_str(bound, n, w->ep);
        return 0;
    }
    int port = 0;
    if ((rc = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port)) != 0)
        return perf_wfail(w, "%s: %s", NNG_OPT_TCP_BOUND_PORT, nng_strerror(rc));
    snprintf(bound, n, "tcp://127.0.0.1:%d", port);
    return 0;
}

//  Listens, or dials every URL of the comma list w->ep, waiting for each.
static int s_attach(worker_t *w, nng_socket sock, char *bound, size_t n)
{
    bound[0] = 0;
    if (w->bind)
        return s_listen(w, sock, bound, n);
    char eps[sizeof w->ep];
    snprintf(eps, sizeof eps, "%s", w->ep);
    char *save = NULL;
    int rc;
    for (char *ep = strtok_r(eps, ",", &save); ep; ep = strtok_r(NULL, ",", &save))
        if ((rc = nng_dial(sock, ep, NULL, 0)) != 0)
            return perf_wfail(w, "dial %s: %s", ep, nng_strerror(rc));
    return 0;
}

//  A subscriber is ready once a probe from every publisher came through.
static int s_await_probes(worker_t *w, s_state_t *st)
{
    bool seen[MAX_PEERS] = {false};
    int nseen = 0, e;
    while (nseen < w->peers) {
        if ((e = nng_recvmsg(st->sock, &st->m, 0)) != 0)
            return perf_wfail(w, "no probe from %d publishers: %s", w->peers - nseen, nng_strerror(e));
        perf_probe_seen(nng_msg_body(st->m), nng_msg_len(st->m), seen, &nseen);
        nng_msg_free(st->m);
        st->m = NULL;
    }
    return 0;
}

static int s_setup(wrun_t *x)
{
    worker_t *w = x->w;
    s_state_t *st = x->impl;
    perf_wire_payload(&st->sb, x->payload, w->size);
    st->plen = st->sb.size;
    if (s_open_socket(w, &st->sock) != 0)
        return 1;
    st->open = true;
    if (s_sockopts(w, st->sock) != 0 || s_attach(w, st->sock, x->bound, sizeof x->bound) != 0)
        return 1;
    return w->role == R_NSUB ? s_await_probes(w, st) : 0;
}

static void s_teardown(wrun_t *x)
{
    s_state_t *st = x->impl;
    if (st->m)
        nng_msg_free(st->m);
    msgpack_sbuffer_destroy(&st->sb);
    if (st->open)
        nng_close(st->sock);
}

// ---------------------------------------------------------------------------
// The work

static int s_send(wrun_t *x)
{
    s_state_t *st = x->impl;
    return nng_send(st->sock, st->sb.data, st->plen, 0);
}

static void s_probe(wrun_t *x, const void *probe, size_t n)
{
    s_state_t *st = x->impl;
    nng_send(st->sock, (void *) probe, n, NNG_FLAG_NONBLOCK);
}

//  Takes every message waiting, counting it (a subscriber skips probes).
static void s_take_all(wrun_t *x, s_state_t *st, drain_t *d)
{
    bool sub = x->w->role == R_NSUB;
    nng_msg *m;
    while (nng_recvmsg(st->sock, &m, NNG_FLAG_NONBLOCK) == 0) {
        int64_t t = now_ns();
        const char *p = nng_msg_body(m);
        size_t n = nng_msg_len(m);
        if (!(sub && perf_is_probe(p, n))) // a publisher's probe is not data
            perf_count(&x->res, perf_wire_ok(x, p, n, st->plen), t);
        nng_msg_free(m);
        d->idle_since = t;
    }
}

//  nng pull and sub: as the raw puller, waiting on NNG_OPT_RECVFD and the
//  command pipe. A sub (w->count > 0) skips probes and reports as soon as it
//  has w->count messages; nng's pub/sub drops when its queues are full, so
//  it also reports when told to drain (after a quiet spell), to show the
//  loss instead of stalling.
static int s_receive(wrun_t *x)
{
    s_state_t *st = x->impl;
    worker_t *w = x->w;
    bool sub = w->role == R_NSUB, reported = false;
    drain_t d = {.idle_ms = -1};
    int rfd = -1, rc = nng_socket_get_int(st->sock, NNG_OPT_RECVFD, &rfd);
    if (rc != 0)
        return perf_wfail(w, "%s: %s", NNG_OPT_RECVFD, nng_strerror(rc));
    while (true) {
        struct pollfd items[2] = {{rfd, POLLIN, 0}, {x->lb->fd, POLLIN, 0}};
        bool draining = d.idle_ms >= 0;
        int prc = poll(items, 2, draining ? 10 : w->phase_ms);
        if (prc < 0 && errno != EINTR)
            return perf_wfail(w, "poll: %s", strerror(errno));
        if (items[0].revents & POLLIN) {
            s_take_all(x, st, &d);
            if (sub && !reported && x->res.count >= w->count) {
                perf_report(w, &x->res);
                reported = true;
            }
        }
        if ((items[1].revents & (POLLIN | POLLERR | POLLHUP)) && perf_drain_cmds(x, &d, !reported) != 0)
            return 0; // "quit", or the coordinator gave up
        perf_drain_tick(x, &d);
        if (prc == 0 && !draining)
            return perf_wfail(w, "no command from the coordinator");
    }
}

static int s_round_trip(wrun_t *x)
{
    s_state_t *st = x->impl;
    int e = 0;
    if (x->w->role == R_NREQ)
        e = nng_send(st->sock, st->sb.data, st->plen, 0);
    if (e == 0)
        e = nng_recvmsg(st->sock, &st->m, 0);
    if (e == 0 && !perf_wire_ok(x, nng_msg_body(st->m), nng_msg_len(st->m), st->plen))
        return RT_BAD_PAYLOAD; // st->m is freed by the teardown
    if (e == 0 && x->w->role == R_NREP) {
        e = nng_sendmsg(st->sock, st->m, 0); // echo the received message as it is; takes it
        if (e == 0)
            st->m = NULL;
    }
    if (st->m) {
        nng_msg_free(st->m);
        st->m = NULL;
    }
    return e;
}

const perf_worker_ops_t perf_nng_ops = {
    .state_size = sizeof(s_state_t),
    .setup = s_setup,
    .send = s_send,
    .flush = NULL,
    .receive = s_receive,
    .round_trip = s_round_trip,
    .probe = s_probe,
    .strerror = nng_strerror,
    .teardown = s_teardown,
};

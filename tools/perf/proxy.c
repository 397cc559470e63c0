/*  proxy.c: the middle hop of the raw and nng baselines (--baseline proxy),
    the same two hops as zchan's hub (perf.h), and the endpoints the
    baselines bind.
*/
#define _GNU_SOURCE
#include "perf.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
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

void perf_raw_bind_ep(const case_t *k, const char *name, int seq, char *out, size_t n)
{
    if (k->tr == TR_INPROC)
        snprintf(out, n, "inproc://raw-%s-%d", name, seq);
    else if (k->tr == TR_IPC)
        snprintf(out, n, "ipc://%.200s/raw-%.8s-%d.sock", g_tmpdir, name, seq);
    else
        snprintf(out, n, "tcp://127.0.0.1:*");
}

// ---------------------------------------------------------------------------
// raw libzmq: zmq_proxy_steerable in a thread, stopped through a PAIR

static void *s_proxy_main(void *arg)
{
    proxy_t *p = (proxy_t *) arg;
    zmq_proxy_steerable(p->front, p->back, NULL, p->ctl);
    return NULL;
}

void perf_proxy_stop(proxy_t *p)
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

//  The proxy's four sockets, with no linger (and no high-water marks for
//  broadcast: a lossless baseline).
static int s_proxy_sockets(const case_t *k, proxy_t *p, char *err, size_t errn)
{
    int ft = k->wl == WL_ANYCAST ? ZMQ_PULL : k->wl == WL_BROADCAST ? ZMQ_XSUB : ZMQ_ROUTER;
    int bt = k->wl == WL_ANYCAST ? ZMQ_PUSH : k->wl == WL_BROADCAST ? ZMQ_XPUB : ZMQ_DEALER;
    int zero = 0;
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
    return 0;
}

//  Binds sock on the endpoint for name, which becomes the bound one.
static int s_proxy_bind(const case_t *k, void *sock, const char *name, int seq, char *ep, size_t n, char *err,
                        size_t errn)
{
    perf_raw_bind_ep(k, name, seq, ep, n);
    if (zmq_bind(sock, ep) != 0) {
        snprintf(err, errn, "bind %s: %s", ep, zmq_strerror(zmq_errno()));
        return -1;
    }
    size_t len = n;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &len);
    return 0;
}

int perf_proxy_start(const case_t *k, proxy_t *p, char *fep, char *bep, size_t n, char *err, size_t errn)
{
    int seq = perf_seq();
    char ctl[64];
    snprintf(ctl, sizeof ctl, "inproc://perf-proxy-ctl-%d", seq);
    memset(p, 0, sizeof *p);
    if (s_proxy_sockets(k, p, err, errn) != 0 || s_proxy_bind(k, p->front, "front", seq, fep, n, err, errn) != 0
        || s_proxy_bind(k, p->back, "back", seq, bep, n, err, errn) != 0)
        return -1;
    if (zmq_bind(p->ctl, ctl) != 0 || zmq_connect(p->ctl_peer, ctl) != 0) {
        snprintf(err, errn, "proxy control: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (pthread_create(&p->thread, NULL, s_proxy_main, p) != 0) {
        snprintf(err, errn, "cannot start the proxy thread");
        return -1;
    }
    p->running = true;
    return 0;
}

// ---------------------------------------------------------------------------
// nng: forwarding threads between two raw-mode sockets

#ifdef ZCHAN_PERF_NNG
void perf_nng_bind_ep(const case_t *k, role_t role, char *out, size_t n)
{
    int seq = perf_seq();
    if (k->tr == TR_INPROC)
        snprintf(out, n, "inproc://nng-%s-%d", perf_roles[role].name, seq);
    else if (k->tr == TR_IPC)
        snprintf(out, n, "ipc://%.200s/%.8s-%d.sock", g_tmpdir, perf_roles[role].name, seq);
    else
        snprintf(out, n, "tcp://127.0.0.1:0");
}

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

struct nproxy_s {
    nng_socket front, back;
    bool open[2];
    atomic_bool stop;
    nfwd_t fwd[2]; // front -> back; back -> front (pingpong's replies)
};

static void *s_nfwd_main(void *arg)
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

void perf_nproxy_stop(nproxy_t **pp)
{
    nproxy_t *p = *pp;
    if (!p)
        return;
    atomic_store(&p->stop, true);
    for (int i = 0; i < 2; i++)
        if (p->fwd[i].running)
            pthread_join(p->fwd[i].thread, NULL);
    if (p->open[0])
        nng_close(p->front);
    if (p->open[1])
        nng_close(p->back);
    free(p);
    *pp = NULL;
}

//  anycast PULL|PUSH, broadcast SUB|PUB, pingpong REP|REQ, all raw mode.
static int s_nproxy_open(const case_t *k, nproxy_t *p, char *err, size_t errn)
{
    int rc = 0;
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
    return 0;
}

//  Sets the workers' queues, no receive size limit and 100 ms timeouts on
//  sock, and listens; ep becomes the URL to dial.
static int s_nproxy_listen(const case_t *k, nng_socket sock, char *ep, size_t n, char *err, size_t errn)
{
    //  Not every raw socket has both queues: what is there is set.
    nng_socket_set_int(sock, NNG_OPT_RECVBUF, k->o->nng_buf);
    nng_socket_set_int(sock, NNG_OPT_SENDBUF, k->o->nng_buf);
    nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 0);
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 100);
    nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 100);
    int seq = perf_seq(), rc, port = 0;
    if (k->tr == TR_INPROC)
        snprintf(ep, n, "inproc://nng-proxy-%d", seq);
    else if (k->tr == TR_IPC)
        snprintf(ep, n, "ipc://%.200s/nng-proxy-%d.sock", g_tmpdir, seq);
    else
        snprintf(ep, n, "tcp://127.0.0.1:0");
    nng_listener l;
    if ((rc = nng_listen(sock, ep, &l, 0)) != 0) {
        snprintf(err, errn, "nng listen %s: %s", ep, nng_strerror(rc));
        return -1;
    }
    if (k->tr != TR_TCP)
        return 0;
    if ((rc = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port)) != 0) {
        snprintf(err, errn, "nng %s: %s", NNG_OPT_TCP_BOUND_PORT, nng_strerror(rc));
        return -1;
    }
    snprintf(ep, n, "tcp://127.0.0.1:%d", port);
    return 0;
}

int perf_nproxy_start(const case_t *k, nproxy_t **pp, char *fep, char *bep, size_t n, char *err, size_t errn)
{
    nproxy_t *p = *pp = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errn, "out of memory");
        return -1;
    }
    atomic_init(&p->stop, false);
    if (s_nproxy_open(k, p, err, errn) != 0 || s_nproxy_listen(k, p->front, fep, n, err, errn) != 0
        || s_nproxy_listen(k, p->back, bep, n, err, errn) != 0)
        return -1;
    int nfwd = k->wl == WL_PINGPONG ? 2 : 1;
    for (int i = 0; i < nfwd; i++) {
        p->fwd[i] = (nfwd_t){.from = i ? p->back : p->front, .to = i ? p->front : p->back, .stop = &p->stop};
        if (pthread_create(&p->fwd[i].thread, NULL, s_nfwd_main, &p->fwd[i]) != 0) {
            snprintf(err, errn, "cannot start the nng proxy thread");
            return -1;
        }
        p->fwd[i].running = true;
    }
    return 0;
}
#endif

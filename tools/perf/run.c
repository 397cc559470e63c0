/*  run.c: one measured run of one implementation (perf.h).

    zchan, relay shape (--host relay): the channels live in the coordinator's
    hub; receivers start, then senders; all say "ready", the start time is
    taken and "go" said; the senders' "done", a close, and the receivers'
    results follow. One-hop shape (--host local): the hosting worker
    (receiver 0 of an anycast channel, sender 0 of a broadcast channel)
    starts first, creates the channel and reports its URI; the others attach
    to it; the coordinator opens it only to close it after the senders'
    "done". inproc: in the relay shape each worker thread has a zchan context
    of its own (three contexts, two hops); in the one-hop shape all of them
    use the coordinator's one context, which then hosts the channel for the
    worker that created it.
    raw libzmq and nng: the same workers with sockets, through the proxy of
    proxy.c or, with --baseline direct, connected to each other: then the
    binding side starts first and the others connect to where it listens.
*/
#define _GNU_SOURCE
#include "perf.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static worker_t s_worker_base(const case_t *k, role_t role, int id)
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

static long s_share(long total, int n, int i)
{
    return total / n + (i < total % n ? 1 : 0);
}

static int s_receivers(const case_t *k)
{
    return k->wl == WL_PINGPONG ? 1 : k->o->receivers;
}

static int s_senders(const case_t *k)
{
    return k->wl == WL_PINGPONG ? 1 : k->o->senders;
}

// ---------------------------------------------------------------------------
// Results

//  Checks one receiver's report against what it should have got.
static bool s_check_receiver(const child_t *c, int i, long expect_each, result_t *r, run_t *run)
{
    if (!perf_parse_result(c->line, r)) {
        snprintf(run->err, sizeof run->err, "malformed report '%.200s'", c->line);
        return false;
    }
    if (r->bad || r->dropped || (expect_each >= 0 && r->count != expect_each)) {
        char of[32] = "";
        if (expect_each >= 0)
            snprintf(of, sizeof of, " of %ld", expect_each);
        snprintf(run->err, sizeof run->err, "LOSS: receiver %d got %ld%s messages (%ld damaged, %" PRIu64
                 " dropped%s)", i, r->count, of, r->bad, r->dropped, r->stalled ? ", stalled" : "");
        return false;
    }
    return true;
}

//  Checks the results of a throughput run and fills the rates.
static void s_throughput(const case_t *k, child_t *rx, int nrx, int64_t t0, long expect_each, long expect_all,
                         run_t *run)
{
    long sum = 0;
    int64_t last = t0;
    for (int i = 0; i < nrx; i++) {
        result_t r;
        if (!s_check_receiver(&rx[i], i, expect_each, &r, run))
            return;
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

static void s_latency(const case_t *k, const char *line, run_t *run)
{
    result_t r;
    if (!perf_parse_result(line, &r) || r.count != k->count) {
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

//  Says "quit" and ends every worker; a worker's failure fails the run. A
//  worker that hosts the channel (host >= 0) goes last, after the others
//  have detached from it.
static void s_end_kids_host(child_t *kids, int nk, int host, run_t *run)
{
    for (int i = 0; i < nk; i++)
        if (i != host)
            perf_kids_say(&kids[i], 1, "quit");
    for (int j = 0; j <= nk; j++) {
        int i = j < nk ? j : host; // the host last
        if (i < 0 || (j < nk && i == host))
            continue;
        if (i == host)
            perf_kids_say(&kids[i], 1, "quit");
        int st = perf_child_finish(&kids[i], 10000);
        if (st != 0 && run->ok) {
            run->ok = false;
            snprintf(run->err, sizeof run->err, "%s worker %d exited with status %d",
                     perf_roles[kids[i].w.role].name, kids[i].w.id, st);
        }
    }
}

static void s_end_kids(child_t *kids, int nk, run_t *run)
{
    s_end_kids_host(kids, nk, -1, run);
}

//  The start barrier: every worker is ready; the start time, then "go".
static int s_go(child_t *kids, int nk, int64_t *t0, run_t *run)
{
    *t0 = now_ns();
    if (perf_kids_say(kids, nk, "go") != 0) {
        snprintf(run->err, sizeof run->err, "a worker went away before the start");
        return -1;
    }
    return 0;
}

//  Pingpong's end: the pinger's result, then the ponger's "done".
static int s_pingpong_end(const case_t *k, child_t *pinger, child_t *ponger, int64_t deadline, run_t *run)
{
    if (perf_collect(pinger, 1, "result", deadline, run->err, sizeof run->err) != 0
        || perf_collect(ponger, 1, "done", deadline, run->err, sizeof run->err) != 0)
        return -1;
    s_latency(k, pinger->line, run);
    return 0;
}

// ---------------------------------------------------------------------------
// zchan

static void s_chan_uri(const case_t *k, const char *what, char *out, size_t n)
{
    int seq = perf_seq();
    if (k->tr == TR_INPROC)
        snprintf(out, n, "inproc://perf-%s-%d", what, seq);
    else if (k->tr == TR_IPC)
        snprintf(out, n, "ipc://perf-%s-%d-%d", what, (int) getpid(), seq);
    else
        snprintf(out, n, "%s/perf-%s-%d", k->tcp_hub, what, seq);
}

//  The one-hop shape (--host local) of anycast and broadcast: a worker hosts
//  the channel.
static bool s_local(const case_t *k)
{
    return k->o->host_local && k->wl != WL_PINGPONG;
}

//  The hosting worker's index in the one-hop shape (receiver 0 of an anycast
//  channel, sender 0 of a broadcast channel), or -1.
static int s_host_index(const case_t *k)
{
    return !s_local(k) ? -1 : k->wl == WL_ANYCAST ? 0 : s_receivers(k);
}

//  The case's channels in the coordinator's hub: one, or pingpong's two. In
//  the one-hop shape only the name of the channel the hosting worker makes
//  (tcp: on a port it listens on, tcp://127.0.0.1:0/NAME until then).
static int s_zchannels(const case_t *k, char *uri, char *uri2, size_t n, zchan_t **ch, zchan_t **ch2, run_t *run)
{
    const options_t *o = k->o;
    if (s_local(k)) {
        if (k->tr == TR_TCP)
            snprintf(uri, n, "tcp://127.0.0.1:0/perf-%s-%d", k->wl == WL_ANYCAST ? "any" : "bcast", perf_seq());
        else
            s_chan_uri(k, k->wl == WL_ANYCAST ? "any" : "bcast", uri, n);
        return 0;
    }
    if (k->wl == WL_PINGPONG) {
        s_chan_uri(k, "ping", uri, n);
        s_chan_uri(k, "pong", uri2, n);
        *ch = zchan_anycast_new(k->zctx, uri, o->capacity);
        *ch2 = *ch ? zchan_anycast_new(k->zctx, uri2, o->capacity) : NULL;
    } else {
        s_chan_uri(k, k->wl == WL_ANYCAST ? "any" : "bcast", uri, n);
        *ch = k->wl == WL_ANYCAST ? zchan_anycast_new(k->zctx, uri, o->capacity)
                                  : zchan_broadcast_new(k->zctx, uri, false);
    }
    if (!*ch || (k->wl == WL_PINGPONG && !*ch2)) {
        snprintf(run->err, sizeof run->err, "cannot create channel %s: %s", uri, zchan_strerror(zchan_errno()));
        return -1;
    }
    return 0;
}

static worker_t s_zworker(const case_t *k, bool rx, int id, const char *uri, const char *uri2)
{
    const options_t *o = k->o;
    worker_t w;
    if (k->wl == WL_PINGPONG) {
        w = s_worker_base(k, rx ? R_ZPONG : R_ZPING, 0);
        w.count = k->count;
        w.warmup = k->warmup;
        w.host = !o->pp_hub;
        w.capacity = (long) o->capacity;
    } else {
        w = s_worker_base(k, rx ? R_ZRECV : R_ZSEND, id);
        w.count = rx ? 0 : s_share(k->count, s_senders(k), id);
        //  A broadcast receiver keeps everything: a lossless run.
        w.limit = k->wl != WL_BROADCAST ? 0 : o->limit ? o->limit : k->count < (1L << 24) ? k->count : (1L << 24);
        w.use_select = rx && o->rx_select;
        //  The relay shape in one process: each worker thread has a context
        //  of its own, so that the coordinator's is a third party.
        if (!o->host_local)
            w.zctx = NULL;
        //  The one-hop shape: receiver 0 hosts an anycast channel, sender 0
        //  a broadcast channel (and makes it in its context).
        w.bind = o->host_local && id == 0 && rx == (k->wl == WL_ANYCAST);
        w.capacity = (long) o->capacity;
        w.bcast = k->wl == WL_BROADCAST;
    }
    snprintf(w.ep, sizeof w.ep, "%s", uri);
    snprintf(w.ep2, sizeof w.ep2, "%s", uri2);
    return w;
}

//  After "go": waits for the senders, closes the channel (the close reaches
//  each receiver after the data, which it drains first), and checks. In the
//  one-hop shape ch is NULL: the coordinator opens the worker's channel to
//  close it.
static int s_zmeasure(const case_t *k, child_t *kids, zchan_t *ch, const char *uri, int64_t t0, int64_t deadline,
                      run_t *run)
{
    int nrx = s_receivers(k), ntx = s_senders(k);
    if (k->wl == WL_PINGPONG)
        return s_pingpong_end(k, kids + 1, kids, deadline, run);
    if (perf_collect(kids + nrx, ntx, "done", deadline, run->err, sizeof run->err) != 0)
        return -1;
    zchan_t *opened = ch ? NULL : zchan_open(k->zctx, uri);
    if (!ch && !opened) {
        snprintf(run->err, sizeof run->err, "zchan_open %s (to close it): %s", uri, zchan_strerror(zchan_errno()));
        return -1;
    }
    int rc = zchan_close(ch ? ch : opened);
    zchan_destroy(&opened);
    if (rc != ZCHAN_OK) {
        snprintf(run->err, sizeof run->err, "zchan_close: %s", zchan_strerror(rc));
        return -1;
    }
    if (perf_collect(kids, nrx, "result", deadline, run->err, sizeof run->err) != 0)
        return -1;
    s_throughput(k, kids, nrx, t0, k->wl == WL_BROADCAST ? k->count : -1,
                 k->wl == WL_BROADCAST ? k->count * nrx : k->count, run);
    return 0;
}

//  Starts the workers of kids[from..to) but host, with the channel at uri.
static int s_zstart(const case_t *k, child_t *kids, int from, int to, int host, const char *uri, const char *uri2,
                    run_t *run)
{
    int nrx = s_receivers(k);
    for (int i = from; i < to; i++) {
        if (i == host)
            continue;
        bool rx = i < nrx;
        worker_t w = s_zworker(k, rx, rx ? i : i - nrx, uri, uri2);
        if (perf_child_start(&kids[i], &w, k->tr == TR_INPROC, run->err, sizeof run->err) != 0)
            return -1;
    }
    return 0;
}

//  Starts the workers (receivers first, then senders; in the one-hop shape
//  the host before them, and they attach where it reports), and measures.
//  Receivers are kids[0..nrx), senders kids[nrx..nrx+ntx).
static int s_zrun(const case_t *k, child_t *kids, int *nk, zchan_t *ch, char *uri, const char *uri2, size_t urin,
                  run_t *run)
{
    int64_t deadline = now_ns() + (int64_t) k->o->timeout_s * 1000000000;
    int nrx = s_receivers(k), ntx = s_senders(k);
    int host = s_host_index(k);
    *nk = nrx + ntx; // the ones not started are skipped when ending
    if (host >= 0) {
        worker_t w = s_zworker(k, host < nrx, 0, uri, uri2);
        if (perf_child_start(&kids[host], &w, k->tr == TR_INPROC, run->err, sizeof run->err) != 0
            || perf_collect(&kids[host], 1, "ready", deadline, run->err, sizeof run->err) != 0)
            return -1;
        perf_copy_str(uri, urin, kids[host].line + (strlen(kids[host].line) > 6 ? 6 : strlen(kids[host].line)));
    }
    if (s_zstart(k, kids, 0, *nk, host, uri, uri2, run) != 0)
        return -1;
    //  The host's "ready" is consumed: the others' on each side of it.
    int lo = host < 0 ? *nk : host;
    int64_t t0;
    if (perf_collect(kids, lo, "ready", deadline, run->err, sizeof run->err) != 0
        || (host >= 0 && perf_collect(kids + host + 1, *nk - host - 1, "ready", deadline, run->err, sizeof run->err) != 0)
        || s_go(kids, *nk, &t0, run) != 0)
        return -1;
    return s_zmeasure(k, kids, ch, uri, t0, deadline, run);
}

void perf_run_zchan(const case_t *k, run_t *run)
{
    child_t *kids = calloc(MAX_KIDS, sizeof *kids);
    int nk = 0;
    char uri[256], uri2[256] = "";
    zchan_t *ch = NULL, *ch2 = NULL;
    if (!kids) {
        snprintf(run->err, sizeof run->err, "out of memory");
        return;
    }
    if (s_zchannels(k, uri, uri2, sizeof uri, &ch, &ch2, run) == 0
        && s_zrun(k, kids, &nk, ch, uri, uri2, sizeof uri, run) == 0) {
        s_end_kids_host(kids, nk, s_host_index(k), run);
        nk = 0;
    }
    perf_kids_abort(kids, nk);
    if (ch && k->wl == WL_PINGPONG) {
        zchan_close(ch);
        if (ch2)
            zchan_close(ch2);
    }
    zchan_destroy(&ch);
    zchan_destroy(&ch2);
    free(kids);
}

// ---------------------------------------------------------------------------
// raw libzmq and nng

//  One raw or nng run: the case, the implementation, and its workers:
//  receivers are kids[0..nrx), senders kids[nrx..nrx+ntx).
typedef struct {
    const case_t *k;
    bool nng, direct;
    bool rx_binds, tx_binds; // direct: which side binds
    role_t rrole, trole;
    int nrx, ntx;
    child_t *kids;
    char fep[256], bep[256];        // proxy: where senders and receivers connect
    char list[sizeof ((worker_t *) 0)->ep]; // direct: where the binders listen
    int64_t deadline;
} rawrun_t;

static worker_t s_raw_worker(rawrun_t *rr, bool do_rx, int i)
{
    const case_t *k = rr->k;
    worker_t w = s_worker_base(k, do_rx ? rr->rrole : rr->trole, i);
    w.bind = do_rx ? rr->rx_binds : rr->tx_binds;
    w.nng_buf = k->o->nng_buf;
    if (w.bind && rr->nng) {
#ifdef ZCHAN_PERF_NNG
        perf_nng_bind_ep(k, w.role, w.ep, sizeof w.ep);
#endif
    } else if (w.bind)
        perf_raw_bind_ep(k, perf_roles[w.role].name, perf_seq(), w.ep, sizeof w.ep);
    else
        snprintf(w.ep, sizeof w.ep, "%s", rr->direct ? rr->list : do_rx ? rr->bep : rr->fep);
    if (k->wl == WL_PINGPONG) {
        w.count = k->count;
        w.warmup = k->warmup;
    } else if (do_rx)
        w.count = k->wl == WL_BROADCAST ? k->count : 0;
    else
        w.count = s_share(k->count, rr->ntx, i);
    w.peers = rr->ntx;
    return w;
}

//  Only the binders are running: collects where they listen into the list
//  the others connect to. (Subscribers report ready after probes, so
//  publishers bind first.)
static int s_binders_list(rawrun_t *rr, child_t *binders, int n, run_t *run)
{
    if (perf_collect(binders, n, "ready", rr->deadline, run->err, sizeof run->err) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *ep = binders[i].line + 6;
        size_t used = strlen(rr->list);
        if (used + strlen(ep) + 2 > sizeof rr->list) {
            snprintf(run->err, sizeof run->err, "too many endpoints for --baseline direct");
            return -1;
        }
        if (used)
            rr->list[used++] = ',';
        perf_copy_str(rr->list + used, sizeof rr->list - used, ep);
    }
    return 0;
}

//  Starts every worker and waits until all are ready. Direct: the binding
//  side first (the pullers, the publishers or the REP).
static int s_raw_start(rawrun_t *rr, run_t *run)
{
    bool thread = rr->k->tr == TR_INPROC;
    for (int pass = 0; pass < 2; pass++) {
        bool do_rx = rr->direct ? (pass == 0) == rr->rx_binds : pass == 0;
        int first = do_rx ? 0 : rr->nrx, n = do_rx ? rr->nrx : rr->ntx;
        for (int i = 0; i < n; i++) {
            worker_t w = s_raw_worker(rr, do_rx, i);
            if (perf_child_start(&rr->kids[first + i], &w, thread, run->err, sizeof run->err) != 0)
                return -1;
        }
        if (rr->direct && pass == 0 && s_binders_list(rr, rr->kids + first, n, run) != 0)
            return -1;
    }
    if (!rr->direct)
        return perf_collect(rr->kids, rr->nrx + rr->ntx, "ready", rr->deadline, run->err, sizeof run->err);
    //  The binders' ready lines are consumed: collect the others'.
    child_t *others = rr->rx_binds ? rr->kids + rr->nrx : rr->kids;
    return perf_collect(others, rr->rx_binds ? rr->ntx : rr->nrx, "ready", rr->deadline, run->err, sizeof run->err);
}

//  PUSH/PULL has no end: asks the pullers for their counts after a quiet
//  spell, until they add up or stop growing for stall-ms.
static int s_drain_pullers(rawrun_t *rr, child_t *rx, run_t *run)
{
    const case_t *k = rr->k;
    long prev = -1;
    int64_t stall_until = now_ns() + (int64_t) k->o->stall_ms * 1000000;
    while (true) {
        if (perf_kids_say(rx, rr->nrx, "drain") != 0
            || perf_collect(rx, rr->nrx, "result", rr->deadline, run->err, sizeof run->err) != 0)
            return -1;
        long sum = 0;
        for (int i = 0; i < rr->nrx; i++) {
            result_t r;
            if (perf_parse_result(rx[i].line, &r))
                sum += r.count;
        }
        if (sum >= k->count || now_ns() > stall_until)
            return 0;
        if (sum > prev) {
            prev = sum;
            stall_until = now_ns() + (int64_t) k->o->stall_ms * 1000000;
        }
    }
}

static int s_raw_measure(rawrun_t *rr, int64_t t0, run_t *run)
{
    const case_t *k = rr->k;
    child_t *rx = rr->kids, *tx = rr->kids + rr->nrx;
    if (k->wl == WL_PINGPONG)
        return s_pingpong_end(k, tx, rx, rr->deadline, run);
    if (perf_collect(tx, rr->ntx, "done", rr->deadline, run->err, sizeof run->err) != 0)
        return -1;
    if (k->wl == WL_ANYCAST) {
        if (s_drain_pullers(rr, rx, run) != 0)
            return -1;
        s_throughput(k, rx, rr->nrx, t0, -1, k->count, run);
        return 0;
    }
    //  nng's subscribers may have lost messages: they report what they got
    //  after a quiet spell.
    if (rr->nng && perf_kids_say(rx, rr->nrx, "drain") != 0) {
        snprintf(run->err, sizeof run->err, "a subscriber went away");
        return -1;
    }
    if (perf_collect(rx, rr->nrx, "result", rr->deadline, run->err, sizeof run->err) != 0)
        return -1;
    s_throughput(k, rx, rr->nrx, t0, k->count, k->count * rr->nrx, run);
    return 0;
}

static void s_rawrun_init(rawrun_t *rr, const case_t *k, bool nng)
{
    memset(rr, 0, sizeof *rr);
    rr->k = k;
    rr->nng = nng;
    rr->direct = k->o->baseline == BL_DIRECT;
    rr->rx_binds = rr->direct && k->wl != WL_BROADCAST;
    rr->tx_binds = rr->direct && k->wl == WL_BROADCAST;
    rr->nrx = s_receivers(k);
    rr->ntx = s_senders(k);
    rr->rrole = k->wl == WL_ANYCAST ? R_PULL : k->wl == WL_BROADCAST ? R_SUB : R_REP;
    rr->trole = k->wl == WL_ANYCAST ? R_PUSH : k->wl == WL_BROADCAST ? R_PUB : R_REQ;
    if (nng) {
        rr->rrole = (role_t) (rr->rrole + (R_NPUSH - R_PUSH));
        rr->trole = (role_t) (rr->trole + (R_NPUSH - R_PUSH));
    }
    rr->deadline = now_ns() + (int64_t) k->o->timeout_s * 1000000000;
}

void perf_run_raw(const case_t *k, bool nng, run_t *run)
{
    rawrun_t *rr = malloc(sizeof *rr);
    child_t *kids = calloc(MAX_KIDS, sizeof *kids);
    proxy_t proxy = {0};
#ifdef ZCHAN_PERF_NNG
    nproxy_t *nproxy = NULL;
#endif
    int nk = 0, rc = -1;
    if (!rr || !kids) {
        snprintf(run->err, sizeof run->err, "out of memory");
        goto out;
    }
    s_rawrun_init(rr, k, nng);
    rr->kids = kids;
    if (!rr->direct && !nng)
        rc = perf_proxy_start(k, &proxy, rr->fep, rr->bep, sizeof rr->fep, run->err, sizeof run->err);
#ifdef ZCHAN_PERF_NNG
    else if (!rr->direct)
        rc = perf_nproxy_start(k, &nproxy, rr->fep, rr->bep, sizeof rr->fep, run->err, sizeof run->err);
#endif
    else
        rc = 0;
    nk = rr->nrx + rr->ntx; // the ones not started are skipped when ending
    int64_t t0;
    if (rc == 0 && s_raw_start(rr, run) == 0 && s_go(kids, nk, &t0, run) == 0 && s_raw_measure(rr, t0, run) == 0) {
        s_end_kids(kids, nk, run);
        nk = 0;
    }
out:
    if (kids)
        perf_kids_abort(kids, nk);
    perf_proxy_stop(&proxy);
#ifdef ZCHAN_PERF_NNG
    perf_nproxy_stop(&nproxy);
#endif
    free(kids);
    free(rr);
}

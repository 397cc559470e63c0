/*  zchan-perf: throughput and latency of zchan channels, measured against raw
    libzmq, and nng when it is compiled in, in the same run, over inproc, ipc
    and tcp (loopback only). perf.h lists the parts of the program.

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
    sender -> hub (coordinator) -> receiver: the relay shape. With --host
    local (the one-hop shape) the receiving worker hosts an anycast channel
    and the sending worker a broadcast channel instead (run.c). The raw baseline has the same
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
#include "perf.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAX_REPEAT 100

//  Every successful run's figures of one case, per implementation.
typedef struct {
    double rate[IMPL_N][MAX_REPEAT], mb[IMPL_N][MAX_REPEAT], p50[IMPL_N][MAX_REPEAT], p99[IMPL_N][MAX_REPEAT],
        mx[IMPL_N][MAX_REPEAT];
    double ratio[IMPL_N][MAX_REPEAT];
    int nok[IMPL_N], nratio[IMPL_N];
} samples_t;

//  One run of one implementation; false if it failed (said on stderr and
//  kept in the row).
static bool s_run_one(case_t *k, int impl, int rep, run_t *res, row_t *row, samples_t *sm)
{
    const options_t *o = k->o;
    if (o->verbose)
        fprintf(stderr, "zchan-perf: %s %s %zu B x %ld, %s, run %d of %d\n", perf_wl_names[k->wl],
                perf_tr_names[k->tr], k->size, k->count, perf_impl_names[impl], rep + 1, o->repeat);
    row->ran[impl] = true;
    if (impl == IMPL_ZCHAN)
        perf_run_zchan(k, res);
    else
        perf_run_raw(k, impl == IMPL_NNG, res);
    if (g_stop && !res->ok && !res->err[0])
        snprintf(res->err, sizeof res->err, "interrupted");
    if (!res->ok) {
        fprintf(stderr, "zchan-perf: *** FAILED: %s %s %zu B, %s: %s ***\n", perf_wl_names[k->wl],
                perf_tr_names[k->tr], k->size, perf_impl_names[impl], res->err);
        perf_copy_str(row->err[impl], sizeof row->err[impl], res->err);
        return false;
    }
    int m = sm->nok[impl]++;
    sm->rate[impl][m] = res->msgs_per_s;
    sm->mb[impl][m] = res->mb_per_s;
    sm->p50[impl][m] = res->p50_us;
    sm->p99[impl][m] = res->p99_us;
    sm->mx[impl][m] = res->max_us;
    return true;
}

//  The row: medians of every implementation's runs, and of the ratios.
static void s_medians(const options_t *o, samples_t *sm, row_t *row)
{
    for (int i = 0; i < IMPL_N; i++) {
        int n = sm->nok[i];
        row->ok[i] = row->ran[i] && n == o->repeat;
        if (n) {
            row->rate[i] = perf_median(sm->rate[i], n);
            row->mb[i] = perf_median(sm->mb[i], n);
            row->p50[i] = perf_median(sm->p50[i], n);
            row->p99[i] = perf_median(sm->p99[i], n);
            row->max[i] = perf_median(sm->mx[i], n);
        }
        if (i > 0 && sm->nratio[i] && row->ok[IMPL_ZCHAN] && row->ok[i]) {
            row->ratio[i] = perf_median(sm->ratio[i], sm->nratio[i]);
            row->has_ratio[i] = true;
        }
    }
}

//  Every repeat of every implementation of the case; false if one failed.
static bool s_run_case(case_t *k, row_t *row)
{
    const options_t *o = k->o;
    samples_t *sm = calloc(1, sizeof *sm);
    int order[IMPL_N], n = 0;
    for (int i = 0; i < IMPL_N; i++)
        if (o->run[i])
            order[n++] = i;
    memset(row, 0, sizeof *row);
    if (!sm) {
        for (int i = 0; i < n; i++)
            row->ran[order[i]] = true, snprintf(row->err[order[i]], sizeof row->err[0], "out of memory");
        return false;
    }
    bool all_ok = true;
    for (int rep = 0; rep < o->repeat && !g_stop; rep++) {
        run_t res[IMPL_N];
        memset(res, 0, sizeof res);
        //  Rotate which implementation goes first, so drift hits all alike.
        for (int j = 0; j < n && !g_stop; j++)
            if (!s_run_one(k, order[(j + rep) % n], rep, &res[order[(j + rep) % n]], row, sm))
                all_ok = false;
        for (int i = 1; i < IMPL_N; i++)
            if (res[IMPL_ZCHAN].ok && res[i].ok)
                sm->ratio[i][sm->nratio[i]++] = res[IMPL_ZCHAN].msgs_per_s / res[i].msgs_per_s;
    }
    s_medians(o, sm, row);
    free(sm);
    return all_ok;
}

//  Every case of the matrix, one row each. 0, or 1 if a case failed.
static int s_run_matrix(const options_t *o, zchan_ctx_t *zctx, const char *tcp_hub, void *rctx)
{
    int rc = 0;
    for (int wl = 0; wl < WL_N && !g_stop; wl++) {
        if (!o->workloads[wl])
            continue;
        perf_print_header(o, (workload_t) wl);
        for (int tr = 0; tr < TR_N && !g_stop; tr++) {
            for (int si = 0; si < o->nsizes && o->transports[tr] && !g_stop; si++) {
                case_t k = {.o = o, .wl = (workload_t) wl, .tr = (transport_t) tr, .size = o->sizes[si],
                            .zctx = zctx, .tcp_hub = tcp_hub, .rctx = rctx};
                k.count = o->count ? o->count : perf_default_count(k.wl, k.size);
                k.warmup = o->warmup >= 0 ? o->warmup : (k.count / 10 < 10 ? 10 : k.count / 10);
                row_t row;
                if (!s_run_case(&k, &row))
                    rc = 1;
                perf_print_row(o, k.wl, k.tr, k.size, k.count, &row);
            }
        }
    }
    return rc;
}

//  The coordinator's zchan context, hosting the channels (and listening on
//  tcp when a case needs it). 0, or -1 after saying why.
static int s_zchan_ctx(const options_t *o, zchan_ctx_t **zctx, const char **tcp_hub)
{
    if (!(*zctx = zchan_ctx_new())) {
        fprintf(stderr, "zchan-perf: zchan_ctx_new: %s\n", zchan_strerror(zchan_errno()));
        return -1;
    }
    if (!o->transports[TR_TCP])
        return 0;
    int e = zchan_ctx_bind(*zctx, "tcp://127.0.0.1:0");
    *tcp_hub = e == ZCHAN_OK ? zchan_ctx_endpoint(*zctx, "tcp") : NULL;
    if (!*tcp_hub) {
        fprintf(stderr, "zchan-perf: cannot listen on tcp://127.0.0.1: %s\n", zchan_strerror(e ? e : zchan_errno()));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--role"))
        return perf_worker_main(argc, argv);

    options_t o;
    if (perf_parse_options(argc, argv, &o) != 0)
        return 2;
    //  Results go to the real stdout (g_out); stdout itself to stderr. A
    //  private runtime directory for every ipc socket and lock file, zchan's
    //  and raw libzmq's; the workers inherit it. Removed at exit.
    if (coordinator_setup("zchan-perf", &g_out) != 0 || make_tmpdir("zchan-perf") != 0)
        return 2;

    int rc = 2;
    zchan_ctx_t *zctx = NULL;
    void *rctx = NULL;
    const char *tcp_hub = NULL;
    if (o.run[IMPL_ZCHAN] && s_zchan_ctx(&o, &zctx, &tcp_hub) != 0)
        goto done;
    if (o.run[IMPL_RAW] && !(rctx = zmq_ctx_new())) {
        fprintf(stderr, "zchan-perf: zmq_ctx_new: %s\n", zmq_strerror(zmq_errno()));
        goto done;
    }
    perf_print_banner(&o);
    rc = s_run_matrix(&o, zctx, tcp_hub, rctx);
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

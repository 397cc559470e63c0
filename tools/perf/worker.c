/*  worker.c: one worker, whatever its implementation (perf.h).

    Every role goes the same way: its implementation's setup attaches, the
    worker says "ready" (with the endpoint it bound, if it binds), waits for
    the start as its role does (gate_t), then sends, receives or makes round
    trips, reports, and waits for "quit". Pullers run their own loop after
    "ready", since they take "drain" and "quit" while they receive.

    A worker process is this program with --role NAME and "--key value"
    pairs, one per field of worker_t that a worker needs (s_args).
*/
#define _GNU_SOURCE
#include "perf.h"
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static const perf_worker_ops_t *s_ops(role_t role)
{
    switch (perf_roles[role].impl) {
    case IMPL_ZCHAN: return &perf_zchan_ops;
    case IMPL_RAW: return &perf_raw_ops;
#ifdef ZCHAN_PERF_NNG
    case IMPL_NNG: return &perf_nng_ops;
#endif
    default: return NULL;
    }
}

// ---------------------------------------------------------------------------
// The flow of every role

//  A publisher probes until "go", so subscribers can tell their subscription
//  is live. false if the coordinator gave up instead.
static bool s_probe_until_go(wrun_t *x, const perf_worker_ops_t *ops)
{
    unsigned char probe[PROBE_SIZE];
    perf_probe_make(probe, x->w->id);
    while (true) {
        ops->probe(x, probe, sizeof probe);
        char line[128];
        int l = line_read(x->lb, line, sizeof line, 1);
        if (l < 0 || (l == 1 && strcmp(line, "go") != 0))
            return false;
        if (l == 1)
            return true;
    }
}

static int s_send_all(wrun_t *x, const perf_worker_ops_t *ops)
{
    worker_t *w = x->w;
    for (long i = 0; i < w->count; i++) {
        int e = ops->send(x);
        if (e != 0)
            return perf_wfail(w, "send %ld of %ld: %s", i + 1, w->count, ops->strerror(e));
    }
    if (ops->flush)
        ops->flush(x); // all it sent has left
    say(w->out_fd, "done %ld", w->count);
    return 0;
}

//  Warmup and measured round trips; the pinger times the measured ones.
static int s_round_trips(wrun_t *x, const perf_worker_ops_t *ops)
{
    worker_t *w = x->w;
    bool pinger = perf_roles[w->role].kind == K_PING;
    long total = w->warmup + w->count;
    for (long i = 0; i < total; i++) {
        int64_t t0 = now_ns();
        int e = ops->round_trip(x);
        if (e == RT_BAD_PAYLOAD)
            return perf_wfail(w, "round trip %ld: bad payload", i + 1);
        if (e != 0)
            return perf_wfail(w, "round trip %ld of %ld: %s", i + 1, total, ops->strerror(e));
        int64_t t1 = now_ns();
        if (pinger && i >= w->warmup) {
            if (i == w->warmup)
                x->res.first = t0;
            x->res.last = t1;
            x->rtt[x->res.count++] = t1 - t0;
        }
    }
    //  Before the report: the other side (which may host the channel) is
    //  still there to answer.
    if (ops->flush)
        ops->flush(x);
    if (pinger) {
        perf_latency_stats(x->rtt, x->res.count, &x->res);
        perf_report(w, &x->res);
    } else
        say(w->out_fd, "done %ld", total);
    return 0;
}

//  After setup: "ready", the start, the work, "quit". The exit status.
static int s_drive(wrun_t *x, const perf_worker_ops_t *ops)
{
    worker_t *w = x->w;
    const role_info_t *ri = &perf_roles[w->role];
    if (w->bind)
        say(w->out_fd, "ready %s", x->bound);
    else
        say(w->out_fd, "ready");
    if (ri->gate == GATE_OWN)
        return ops->receive(x);
    if (ri->gate == GATE_GO && perf_await_cmd(w, x->lb, "go") != 0)
        return 0; // the coordinator gave up: leave quietly
    if (ri->gate == GATE_PROBE && !s_probe_until_go(x, ops))
        return 0;
    int rc = ri->kind == K_SEND ? s_send_all(x, ops) : ri->kind == K_RECV ? ops->receive(x) : s_round_trips(x, ops);
    if (rc != 0)
        return rc;
    return perf_await_cmd(w, x->lb, "quit") == 0 ? 0 : perf_wfail(w, "no quit from the coordinator");
}

int perf_worker_run(worker_t *w)
{
    linebuf_t lb = {.fd = w->in_fd};
    const perf_worker_ops_t *ops = s_ops(w->role);
    if (!ops)
        return perf_wfail(w, "nng is not compiled into this zchan-perf");
    char *payload = malloc(w->size ? w->size : 1);
    if (!payload)
        return perf_wfail(w, "out of memory");
    perf_put_payload(payload, w->size);
    wrun_t x = {.w = w, .lb = &lb, .payload = payload};
    int rc = 1;
    bool pinger = perf_roles[w->role].kind == K_PING;
    if (pinger && !(x.rtt = malloc(sizeof *x.rtt * (size_t) (w->count > 0 ? w->count : 1))))
        perf_wfail(w, "out of memory");
    else if (!(x.impl = calloc(1, ops->state_size)))
        perf_wfail(w, "out of memory");
    else {
        if (ops->setup(&x) == 0)
            rc = s_drive(&x, ops);
        ops->teardown(&x);
    }
    free(x.impl);
    free(x.rtt);
    free(payload);
    return rc;
}

void *perf_worker_thread(void *arg)
{
    worker_t *w = (worker_t *) arg;
    w->status = perf_worker_run(w);
    close(w->in_fd);
    close(w->out_fd);
    return NULL;
}

// ---------------------------------------------------------------------------
// A worker process's command line

//  The fields a worker process gets, by key. --role and --parent are apart.
typedef enum { A_STR, A_BOOL, A_SIZE, A_LONG, A_INT } argtype_t;
static const struct {
    const char *key;
    argtype_t type;
    size_t off, len;
} s_args[] = {
    {"--ep", A_STR, offsetof(worker_t, ep), sizeof ((worker_t *) 0)->ep},
    {"--ep2", A_STR, offsetof(worker_t, ep2), sizeof ((worker_t *) 0)->ep2},
    {"--bind", A_BOOL, offsetof(worker_t, bind), 0},
    {"--size", A_SIZE, offsetof(worker_t, size), 0},
    {"--count", A_LONG, offsetof(worker_t, count), 0},
    {"--warmup", A_LONG, offsetof(worker_t, warmup), 0},
    {"--id", A_INT, offsetof(worker_t, id), 0},
    {"--peers", A_INT, offsetof(worker_t, peers), 0},
    {"--limit", A_LONG, offsetof(worker_t, limit), 0},
    {"--stall", A_INT, offsetof(worker_t, stall_ms), 0},
    {"--phase", A_INT, offsetof(worker_t, phase_ms), 0},
    {"--nngbuf", A_INT, offsetof(worker_t, nng_buf), 0},
    {"--host", A_INT, offsetof(worker_t, host), 0},
    {"--capacity", A_LONG, offsetof(worker_t, capacity), 0},
    {"--bcast", A_INT, offsetof(worker_t, bcast), 0},
    {"--select", A_INT, offsetof(worker_t, use_select), 0},
};
#define NARGS (sizeof s_args / sizeof s_args[0])
_Static_assert(NARGS + 2 == PERF_WORKER_ARGS, "PERF_WORKER_ARGS counts s_args, --role and --parent");

static void s_arg_format(const worker_t *w, size_t i, char *out, size_t n)
{
    const char *f = (const char *) w + s_args[i].off;
    switch (s_args[i].type) {
    case A_STR: snprintf(out, n, "%s", f); break;
    case A_BOOL: snprintf(out, n, "%d", *(const bool *) f); break;
    case A_SIZE: snprintf(out, n, "%zu", *(const size_t *) f); break;
    case A_LONG: snprintf(out, n, "%ld", *(const long *) f); break;
    case A_INT: snprintf(out, n, "%d", *(const int *) f); break;
    }
}

static void s_arg_parse(worker_t *w, size_t i, const char *v)
{
    char *f = (char *) w + s_args[i].off;
    switch (s_args[i].type) {
    case A_STR: snprintf(f, s_args[i].len, "%s", v); break;
    case A_BOOL: *(bool *) f = atoi(v) != 0; break;
    case A_SIZE: *(size_t *) f = (size_t) strtoull(v, NULL, 10); break;
    case A_LONG: *(long *) f = atol(v); break;
    case A_INT: *(int *) f = atoi(v); break;
    }
}

void perf_worker_argv(const worker_t *w, char *self, perf_argval_t *vals, char **argv)
{
    int n = 0;
    argv[n++] = self;
    argv[n++] = "--role";
    snprintf(vals[0], sizeof vals[0], "%s", perf_roles[w->role].name);
    argv[n++] = vals[0];
    for (size_t i = 0; i < NARGS; i++) {
        argv[n++] = (char *) s_args[i].key;
        s_arg_format(w, i, vals[i + 1], sizeof vals[i + 1]);
        argv[n++] = vals[i + 1];
    }
    argv[n++] = "--parent";
    snprintf(vals[NARGS + 1], sizeof vals[NARGS + 1], "%ld", (long) getpid());
    argv[n++] = vals[NARGS + 1];
    argv[n] = NULL;
}

//  One "--key value" pair into w (or *parent); unknown keys are ignored.
static void s_take_arg(worker_t *w, long *parent, const char *k, const char *v)
{
    if (!strcmp(k, "--role")) {
        for (int r = 1; r < R_N; r++)
            if (!strcmp(v, perf_roles[r].name))
                w->role = (role_t) r;
        return;
    }
    if (!strcmp(k, "--parent")) {
        *parent = atol(v);
        return;
    }
    for (size_t i = 0; i < NARGS; i++)
        if (!strcmp(k, s_args[i].key))
            s_arg_parse(w, i, v);
}

int perf_worker_main(int argc, char **argv)
{
    worker_t w = {.in_fd = WORKER_IN_FD, .out_fd = WORKER_OUT_FD, .stall_ms = 10000, .phase_ms = 120000};
    long parent = 0;
    for (int i = 1; i + 1 < argc; i += 2)
        s_take_arg(&w, &parent, argv[i], argv[i + 1]);
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
    return perf_worker_run(&w);
}

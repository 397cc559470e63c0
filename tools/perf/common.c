/*  common.c: what workers and the coordinator share: the names, the payload,
    probes, reports and commands (perf.h). */
#define _GNU_SOURCE
#include "perf.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *const perf_wl_names[WL_N] = {"anycast", "broadcast", "pingpong"};
const char *const perf_tr_names[TR_N] = {"inproc", "ipc", "tcp"};
const char *const perf_impl_names[IMPL_N] = {"zchan", "raw", "nng"};

const role_info_t perf_roles[R_N] = {
    [R_NONE] = {"", IMPL_ZCHAN, K_SEND, GATE_GO},
    [R_ZSEND] = {"zsend", IMPL_ZCHAN, K_SEND, GATE_GO},
    [R_ZRECV] = {"zrecv", IMPL_ZCHAN, K_RECV, GATE_GO},
    [R_ZPING] = {"zping", IMPL_ZCHAN, K_PING, GATE_GO},
    [R_ZPONG] = {"zpong", IMPL_ZCHAN, K_PONG, GATE_GO},
    [R_PUSH] = {"push", IMPL_RAW, K_SEND, GATE_GO},
    [R_PULL] = {"pull", IMPL_RAW, K_RECV, GATE_OWN},
    [R_PUB] = {"pub", IMPL_RAW, K_SEND, GATE_PROBE},
    [R_SUB] = {"sub", IMPL_RAW, K_RECV, GATE_NONE},
    [R_REQ] = {"req", IMPL_RAW, K_PING, GATE_GO},
    [R_REP] = {"rep", IMPL_RAW, K_PONG, GATE_NONE},
    [R_NPUSH] = {"npush", IMPL_NNG, K_SEND, GATE_GO},
    [R_NPULL] = {"npull", IMPL_NNG, K_RECV, GATE_OWN},
    [R_NPUB] = {"npub", IMPL_NNG, K_SEND, GATE_PROBE},
    [R_NSUB] = {"nsub", IMPL_NNG, K_RECV, GATE_OWN},
    [R_NREQ] = {"nreq", IMPL_NNG, K_PING, GATE_GO},
    [R_NREP] = {"nrep", IMPL_NNG, K_PONG, GATE_NONE},
};

// ---------------------------------------------------------------------------
// Payloads and probes

void perf_put_payload(char *buf, size_t size)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (char) ((i * 31 + 7) & 0xff);
}

bool perf_payload_ok(const char *p, size_t n, size_t size)
{
    if (n != size)
        return false;
    if (size == 0)
        return true;
    return p[0] == (char) 7 && p[size - 1] == (char) (((size - 1) * 31 + 7) & 0xff);
}

void perf_wire_payload(msgpack_sbuffer *sb, const char *payload, size_t size)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_bin(&pk, size);
    msgpack_pack_bin_body(&pk, payload, size);
}

bool perf_wire_ok(const wrun_t *x, const void *p, size_t n, size_t plen)
{
    size_t size = x->w->size;
    return n == plen && perf_payload_ok((const char *) p + plen - size, size, size);
}

void perf_count(result_t *r, bool good, int64_t t)
{
    if (!good) {
        r->bad++;
        return;
    }
    if (r->count++ == 0)
        r->first = t;
    r->last = t;
}

void perf_probe_make(unsigned char probe[PROBE_SIZE], int id)
{
    uint32_t v = (uint32_t) id;
    probe[0] = 'P';
    memcpy(probe + 1, &v, 4);
}

bool perf_is_probe(const void *p, size_t n)
{
    return n == PROBE_SIZE && ((const unsigned char *) p)[0] == 'P';
}

void perf_probe_seen(const void *p, size_t n, bool seen[MAX_PEERS], int *nseen)
{
    if (!perf_is_probe(p, n))
        return;
    uint32_t id;
    memcpy(&id, (const unsigned char *) p + 1, 4);
    if (id < MAX_PEERS && !seen[id]) {
        seen[id] = true;
        (*nseen)++;
    }
}

// ---------------------------------------------------------------------------
// Reports and commands

int perf_wfail(worker_t *w, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *role = perf_roles[w->role].name;
    fprintf(stderr, "zchan-perf: %s %d: %s\n", role, w->id, msg);
    say(w->out_fd, "error %s %d: %s", role, w->id, msg);
    return 1;
}

void perf_report(worker_t *w, const result_t *r)
{
    say(w->out_fd, "result %ld %" PRId64 " %" PRId64 " %" PRIu64 " %ld %d %" PRId64 " %" PRId64 " %" PRId64,
        r->count, r->first, r->last, r->dropped, r->bad, r->stalled, r->p50, r->p99, r->max);
}

bool perf_parse_result(const char *line, result_t *r)
{
    memset(r, 0, sizeof *r);
    return sscanf(line, "result %ld %" SCNd64 " %" SCNd64 " %" SCNu64 " %ld %d %" SCNd64 " %" SCNd64 " %" SCNd64,
                  &r->count, &r->first, &r->last, &r->dropped, &r->bad, &r->stalled, &r->p50, &r->p99, &r->max)
           == 9;
}

int perf_await_cmd(worker_t *w, linebuf_t *lb, const char *cmd)
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

int perf_drain_cmds(wrun_t *x, drain_t *d, bool may_drain)
{
    char line[128];
    if (line_fill(x->lb) != 0 && !memchr(x->lb->buf, '\n', x->lb->len))
        return -1;
    while (line_take(x->lb, line, sizeof line)) {
        if (strcmp(line, "drain") == 0 && may_drain) {
            d->idle_ms = 50;
            d->idle_since = now_ns();
        } else if (strcmp(line, "quit") == 0)
            return 1;
    }
    return 0;
}

void perf_drain_tick(wrun_t *x, drain_t *d)
{
    if (d->idle_ms >= 0 && now_ns() - d->idle_since >= (int64_t) d->idle_ms * 1000000) {
        perf_report(x->w, &x->res);
        d->idle_ms = -1;
    }
}

// ---------------------------------------------------------------------------
// Small helpers

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

void perf_latency_stats(int64_t *rtt, long n, result_t *r)
{
    if (n <= 0)
        return;
    qsort(rtt, (size_t) n, sizeof *rtt, s_cmp_i64);
    r->p50 = rtt[n / 2];
    long k = (n * 99 + 99) / 100 - 1; // nearest rank
    r->p99 = rtt[k < 0 ? 0 : k >= n ? n - 1 : k];
    r->max = rtt[n - 1];
}

double perf_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t) n, sizeof *v, s_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void perf_copy_str(char *d, size_t n, const char *s)
{
    size_t k = strlen(s);
    if (k >= n)
        k = n - 1;
    memcpy(d, s, k);
    d[k] = 0;
}

int perf_seq(void)
{
    static int seq;
    return ++seq;
}

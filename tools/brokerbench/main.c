/*  zchan-brokerbench: one sender, a relay or broker, and one or more
    receivers, each in its own process, over tcp on 127.0.0.1: zchan through
    a zchan-relay, NATS through nats-server, RabbitMQ through rabbitmq-server.
    bench/run starts the servers and runs this once per repeat and broker,
    beside zchan-perf's raw libzmq through a zmq_proxy (docs/BENCHMARKS.md,
    "Relay and brokers"). brokerbench.h lists the parts.

    Workloads
    - anycast:   sender -> one queue -> R receivers, each message to one of
                 them (zchan: an anycast channel; NATS: a queue group;
                 RabbitMQ: a queue on the default exchange, manual acks).
    - broadcast: sender -> R receivers, each gets every message (zchan: a
                 broadcast channel; NATS: R plain subscriptions of a subject;
                 RabbitMQ: a fanout exchange with one queue per receiver).

    One run. The coordinator (this process, with no broker connection of its
    own) starts each receiver as a process (this program re-executed with
    --role), waits until it says "ready" (its subscription, queue or channel
    is in place at the broker), then starts the sender and waits for its
    "ready", says "go", and the sender sends COUNT messages and then waits
    for the broker to have taken them all (a round trip behind the last).
    Each receiver counts and checks every message and stamps the first and
    the last on CLOCK_MONOTONIC. It stops when it has them all, when the
    stream is closed, or when nothing has come for --quiet-ms after the
    sender finished.

    msgs/s = messages received, over every receiver / (last receipt - first
    receipt, over every receiver). pub msgs/s = COUNT / the sender's time
    from "go" until the broker has taken the last. A message missing at a
    receiver is counted lost (and NATS's own slow-consumer drops as
    dropped); either fails the run (exit 1) and the row says so, with the
    rate of what did arrive.
*/
#define _GNU_SOURCE
#include "brokerbench.h"
#include "../benchproc.h"
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_RECEIVERS 64
#define QUIET_MS_DEFAULT 2000

static FILE *g_out;

static const bb_backend_t *const s_backends[] = {
    &bb_zchan,
#ifdef BB_HAVE_NATS
    &bb_nats,
#endif
#ifdef BB_HAVE_RABBIT
    &bb_rabbit,
#endif
};
#define N_BACKENDS (sizeof s_backends / sizeof s_backends[0])

static const bb_backend_t *s_backend(const char *name)
{
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (!strcmp(s_backends[i]->name, name))
            return s_backends[i];
    return NULL;
}

// ---------------------------------------------------------------------------
// Payloads and URLs

void bb_payload_fill(char *buf, size_t size)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (char) ((i * 31 + 7) & 0xff);
}

bool bb_payload_ok(const void *p, size_t n, size_t size)
{
    const unsigned char *b = p;
    if (n != size)
        return false;
    return size == 0 || (b[0] == 7 && b[size - 1] == (unsigned char) (((size - 1) * 31 + 7) & 0xff));
}

//  The msgpack bin header for size bytes: bin 8, 16 or 32. Its length.
static size_t s_bin_header(unsigned char h[5], size_t size)
{
    if (size < 256) {
        h[0] = 0xc4;
        h[1] = (unsigned char) size;
        return 2;
    }
    if (size < 65536) {
        h[0] = 0xc5;
        h[1] = (unsigned char) (size >> 8);
        h[2] = (unsigned char) size;
        return 3;
    }
    h[0] = 0xc6;
    for (int i = 0; i < 4; i++)
        h[1 + i] = (unsigned char) (size >> (8 * (3 - i)));
    return 5;
}

void *bb_wire_make(size_t size, size_t *n)
{
    unsigned char h[5];
    size_t hn = s_bin_header(h, size);
    char *buf = malloc(hn + size);
    if (!buf)
        return NULL;
    memcpy(buf, h, hn);
    bb_payload_fill(buf + hn, size);
    *n = hn + size;
    return buf;
}

bool bb_wire_ok(const void *p, size_t n, size_t size)
{
    unsigned char h[5];
    size_t hn = s_bin_header(h, size);
    return n == hn + size && !memcmp(p, h, hn) && bb_payload_ok((const char *) p + hn, size, size);
}

int bb_host_port(const char *url, char *host, size_t hostn, int *port)
{
    const char *s = strstr(url, "://");
    if (!s)
        return -1;
    s += 3;
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || (size_t) (colon - s) >= hostn)
        return -1;
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || (*end && *end != '/') || v < 1 || v > 65535)
        return -1;
    memcpy(host, s, (size_t) (colon - s));
    host[colon - s] = 0;
    *port = (int) v;
    return 0;
}

// ---------------------------------------------------------------------------
// Options

typedef struct {
    const bb_backend_t *be;
    bb_params_t p;
    int receivers;
    int quiet_ms;
    int timeout_s;
    bool csv;
    //  Modes: a worker role, --probe, --free-ports.
    const char *role;
    bool probe;
    int deadline_ms;
    int free_ports;
} opts_t;

static const char *s_compiled_in(void)
{
    static char buf[64];
    buf[0] = 0;
    for (size_t i = 0; i < N_BACKENDS; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "", s_backends[i]->name);
    return buf;
}

static void s_usage(FILE *f)
{
    fprintf(f,
"Usage: zchan-brokerbench --broker B --url URL [OPTION]...\n"
"       zchan-brokerbench --probe --broker B --url URL [--deadline-ms MS]\n"
"       zchan-brokerbench --free-ports N\n"
"One measured run: a sender, the relay or broker at URL, and receivers, each in\n"
"its own process. bench/run starts the servers and calls this (docs/BENCHMARKS.md).\n"
"\n"
"  -b, --broker B       zchan (URL tcp://127.0.0.1:PORT of a zchan-relay), nats\n"
"                       (nats://127.0.0.1:PORT) or rabbitmq (amqp://127.0.0.1:PORT,\n"
"                       user guest). Compiled in: %s\n"
"  -u, --url URL        where the relay or broker listens\n"
"  -w, --workload W     anycast (default) or broadcast\n"
"  -r, --receivers R    receiver processes (default 1; at most %d; anycast: 1)\n"
"  -n, --count N        messages the sender sends (default 40000); every\n"
"                       broadcast receiver gets them all\n"
"      --size N         payload bytes (default 16), sent as a msgpack bin as a\n"
"                       zchan message carries it\n"
"      --capacity N     zchan: the anycast channel's capacity (default %d)\n"
"      --prefetch N     rabbitmq: basic.qos prefetch count per consumer\n"
"                       (default 1000; 0: unlimited)\n"
"      --ack-every N    rabbitmq: a cumulative ack (multiple) every N messages\n"
"                       (default: prefetch / 4, at least 1; 250 when unlimited)\n"
"      --stall-ms MS    a receiver that gets nothing this long stops (default 10000)\n"
"      --quiet-ms MS    after the sender is done, receivers stop after MS with\n"
"                       nothing new (default %d)\n"
"      --timeout S      the whole run fails after S seconds (default 120)\n"
"      --csv            a CSV header and one row instead of a line of text\n"
"  -h, --help           this help\n"
"\n"
"  --probe              connect to the broker and handshake, retrying every\n"
"                       100 ms until it works (exit 0) or --deadline-ms passes\n"
"                       (default 30000; exit 1)\n"
"  --free-ports N       print N tcp ports free on 127.0.0.1 now, one a line\n"
"\n"
"msgs/s = messages received over all receivers / (last - first receipt);\n"
"pub msgs/s = count / (time from the start until the broker took the last\n"
"message). A message lost or dropped fails the run (exit 1). Internal: --role\n"
"recv|send (and --id, --name) runs one worker.\n",
            s_compiled_in(),
            MAX_RECEIVERS, 10, QUIET_MS_DEFAULT);
}

static const struct option s_longs[] = {
    {"broker", required_argument, NULL, 'b'},   {"url", required_argument, NULL, 'u'},
    {"workload", required_argument, NULL, 'w'}, {"receivers", required_argument, NULL, 'r'},
    {"count", required_argument, NULL, 'n'},    {"size", required_argument, NULL, 'S'},
    {"capacity", required_argument, NULL, 'C'}, {"prefetch", required_argument, NULL, 'P'},
    {"ack-every", required_argument, NULL, 'A'}, {"stall-ms", required_argument, NULL, 'T'},
    {"quiet-ms", required_argument, NULL, 'Q'}, {"timeout", required_argument, NULL, 'O'},
    {"csv", no_argument, NULL, 'c'},            {"probe", no_argument, NULL, 'p'},
    {"deadline-ms", required_argument, NULL, 'D'}, {"free-ports", required_argument, NULL, 'F'},
    {"role", required_argument, NULL, 'R'},     {"id", required_argument, NULL, 'I'},
    {"name", required_argument, NULL, 'N'},     {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static int s_num(const char *opt, const char *s, long min, long max, long *out)
{
    if (parse_long(s, min, max, out))
        return 0;
    fprintf(stderr, "zchan-brokerbench: %s needs a number from %ld to %ld, not '%s'\n", opt, min, max, s);
    return -1;
}

static int s_parse(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->p.wl = BW_ANYCAST;
    o->p.id = -1;
    o->p.count = 40000;
    o->p.size = 16;
    o->p.capacity = 10;
    o->p.prefetch = 1000;
    o->p.ack_every = -1;
    o->p.stall_ms = 10000;
    o->receivers = 1;
    o->quiet_ms = QUIET_MS_DEFAULT;
    o->timeout_s = 120;
    o->deadline_ms = 30000;
    const char *broker = NULL;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "b:u:w:r:n:h", s_longs, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'b': broker = optarg; break;
        case 'u': o->p.url = optarg; break;
        case 'w':
            if (!strcmp(optarg, "anycast"))
                o->p.wl = BW_ANYCAST;
            else if (!strcmp(optarg, "broadcast"))
                o->p.wl = BW_BROADCAST;
            else {
                fprintf(stderr, "zchan-brokerbench: --workload is anycast or broadcast\n");
                return -1;
            }
            break;
        case 'r': rc = s_num("--receivers", optarg, 1, MAX_RECEIVERS, &v); o->receivers = (int) v; break;
        case 'n': rc = s_num("--count", optarg, 1, 100000000, &o->p.count); break;
        case 'S': rc = s_num("--size", optarg, 0, 64 << 20, &v); o->p.size = (size_t) v; break;
        case 'C': rc = s_num("--capacity", optarg, 0, 1 << 20, &o->p.capacity); break;
        case 'P': rc = s_num("--prefetch", optarg, 0, 65535, &o->p.prefetch); break;
        case 'A': rc = s_num("--ack-every", optarg, 1, 65535, &o->p.ack_every); break;
        case 'T': rc = s_num("--stall-ms", optarg, 100, 3600000, &v); o->p.stall_ms = (int) v; break;
        case 'Q': rc = s_num("--quiet-ms", optarg, 10, 600000, &v); o->quiet_ms = (int) v; break;
        case 'O': rc = s_num("--timeout", optarg, 1, 86400, &v); o->timeout_s = (int) v; break;
        case 'c': o->csv = true; break;
        case 'p': o->probe = true; break;
        case 'D': rc = s_num("--deadline-ms", optarg, 0, 3600000, &v); o->deadline_ms = (int) v; break;
        case 'F': rc = s_num("--free-ports", optarg, 1, 64, &v); o->free_ports = (int) v; break;
        case 'R': o->role = optarg; break;
        case 'I': rc = s_num("--id", optarg, -1, MAX_RECEIVERS, &v); o->p.id = (int) v; break;
        case 'N': o->p.name = optarg; break;
        case 'h': s_usage(stdout); exit(0);
        default: return -1;
        }
        if (rc)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "zchan-brokerbench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (o->free_ports)
        return 0;
    if (!broker || !o->p.url) {
        fprintf(stderr, "zchan-brokerbench: --broker and --url are needed (see --help)\n");
        return -1;
    }
    if (!(o->be = s_backend(broker))) {
        fprintf(stderr, "zchan-brokerbench: broker '%s' is not compiled in (see --help)\n", broker);
        return -1;
    }
    if (o->p.ack_every < 0)
        o->p.ack_every = o->p.prefetch ? (o->p.prefetch / 4 > 0 ? o->p.prefetch / 4 : 1) : 250;
    return 0;
}

// ---------------------------------------------------------------------------
// Workers

static int s_wfail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int s_wfail(const char *fmt, ...)
{
    char buf[LINE_MAX_ - 16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *q = buf; *q; q++)
        if (*q == '\n')
            *q = ' ';
    fprintf(stderr, "zchan-brokerbench: worker: %s\n", buf);
    say(WORKER_OUT_FD, "error %s", buf);
    return 1;
}

//  Waits for the command (other lines are skipped). 0, or -1 at the end.
static int s_await(linebuf_t *lb, const char *cmd)
{
    char line[LINE_MAX_];
    while (line_read(lb, line, sizeof line, -1) == 1)
        if (!strcmp(line, cmd))
            return 0;
    return -1;
}

static int s_receiver(const opts_t *o, void *st, linebuf_t *lb)
{
    const bb_backend_t *be = o->be;
    const bb_params_t *p = &o->p;
    char err[512] = "";
    if (be->recv_setup(st, p, err, sizeof err) != 0)
        return s_wfail("%s receiver setup: %s", be->name, err);
    say(WORKER_OUT_FD, "ready");
    long got = 0, bad = 0;
    int64_t first = 0, last = 0, mark = now_ns();
    bool sent = false, stalled = false, quit = false;
    while (got + bad < p->count) {
        bool good = false;
        bb_recv_t r = be->recv(st, p, 100, &good, err, sizeof err);
        if (r == BR_MSG) {
            last = now_ns();
            if (!first)
                first = last;
            if (good)
                got++;
            else
                bad++;
            continue;
        }
        if (r == BR_CLOSED)
            break;
        if (r == BR_ERROR)
            return s_wfail("%s receive: %s", be->name, err);
        char line[LINE_MAX_];
        int lr;
        while ((lr = line_read(lb, line, sizeof line, 0)) == 1) {
            if (!strcmp(line, "sent") && !sent) {
                sent = true;
                mark = now_ns();
            } else if (!strcmp(line, "quit"))
                quit = true;
        }
        if (lr < 0 || quit)
            break;
        int64_t since = now_ns() - (last > mark ? last : mark);
        if (since > (int64_t) (sent ? o->quiet_ms : p->stall_ms) * 1000000) {
            stalled = !sent;
            break;
        }
    }
    say(WORKER_OUT_FD, "result %ld %ld %" PRId64 " %" PRId64 " %" PRIu64 " %d", got, bad, first, last,
        be->dropped(st), stalled);
    if (!quit)
        s_await(lb, "quit");
    return 0;
}

static int s_sender(const opts_t *o, void *st, linebuf_t *lb)
{
    const bb_backend_t *be = o->be;
    char err[512] = "";
    size_t n = 0;
    void *msg = bb_wire_make(o->p.size, &n);
    if (!msg)
        return s_wfail("out of memory");
    if (be->send_setup(st, &o->p, err, sizeof err) != 0) {
        free(msg);
        return s_wfail("%s sender setup: %s", be->name, err);
    }
    say(WORKER_OUT_FD, "ready");
    if (s_await(lb, "go") != 0) {
        free(msg);
        return 1;
    }
    int64_t t0 = now_ns();
    for (long i = 0; i < o->p.count; i++)
        if (be->send(st, msg, n, err, sizeof err) != 0) {
            free(msg);
            return s_wfail("%s send %ld of %ld: %s", be->name, i + 1, o->p.count, err);
        }
    int64_t t1 = now_ns();
    free(msg);
    if (be->flush(st, err, sizeof err) != 0)
        return s_wfail("%s flush: %s", be->name, err);
    int64_t t2 = now_ns();
    say(WORKER_OUT_FD, "sent %" PRId64 " %" PRId64 " %" PRId64, t0, t1, t2);
    s_await(lb, "quit");
    return 0;
}

static int s_worker(const opts_t *o)
{
    static linebuf_t lb;
    lb.fd = WORKER_IN_FD;
    signal(SIGPIPE, SIG_IGN);
    void *st = calloc(1, o->be->state_size ? o->be->state_size : 1);
    if (!st)
        return s_wfail("out of memory");
    int rc;
    if (!strcmp(o->role, "recv"))
        rc = s_receiver(o, st, &lb);
    else if (!strcmp(o->role, "send"))
        rc = s_sender(o, st, &lb);
    else
        rc = s_wfail("unknown role '%s'", o->role);
    o->be->teardown(st);
    free(st);
    return rc;
}

// ---------------------------------------------------------------------------
// The coordinator

typedef struct {
    pid_t pid;
    int to;          // its command pipe (write end), -1 if none
    linebuf_t from;  // its reports
    bool started;
} kid_t;

static int s_spawn(const opts_t *o, kid_t *k, const char *role, int id, const char *name, char *err, size_t errn)
{
    int down[2], up[2];
    if (worker_pipes(down, up, err, errn) != 0)
        return -1;
    char a_id[16], a_count[24], a_size[24], a_cap[24], a_pre[24], a_ack[24], a_stall[16], a_quiet[16];
    snprintf(a_id, sizeof a_id, "%d", id);
    snprintf(a_count, sizeof a_count, "%ld", o->p.count);
    snprintf(a_size, sizeof a_size, "%zu", o->p.size);
    snprintf(a_cap, sizeof a_cap, "%ld", o->p.capacity);
    snprintf(a_pre, sizeof a_pre, "%ld", o->p.prefetch);
    snprintf(a_ack, sizeof a_ack, "%ld", o->p.ack_every);
    snprintf(a_stall, sizeof a_stall, "%d", o->p.stall_ms);
    snprintf(a_quiet, sizeof a_quiet, "%d", o->quiet_ms);
    char *argv[] = {g_self, "--role", (char *) role, "--id", a_id, "--name", (char *) name,
                    "--broker", (char *) o->be->name, "--url", (char *) o->p.url,
                    "--workload", o->p.wl == BW_ANYCAST ? "anycast" : "broadcast", "--count", a_count,
                    "--size", a_size, "--capacity", a_cap, "--prefetch", a_pre, "--ack-every", a_ack,
                    "--stall-ms", a_stall, "--quiet-ms", a_quiet, NULL};
    int rc = worker_spawn(&k->pid, argv, down[0], up[1]);
    if (rc != 0) {
        close(down[1]);
        close(up[0]);
        snprintf(err, errn, "spawn %.200s: %s", g_self, strerror(rc));
        return -1;
    }
    k->to = down[1];
    k->from.fd = up[0];
    k->from.len = 0;
    k->from.eof = false;
    k->started = true;
    return 0;
}

//  Waits for a line of the kid starting with prefix ("error ..." fails).
static int s_expect(kid_t *k, const char *what, const char *prefix, char *line, size_t n, int64_t deadline,
                    char *err, size_t errn)
{
    while (true) {
        int64_t left = (deadline - now_ns()) / 1000000;
        int r = left > 0 ? line_read(&k->from, line, n, (int) left) : 0;
        if (r == 1 && !strncmp(line, prefix, strlen(prefix)))
            return 0;
        if (r == 1 && !strncmp(line, "error ", 6)) {
            snprintf(err, errn, "%s: %s", what, line + 6);
            return -1;
        }
        if (r == 1)
            continue;
        snprintf(err, errn, "%s: %s", what, g_stop ? "interrupted" : r == 0 ? "timed out" : "exited");
        return -1;
    }
}

//  Ends the kids: "quit" and a wait, or SIGKILL. Returns the index of a kid
//  that ended with a non-zero status (*status) after a "quit", or -1.
static int s_end(kid_t *kids, int n, bool kill_them, int *status)
{
    int failed = -1;
    for (int i = 0; i < n; i++)
        if (kids[i].started) {
            if (!kill_them)
                say(kids[i].to, "quit");
            close(kids[i].to);
        }
    for (int i = 0; i < n; i++)
        if (kids[i].started) {
            if (kill_them)
                kill(kids[i].pid, SIGKILL);
            int st = worker_reap(kids[i].pid, 5000);
            if (st != 0 && !kill_them && failed < 0) {
                failed = i;
                *status = st;
            }
            close(kids[i].from.fd);
            kids[i].started = false;
        }
    return failed;
}

typedef struct {
    long expected, received, bad;
    uint64_t dropped;
    int stalled;
    int64_t first, last, t0, t1, t2;
} outcome_t;

static int s_run(const opts_t *o, const char *name, outcome_t *out, char *err, size_t errn)
{
    kid_t kids[MAX_RECEIVERS + 1];
    memset(kids, 0, sizeof kids);
    int n = o->receivers + 1, rc = -1;
    int st = 0, bad;
    kid_t *snd = &kids[o->receivers];
    int64_t deadline = now_ns() + (int64_t) o->timeout_s * 1000000000;
    char line[LINE_MAX_], what[64];
    memset(out, 0, sizeof *out);
    //  Receivers one at a time (the first makes the zchan channel), then the sender.
    for (int i = 0; i < o->receivers; i++) {
        snprintf(what, sizeof what, "receiver %d", i);
        if (s_spawn(o, &kids[i], "recv", i, name, err, errn) != 0 ||
            s_expect(&kids[i], what, "ready", line, sizeof line, deadline, err, errn) != 0)
            goto end_kids;
    }
    if (s_spawn(o, snd, "send", -1, name, err, errn) != 0 ||
        s_expect(snd, "sender", "ready", line, sizeof line, deadline, err, errn) != 0)
        goto end_kids;
    say(snd->to, "go");
    if (s_expect(snd, "sender", "sent ", line, sizeof line, deadline, err, errn) != 0)
        goto end_kids;
    if (sscanf(line, "sent %" SCNd64 " %" SCNd64 " %" SCNd64, &out->t0, &out->t1, &out->t2) != 3) {
        snprintf(err, errn, "sender: bad report '%.200s'", line);
        goto end_kids;
    }
    for (int i = 0; i < o->receivers; i++)
        say(kids[i].to, "sent");
    out->first = INT64_MAX;
    for (int i = 0; i < o->receivers; i++) {
        snprintf(what, sizeof what, "receiver %d", i);
        if (s_expect(&kids[i], what, "result ", line, sizeof line, deadline, err, errn) != 0)
            goto end_kids;
        long got, bad;
        int64_t first, last;
        uint64_t dropped;
        int stalled;
        if (sscanf(line, "result %ld %ld %" SCNd64 " %" SCNd64 " %" SCNu64 " %d", &got, &bad, &first, &last,
                   &dropped, &stalled) != 6) {
            snprintf(err, errn, "%s: bad report '%.200s'", what, line);
            goto end_kids;
        }
        out->received += got;
        out->bad += bad;
        out->dropped += dropped;
        out->stalled += stalled;
        if (got + bad > 0 && first < out->first)
            out->first = first;
        if (last > out->last)
            out->last = last;
    }
    if (out->first == INT64_MAX)
        out->first = 0;
    out->expected = o->p.wl == BW_BROADCAST ? o->p.count * o->receivers : o->p.count;
    rc = 0;
end_kids:
    bad = s_end(kids, n, rc != 0, &st);
    if (rc == 0 && bad >= 0) {
        //  A worker that failed after its report (its teardown, a sanitizer).
        snprintf(err, errn, "%s exited with status %d", bad == o->receivers ? "the sender" : "a receiver", st);
        rc = -1;
    }
    return rc;
}

static int s_coordinator(const opts_t *o)
{
    if (o->p.wl == BW_ANYCAST && o->receivers > 1) {
        //  The receivers would have to share out the count; one is what bench/run runs.
        fprintf(stderr, "zchan-brokerbench: anycast runs one receiver (-r 1)\n");
        return 2;
    }
    char name[96];
    snprintf(name, sizeof name, "zbb-%ld-%" PRId64, (long) getpid(), now_ns() % 1000000000);
    outcome_t r;
    char err[1024] = "";
    int rc = s_run(o, name, &r, err, sizeof err);
    char setting[96];
    if (!strcmp(o->be->name, "zchan") && o->p.wl == BW_ANYCAST)
        snprintf(setting, sizeof setting, "capacity %ld", o->p.capacity);
    else if (!strcmp(o->be->name, "zchan"))
        snprintf(setting, sizeof setting, "receiver limit = count");
    else if (!strcmp(o->be->name, "nats"))
        snprintf(setting, sizeof setting, "%s", o->p.wl == BW_ANYCAST ? "queue group" : "plain subscriptions");
    else
        snprintf(setting, sizeof setting, "prefetch %ld; manual acks multiple every %ld%s", o->p.prefetch, o->p.ack_every,
                 o->p.wl == BW_BROADCAST ? "; fanout" : "");
    double rate = 0, prate = 0;
    long lost = 0;
    char status[1100];
    if (rc != 0)
        snprintf(status, sizeof status, "FAILED: %s", err);
    else {
        long have = r.received + r.bad;
        lost = r.expected > have ? r.expected - have : 0;
        if (r.last > r.first)
            rate = (double) r.received / ((double) (r.last - r.first) / 1e9);
        if (r.t2 > r.t0)
            prate = (double) o->p.count / ((double) (r.t2 - r.t0) / 1e9);
        if (lost || r.dropped || r.bad || have > r.expected)
            snprintf(status, sizeof status, "LOSSY: %ld lost, %" PRIu64 " dropped, %ld damaged, %ld extra", lost,
                     r.dropped, r.bad, have > r.expected ? have - r.expected : 0L);
        else
            snprintf(status, sizeof status, "ok");
        if (lost || r.dropped || r.bad || have > r.expected)
            rc = -1;
    }
    const char *wl = o->p.wl == BW_ANYCAST ? "anycast" : "broadcast";
    if (o->csv) {
        for (char *q = status; *q; q++)
            if (*q == '"')
                *q = '\'';
        fprintf(g_out, "broker,workload,receivers,size,count,setting,expected,received,lost,dropped,bad,"
                       "msgs_per_s,pub_msgs_per_s,status\n");
        fprintf(g_out, "%s,%s,%d,%zu,%ld,%s,%ld,%ld,%ld,%" PRIu64 ",%ld,%.0f,%.0f,\"%s\"\n", o->be->name, wl,
                o->receivers, o->p.size, o->p.count, setting, r.expected, r.received, lost, r.dropped, r.bad, rate,
                prate, status);
    } else
        fprintf(g_out, "%s %s 1->%d, %zu B x %ld (%s): %.0f msg/s received, publisher %.0f msg/s: %s\n",
                o->be->name, wl, o->receivers, o->p.size, o->p.count, setting, rate, prate, status);
    fflush(g_out);
    if (rc != 0 && !o->csv)
        fprintf(stderr, "zchan-brokerbench: %s\n", status);
    return rc == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------
// --probe and --free-ports

static int s_probe(const opts_t *o)
{
    int64_t deadline = now_ns() + (int64_t) o->deadline_ms * 1000000;
    char err[512] = "";
    while (true) {
        if (o->be->probe(o->p.url, err, sizeof err) == 0)
            return 0;
        if (now_ns() >= deadline || g_stop)
            break;
        sleep_ms(100);
    }
    fprintf(stderr, "zchan-brokerbench: %s at %s not ready within %d ms: %s\n", o->be->name, o->p.url,
            o->deadline_ms, err);
    return 1;
}

//  Binds n sockets at once to 127.0.0.1:0 so that the ports differ, prints
//  them, and closes them. Someone else may take one before it is used.
static int s_free_ports(int n)
{
    int fds[64], rc = 0, i;
    for (i = 0; i < n; i++) {
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *) &a, sizeof a) != 0 ||
            getsockname(fds[i], (struct sockaddr *) &a, &len) != 0) {
            fprintf(stderr, "zchan-brokerbench: --free-ports: %s\n", strerror(errno));
            if (fds[i] >= 0)
                close(fds[i]);
            rc = 1;
            break;
        }
        fprintf(g_out, "%d\n", ntohs(a.sin_port));
    }
    while (i-- > 0)
        close(fds[i]);
    fflush(g_out);
    return rc;
}

int main(int argc, char **argv)
{
    opts_t o;
    if (s_parse(argc, argv, &o) != 0)
        return 2;
    if (o.role)
        return s_worker(&o);
    if (coordinator_setup("zchan-brokerbench", &g_out) != 0)
        return 1;
    if (o.free_ports)
        return s_free_ports(o.free_ports);
    if (o.probe)
        return s_probe(&o);
    return s_coordinator(&o);
}

/*  perf.h: what the parts of zchan-perf share (main.c says what it measures).

    The program is a coordinator and its workers. The parts:
    - options.c:      the command line of the coordinator, and its defaults.
    - worker.c:       one worker: the flow every role follows (attach, "ready",
                      the start, send, receive or round trips, "quit"), driven
                      through an implementation's ops (perf_worker_ops_t), and
                      a worker process's command line.
    - worker_zchan.c, worker_raw.c, worker_nng.c: the three implementations.
    - common.c:       payloads, probes, reports and commands, both sides use.
    - children.c:     the coordinator's side of its workers: start, talk, end.
    - run.c, proxy.c: one measured run of one implementation, and the proxies
                      of the raw and nng baselines.
    - output.c, main.c: the table or CSV, and the matrix of cases.
*/
#ifndef ZCHAN_PERF_H_INCLUDED
#define ZCHAN_PERF_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <msgpack.h>
#include <pthread.h>
#include <zchan.h>
#include "../benchproc.h"

#define MAX_SIZES 16
#define MAX_PEERS 64
#define MAX_KIDS (2 * MAX_PEERS + 2)
#define PROBE_SIZE 5

//  nng's message queues (NNG_OPT_SENDBUF, NNG_OPT_RECVBUF): its maximum,
//  8192, by default. Raw PUB/SUB gets unlimited high-water marks, and nng's
//  pub/sub drops when a queue is full and has no unlimited setting. For
//  push/pull the size made no difference on the machine of docs/BENCHMARKS.md.
#define NNG_BUF_DEFAULT 8192
#ifdef ZCHAN_PERF_NNG
#define HAVE_NNG true
#else
#define HAVE_NNG false
#endif

typedef enum { WL_ANYCAST, WL_BROADCAST, WL_PINGPONG, WL_N } workload_t;
typedef enum { TR_INPROC, TR_IPC, TR_TCP, TR_N } transport_t;
//  The implementations measured side by side. nng is compiled in only when
//  the build found it (ZCHAN_PERF_NNG).
typedef enum { IMPL_ZCHAN, IMPL_RAW, IMPL_NNG, IMPL_N } impl_t;
typedef enum { BL_PROXY, BL_DIRECT } baseline_t;

extern const char *const perf_wl_names[WL_N];
extern const char *const perf_tr_names[TR_N];
extern const char *const perf_impl_names[IMPL_N];

//  Every worker role: its name (on a worker's command line and in errors),
//  its implementation, what it does and how it starts.
typedef enum {
    R_NONE,
    R_ZSEND, R_ZRECV, R_ZPING, R_ZPONG,         // zchan
    R_PUSH, R_PULL, R_PUB, R_SUB, R_REQ, R_REP, // raw libzmq
    R_NPUSH, R_NPULL, R_NPUB, R_NSUB, R_NREQ, R_NREP, // nng
    R_N
} role_t;

typedef enum { K_SEND, K_RECV, K_PING, K_PONG } kind_t;

//  How a role waits for the start after "ready": for "go"; sending probes
//  until "go" (publishers); not at all (it only answers or only receives);
//  or in its own loop, which also takes "drain" and "quit" (pullers).
typedef enum { GATE_GO, GATE_PROBE, GATE_NONE, GATE_OWN } gate_t;

typedef struct {
    const char *name;
    impl_t impl;
    kind_t kind;
    gate_t gate;
} role_info_t;

extern const role_info_t perf_roles[R_N];

// ---------------------------------------------------------------------------
// Workers

typedef struct {
    role_t role;
    char ep[4096];          // zchan: channel URI; raw: endpoint(s), comma-separated
    char ep2[256];          // zping / zpong: the other channel's URI
    bool bind;              // raw: bind ep (reported in "ready EP") instead of connecting;
                            // zsend / zrecv (--host local): create the channel ep names in
                            // this worker's context and report its URI in "ready URI"
    size_t size;            // payload bytes (the msgpack bin body)
    long count;             // to send; to receive (broadcast, pingpong); 0: anycast receiver
    long warmup;            // pingpong: round trips before the measured ones
    int id;
    int peers;              // sub: publishers whose probes to wait for
    long limit;             // zrecv: broadcast receiver limit
    int nng_buf;            // nng: NNG_OPT_SENDBUF and NNG_OPT_RECVBUF, in messages
    int host;               // zping / zpong: 1 if each hosts the channel it receives on
    long capacity;          // zping / zpong with host, and a zsend / zrecv with bind: the
                            // anycast channel's capacity
    int bcast;              // zsend / zrecv with bind: the channel is a broadcast channel
    int use_select;         // zrecv: wait in zchan_select (the receiver and a timer that
                            // never fires), then zchan_recv(..., 0)
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

//  One worker while it runs: its parameters, its command pipe, the payload
//  it sends or expects, what it measured, and its implementation's state.
typedef struct {
    worker_t *w;
    linebuf_t *lb;
    const char *payload;
    result_t res;
    int64_t *rtt;     // pingers: the measured round trips (ns)
    char bound[256];  // a binding role: where it listens, for "ready EP"
    void *impl;       // the implementation's state (state_size), filled by setup
} wrun_t;

//  What a round trip op returns when the echo is not the payload sent.
#define RT_BAD_PAYLOAD (-1)

//  One implementation of the worker roles. worker.c runs every role the
//  same way through these; none of them is called with a role of another
//  implementation. Each blocks at most w->stall_ms per send or receive.
typedef struct {
    //  The size of the implementation's state: worker.c gives setup x->impl
    //  zeroed, this big, and frees it after teardown.
    size_t state_size;
    //  Makes what the role needs (context, socket or channels, the bytes on
    //  the wire) and attaches, so that the role is ready to start: a
    //  subscriber has had a probe from every publisher. A binding role puts
    //  its endpoint in x->bound. 0, or 1 once it reported the failure
    //  (perf_wfail). Whatever it made is in x->impl, even on failure.
    int (*setup)(wrun_t *x);
    //  Sends one message with the payload. 0, or an error code for strerror.
    int (*send)(wrun_t *x);
    //  After the last send or round trip, before "done" or the report: makes
    //  sure all that was sent has left. NULL when there is nothing to do.
    void (*flush)(wrun_t *x);
    //  The receiving side, whole: receives, checks and counts, and reports
    //  (perf_report). For a GATE_OWN role it also answers the coordinator's
    //  commands until "quit". 0, or 1 once it reported the failure.
    int (*receive)(wrun_t *x);
    //  One round trip: a pinger sends and receives the echo, a ponger
    //  receives and echoes it. 0, RT_BAD_PAYLOAD, or an error code.
    int (*round_trip)(wrun_t *x);
    //  Sends one publisher probe without blocking; lost probes do not matter.
    //  NULL if the implementation has no publishers.
    void (*probe)(wrun_t *x, const void *probe, size_t n);
    //  The text of an error code of send or round_trip.
    const char *(*strerror)(int err);
    //  Frees what setup made in x->impl (which may be half made), not x->impl.
    void (*teardown)(wrun_t *x);
} perf_worker_ops_t;

extern const perf_worker_ops_t perf_zchan_ops;
extern const perf_worker_ops_t perf_raw_ops;
#ifdef ZCHAN_PERF_NNG
extern const perf_worker_ops_t perf_nng_ops;
#endif

//  worker.c. Runs one worker to the end; its exit status (0 or 1).
int perf_worker_run(worker_t *w);
//  A thread worker (pthread entry): runs arg (a worker_t), sets its status
//  and closes its pipes.
void *perf_worker_thread(void *arg);
//  The entry point of a worker process: zchan-perf --role NAME --key value...
int perf_worker_main(int argc, char **argv);

//  A worker process's arguments: the values for argv (each of vals, up to
//  PERF_WORKER_ARGS of them), then argv itself, self first, NULL last.
#define PERF_WORKER_ARGS 18
typedef char perf_argval_t[sizeof ((worker_t *) 0)->ep + 1];
void perf_worker_argv(const worker_t *w, char *self, perf_argval_t *vals, char **argv);

//  common.c: the payload, and its check on receipt.
void perf_put_payload(char *buf, size_t size);
bool perf_payload_ok(const char *p, size_t n, size_t size);
//  The raw and nng bytes of a payload: the same as a zchan message, a
//  msgpack bin of size bytes. The caller destroys sb.
void perf_wire_payload(msgpack_sbuffer *sb, const char *payload, size_t size);
//  A wire message of n bytes at p, as the raw and nng receivers check it.
bool perf_wire_ok(const wrun_t *x, const void *p, size_t n, size_t plen);
//  Counts one receipt at time t: good (first and last time) or bad.
void perf_count(result_t *r, bool good, int64_t t);

//  Publisher probes: 'P' and the publisher's id. perf_probe_seen notes the
//  message as seen if it is a probe of a new publisher; true if a probe.
void perf_probe_make(unsigned char probe[PROBE_SIZE], int id);
bool perf_is_probe(const void *p, size_t n);
void perf_probe_seen(const void *p, size_t n, bool seen[MAX_PEERS], int *nseen);

//  Worker to coordinator: an error line (also on stderr; returns 1), the
//  result line, and waiting for a command ("go" lines are skipped when
//  waiting for another; 0, or -1 at EOF, on timeout, or on "quit" while
//  waiting for "go").
int perf_wfail(worker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void perf_report(worker_t *w, const result_t *r);
int perf_await_cmd(worker_t *w, linebuf_t *lb, const char *cmd);
bool perf_parse_result(const char *line, result_t *r);
//  Fills p50, p99 and max from n round trips (sorts rtt).
void perf_latency_stats(int64_t *rtt, long n, result_t *r);

//  A puller's loop: the coordinator's "drain" starts a quiet spell, after
//  which the puller reports. perf_drain_cmds reads the command pipe: 1 on
//  "quit", -1 when it ended, else 0 ("drain" honoured only if may_drain).
//  perf_drain_tick reports once the spell passed with no message.
typedef struct {
    int idle_ms;        // >= 0 while draining
    int64_t idle_since; // the last message, or the "drain"
} drain_t;
int perf_drain_cmds(wrun_t *x, drain_t *d, bool may_drain);
void perf_drain_tick(wrun_t *x, drain_t *d);

//  Copies s into d (n bytes), truncating.
void perf_copy_str(char *d, size_t n, const char *s);
double perf_median(double *v, int n);
//  A fresh number for names and endpoints within this run of the program.
int perf_seq(void);

// ---------------------------------------------------------------------------
// The coordinator

typedef struct {
    bool workloads[WL_N];
    bool transports[TR_N];
    size_t sizes[MAX_SIZES];
    int nsizes;
    long count;     // 0: default by size and workload
    int senders, receivers;
    size_t capacity;
    bool pp_hub;    // pingpong: both channels in the coordinator's hub (else each side hosts its own)
    bool host_local; // anycast, broadcast: the one-hop shape (--host local): the receiving
                     // (anycast) or sending (broadcast) worker hosts the channel; else the
                     // relay shape, the channel in the coordinator's hub
    bool rx_select;  // zchan receivers wait in zchan_select before each read (--select)
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

//  options.c. Fills o from the command line; 0, or -1 after saying why on
//  stderr. --help prints the usage and exits 0.
int perf_parse_options(int argc, char **argv, options_t *o);
long perf_default_count(workload_t wl, size_t size);

//  One case: a workload, transport and size, with the coordinator's contexts.
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

//  What one run of one implementation measured, or why it failed.
typedef struct {
    bool ok;
    char err[512];
    long received;
    double elapsed_s;
    double msgs_per_s, mb_per_s;
    double p50_us, p99_us, max_us;
} run_t;

//  A case's line: every implementation's medians over the repeats.
typedef struct {
    bool ran[IMPL_N], ok[IMPL_N];
    char err[IMPL_N][512];
    double rate[IMPL_N], mb[IMPL_N], p50[IMPL_N], p99[IMPL_N], max[IMPL_N];
    double ratio[IMPL_N]; // zchan's rate over this implementation's (median of per-run ratios)
    bool has_ratio[IMPL_N];
} row_t;

//  children.c: the coordinator's side of a worker, thread or process.
typedef struct {
    worker_t w;
    bool is_thread, started;
    pid_t pid;
    pthread_t thread;
    int to_fd;
    linebuf_t from;
    char line[LINE_MAX_]; // the last report collected
} child_t;

//  Starts w as a thread (inproc) or as this program re-executed. 0, or -1
//  with err set.
int perf_child_start(child_t *c, const worker_t *w, bool thread, char *err, size_t errn);
//  Ends a worker: closes its pipes and joins or reaps it (killing a process
//  that has not exited after grace_ms). Returns its exit status.
int perf_child_finish(child_t *c, int grace_ms);
//  Kills the processes among kids[0..n) and ends them all.
void perf_kids_abort(child_t *kids, int n);
//  Sends the command to every started worker. 0, or -1 if one is gone.
int perf_kids_say(child_t *kids, int n, const char *cmd);
//  Waits until each of kids[0..n) has reported a line starting with prefix
//  (stored in its line). An "error" report, an exit or the deadline fails.
int perf_collect(child_t *kids, int n, const char *prefix, int64_t deadline, char *err, size_t errn);

//  run.c. One measured run of zchan, or of the raw libzmq (nng false) or
//  nng baseline; run->ok, or run->err says what failed.
void perf_run_zchan(const case_t *k, run_t *run);
void perf_run_raw(const case_t *k, bool nng, run_t *run);

//  proxy.c: the baselines' middle hop (--baseline proxy). A start fills the
//  two endpoints the workers connect to (front: senders, back: receivers);
//  a stop undoes a start, even a failed one, and may be called twice.
typedef struct {
    void *front, *back, *ctl, *ctl_peer;
    pthread_t thread;
    bool running;
} proxy_t;
int perf_proxy_start(const case_t *k, proxy_t *p, char *fep, char *bep, size_t n, char *err, size_t errn);
void perf_proxy_stop(proxy_t *p);
//  A raw bind endpoint for the transport: name distinguishes it in the run.
void perf_raw_bind_ep(const case_t *k, const char *name, int seq, char *out, size_t n);
#ifdef ZCHAN_PERF_NNG
typedef struct nproxy_s nproxy_t;
int perf_nproxy_start(const case_t *k, nproxy_t **pp, char *fep, char *bep, size_t n, char *err, size_t errn);
void perf_nproxy_stop(nproxy_t **pp);
//  An nng bind URL for a worker of the role, on the case's transport.
void perf_nng_bind_ep(const case_t *k, role_t role, char *out, size_t n);
#endif

//  output.c. Results go to g_out (the real stdout).
extern FILE *g_out;
void perf_print_banner(const options_t *o);
void perf_print_header(const options_t *o, workload_t wl);
void perf_print_row(const options_t *o, workload_t wl, transport_t tr, size_t size, long count, const row_t *r);

#endif

/*  options.c: zchan-perf's command line and its defaults (perf.h). */
#define _GNU_SOURCE
#include "perf.h"
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void s_usage(FILE *f)
{
    fprintf(f,
"Usage: zchan-perf [OPTION]...\n"
"Measures zchan channels against raw libzmq, in the same run, on this host.\n"
"Every sender and receiver is a worker; the channels live in the hub of this\n"
"process (--host relay) or in a worker's (--host local); see --baseline for\n"
"the raw side.\n"
"\n"
"Workloads and shapes:\n"
"  -w, --workload W     anycast, broadcast, pingpong or all; a comma list, or\n"
"                       repeat the option (default: all)\n"
"                         anycast:   S senders -> 1 anycast channel -> R receivers;\n"
"                                    raw: PUSH/PULL\n"
"                         broadcast: S senders -> 1 broadcast channel -> R receivers,\n"
"                                    each gets every message; raw: PUB/SUB\n"
"                         pingpong:  round trips over two anycast channels;\n"
"                                    raw: REQ/REP\n"
"  -s, --senders S      senders for anycast and broadcast (default 1)\n"
"  -r, --receivers R    receivers for anycast and broadcast (default 2)\n"
"  -t, --transport T    inproc, ipc, tcp or all; a comma list, or repeat\n"
"                       (default: all). inproc runs workers as threads of one\n"
"                       process; ipc and tcp run each worker as a process.\n"
"                       tcp listens on 127.0.0.1 only, on ports the kernel picks.\n"
"      --size N         message payload in bytes; repeatable; K and M suffixes\n"
"                       (1024-based) are accepted\n"
"      --sizes LIST     comma list of sizes, or \"all\" for 16,1K,64K,1M (default)\n"
"  -n, --count N        messages per run, over all senders (anycast, broadcast),\n"
"                       or measured round trips (pingpong). Default by size:\n"
"                       anycast and broadcast 40000 (<=64 B), 30000 (<=1 KiB),\n"
"                       5000 (<=64 KiB), 300 (<=1 MiB), then 300 MiB/size;\n"
"                       pingpong 2000 (<=1 KiB), 1000 (<=64 KiB), 100\n"
"      --warmup N       pingpong round trips before the measured ones (default\n"
"                       count/10, at least 10)\n"
"      --capacity N     anycast channel capacity (default %d, the library default)\n"
"      --host H         where anycast and broadcast channels live. relay\n"
"                       (default): in the hub of this process, a third party\n"
"                       between senders and receivers (two hops, like a relay or\n"
"                       broker); local: the one-hop shape programs mostly use,\n"
"                       the channel in the process that made it: the receiving\n"
"                       worker hosts an anycast channel (receiver 0 with several)\n"
"                       and the senders attach; the sending worker hosts a\n"
"                       broadcast channel (sender 0) and the receivers attach.\n"
"                       inproc: with local every worker thread uses this\n"
"                       process's one context, the channel's host; with relay\n"
"                       each worker thread has a context of its own\n"
"      --select         zchan receivers wait in zchan_select on the receiver and a\n"
"                       timer that never fires (as a program with a timeout\n"
"                       does), then read with zchan_recv(..., 0)\n"
"      --pp-host H      pingpong's zchan channels: peers (default): each side\n"
"                       hosts the channel it receives on and sends the other a\n"
"                       reference to it, as a request/reply pair would; hub:\n"
"                       both in the coordinator's hub (two hops each way)\n"
"      --limit N        zchan broadcast receiver limit (default: the count, so a\n"
"                       slow receiver loses nothing; the library default is %d).\n"
"                       A smaller limit lets the hub drop, and the run then fails\n"
"                       as lossy\n"
"\n"
"Baseline:\n"
"      --baseline B     proxy (default): raw sockets through a zmq_proxy in the\n"
"                       coordinator, the same two hops as zchan's hub;\n"
"                       direct: raw sockets connected to each other, one hop\n"
"      --impl LIST      the implementations to run, a comma list of zchan, raw\n"
"                       and nng; \"both\" is zchan,raw; \"all\" (default) is every\n"
"                       one compiled in (nng: %s). Ratios need zchan in the list\n"
"      --nng-buf N      nng's NNG_OPT_SENDBUF and NNG_OPT_RECVBUF, in messages\n"
"                       (default %d, nng's maximum: its pub/sub drops when they\n"
"                       are full). nng runs the same shape as raw (proxy:\n"
"                       threads forwarding between raw-mode sockets)\n"
"      --repeat N       run each case N times, the implementations in rotating\n"
"                       order, and report medians; each ratio is the median of\n"
"                       the N per-run ratios (default 1)\n"
"\n"
"Output and limits:\n"
"      --csv            CSV with a header row instead of the table\n"
"  -v, --verbose        progress on stderr\n"
"      --stall-ms MS    a worker that makes no progress for MS fails (default 10000)\n"
"      --timeout S      a case that takes longer than S seconds fails (default 300)\n"
"  -h, --help           this help\n"
"\n"
"Internal: --role NAME (and its arguments) runs one worker; the coordinator\n"
"re-executes itself with it for ipc and tcp.\n"
"\n"
"Time runs on CLOCK_MONOTONIC from the start barrier (every worker attached,\n"
"then \"go\") to the last receipt; msgs/s counts messages received (a broadcast\n"
"to R receivers counts R). MB/s is payload bytes (10^6) per second; pingpong\n"
"counts both directions; rt/s is round trips per second. ratio = zchan msgs/s\n"
"/ raw (or nng) msgs/s, or rt/s for pingpong (> 1: zchan faster).\n"
"A lost, duplicated or damaged message fails its case: the row says so, stderr\n"
"says so, and the exit status is 1.\n",
            ZCHAN_ANYCAST_CAPACITY, ZCHAN_BROADCAST_LIMIT, HAVE_NNG ? "compiled in" : "not compiled in",
            NNG_BUF_DEFAULT);
}

static const struct option s_longs[] = {
    {"workload", required_argument, NULL, 'w'}, {"senders", required_argument, NULL, 's'},
    {"receivers", required_argument, NULL, 'r'}, {"transport", required_argument, NULL, 't'},
    {"size", required_argument, NULL, 'S'},     {"sizes", required_argument, NULL, 'Z'},
    {"count", required_argument, NULL, 'n'},    {"warmup", required_argument, NULL, 'W'},
    {"capacity", required_argument, NULL, 'C'}, {"baseline", required_argument, NULL, 'B'},
    {"limit", required_argument, NULL, 'L'},    {"pp-host", required_argument, NULL, 'P'},
    {"impl", required_argument, NULL, 'I'},     {"repeat", required_argument, NULL, 'R'},
    {"nng-buf", required_argument, NULL, 'N'},   {"host", required_argument, NULL, 'H'},
    {"select", no_argument, NULL, 'X'},
    {"csv", no_argument, NULL, 'c'},            {"verbose", no_argument, NULL, 'v'},
    {"stall-ms", required_argument, NULL, 'T'}, {"timeout", required_argument, NULL, 'O'},
    {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};

//  The numeric options: their bounds and where they go.
typedef enum { N_INT, N_LONG, N_SIZE } numtype_t;
static const struct {
    int c;
    long min, max;
    numtype_t type;
    size_t off;
} s_nums[] = {
    {'s', 1, MAX_PEERS, N_INT, offsetof(options_t, senders)},
    {'r', 1, MAX_PEERS, N_INT, offsetof(options_t, receivers)},
    {'n', 1, 100000000, N_LONG, offsetof(options_t, count)},
    {'W', 0, 10000000, N_LONG, offsetof(options_t, warmup)},
    {'C', 0, 1000000, N_SIZE, offsetof(options_t, capacity)},
    {'L', 1, 1L << 24, N_LONG, offsetof(options_t, limit)},
    {'N', 1, 8192, N_INT, offsetof(options_t, nng_buf)},
    {'R', 1, 100, N_INT, offsetof(options_t, repeat)},
    {'T', 100, 3600000, N_INT, offsetof(options_t, stall_ms)},
    {'O', 1, 86400, N_INT, offsetof(options_t, timeout_s)},
};

//  A numeric option c: 1 if taken, 0 if bad, -1 if c is not one.
static int s_number(options_t *o, int c, const char *arg)
{
    for (size_t i = 0; i < sizeof s_nums / sizeof s_nums[0]; i++) {
        if (s_nums[i].c != c)
            continue;
        long v;
        if (!parse_long(arg, s_nums[i].min, s_nums[i].max, &v))
            return 0;
        char *f = (char *) o + s_nums[i].off;
        if (s_nums[i].type == N_INT)
            *(int *) f = (int) v;
        else if (s_nums[i].type == N_LONG)
            *(long *) f = v;
        else
            *(size_t *) f = (size_t) v;
        return 1;
    }
    return -1;
}

static bool s_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    if (*end == 'k' || *end == 'K')
        v *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1024 * 1024, end++;
    if (*end == 'i' && end[1] == 'B')
        end += 2;
    else if (*end == 'B')
        end++;
    if (*end || v > (1ULL << 30))
        return false;
    *out = (size_t) v;
    return true;
}

static void s_all_sizes(options_t *o)
{
    const size_t all[] = {16, 1024, 65536, 1048576};
    for (int i = 0; i < 4 && o->nsizes < MAX_SIZES; i++)
        o->sizes[o->nsizes++] = all[i];
}

//  --size (one) or --sizes (a comma list, or "all"). false if bad.
static bool s_sizes(options_t *o, const char *arg, bool list)
{
    if (!list) {
        if (o->nsizes == MAX_SIZES || !s_parse_size(arg, &o->sizes[o->nsizes]))
            return false;
        o->nsizes++;
        return true;
    }
    if (!strcmp(arg, "all")) {
        s_all_sizes(o);
        return true;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->nsizes == MAX_SIZES || !s_parse_size(t, &o->sizes[o->nsizes]))
            return false;
        o->nsizes++;
    }
    return true;
}

static bool s_parse_list(const char *arg, const char *const *names, int n, bool *set)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool found = false;
        for (int i = 0; i < n; i++)
            if (!strcmp(t, names[i]) || !strcmp(t, "all")) {
                set[i] = true;
                found = true;
            }
        if (!found)
            return false;
    }
    return true;
}

//  --impl: a comma list of zchan, raw and nng; "both" is zchan,raw and
//  "all" is every implementation compiled in. 1 if taken, 0 if bad, -1
//  after saying that nng is not compiled in.
static int s_impl(options_t *o, const char *arg)
{
    bool set[IMPL_N] = {false};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool found = false;
        for (int i = 0; i < IMPL_N; i++) {
            if (strcmp(t, perf_impl_names[i]) && strcmp(t, "all") && (strcmp(t, "both") || i == IMPL_NNG))
                continue;
            if (i == IMPL_NNG && !HAVE_NNG && strcmp(t, "nng") == 0) {
                fprintf(stderr, "zchan-perf: nng is not compiled in (build with libnng-dev "
                                "installed, ZCHAN_PERF_NNG=ON)\n");
                return -1;
            }
            if (i != IMPL_NNG || HAVE_NNG)
                set[i] = true;
            found = true;
        }
        if (!found)
            return 0;
    }
    memcpy(o->run, set, sizeof set);
    return 1;
}

//  One of two words: sets *flag to the first one's value. false if neither.
static bool s_choice(const char *arg, const char *yes, const char *no, bool *flag)
{
    if (strcmp(arg, yes) && strcmp(arg, no))
        return false;
    *flag = !strcmp(arg, yes);
    return true;
}

//  One option. 1 if taken, 0 if its value is bad, -1 to stop (said why).
static int s_option(options_t *o, int c, const char *arg, bool *any_wl, bool *any_tr)
{
    bool direct;
    int n = s_number(o, c, arg);
    if (n >= 0)
        return n;
    switch (c) {
    case 'w': return *any_wl = true, s_parse_list(arg, perf_wl_names, WL_N, o->workloads);
    case 't': return *any_tr = true, s_parse_list(arg, perf_tr_names, TR_N, o->transports);
    case 'S': return s_sizes(o, arg, false);
    case 'Z': return s_sizes(o, arg, true);
    case 'P': return s_choice(arg, "hub", "peers", &o->pp_hub);
    case 'H': return s_choice(arg, "local", "relay", &o->host_local);
    case 'X': o->rx_select = true; return 1;
    case 'B':
        if (!s_choice(arg, "direct", "proxy", &direct))
            return 0;
        o->baseline = direct ? BL_DIRECT : BL_PROXY;
        return 1;
    case 'I': return s_impl(o, arg);
    case 'c': o->csv = true; return 1;
    case 'v': o->verbose = true; return 1;
    case 'h': s_usage(stdout); exit(0);
    default: s_usage(stderr); return -1;
    }
}

static void s_defaults(options_t *o)
{
    memset(o, 0, sizeof *o);
    o->senders = 1;
    o->receivers = 2;
    o->capacity = ZCHAN_ANYCAST_CAPACITY;
    o->repeat = 1;
    o->warmup = -1;
    o->run[IMPL_ZCHAN] = o->run[IMPL_RAW] = true;
    o->run[IMPL_NNG] = HAVE_NNG;
    o->nng_buf = NNG_BUF_DEFAULT;
    o->stall_ms = 10000;
    o->timeout_s = 300;
}

int perf_parse_options(int argc, char **argv, options_t *o)
{
    s_defaults(o);
    bool any_wl = false, any_tr = false;
    int c;
    while ((c = getopt_long(argc, argv, "w:s:r:t:n:vh", s_longs, NULL)) != -1) {
        int rc = s_option(o, c, optarg, &any_wl, &any_tr);
        if (rc < 0)
            return -1;
        if (rc > 0)
            continue;
        for (const struct option *l = s_longs; l->name; l++)
            if (l->val == c)
                fprintf(stderr, "zchan-perf: bad value for --%s: '%s' (see --help)\n", l->name, optarg);
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "zchan-perf: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    for (int i = 0; i < WL_N && !any_wl; i++)
        o->workloads[i] = true;
    for (int i = 0; i < TR_N && !any_tr; i++)
        o->transports[i] = true;
    if (o->nsizes == 0)
        s_all_sizes(o);
    return 0;
}

long perf_default_count(workload_t wl, size_t size)
{
    if (wl == WL_PINGPONG)
        return size <= 1024 ? 2000 : size <= 65536 ? 1000 : 100;
    if (size <= 64)
        return 40000;
    if (size <= 1024)
        return 30000;
    if (size <= 65536)
        return 5000;
    if (size <= 1048576)
        return 300;
    long n = (long) ((300UL << 20) / size);
    return n < 20 ? 20 : n;
}

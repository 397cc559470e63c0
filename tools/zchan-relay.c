/*  zchan-relay: a zchan hub run alone on well-known endpoints, so that
    channels outlive any one application and can be found by name across
    hosts. Clients create, join, open and close channels on it through the
    library, with URIs such as tcp://relay:7878/jobs.

    It runs in the foreground and logs through czmq's zsys (timestamps and
    levels) to stderr, or to --log-file. SIGTERM and SIGINT stop it: it closes
    every channel, so receivers drain then get ZCHAN_ECLOSED, refuses new
    channels, waits up to --drain-timeout for receivers to take what is
    queued, and exits 0. SIGHUP reopens the log file and reloads what can be
    reloaded from the config file. `zchan-relay --help` is the manual.
*/
#include "hubctl.h"
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RELAY_MAX_BINDS 6 // the hub also binds inproc and its own ipc endpoint
#define RELAY_DRAIN_MS 3000
#define RELAY_LOG_EVERY_MS 10000 // the most often a kind of peer trouble is logged
#define RELAY_FLOOD_PER_S 500    // connections per second that count as a flood
#define RELAY_NLIMITS 6          // the values of zchan_limit_t

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static const char *s_usage =
    "Usage: zchan-relay --bind ENDPOINT [--bind ENDPOINT ...] [OPTIONS]\n"
    "\n"
    "Hosts zchan channels for other processes, alone, on well-known endpoints.\n"
    "Clients reach channel NAME as tcp://HOST:PORT/NAME for a --bind\n"
    "tcp://HOST:PORT, and as ipc://RELAYNAME/NAME for a --bind ipc://RELAYNAME:\n"
    "the same channel over every endpoint. Runs in the foreground; logs to\n"
    "standard error with timestamps and levels.\n"
    "\n"
    "Options:\n"
    "  -b, --bind ENDPOINT      listen at tcp://HOST:PORT (PORT 0: any free port)\n"
    "                           or ipc://NAME (socket NAME.hub in the runtime\n"
    "                           directory $ZCHAN_IPC_DIR); repeat for more\n"
    "  -c, --config FILE        read settings from FILE (czmq ZPL, see below);\n"
    "                           options given here win over it\n"
    "  -a, --advertise HOST     host name that channel references advertise for\n"
    "                           the tcp endpoints (for a bind to 0.0.0.0)\n"
    "  -m, --max-msg-size BYTES largest message frame a peer may send, with an\n"
    "                           optional k, M or G suffix; -1: no limit (default 64M).\n"
    "                           A peer that sends more is disconnected.\n"
    "  -d, --drain-timeout MS   on SIGTERM, how long receivers get to take what is\n"
    "                           queued before the relay exits (default 3000)\n"
    "      --curve-cert FILE    require CURVE on the tcp endpoints, with this server\n"
    "                           certificate (czmq zcert: FILE and FILE_secret);\n"
    "                           its public key is logged at start\n"
    "      --curve-allow DIR    with --curve-cert: accept only clients whose public\n"
    "                           certificates are in DIR (\"*\": any client key)\n"
    "  -e, --endpoint-file PATH write the bound endpoints there, one a line, once\n"
    "                           listening (tcp with the real port); removed on exit\n"
    "  -l, --log-file PATH      log there (appending) instead of standard error;\n"
    "                           reopened on SIGHUP\n"
    "  -v, --verbose            log every connection event and a summary a minute\n"
    "  -h, --help               this text\n"
    "  -V, --version            the version\n"
    "\n"
    "Resource limits (refusals are ZCHAN_ELIMIT to the peer, counted and logged;\n"
    "counts and bytes take k, M or G suffixes; see docs/TOOLS.md):\n"
    "      --max-channels N     channels hosted at once (default 100000)\n"
    "      --max-attachments N  senders and receivers attached at once (default 100000)\n"
    "      --max-capacity N     largest anycast capacity a client may create\n"
    "                           (default 1048576)\n"
    "      --max-broadcast-limit N  largest broadcast receiver limit (default 16777216)\n"
    "      --max-channel-bytes BYTES  bytes of messages one channel may hold\n"
    "                           (default 256M)\n"
    "      --max-queued-bytes BYTES   bytes of messages all channels may hold\n"
    "                           (default 1G)\n"
    "\n"
    "Config file (ZPL; every key is optional, 'bind' may repeat):\n"
    "  relay\n"
    "      bind = tcp://0.0.0.0:7878\n"
    "      bind = ipc://relay\n"
    "      advertise = relay.example.com\n"
    "      max-msg-size = 64M\n"
    "      drain-timeout = 3000\n"
    "      curve-cert = /etc/zchan/relay.cert\n"
    "      curve-allow = /etc/zchan/clients\n"
    "      endpoint-file = /run/zchan-relay/endpoints\n"
    "      log-file = /var/log/zchan-relay.log\n"
    "      verbose = 1\n"
    "      max-channels = 100000\n"
    "      max-attachments = 100000\n"
    "      max-capacity = 1048576\n"
    "      max-broadcast-limit = 16777216\n"
    "      max-channel-bytes = 256M\n"
    "      max-queued-bytes = 1G\n"
    "Binds from the command line and from the file are all used.\n"
    "\n"
    "Signals:\n"
    "  SIGTERM, SIGINT  close every channel (receivers drain, then get\n"
    "                   ZCHAN_ECLOSED), refuse new ones, wait up to the drain\n"
    "                   timeout, exit 0. A second one exits at once.\n"
    "  SIGHUP           reopen the log file; reload verbose, drain-timeout,\n"
    "                   log-file and the max-* limits from the config file\n"
    "                   (new limits apply to what comes next; binds, advertise,\n"
    "                   max-msg-size and curve need a restart; the allowed-keys\n"
    "                   directory is reread whenever its files change)\n"
    "\n"
    "Exit codes: 0 stopped by a signal; 1 cannot start (e.g. cannot bind);\n"
    "2 bad command line or config file.\n";

typedef struct {
    char *binds[RELAY_MAX_BINDS];
    int nbinds;
    char *config;
    char *advertise;
    char *endpoint_file;
    char *log_file;
    char *curve_cert;
    char *curve_allow;
    int64_t max_msg_size;
    int drain_ms;
    int verbose;
    uint64_t limits[RELAY_NLIMITS]; // by zchan_limit_t; 0: not given
} opts_t;

//  The resource limits' option and config names, by zchan_limit_t, and the
//  largest value each takes.
static const struct {
    const char *name;
    uint64_t max;
} s_limits[RELAY_NLIMITS] = {
    {"max-channels", UINT32_MAX},          {"max-attachments", UINT32_MAX},
    {"max-capacity", (uint64_t) 1 << 40}, {"max-broadcast-limit", (uint64_t) 1 << 24},
    {"max-channel-bytes", INT64_MAX},      {"max-queued-bytes", INT64_MAX},
};

//  Settings given on the command line win over the config file: -1 / NULL
//  means "not given".
static void s_opts_init(opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->max_msg_size = INT64_MIN;
    o->drain_ms = -1;
    o->verbose = -1;
}

static void s_opts_free(opts_t *o)
{
    for (int i = 0; i < o->nbinds; i++)
        free(o->binds[i]);
    free(o->config);
    free(o->advertise);
    free(o->endpoint_file);
    free(o->log_file);
    free(o->curve_cert);
    free(o->curve_allow);
    s_opts_init(o);
}

static int s_usage_error(const char *fmt, const char *arg)
{
    fputs("zchan-relay: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see zchan-relay --help)\n", stderr);
    return EXIT_USAGE;
}

static int s_add_bind(opts_t *o, const char *ep)
{
    for (int i = 0; i < o->nbinds; i++)
        if (strcmp(o->binds[i], ep) == 0)
            return 0;
    if (strncmp(ep, "tcp://", 6) != 0 && strncmp(ep, "ipc://", 6) != 0)
        return s_usage_error("bind wants tcp://HOST:PORT or ipc://NAME, not '%s'", ep);
    if (o->nbinds == RELAY_MAX_BINDS)
        return s_usage_error("too many binds (at most %s)", "6");
    o->binds[o->nbinds++] = strdup(ep);
    return 0;
}

//  Parses "123", "64k", "64M", "1G" or "-1".
static bool s_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s)
        return false;
    long long mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mult = 1024LL * 1024 * 1024, end++;
    if (*end || v == 0 || v < -1 || (v == -1 && mult != 1) || v > INT64_MAX / mult)
        return false;
    *out = v * mult;
    return true;
}

//  Parses a resource limit: a positive count or size (k, M, G suffixes) up to
//  the limit's largest value.
static bool s_parse_limit(int which, const char *s, uint64_t *out)
{
    int64_t v;
    if (!s_parse_size(s, &v) || v <= 0 || (uint64_t) v > s_limits[which].max)
        return false;
    *out = (uint64_t) v;
    return true;
}

static int s_limit_error(int which, const char *value, bool config)
{
    fprintf(stderr, "zchan-relay: %s%s wants a positive number up to %" PRIu64 " (k, M, G suffixes), not '%s'"
            " (see zchan-relay --help)\n", config ? "config: " : "--", s_limits[which].name, s_limits[which].max, value);
    return EXIT_USAGE;
}

static bool s_parse_int(const char *s, int min, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > INT_MAX)
        return false;
    *out = (int) v;
    return true;
}

static void s_set_str(char **field, const char *value)
{
    free(*field);
    *field = value ? strdup(value) : NULL;
}

static int s_parse_args(opts_t *o, int argc, char **argv)
{
    enum { OPT_CURVE_CERT = 256, OPT_CURVE_ALLOW, OPT_LIMIT }; // OPT_LIMIT + zchan_limit_t
    static const struct option longs[] = {
        {"max-channels", required_argument, NULL, OPT_LIMIT + ZCHAN_LIMIT_CHANNELS},
        {"max-attachments", required_argument, NULL, OPT_LIMIT + ZCHAN_LIMIT_ATTACHMENTS},
        {"max-capacity", required_argument, NULL, OPT_LIMIT + ZCHAN_LIMIT_CAPACITY},
        {"max-broadcast-limit", required_argument, NULL, OPT_LIMIT + ZCHAN_LIMIT_BROADCAST_LIMIT},
        {"max-channel-bytes", required_argument, NULL, OPT_LIMIT + ZCHAN_LIMIT_CHANNEL_BYTES},
        {"max-queued-bytes", required_argument, NULL, OPT_LIMIT + ZCHAN_LIMIT_QUEUED_BYTES},
        {"curve-cert", required_argument, NULL, OPT_CURVE_CERT},
        {"curve-allow", required_argument, NULL, OPT_CURVE_ALLOW},
        {"bind", required_argument, NULL, 'b'},          {"config", required_argument, NULL, 'c'},
        {"advertise", required_argument, NULL, 'a'},     {"max-msg-size", required_argument, NULL, 'm'},
        {"drain-timeout", required_argument, NULL, 'd'}, {"endpoint-file", required_argument, NULL, 'e'},
        {"log-file", required_argument, NULL, 'l'},      {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},                {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":b:c:a:m:d:e:l:vhV", longs, NULL)) != -1) {
        if (c >= OPT_LIMIT && c < OPT_LIMIT + RELAY_NLIMITS) {
            if (!s_parse_limit(c - OPT_LIMIT, optarg, &o->limits[c - OPT_LIMIT]))
                return s_limit_error(c - OPT_LIMIT, optarg, false);
            continue;
        }
        switch (c) {
        case 'b':
            if (s_add_bind(o, optarg) != 0)
                return EXIT_USAGE;
            break;
        case 'c': s_set_str(&o->config, optarg); break;
        case 'a': s_set_str(&o->advertise, optarg); break;
        case 'e': s_set_str(&o->endpoint_file, optarg); break;
        case 'l': s_set_str(&o->log_file, optarg); break;
        case OPT_CURVE_CERT: s_set_str(&o->curve_cert, optarg); break;
        case OPT_CURVE_ALLOW: s_set_str(&o->curve_allow, optarg); break;
        case 'm':
            if (!s_parse_size(optarg, &o->max_msg_size))
                return s_usage_error("--max-msg-size wants bytes (k, M, G suffixes; -1: no limit), not '%s'", optarg);
            break;
        case 'd':
            if (!s_parse_int(optarg, 0, &o->drain_ms))
                return s_usage_error("--drain-timeout wants milliseconds, not '%s'", optarg);
            break;
        case 'v': o->verbose = 1; break;
        case 'h': fputs(s_usage, stdout); exit(0);
        case 'V':
            printf("zchan-relay %d.%d.%d\n", ZCHAN_VERSION_MAJOR, ZCHAN_VERSION_MINOR, ZCHAN_VERSION_PATCH);
            exit(0);
        case ':': return s_usage_error("%s needs a value", argv[optind - 1]);
        default: return s_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return s_usage_error("unexpected argument '%s'", argv[optind]);
    return 0;
}

//  Reads the config file into o, where the command line left a setting
//  unset (reload: only the settings SIGHUP reloads). Binds add up.
static int s_load_config(opts_t *o, const char *path, bool reload)
{
    zconfig_t *root = zconfig_load(path);
    if (!root)
        return s_usage_error("cannot read config file '%s' (missing, or not ZPL)", path);
    zconfig_t *top = zconfig_locate(root, "relay");
    if (!top)
        top = root;
    int rc = 0;
    for (zconfig_t *item = zconfig_child(top); item && rc == 0; item = zconfig_next(item)) {
        const char *name = zconfig_name(item), *value = zconfig_value(item);
        if (!value)
            value = "";
        int which = -1;
        for (int k = 0; k < RELAY_NLIMITS; k++)
            if (strcmp(name, s_limits[k].name) == 0)
                which = k;
        if (which >= 0) {
            //  Limits are reloaded too: the hub applies new ones to what comes next.
            if (o->limits[which] == 0 && !s_parse_limit(which, value, &o->limits[which]))
                rc = s_limit_error(which, value, true);
        } else if (strcmp(name, "verbose") == 0) {
            if (o->verbose < 0)
                o->verbose = atoi(value) != 0;
        } else if (strcmp(name, "drain-timeout") == 0) {
            if (o->drain_ms < 0 && !s_parse_int(value, 0, &o->drain_ms))
                rc = s_usage_error("config: drain-timeout wants milliseconds, not '%s'", value);
        } else if (strcmp(name, "log-file") == 0) {
            if (!o->log_file && *value)
                o->log_file = strdup(value);
        } else if (reload)
            continue; // the rest needs a restart
        else if (strcmp(name, "bind") == 0) {
            if (*value)
                rc = s_add_bind(o, value);
            for (zconfig_t *sub = zconfig_child(item); sub && rc == 0; sub = zconfig_next(sub))
                if (zconfig_value(sub) && *zconfig_value(sub))
                    rc = s_add_bind(o, zconfig_value(sub));
        } else if (strcmp(name, "advertise") == 0) {
            if (!o->advertise && *value)
                o->advertise = strdup(value);
        } else if (strcmp(name, "curve-cert") == 0) {
            if (!o->curve_cert && *value)
                o->curve_cert = strdup(value);
        } else if (strcmp(name, "curve-allow") == 0) {
            if (!o->curve_allow && *value)
                o->curve_allow = strdup(value);
        } else if (strcmp(name, "endpoint-file") == 0) {
            if (!o->endpoint_file && *value)
                o->endpoint_file = strdup(value);
        } else if (strcmp(name, "max-msg-size") == 0) {
            if (o->max_msg_size == INT64_MIN && !s_parse_size(value, &o->max_msg_size))
                rc = s_usage_error("config: max-msg-size wants bytes, not '%s'", value);
        } else
            rc = s_usage_error("config: unknown setting '%s'", name);
    }
    zconfig_destroy(&root);
    return rc;
}

// ---------------------------------------------------------------------------
// Logging

//  Points standard error at path (appending), so that zsys and anything else
//  that writes there lands in the file. The swap is atomic (dup2).
static int s_open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        zsys_error("cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = dup2(fd, STDERR_FILENO) < 0 ? -1 : 0;
    close(fd);
    return rc;
}

//  A rate-limited counter of one kind of event.
typedef struct {
    const char *what;
    uint64_t total;
    uint64_t unlogged;
    int64_t last_log;
    bool warn;         // logged as a warning, always; else as info, with -v only
} tally_t;

static void s_tally(tally_t *t, uint64_t n, bool verbose)
{
    t->total += n;
    t->unlogged += n;
    int64_t now = zclock_mono();
    if (t->unlogged == 0 || (!t->warn && !verbose) || now - t->last_log < RELAY_LOG_EVERY_MS)
        return;
    if (t->warn)
        zsys_warning("%" PRIu64 " %s (%" PRIu64 " in all)", t->unlogged, t->what, t->total);
    else
        zsys_info("%" PRIu64 " %s (%" PRIu64 " in all)", t->unlogged, t->what, t->total);
    t->unlogged = 0;
    t->last_log = now;
}

// ---------------------------------------------------------------------------
// Signals, through a self-pipe read by the main loop

static int s_sigpipe[2] = {-1, -1};

static void s_on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char) sig;
    if (write(s_sigpipe[1], &b, 1) < 0) {
        // The pipe is full: a signal of each kind is already waiting.
    }
    errno = saved;
}

static int s_signals_setup(void)
{
    if (pipe2(s_sigpipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

//  Blocks or unblocks the handled signals in the calling thread. Threads made
//  while they are blocked (the hub's, ZeroMQ's) never run the handler.
static void s_signals_mask(int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(how, &set, NULL);
}

//  Returns the next signal waiting in the pipe, or 0.
static int s_next_signal(void)
{
    unsigned char b;
    return read(s_sigpipe[0], &b, 1) == 1 ? b : 0;
}

// ---------------------------------------------------------------------------
// The relay

typedef struct {
    opts_t cli;  // what the command line said
    opts_t opts; // in force: the command line over the config file
    zchan_ctx_t *ctx;
    void *monitor; // PAIR reading the hub's socket events
    char endpoints[RELAY_MAX_BINDS][256];
    bool wrote_endpoints; // the endpoint file is ours to remove
    tally_t accepted, disconnected, handshake_failed, accept_failed;
    uint64_t second_accepts;
    int64_t second_start;
    int64_t last_summary;
} relay_t;

//  Copies the command-line options into o and adds the config file.
static int s_effective(relay_t *relay, opts_t *o, bool reload)
{
    s_opts_init(o);
    const opts_t *c = &relay->cli;
    for (int i = 0; i < c->nbinds; i++)
        o->binds[o->nbinds++] = strdup(c->binds[i]);
    s_set_str(&o->config, c->config);
    s_set_str(&o->advertise, c->advertise);
    s_set_str(&o->endpoint_file, c->endpoint_file);
    s_set_str(&o->log_file, c->log_file);
    s_set_str(&o->curve_cert, c->curve_cert);
    s_set_str(&o->curve_allow, c->curve_allow);
    o->max_msg_size = c->max_msg_size;
    o->drain_ms = c->drain_ms;
    o->verbose = c->verbose;
    memcpy(o->limits, c->limits, sizeof o->limits);
    if (o->config && s_load_config(o, o->config, reload) != 0)
        return EXIT_USAGE;
    if (o->max_msg_size == INT64_MIN)
        o->max_msg_size = ZCHAN_DEFAULT_MAX_MSG_SIZE;
    if (o->drain_ms < 0)
        o->drain_ms = RELAY_DRAIN_MS;
    if (o->verbose < 0)
        o->verbose = 0;
    if (!o->curve_cert != !o->curve_allow) {
        fputs("zchan-relay: --curve-cert and --curve-allow go together (see zchan-relay --help)\n", stderr);
        return EXIT_USAGE;
    }
    return 0;
}

//  Writes the endpoints to the endpoint file, atomically (a rename).
static int s_write_endpoints(relay_t *relay)
{
    const char *path = relay->opts.endpoint_file;
    if (!path)
        return 0;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int) getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        zsys_error("cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    for (int i = 0; i < relay->opts.nbinds; i++)
        fprintf(f, "%s\n", relay->endpoints[i]);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        zsys_error("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    relay->wrote_endpoints = true;
    return 0;
}

//  Gives the hub the limits in force (the defaults where none was given),
//  and logs them.
static int s_apply_limits(relay_t *relay)
{
    char text[512] = "";
    size_t len = 0;
    for (int k = 0; k < RELAY_NLIMITS; k++) {
        uint64_t v = relay->opts.limits[k];
        if (v && zchan_ctx_set_limit(relay->ctx, (zchan_limit_t) k, v) != 0) {
            zsys_error("cannot set %s to %" PRIu64 ": %s", s_limits[k].name, v, zchan_strerror(zchan_errno()));
            return -1;
        }
        len += (size_t) snprintf(text + len, len < sizeof text ? sizeof text - len : 0, "%s%s %" PRIu64,
                                 k ? ", " : "", s_limits[k].name, zchan_ctx_limit(relay->ctx, (zchan_limit_t) k));
    }
    zsys_info("limits: %s", text);
    return 0;
}

static int s_start(relay_t *relay)
{
    opts_t *o = &relay->opts;
    if (o->nbinds == 0) {
        fputs("zchan-relay: nothing to listen on: give --bind (see zchan-relay --help)\n", stderr);
        return EXIT_USAGE;
    }
    //  The context's own ipc endpoint is bound as it starts: the cap must be
    //  in the environment by then.
    char maxmsg[32];
    snprintf(maxmsg, sizeof maxmsg, "%" PRId64, o->max_msg_size);
    setenv("ZCHAN_MAX_MSG_SIZE", maxmsg, 1);
    relay->ctx = zchan_ctx_new();
    if (!relay->ctx) {
        zsys_error("cannot start a hub: %s", zchan_strerror(zchan_errno()));
        return EXIT_RUNTIME;
    }
    if (o->advertise && zchan_ctx_set_advertise(relay->ctx, o->advertise) != 0) {
        zsys_error("bad advertise host '%s'", o->advertise);
        return EXIT_USAGE;
    }
    zchan_ctx_set_max_msg_size(relay->ctx, o->max_msg_size);
    if (s_apply_limits(relay) != 0)
        return EXIT_RUNTIME;
    //  CURVE before the first tcp bind: every tcp endpoint then requires it.
    if (o->curve_cert) {
        if (zchan_ctx_set_curve_server(relay->ctx, o->curve_cert, o->curve_allow) != 0) {
            zsys_error("cannot set up CURVE with %s and %s: %s", o->curve_cert, o->curve_allow,
                       zchan_strerror(zchan_errno()));
            return EXIT_RUNTIME;
        }
        zsys_info("CURVE on tcp: server public key %s; allowed keys in %s", zchan_ctx_curve_public_key(relay->ctx),
                  o->curve_allow);
    }
    //  Socket events (connections, handshakes) are counted and logged.
    char monep[64];
    snprintf(monep, sizeof monep, "inproc://zchan-relay-monitor-%d", (int) getpid());
    if (zchan__hub_monitor(relay->ctx, monep) == 0) {
        relay->monitor = zmq_socket(zchan__ctx_zmq(relay->ctx), ZMQ_PAIR);
        int zero = 0;
        if (relay->monitor) {
            zmq_setsockopt(relay->monitor, ZMQ_LINGER, &zero, sizeof zero);
            if (zmq_connect(relay->monitor, monep) != 0) {
                zmq_close(relay->monitor);
                relay->monitor = NULL;
            }
        }
    }
    if (!relay->monitor)
        zsys_warning("connection events will not be logged");
    for (int i = 0; i < o->nbinds; i++) {
        if (zchan_ctx_bind(relay->ctx, o->binds[i]) != 0) {
            zsys_error("cannot listen at %s: %s", o->binds[i], zchan_strerror(zchan_errno()));
            return EXIT_RUNTIME;
        }
        //  The newest endpoint the hub bound is this one. tcp shows its real
        //  port; ipc keeps the name that clients use.
        char bound[256] = "";
        for (int k = 0; zchan__ctx_bound_at(relay->ctx, k, bound, sizeof bound) == 0; k++)
            if (strncmp(o->binds[i], "tcp://", 6) == 0)
                snprintf(relay->endpoints[i], sizeof relay->endpoints[i], "%s", bound);
        if (strncmp(o->binds[i], "tcp://", 6) != 0)
            snprintf(relay->endpoints[i], sizeof relay->endpoints[i], "%s", o->binds[i]);
        zsys_info("listening at %s", relay->endpoints[i]);
    }
    if (s_write_endpoints(relay) != 0)
        return EXIT_RUNTIME;
    zsys_info("serving (pid %d, max message %" PRId64 " bytes)", (int) getpid(), o->max_msg_size);
    return 0;
}

//  Reads the monitor's events and counts them.
static void s_on_monitor(relay_t *relay)
{
    while (true) {
        zmq_msg_t frames[2];
        zmq_msg_init(&frames[0]);
        zmq_msg_init(&frames[1]);
        int rc = zmq_msg_recv(&frames[0], relay->monitor, ZMQ_DONTWAIT);
        if (rc >= 0 && zmq_msg_more(&frames[0]))
            zmq_msg_recv(&frames[1], relay->monitor, 0);
        uint16_t event = 0;
        if (rc >= 0 && zmq_msg_size(&frames[0]) >= 6)
            memcpy(&event, zmq_msg_data(&frames[0]), 2);
        if (rc >= 0 && relay->opts.verbose)
            zsys_debug("socket event 0x%x on %.*s", event, (int) zmq_msg_size(&frames[1]),
                       (const char *) zmq_msg_data(&frames[1]));
        zmq_msg_close(&frames[0]);
        zmq_msg_close(&frames[1]);
        if (rc < 0)
            return;
        switch (event) {
        case ZMQ_EVENT_ACCEPTED: {
            s_tally(&relay->accepted, 1, relay->opts.verbose);
            int64_t now = zclock_mono();
            if (now - relay->second_start >= 1000) {
                relay->second_start = now;
                relay->second_accepts = 0;
            }
            if (++relay->second_accepts == RELAY_FLOOD_PER_S)
                zsys_warning("%d connections within a second: a flood?", RELAY_FLOOD_PER_S);
            break;
        }
        case ZMQ_EVENT_DISCONNECTED: s_tally(&relay->disconnected, 1, relay->opts.verbose); break;
        case ZMQ_EVENT_ACCEPT_FAILED: s_tally(&relay->accept_failed, 1, false); break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: s_tally(&relay->handshake_failed, 1, false); break;
        default: break;
        }
    }
}

//  Stops the monitor and reads its last events, so that none is left in
//  flight when its socket closes.
static void s_monitor_stop(relay_t *relay)
{
    if (!relay->monitor)
        return;
    if (zchan__hub_monitor(relay->ctx, NULL) == 0) {
        int64_t deadline = zclock_mono() + 1000;
        bool stopped = false;
        while (!stopped && zclock_mono() < deadline) {
            zmq_msg_t frame;
            zmq_msg_init(&frame);
            zmq_pollitem_t item = {relay->monitor, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&item, 1, 100) > 0 && zmq_msg_recv(&frame, relay->monitor, ZMQ_DONTWAIT) >= 0) {
                uint16_t event = 0;
                if (zmq_msg_size(&frame) >= 6)
                    memcpy(&event, zmq_msg_data(&frame), 2);
                stopped = event == ZMQ_EVENT_MONITOR_STOPPED;
                while (zmq_msg_more(&frame) && zmq_msg_recv(&frame, relay->monitor, 0) >= 0)
                    ;
            }
            zmq_msg_close(&frame);
        }
    }
    zmq_close(relay->monitor);
    relay->monitor = NULL;
}

//  Flushes the tallies whose interval has passed; with verbose, a summary a
//  minute.
static void s_tick(relay_t *relay)
{
    s_tally(&relay->handshake_failed, 0, false);
    s_tally(&relay->accept_failed, 0, false);
    s_tally(&relay->accepted, 0, relay->opts.verbose);
    s_tally(&relay->disconnected, 0, relay->opts.verbose);
    int64_t now = zclock_mono();
    if (relay->opts.verbose && now - relay->last_summary >= 60000) {
        relay->last_summary = now;
        zsys_info("%" PRIu64 " connections accepted, %" PRIu64 " closed, %" PRIu64
                  " failed handshakes so far",
                  relay->accepted.total, relay->disconnected.total, relay->handshake_failed.total);
    }
}

static void s_reload(relay_t *relay)
{
    opts_t fresh;
    if (s_effective(relay, &fresh, true) != 0) {
        zsys_error("SIGHUP: config not reloaded; keeping the settings in force");
        s_opts_free(&fresh);
        return;
    }
    opts_t *o = &relay->opts;
    o->verbose = fresh.verbose;
    o->drain_ms = fresh.drain_ms;
    //  A limit no longer given goes back to its default.
    static const uint64_t defaults[RELAY_NLIMITS] = {ZCHAN_DEFAULT_MAX_CHANNELS,      ZCHAN_DEFAULT_MAX_ATTACHMENTS,
                                                     ZCHAN_DEFAULT_MAX_CAPACITY,      ZCHAN_DEFAULT_MAX_BROADCAST_LIMIT,
                                                     ZCHAN_DEFAULT_MAX_CHANNEL_BYTES, ZCHAN_DEFAULT_MAX_QUEUED_BYTES};
    for (int k = 0; k < RELAY_NLIMITS; k++)
        o->limits[k] = fresh.limits[k] ? fresh.limits[k] : defaults[k];
    if (fresh.log_file && (!o->log_file || strcmp(fresh.log_file, o->log_file) != 0))
        s_set_str(&o->log_file, fresh.log_file);
    s_opts_free(&fresh);
    if (o->log_file && s_open_log(o->log_file) == 0)
        zsys_info("SIGHUP: log reopened");
    zsys_info("SIGHUP: settings reloaded (verbose %d, drain-timeout %d ms)", o->verbose, o->drain_ms);
    s_apply_limits(relay);
}

//  Closes every channel and waits for receivers to drain, up to the drain
//  timeout or another SIGTERM/SIGINT.
static void s_drain(relay_t *relay)
{
    uint64_t pending = 0;
    int64_t deadline = zclock_mono() + relay->opts.drain_ms;
    int rc = zchan__hub_close_all(relay->ctx, &pending);
    zsys_info("stopping: every channel closed, %" PRIu64 " deliveries pending", pending);
    bool hurry = false;
    while (rc == 0 && pending > 0 && !hurry && zclock_mono() < deadline) {
        zmq_pollitem_t item = {NULL, s_sigpipe[0], ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, 50);
        for (int sig; (sig = s_next_signal()) != 0;)
            hurry = hurry || sig == SIGTERM || sig == SIGINT;
        rc = zchan__hub_close_all(relay->ctx, &pending);
    }
    if (pending > 0)
        zsys_warning("%" PRIu64 " deliveries still pending at exit%s", pending,
                     hurry ? " (second signal)" : "");
}

static int s_run(relay_t *relay)
{
    zmq_pollitem_t items[2] = {{NULL, s_sigpipe[0], ZMQ_POLLIN, 0}, {relay->monitor, 0, ZMQ_POLLIN, 0}};
    int nitems = relay->monitor ? 2 : 1;
    relay->last_summary = zclock_mono();
    while (true) {
        if (zmq_poll(items, nitems, 1000) < 0 && zmq_errno() != EINTR) {
            zsys_error("poll: %s", zmq_strerror(zmq_errno()));
            return EXIT_RUNTIME;
        }
        if (nitems > 1 && (items[1].revents & ZMQ_POLLIN))
            s_on_monitor(relay);
        for (int sig; (sig = s_next_signal()) != 0;) {
            if (sig == SIGHUP)
                s_reload(relay);
            else {
                zsys_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                return 0;
            }
        }
        s_tick(relay);
    }
}

int main(int argc, char **argv)
{
    //  Before any czmq call: czmq must not install its own signal handlers.
    zsys_handler_set(NULL);
    relay_t relay;
    memset(&relay, 0, sizeof relay);
    relay.accepted = (tally_t) {.what = "connections accepted"};
    relay.disconnected = (tally_t) {.what = "connections closed"};
    relay.handshake_failed =
        (tally_t) {.what = "peers failed the ZeroMQ handshake (not ZeroMQ, garbage, or a CURVE key refused)",
                   .warn = true};
    relay.accept_failed = (tally_t) {.what = "connections could not be accepted", .warn = true};
    s_opts_init(&relay.cli);
    s_opts_init(&relay.opts);
    int rc = s_parse_args(&relay.cli, argc, argv);
    if (rc == 0)
        rc = s_effective(&relay, &relay.opts, false);
    if (rc != 0) {
        s_opts_free(&relay.cli);
        s_opts_free(&relay.opts);
        return rc;
    }
    zsys_set_logstream(stderr);
    zsys_set_logident("zchan-relay");
    if (relay.opts.log_file && s_open_log(relay.opts.log_file) != 0)
        rc = EXIT_RUNTIME;
    if (rc == 0 && s_signals_setup() != 0) {
        zsys_error("cannot set up signals: %s", strerror(errno));
        rc = EXIT_RUNTIME;
    }
    //  Threads started from here on never take the signals.
    s_signals_mask(SIG_BLOCK);
    if (rc == 0)
        rc = s_start(&relay);
    s_signals_mask(SIG_UNBLOCK);
    if (rc == 0)
        rc = s_run(&relay);
    if (relay.ctx && rc == 0)
        s_drain(&relay);
    s_monitor_stop(&relay);
    zchan_ctx_destroy(&relay.ctx);
    if (relay.wrote_endpoints)
        unlink(relay.opts.endpoint_file);
    if (rc == 0)
        zsys_info("stopped");
    s_opts_free(&relay.cli);
    s_opts_free(&relay.opts);
    return rc;
}

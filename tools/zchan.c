/*  zchan: the command-line client. Sends JSON values to a channel, prints
    what a channel delivers as JSON, closes channels and shows their counters.
    The JSON mapping is in tools/json.h; `zchan --help` is the manual.
*/
#include "core.h"
#include "json.h"
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  Exit codes (documented in the usage text).
enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1,
    EXIT_JSON = 2,
    EXIT_URI = 3,
    EXIT_NOTFOUND = 4,
    EXIT_TIMEOUT = 5,
    EXIT_CLOSED = 6,
    EXIT_KIND = 7,
    EXIT_FAIL = 8,
    EXIT_HUBLOST = 9,
    EXIT_LOST = 10,
    EXIT_INTERRUPTED = 130,
};

static const char *s_usage =
    "Usage: zchan COMMAND [OPTIONS] URI [ARGS]\n"
    "\n"
    "Commands:\n"
    "  send [--anycast|--broadcast] [--capacity N] [--resend-latest] [-t MS] URI [JSON ...]\n"
    "      Sends each JSON argument as one message; with no JSON argument, sends\n"
    "      each line of standard input (blank lines are skipped). Options go\n"
    "      before the URI, so that arguments such as -1 are values. Every\n"
    "      argument is checked before the first is sent. Returns once the\n"
    "      channel has everything that was sent.\n"
    "  recv [--anycast|--broadcast] [--capacity N] [--limit N] [-n COUNT] [-t MS] URI\n"
    "      Prints each message as one line of JSON. Exits 0 after COUNT\n"
    "      messages, or when the channel is closed and drained.\n"
    "  close [-t MS] URI\n"
    "      Closes the channel for everyone: receivers drain, then stop.\n"
    "  stat [-t MS] URI\n"
    "      Prints the channel's counters as one JSON object: uri, kind,\n"
    "      capacity, depth, senders, receivers, sent, delivered, dropped, lost,\n"
    "      closed.\n"
    "  keygen PATH\n"
    "      Makes a CURVE certificate: PATH holds its public key (copy it into a\n"
    "      hub's allowed-keys directory), PATH_secret both keys (mode 0600).\n"
    "      Prints the public key.\n"
    "\n"
    "Options:\n"
    "  --anycast           create the channel as anycast, or join it (send, recv)\n"
    "  --broadcast         create the channel as broadcast, or join it (send, recv)\n"
    "                      Without either, the channel must exist.\n"
    "  --capacity N        anycast capacity when creating (default 10)\n"
    "  --resend-latest     broadcast: new receivers get the last message (when creating)\n"
    "  --limit N           broadcast receiver buffer (default 50; oldest dropped)\n"
    "  -n, --count COUNT   recv: stop after COUNT messages\n"
    "  -t, --timeout MS    recv: the most to wait for each message; send: for room\n"
    "                      in the channel for each message (default: forever);\n"
    "                      close, stat: for the hub's answer. Other requests to\n"
    "                      the hub (create, open, attach) wait $ZCHAN_TIMEOUT_MS,\n"
    "                      default 5000 ms.\n"
    "  --curve-cert FILE   connect to tcp hubs with CURVE, as the client with this\n"
    "                      certificate (FILE and FILE_secret, see keygen);\n"
    "                      default $ZCHAN_CURVE_CERT\n"
    "  --server-key Z85    the public key of the CURVE hub that the tcp URI points\n"
    "                      at; default $ZCHAN_CURVE_SERVER_KEY\n"
    "  -h, --help          this text\n"
    "\n"
    "URI: tcp://HOST:PORT/NAME (the hub listening there, e.g. zchan-relay; PORT\n"
    "1 to 65535, HOST a name, an address or [IPv6], not *), ipc://HUB/NAME (the\n"
    "hub bound at ipc://HUB on this host), ipc://NAME (a host-wide name). NAME\n"
    "is 1 to 200 characters of [A-Za-z0-9._-]. inproc:// URIs name channels\n"
    "inside one process, which the CLI cannot reach.\n"
    "\n"
    "JSON: null, booleans, integers (the int64 and uint64 ranges), reals,\n"
    "strings, arrays and objects map to the same msgpack values. Other values\n"
    "print as one-key objects, and are read back the same way:\n"
    "  {\"$chan\": \"URI\"}             a channel reference (sending one opens URI)\n"
    "  {\"$bin\": \"BASE64\"}           msgpack bin\n"
    "  {\"$ext\": [TYPE, \"BASE64\"]}   msgpack ext, a malformed reference included\n"
    "  {\"$float\": \"nan\"}            NaN, \"inf\", \"-inf\" (float 64)\n"
    "  {\"$float32\": 0.1}            a float 32 (also \"nan\", \"inf\", \"-inf\")\n"
    "  {\"$map\": [[KEY, VALUE], ...]} a map whose keys are not all strings,\n"
    "                                or with a key starting with $\n"
    "  {\"$strb64\": \"BASE64\"}        a msgpack str that is not UTF-8\n"
    "\n"
    "Exit codes:\n"
    "  0  success (recv: COUNT messages, or the channel closed and drained)\n"
    "  1  usage error\n"
    "  2  bad JSON, or a value zchan cannot send (nested deeper than 32)\n"
    "  3  bad URI\n"
    "  4  no such channel\n"
    "  5  timed out (the hub did not answer, or no message or room in time)\n"
    "  6  the channel is closed (send), or the hub is shutting down\n"
    "  7  the channel exists with the other kind\n"
    "  8  other failure (system, protocol, memory, ipc unavailable)\n"
    "  9  the hub was lost: it stopped answering, or forgot this party and\n"
    "     it could not attach again (recv, send)\n"
    "  10 send: not every message reached the channel (the hub dropped the\n"
    "     connection, e.g. for a message over its maximum message size)\n"
    "  130  interrupted (SIGINT or SIGTERM)\n";

static volatile sig_atomic_t s_interrupted;

static void s_on_signal(int sig)
{
    (void) sig;
    s_interrupted = 1;
}

//  Options shared by the commands.
typedef struct {
    const char *cmd;
    const char *uri;
    zchan_kind_t kind; // 0: join only
    size_t capacity;
    bool resend;
    size_t limit;
    long count; // -1: no limit
    int timeout_ms; // -1: forever
    bool timeout_set;
    char **args;
    int nargs;
    const char *curve_cert; // NULL: $ZCHAN_CURVE_CERT, if set
    const char *server_key; // NULL: $ZCHAN_CURVE_SERVER_KEY, if set
} cli_t;

static int s_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

//  Prints "zchan: ..." as one line on stderr and returns code. Control
//  characters (from a URI or an argument) are shown escaped, as \xNN.
static int s_error(int code, const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    fputs("zchan: ", stderr);
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char) text[i];
        if (c < 0x20 || c == 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    if (n < 0)
        fputs(fmt, stderr); // out of memory: the bare message
    fputc('\n', stderr);
    free(text);
    return code;
}

//  The exit code for a zchan error.
static int s_exit_for(int err)
{
    switch (err) {
    case ZCHAN_OK: return EXIT_OK;
    case ZCHAN_ETIMEDOUT: return EXIT_TIMEOUT;
    case ZCHAN_ECLOSED: return EXIT_CLOSED;
    case ZCHAN_EINVAL: return EXIT_URI;
    case ZCHAN_ENOTFOUND: return EXIT_NOTFOUND;
    default: return EXIT_FAIL;
    }
}

static bool s_parse_num(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

//  Parses argv (argv[0] is the command). Returns EXIT_OK, EXIT_USAGE, or -1
//  for --help.
static int s_parse(cli_t *cli, int argc, char **argv)
{
    enum { OPT_ANY = 256, OPT_BCAST, OPT_CAP, OPT_RESEND, OPT_LIMIT, OPT_CERT, OPT_SKEY };
    static const struct option longs[] = {
        {"curve-cert", required_argument, NULL, OPT_CERT}, {"server-key", required_argument, NULL, OPT_SKEY},
        {"anycast", no_argument, NULL, OPT_ANY},     {"broadcast", no_argument, NULL, OPT_BCAST},
        {"capacity", required_argument, NULL, OPT_CAP}, {"resend-latest", no_argument, NULL, OPT_RESEND},
        {"limit", required_argument, NULL, OPT_LIMIT}, {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool is_send = strcmp(cli->cmd, "send") == 0, is_recv = strcmp(cli->cmd, "recv") == 0;
    //  send stops at its URI (a JSON argument may look like an option).
    const char *shorts = is_send ? "+t:h" : is_recv ? "n:t:h" : "t:h";
    optind = 1;
    opterr = 0;
    int c;
    long long v;
    while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        switch (c) {
        case OPT_ANY:
        case OPT_BCAST:
            if (!is_send && !is_recv)
                return s_error(EXIT_USAGE, "%s: --anycast and --broadcast are for send and recv", cli->cmd);
            if (cli->kind)
                return s_error(EXIT_USAGE, "%s: give --anycast or --broadcast, not both", cli->cmd);
            cli->kind = c == OPT_ANY ? ZCHAN_ANYCAST : ZCHAN_BROADCAST;
            break;
        case OPT_CAP:
            if (!s_parse_num(optarg, 0, 1LL << 40, &v))
                return s_error(EXIT_USAGE, "%s: --capacity wants 0 or more, not '%s'", cli->cmd, optarg);
            cli->capacity = (size_t) v;
            break;
        case OPT_RESEND: cli->resend = true; break;
        case OPT_CERT: cli->curve_cert = optarg; break;
        case OPT_SKEY: cli->server_key = optarg; break;
        case OPT_LIMIT:
            if (!s_parse_num(optarg, 1, 1 << 24, &v))
                return s_error(EXIT_USAGE, "%s: --limit wants 1 or more, not '%s'", cli->cmd, optarg);
            cli->limit = (size_t) v;
            break;
        case 'n':
            if (!s_parse_num(optarg, 1, LONG_MAX, &v))
                return s_error(EXIT_USAGE, "%s: -n wants a count of 1 or more, not '%s'", cli->cmd, optarg);
            cli->count = (long) v;
            break;
        case 't':
            if (!s_parse_num(optarg, -1, INT_MAX, &v))
                return s_error(EXIT_USAGE, "%s: -t wants milliseconds (-1: forever), not '%s'", cli->cmd, optarg);
            cli->timeout_ms = (int) v;
            cli->timeout_set = true;
            break;
        case 'h': return -1;
        default:
            if (optopt)
                return s_error(EXIT_USAGE, "%s: bad or incomplete option -%c (see zchan --help)", cli->cmd, optopt);
            return s_error(EXIT_USAGE, "%s: unknown option %s (see zchan --help)", cli->cmd, argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return s_error(EXIT_USAGE, "%s: no URI given (see zchan --help)", cli->cmd);
    cli->uri = argv[optind++];
    cli->args = argv + optind;
    cli->nargs = argc - optind;
    if (!is_send && cli->nargs > 0)
        return s_error(EXIT_USAGE, "%s: unexpected argument '%s'", cli->cmd, cli->args[0]);
    return EXIT_OK;
}

//  Whether rest is "NAME" or "HUB/NAME", the syntax of an ipc URI.
static bool s_ipc_syntax(const char *rest)
{
    const char *slash = strchr(rest, '/');
    if (!slash)
        return zchan__name_valid(rest, strlen(rest));
    return zchan__name_valid(rest, (size_t) (slash - rest)) && zchan__name_valid(slash + 1, strlen(slash + 1));
}

//  Checks the URI's syntax through its transport, so that EINVAL from the
//  hub later means something else (the other kind). inproc is refused: it
//  names a channel inside one process, and the CLI is a process of its own.
static int s_check_uri(zchan_ctx_t *ctx, const char *uri)
{
    const zchan__transport_t *t = zchan__transport_for(uri);
    if (t && t->in_process)
        return s_error(EXIT_URI, "'%s': an inproc:// channel lives inside one process, out of the CLI's reach "
                                 "(use ipc:// or tcp://)", uri);
    const char *rest = t ? uri + strlen(t->scheme) + 3 : "";
    const zchan__tview_t *view = t ? zchan__ctx_tview(ctx, t) : NULL;
    bool unusable = t && t->usable && !t->usable(view);
    if (t && strcmp(t->scheme, "ipc") == 0 && unusable && s_ipc_syntax(rest))
        return s_error(EXIT_FAIL, "'%s': ipc is unavailable: no usable runtime directory (see the log line "
                                  "above; set $ZCHAN_IPC_DIR)", uri);
    zchan__target_t target;
    if (!t || t->parse_uri(view, rest, &target) != 0)
        return s_error(EXIT_URI, "bad URI '%s' (want tcp://HOST:PORT/NAME, ipc://HUB/NAME or ipc://NAME)", uri);
    return EXIT_OK;
}

//  Creates, joins or opens the channel as the options say.
static int s_channel(cli_t *cli, zchan_ctx_t *ctx, zchan_t **ch_p)
{
    int rc = s_check_uri(ctx, cli->uri);
    if (rc != EXIT_OK)
        return rc;
    zchan_t *ch;
    if (cli->kind == ZCHAN_ANYCAST)
        ch = zchan_anycast_new(ctx, cli->uri, cli->capacity);
    else if (cli->kind == ZCHAN_BROADCAST)
        ch = zchan_broadcast_new(ctx, cli->uri, cli->resend);
    else
        ch = zchan_open(ctx, cli->uri);
    if (!ch) {
        int err = zchan_errno();
        if (err == ZCHAN_EINVAL && !cli->kind)
            return s_error(EXIT_URI, "%s: %s", cli->uri, zchan_strerror(err));
        if (err == ZCHAN_EINVAL)
            return s_error(EXIT_KIND, "%s exists as %s channel", cli->uri,
                           cli->kind == ZCHAN_ANYCAST ? "a broadcast" : "an anycast");
        if (err == ZCHAN_ECLOSED)
            return s_error(EXIT_CLOSED, "%s: the hub is shutting down", cli->uri);
        return s_error(s_exit_for(err), "%s: %s", cli->uri, zchan_strerror(err));
    }
    *ch_p = ch;
    return EXIT_OK;
}

//  Packs one JSON text into a new message. Returns an exit code.
static int s_build(zchan_ctx_t *ctx, const char *text, size_t len, const char *where, zchan_msg_t **msg_p)
{
    zchan_msg_t *msg = zchan_msg_new();
    if (!msg)
        return s_error(EXIT_FAIL, "out of memory");
    char err[256];
    int zerr = 0;
    int rc = zcj_pack(ctx, text, len, msg, &zerr, err, sizeof err);
    if (rc != ZCJ_OK) {
        zchan_msg_destroy(&msg);
        if (rc == ZCJ_EJSON)
            return s_error(EXIT_JSON, "%s: %s", where, err);
        return s_error(zerr == ZCHAN_EINVAL ? EXIT_URI : s_exit_for(zerr), "%s: %s", where, err);
    }
    *msg_p = msg;
    return EXIT_OK;
}

static int s_send_one(zchan_sender_t *s, zchan_msg_t **msg_p, int timeout_ms, const char *uri)
{
    int rc = zchan_send(s, msg_p, timeout_ms);
    zchan_msg_destroy(msg_p);
    if (rc != 0 && s_interrupted)
        return EXIT_INTERRUPTED; // a signal ends the wait for room
    if (rc == ZCHAN_ECLOSED && zchan_sender_hub_lost(s))
        return s_error(EXIT_HUBLOST, "%s: the hub was lost (see the log line above)", uri);
    if (rc == ZCHAN_ECLOSED)
        return s_error(EXIT_CLOSED, "%s: channel closed", uri);
    if (rc != 0)
        return s_error(s_exit_for(rc), "%s: send: %s", uri, zchan_strerror(rc));
    return EXIT_OK;
}

static int s_cmd_send(cli_t *cli, zchan_ctx_t *ctx)
{
    //  Check every argument before anything is sent.
    zchan_msg_t **msgs = cli->nargs ? calloc((size_t) cli->nargs, sizeof *msgs) : NULL;
    if (cli->nargs && !msgs)
        return s_error(EXIT_FAIL, "out of memory");
    int rc = EXIT_OK;
    for (int i = 0; i < cli->nargs && rc == EXIT_OK; i++) {
        char where[32];
        snprintf(where, sizeof where, "argument %d", i + 1);
        rc = s_build(ctx, cli->args[i], strlen(cli->args[i]), where, &msgs[i]);
    }
    zchan_t *ch = NULL;
    zchan_sender_t *s = NULL;
    if (rc == EXIT_OK)
        rc = s_channel(cli, ctx, &ch);
    if (rc == EXIT_OK && !(s = zchan_sender_new(ch)))
        rc = s_error(s_exit_for(zchan_errno()), "%s: %s", cli->uri, zchan_strerror(zchan_errno()));
    int timeout = cli->timeout_set ? cli->timeout_ms : -1;
    for (int i = 0; i < cli->nargs && rc == EXIT_OK; i++)
        rc = s_send_one(s, &msgs[i], timeout, cli->uri);
    if (rc == EXIT_OK && cli->nargs == 0) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        long lineno = 0;
        while (rc == EXIT_OK && !s_interrupted && (len = getline(&line, &cap, stdin)) >= 0) {
            lineno++;
            if (strspn(line, " \t\r\n") == (size_t) len)
                continue;
            char where[48];
            snprintf(where, sizeof where, "line %ld", lineno);
            zchan_msg_t *msg = NULL;
            rc = s_build(ctx, line, (size_t) len, where, &msg);
            if (rc == EXIT_OK)
                rc = s_send_one(s, &msg, timeout, cli->uri);
        }
        free(line);
        if (rc == EXIT_OK && s_interrupted)
            rc = EXIT_INTERRUPTED;
    }
    for (int i = 0; i < cli->nargs; i++)
        zchan_msg_destroy(&msgs[i]);
    free(msgs);
    //  A send returns once the message is on its way: only the hub's answer
    //  to a flush says that it got there.
    if (s && rc == EXIT_OK) {
        int err = zchan_sender_flush(s);
        if (err == ZCHAN_ENOTFOUND)
            rc = s_error(EXIT_LOST, "%s: not every message reached the channel: the hub dropped the connection "
                                    "(a message over its maximum message size?) or restarted", cli->uri);
        else if (err == ZCHAN_ECLOSED && zchan_sender_hub_lost(s))
            rc = s_error(EXIT_HUBLOST, "%s: the hub was lost before it confirmed the messages", cli->uri);
        else if (err == ZCHAN_ECLOSED)
            rc = s_error(EXIT_CLOSED, "%s: channel closed", cli->uri);
        else if (err != 0)
            rc = s_error(s_exit_for(err), "%s: cannot confirm that the messages reached the channel: %s",
                         cli->uri, zchan_strerror(err));
    }
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
    return rc;
}

static int s_cmd_recv(cli_t *cli, zchan_ctx_t *ctx)
{
    zchan_t *ch = NULL;
    int rc = s_channel(cli, ctx, &ch);
    if (rc != EXIT_OK)
        return rc;
    zchan_receiver_t *r = zchan_receiver_new(ch, cli->limit);
    if (!r) {
        rc = s_error(s_exit_for(zchan_errno()), "%s: %s", cli->uri, zchan_strerror(zchan_errno()));
        zchan_destroy(&ch);
        return rc;
    }
    long got = 0;
    int64_t deadline = zchan__deadline(cli->timeout_set ? cli->timeout_ms : -1);
    while (rc == EXIT_OK && (cli->count < 0 || got < cli->count)) {
        if (s_interrupted) {
            rc = EXIT_INTERRUPTED;
            break;
        }
        //  Wait in slices so that a signal is noticed soon.
        long left = zchan__remaining(deadline);
        int slice = left < 0 || left > 200 ? 200 : (int) left;
        zchan_msg_t *msg = NULL;
        int err = zchan_recv(r, &msg, slice);
        if (err == ZCHAN_OK) {
            const msgpack_object *o = zchan_msg_object(msg);
            if (o && zcj_print(stdout, o) != 0)
                rc = s_error(EXIT_FAIL, "cannot write to standard output");
            zchan_msg_destroy(&msg);
            got++;
            deadline = zchan__deadline(cli->timeout_set ? cli->timeout_ms : -1);
        } else if (err == ZCHAN_ETIMEDOUT) {
            if (deadline >= 0 && zchan__now_ms() >= deadline)
                rc = s_error(EXIT_TIMEOUT, "%s: no message within %d ms (%ld received)", cli->uri,
                             cli->timeout_ms, got);
        } else if (err == ZCHAN_ECLOSED && zchan_receiver_hub_lost(r))
            rc = s_error(EXIT_HUBLOST, "%s: the hub was lost (%ld received; see the log line above)", cli->uri,
                         got);
        else if (err == ZCHAN_ECLOSED)
            break; // closed and drained
        else if (err == ZCHAN_EPROTO)
            s_error(0, "%s: skipped a message that is not one msgpack value", cli->uri);
        else
            rc = s_error(s_exit_for(err), "%s: recv: %s", cli->uri, zchan_strerror(err));
    }
    //  Graceful: an anycast receiver gives back what it was handed unread.
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
    return rc;
}

static int s_cmd_close(cli_t *cli, zchan_ctx_t *ctx)
{
    zchan_t *ch = NULL;
    int rc = s_channel(cli, ctx, &ch);
    if (rc != EXIT_OK)
        return rc;
    int err = zchan_close(ch);
    if (err != 0)
        rc = s_error(s_exit_for(err), "%s: close: %s", cli->uri, zchan_strerror(err));
    zchan_destroy(&ch);
    return rc;
}

static void s_pack_cstr(msgpack_packer *pk, const char *str)
{
    msgpack_pack_str(pk, strlen(str));
    msgpack_pack_str_body(pk, str, strlen(str));
}

//  Prints the counters as one JSON object, built as a msgpack map so that it
//  goes through the same printer as messages.
static int s_print_stat(const char *uri, const zchan_stat_t *st)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 11);
    s_pack_cstr(&pk, "uri");
    s_pack_cstr(&pk, uri);
    s_pack_cstr(&pk, "kind");
    s_pack_cstr(&pk, st->kind == ZCHAN_ANYCAST ? "anycast" : "broadcast");
    const char *names[] = {"capacity", "depth", "senders", "receivers", "sent", "delivered", "dropped", "lost"};
    uint64_t vals[] = {st->capacity, st->depth, st->senders,  st->receivers,
                       st->sent,     st->delivered, st->dropped, st->lost};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        s_pack_cstr(&pk, names[i]);
        msgpack_pack_uint64(&pk, vals[i]);
    }
    s_pack_cstr(&pk, "closed");
    if (st->closed)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    int rc = EXIT_FAIL;
    msgpack_zone zone;
    if (sb.data && msgpack_zone_init(&zone, 1024)) {
        msgpack_object obj;
        size_t off = 0;
        if (msgpack_unpack(sb.data, sb.size, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS
            && zcj_print(stdout, &obj) == 0)
            rc = EXIT_OK;
        msgpack_zone_destroy(&zone);
    }
    msgpack_sbuffer_destroy(&sb);
    return rc == EXIT_OK ? rc : s_error(rc, "cannot write to standard output");
}

static int s_cmd_stat(cli_t *cli, zchan_ctx_t *ctx)
{
    zchan_t *ch = NULL;
    int rc = s_channel(cli, ctx, &ch);
    if (rc != EXIT_OK)
        return rc;
    zchan_stat_t st;
    int err = zchan_stat(ch, &st);
    if (err != 0)
        rc = s_error(s_exit_for(err), "%s: stat: %s", cli->uri, zchan_strerror(err));
    else
        rc = s_print_stat(cli->uri, &st);
    zchan_destroy(&ch);
    return rc;
}

//  zchan keygen PATH: a new CURVE certificate, its secret file private.
//  czmq's log (the library's too) goes to stderr: stdout is for values only.
//  $ZSYS_LOGSTREAM, czmq's own setting, wins.
static void s_log_setup(void)
{
    zsys_handler_set(NULL);
    if (!getenv("ZSYS_LOGSTREAM"))
        zsys_set_logstream(stderr);
}

static int s_keygen(int argc, char **argv)
{
    if (argc != 3 || argv[2][0] == '-')
        return s_error(EXIT_USAGE, "keygen wants one PATH (see zchan --help)");
    s_log_setup();
    zcert_t *cert = zcert_new();
    if (!cert)
        return s_error(EXIT_FAIL, "keygen: cannot make a key pair");
    char secret[PATH_MAX];
    snprintf(secret, sizeof secret, "%s_secret", argv[2]);
    int rc = zcert_save_public(cert, argv[2]);
    mode_t old = umask(077);
    if (rc == 0)
        rc = zcert_save_secret(cert, secret);
    umask(old);
    if (rc != 0 || chmod(secret, 0600) != 0) {
        zcert_destroy(&cert);
        return s_error(EXIT_FAIL, "keygen: cannot write %s and %s", argv[2], secret);
    }
    printf("%s\n", zcert_public_txt(cert));
    zcert_destroy(&cert);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return s_error(EXIT_USAGE, "no command (see zchan --help)");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(s_usage, stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("zchan %d.%d.%d\n", ZCHAN_VERSION_MAJOR, ZCHAN_VERSION_MINOR, ZCHAN_VERSION_PATCH);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "keygen") == 0)
        return s_keygen(argc, argv);
    cli_t cli = {.cmd = argv[1], .capacity = ZCHAN_ANYCAST_CAPACITY, .count = -1, .timeout_ms = -1};
    int (*run)(cli_t *, zchan_ctx_t *) = NULL;
    if (strcmp(cli.cmd, "send") == 0)
        run = s_cmd_send;
    else if (strcmp(cli.cmd, "recv") == 0)
        run = s_cmd_recv;
    else if (strcmp(cli.cmd, "close") == 0)
        run = s_cmd_close;
    else if (strcmp(cli.cmd, "stat") == 0)
        run = s_cmd_stat;
    else
        return s_error(EXIT_USAGE, "unknown command '%s' (see zchan --help)", cli.cmd);
    int rc = s_parse(&cli, argc - 1, argv + 1);
    if (rc == -1) {
        fputs(s_usage, stdout);
        return EXIT_OK;
    }
    if (rc != EXIT_OK)
        return rc;

    //  SIGINT and SIGTERM end a wait cleanly: an anycast receiver gives its
    //  unread messages back.
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    s_log_setup();
    zchan_ctx_t *ctx = zchan_ctx_new();
    if (!ctx)
        return s_error(EXIT_FAIL, "cannot start: %s", zchan_strerror(zchan_errno()));
    if (cli.timeout_set && run != s_cmd_send && run != s_cmd_recv)
        zchan_ctx_set_timeout(ctx, cli.timeout_ms);
    if (cli.curve_cert || cli.server_key) {
        //  What is not given stays as the environment set it.
        const char *key = cli.server_key ? cli.server_key : getenv("ZCHAN_CURVE_SERVER_KEY");
        if (zchan_ctx_set_curve_client(ctx, cli.curve_cert, key && *key ? key : NULL) != 0) {
            zchan_ctx_destroy(&ctx);
            return s_error(EXIT_USAGE, "bad --curve-cert or --server-key (see the log line above)");
        }
    }
    rc = run(&cli, ctx);
    zchan_ctx_destroy(&ctx);
    return rc;
}

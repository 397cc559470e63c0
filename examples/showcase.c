//  showcase.c: the frequenz-channels README showcase, ported to zchan, with
//  every role in a process of its own.
//
//  The original is the "Showcase" example in README.md of
//  frequenz-floss/frequenz-channels-python (1.x API: Anycast, Broadcast,
//  merge, select, selected_from, Timer with TriggerAllMissed and
//  SkipMissedAndDrift). What it prints comes from the __str__ and __repr__
//  methods in src/frequenz/channels/_anycast.py and timer.py of that
//  repository, and from Python's own str() and repr(). How the pieces map:
//
//    Python (one asyncio program)            C (four processes)
//    --------------------------------------  -----------------------------------
//    main()                                  this program, no role flag: hosts
//                                            the channels and starts the others
//    task "send-channel-1", send(...)        showcase --role send 1 BASE
//    task "send-channel-2", send(...)        showcase --role send 2 BASE
//    task "receive", receive(...)            showcase --role receive BASE
//    Anycast[str] "data-channel-1" and -2    anycast channels of the same names,
//                                            capacity 10 (Anycast's default limit)
//    Broadcast[Command] "control-channel"    broadcast channel, resend_latest off
//    Anycast[Reply] "reply-channel"          anycast channel
//    Command.PING / STOP_SENDER (auto())     msgpack integers 1 / 2
//    Reply(reply=ReplyCommand.PONG, source)  msgpack map {"reply": 1, "source": str}
//    Timer(1 s, TriggerAllMissed())          zchan_timer_new(1 s, ZCHAN_TRIGGER_ALL_MISSED)
//    Timer(2 s, SkipMissedAndDrift())        zchan_timer_new(2 s, ZCHAN_SKIP_MISSED_AND_DRIFT),
//                                            tolerance 0 (Python's default delay_tolerance)
//    merge(*receivers)                       zchan_merge
//    async for selected in select(...)       loop on zchan_select_wait
//    selected_from(selected, x)              the pointer select returned == x
//    timer.reset()                           zchan_timer_reset(timer, 0)
//    asyncio.sleep(5.0)                      a 5 s sleep (intervals are not scaled:
//                                            the whole run takes under 8 s)
//    TaskGroup exit                          waitpid on the three role processes
//
//  BASE is "ipc://" (the default: channels are host-wide names) or, with --tcp,
//  "tcp://127.0.0.1:PORT/" after main binds an ephemeral port; each channel's
//  URI is BASE followed by its Python name.
//
//  Output. stdout carries what the Python program prints, line for line:
//  str(sender) is "Anycast:data-channel-1:_Sender" as in Python, timedeltas
//  and strings are printed as Python's str() and repr() print them, and the
//  receiver prints its timer as Python's Timer.__repr__ does. That repr names
//  the asyncio loop the timer runs on; C has no such loop (select's zmq_poll
//  plays its part), and the field is printed as Python prints it so that the
//  two outputs compare line for line. Each role's lines come in the original's
//  order; lines of different roles interleave as the processes run, where
//  asyncio's single thread gives one fixed interleaving. The order of main's
//  three replies is the order in which they arrive. Diagnostics and the final
//  verdict ("showcase: ok", or "showcase: FAILED ...") go to stderr.
//
//  Plumbing the original does not need, because its tasks share one process:
//  - "showcase-ready" (anycast) and "showcase-start" (broadcast). A role
//    process creates its receivers, says it is ready, and waits for start, as
//    Python's tasks start together once main has created every sender and
//    receiver. The control receivers thus exist before main broadcasts PING,
//    and the timers of all roles start within a few milliseconds of each other.
//  - half a second between start and PING. In the original the senders'
//    timers are armed before main's 5 s sleep begins, and asyncio's single
//    thread makes that a fixed outcome: each sender sends 0 to 4, then stops.
//    Across processes the fifth tick and the stop would race by about a
//    millisecond; the pause puts the stop midway between the fifth and sixth
//    ticks, so each sender sends 0 to 4 here too.
//  - a private runtime directory for the ipc socket and lock files, removed at
//    the end, since the library leaves its lock files behind.
//  - timeouts on every wait, a watchdog alarm in the role processes, and
//    self-checks. Any error, a missing or malformed PONG, a value lost,
//    repeated or out of order, a role that crashes or hangs: the run fails
//    (exit 1). What depends on timing alone, like the original's (5 values
//    per sender, the receiver hearing the stop before its 2 s of silence), is
//    checked too, but a machine that stalls a process for half a second or
//    more can change it, as it would the original's; that gives a note on
//    stderr and "showcase: ok, but ..." instead of a failure.
//
//  Usage: showcase [--tcp]
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zchan.h>

#define SEC 1000000 // microseconds per second

//  Generous limits, so a loaded machine or valgrind does not fail the run.
#define READY_TIMEOUT_MS 60000 // for the three roles to come up
#define REPLY_TIMEOUT_MS 10000 // for each PONG
#define ROLE_DEADLINE_MS 60000 // a role that is not done by then fails
#define REAP_TIMEOUT_MS 30000  // for the roles to exit once told to stop
#define OP_TIMEOUT_MS 5000     // for one send
#define WATCHDOG_S 180         // role processes: SIGALRM ends a hung one
#define EXIT_LATE 3            // a role's exit status: it worked, but its timing
                               // differed from the original's (see the top)
#define SETTLE_MS 500          // from start to PING (see the top)
#define SENDS 5                // values each sender sends before the stop: 0 to 4

typedef enum { CMD_PING = 1, CMD_STOP_SENDER = 2 } command_t; // Command, auto()
typedef enum { REPLY_PONG = 1 } reply_command_t;              // ReplyCommand, auto()

static const char *s_command_name(int64_t cmd)
{
    return cmd == CMD_PING ? "PING" : cmd == CMD_STOP_SENDER ? "STOP_SENDER" : NULL;
}

static const char *s_role = "main"; // for diagnostics

static void s_complain(const char *what, int err)
{
    fprintf(stderr, "showcase (%s): %s: %s\n", s_role, what, zchan_strerror(err));
}

// ---------------------------------------------------------------------------
// Python's str() and repr() of the values the original prints

//  str(timedelta(microseconds=us)): "0:00:02.000513", "0:00:02", "1 day, 0:00:00".
static void s_timedelta_str(char *buf, size_t n, int64_t us)
{
    int64_t days = us / (86400LL * SEC), rest = us % (86400LL * SEC);
    if (rest < 0) { // Python normalises to 0 <= seconds < 86400
        rest += 86400LL * SEC;
        days--;
    }
    int64_t secs = rest / SEC, micro = rest % SEC;
    int len = 0;
    if (days)
        len = snprintf(buf, n, "%" PRId64 " day%s, ", days, days == 1 || days == -1 ? "" : "s");
    len += snprintf(buf + len, n - (size_t) len, "%d:%02d:%02d", (int) (secs / 3600), (int) (secs / 60 % 60),
                    (int) (secs % 60));
    if (micro)
        snprintf(buf + len, n - (size_t) len, ".%06d", (int) micro);
}

//  repr(timedelta(microseconds=us)): "datetime.timedelta(seconds=2)",
//  "datetime.timedelta(0)".
static void s_timedelta_repr(char *buf, size_t n, int64_t us)
{
    int64_t days = us / (86400LL * SEC), rest = us % (86400LL * SEC);
    if (rest < 0) {
        rest += 86400LL * SEC;
        days--;
    }
    int64_t parts[3] = { days, rest / SEC, rest % SEC };
    const char *names[3] = { "days", "seconds", "microseconds" };
    int len = snprintf(buf, n, "datetime.timedelta(");
    bool any = false;
    for (int i = 0; i < 3; i++)
        if (parts[i]) {
            len += snprintf(buf + len, n - (size_t) len, "%s%s=%" PRId64, any ? ", " : "", names[i], parts[i]);
            any = true;
        }
    snprintf(buf + len, n - (size_t) len, "%s)", any ? "" : "0");
}

//  repr(str): single quotes unless the text holds ' and no ", with Python's
//  escapes for the quote, the backslash and control characters.
static void s_str_repr(char *buf, size_t n, const char *s)
{
    char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    size_t len = 0;
    buf[len++] = q;
    for (; *s && len + 6 < n; s++) {
        unsigned char c = (unsigned char) *s;
        if (c == (unsigned char) q || c == '\\')
            len += (size_t) snprintf(buf + len, n - len, "\\%c", c);
        else if (c == '\n')
            len += (size_t) snprintf(buf + len, n - len, "\\n");
        else if (c == '\r')
            len += (size_t) snprintf(buf + len, n - len, "\\r");
        else if (c == '\t')
            len += (size_t) snprintf(buf + len, n - len, "\\t");
        else if (c < 0x20 || c == 0x7f)
            len += (size_t) snprintf(buf + len, n - len, "\\x%02x", c);
        else
            buf[len++] = (char) c;
    }
    buf[len++] = q;
    buf[len] = '\0';
}

//  A timer with what Timer.__repr__ shows: zchan_timer_t has no getters, so
//  the settings are kept beside it.
typedef struct {
    zchan_timer_t *t;
    int64_t interval_us;
    int64_t tolerance_us;
    zchan_missed_t policy;
    bool running;
} showcase_timer_t;

//  print(f"{timer=}")
static void s_print_timer(const showcase_timer_t *timer)
{
    char interval[64], policy[128], tol[64];
    s_timedelta_repr(interval, sizeof interval, timer->interval_us);
    s_timedelta_repr(tol, sizeof tol, timer->tolerance_us);
    if (timer->policy == ZCHAN_SKIP_MISSED_AND_DRIFT)
        snprintf(policy, sizeof policy, "SkipMissedAndDrift(self.delay_tolerance=%s)", tol);
    else
        snprintf(policy, sizeof policy, "%s()",
                 timer->policy == ZCHAN_TRIGGER_ALL_MISSED ? "TriggerAllMissed" : "SkipMissedAndResync");
    printf("timer=Timer<self.interval=%s, self.missed_tick_policy=%s, "
           "self.loop=<_UnixSelectorEventLoop running=True closed=False debug=False>, "
           "self.is_running=%s>\n",
           interval, policy, timer->running ? "True" : "False");
}

// ---------------------------------------------------------------------------
// Helpers shared by the roles

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_left_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - s_now_ms();
    return left > 0 ? (int) left : 0;
}

static void s_sleep_ms(int ms)
{
    struct timespec nap = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };
    while (nanosleep(&nap, &nap) != 0 && errno == EINTR)
        ;
}

static void s_uri(char *buf, size_t n, const char *base, const char *name)
{
    snprintf(buf, n, "%s%s", base, name);
}

//  Sends Reply(ReplyCommand.PONG, source) on the reply channel.
static int s_send_pong(zchan_sender_t *reply_tx, const char *source)
{
    zchan_msg_t *msg = zchan_msg_new();
    if (!msg)
        return ZCHAN_ENOMEM;
    msgpack_packer *pk = zchan_msg_packer(msg);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "reply", 5);
    msgpack_pack_int(pk, REPLY_PONG);
    msgpack_pack_str_with_body(pk, "source", 6);
    msgpack_pack_str_with_body(pk, source, strlen(source));
    int rc = zchan_send(reply_tx, &msg, OP_TIMEOUT_MS);
    zchan_msg_destroy(&msg); // still ours if the send failed
    return rc;
}

//  Reads a map's value for key, or NULL.
static const msgpack_object *s_lookup(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key)
            && memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0)
            return &kv->val;
    }
    return NULL;
}

//  The plumbing the original gets from sharing one event loop: tell main this
//  role's receivers exist, then wait until main starts every role together.
static int s_ready_then_start(zchan_ctx_t *ctx, const char *base, const char *who)
{
    char uri[256];
    s_uri(uri, sizeof uri, base, "showcase-start");
    zchan_t *start = zchan_open(ctx, uri);
    zchan_receiver_t *start_rx = start ? zchan_receiver_new(start, 0) : NULL;
    s_uri(uri, sizeof uri, base, "showcase-ready");
    zchan_t *ready = start_rx ? zchan_open(ctx, uri) : NULL;
    zchan_sender_t *ready_tx = ready ? zchan_sender_new(ready) : NULL;
    int rc = ready_tx ? zchan_send_str(ready_tx, who, OP_TIMEOUT_MS) : zchan_errno();
    char *go = NULL;
    if (rc == ZCHAN_OK)
        rc = zchan_recv_str(start_rx, &go, READY_TIMEOUT_MS);
    if (rc != ZCHAN_OK)
        s_complain("waiting for start", rc);
    free(go);
    zchan_sender_destroy(&ready_tx);
    zchan_destroy(&ready);
    zchan_receiver_destroy(&start_rx);
    zchan_destroy(&start);
    return rc;
}

// ---------------------------------------------------------------------------
// send(): a counter value every second, until a STOP_SENDER command

static int s_send_role(zchan_ctx_t *ctx, const char *base, int n)
{
    char uri[256], name[64];
    snprintf(name, sizeof name, "data-channel-%d", n);
    s_uri(uri, sizeof uri, base, name);
    zchan_t *data = zchan_open(ctx, uri);
    s_uri(uri, sizeof uri, base, "control-channel");
    zchan_t *control = zchan_open(ctx, uri);
    s_uri(uri, sizeof uri, base, "reply-channel");
    zchan_t *reply = zchan_open(ctx, uri);
    if (!data || !control || !reply) {
        s_complain("open", zchan_errno());
        zchan_destroy(&data);
        zchan_destroy(&control);
        zchan_destroy(&reply);
        return 1;
    }
    //  The arguments main passes to send(): a data sender, a control receiver
    //  and a reply sender.
    zchan_sender_t *sender = zchan_sender_new(data);
    zchan_receiver_t *control_command = zchan_receiver_new(control, 0);
    zchan_sender_t *control_reply = zchan_sender_new(reply);
    zchan_select_t *sel = zchan_select_new();
    zchan_timer_t *timer = NULL;
    bool ok = false, stopped = false;
    int64_t counter = 0;
    if (!sender || !control_command || !control_reply || !sel) {
        s_complain("sender or receiver", zchan_errno());
        goto done;
    }
    if (s_ready_then_start(ctx, base, name) != ZCHAN_OK)
        goto done;

    //  str(sender) in Python: "<channel>:<class>", the channel being "Anycast:<name>".
    char me[128];
    snprintf(me, sizeof me, "%s:%s:_Sender", zchan_kind(data) == ZCHAN_ANYCAST ? "Anycast" : "Broadcast",
             zchan_name(data));
    printf("%s: Starting\n", me);
    timer = zchan_timer_new(1 * SEC, ZCHAN_TRIGGER_ALL_MISSED);
    if (!timer || zchan_select_add_timer(sel, timer) != ZCHAN_OK
        || zchan_select_add_receiver(sel, control_command) != ZCHAN_OK) {
        s_complain("timer or select", zchan_errno());
        goto done;
    }
    int64_t deadline = s_now_ms() + ROLE_DEADLINE_MS;
    while (!stopped) {
        void *selected = zchan_select_wait(sel, s_left_ms(deadline));
        if (!selected) {
            s_complain("select (no STOP_SENDER came)", zchan_errno());
            goto done;
        }
        if (selected == timer) {
            int rc = zchan_timer_wait(timer, NULL, 0);
            if (rc != ZCHAN_OK) {
                s_complain("timer", rc);
                goto done;
            }
            printf("%s: Sending %" PRId64 "\n", me, counter);
            char text[160];
            snprintf(text, sizeof text, "%s: %" PRId64, me, counter);
            if ((rc = zchan_send_str(sender, text, OP_TIMEOUT_MS)) != ZCHAN_OK) {
                s_complain("send", rc);
                goto done;
            }
            counter++;
        } else if (selected == control_command) {
            int64_t cmd = 0;
            int rc = zchan_recv_int(control_command, &cmd, 0);
            if (rc != ZCHAN_OK || !s_command_name(cmd)) {
                s_complain("control command", rc != ZCHAN_OK ? rc : ZCHAN_ETYPE);
                goto done; // Python: a stopped receiver raises; assert_never
            }
            printf("%s: Received command: %s\n", me, s_command_name(cmd));
            if (cmd == CMD_STOP_SENDER) {
                printf("%s: Stopping\n", me);
                stopped = true;
            } else { // CMD_PING
                printf("%s: Ping received, reply with pong\n", me);
                if ((rc = s_send_pong(control_reply, me)) != ZCHAN_OK) {
                    s_complain("reply", rc);
                    goto done;
                }
            }
        }
    }
    printf("%s: Finished\n", me);
    ok = counter > 0;
    if (counter != SENDS)
        fprintf(stderr, "showcase (%s): note: sent %" PRId64 " values where the original sends %d\n", s_role,
                counter, SENDS);
done:
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&timer);
    zchan_sender_destroy(&control_reply);
    zchan_receiver_destroy(&control_command);
    zchan_sender_destroy(&sender); // returns once all it sent reached data-channel-N
    zchan_destroy(&reply);
    zchan_destroy(&control);
    zchan_destroy(&data);
    return !ok ? 1 : counter != SENDS ? EXIT_LATE : 0;
}

// ---------------------------------------------------------------------------
// receive(): merge both data channels until none arrives for 2 seconds

//  Checks that message text "Anycast:data-channel-N:_Sender: K" continues
//  sender N's count; next[N-1] is the K expected next.
static bool s_in_sequence(const char *text, int64_t next[2])
{
    int n = 0;
    long long k = -1;
    if (sscanf(text, "Anycast:data-channel-%d:_Sender: %lld", &n, &k) != 2 || n < 1 || n > 2
        || k != next[n - 1])
        return false;
    next[n - 1]++;
    return true;
}

static int s_receive_role(zchan_ctx_t *ctx, const char *base)
{
    char uri[256];
    zchan_t *chans[4] = { NULL };
    const char *names[4] = { "data-channel-1", "data-channel-2", "control-channel", "reply-channel" };
    for (int i = 0; i < 4; i++) {
        s_uri(uri, sizeof uri, base, names[i]);
        if (!(chans[i] = zchan_open(ctx, uri))) {
            s_complain("open", zchan_errno());
            for (int j = 0; j < i; j++)
                zchan_destroy(&chans[j]);
            return 1;
        }
    }
    //  The arguments main passes to receive().
    zchan_receiver_t *receivers[2] = { zchan_receiver_new(chans[0], 0), zchan_receiver_new(chans[1], 0) };
    zchan_receiver_t *control_command = zchan_receiver_new(chans[2], 0);
    zchan_sender_t *control_reply = zchan_sender_new(chans[3]);
    zchan_receiver_t *merged = NULL;
    zchan_select_t *sel = zchan_select_new();
    showcase_timer_t timer = { .t = NULL };
    bool ok = false, late = false, gave_up = false, pinged = false, told_stop = false;
    int64_t next[2] = { 0, 0 };
    if (!receivers[0] || !receivers[1] || !control_command || !control_reply || !sel) {
        s_complain("sender or receiver", zchan_errno());
        goto done;
    }
    if (s_ready_then_start(ctx, base, "receive") != ZCHAN_OK)
        goto done;

    printf("receive: Starting\n");
    timer = (showcase_timer_t) {
        .t = zchan_timer_new(2 * SEC, ZCHAN_SKIP_MISSED_AND_DRIFT),
        .interval_us = 2 * SEC,
        .tolerance_us = 0, // SkipMissedAndDrift()'s default delay_tolerance
        .policy = ZCHAN_SKIP_MISSED_AND_DRIFT,
        .running = true,
    };
    if (!timer.t) {
        s_complain("timer", zchan_errno());
        goto done;
    }
    zchan_timer_set_tolerance(timer.t, timer.tolerance_us);
    s_print_timer(&timer);
    merged = zchan_merge(receivers, 2); // takes both receivers, even on failure
    if (!merged || zchan_select_add_receiver(sel, merged) != ZCHAN_OK
        || zchan_select_add_timer(sel, timer.t) != ZCHAN_OK
        || zchan_select_add_receiver(sel, control_command) != ZCHAN_OK) {
        s_complain("merge or select", zchan_errno());
        goto done;
    }
    int64_t deadline = s_now_ms() + ROLE_DEADLINE_MS;
    while (!gave_up) {
        void *selected = zchan_select_wait(sel, s_left_ms(deadline));
        if (!selected) {
            s_complain("select", zchan_errno());
            goto done;
        }
        if (selected == merged) {
            char *message = NULL, repr[256];
            int rc = zchan_recv_str(merged, &message, 0);
            if (rc != ZCHAN_OK) {
                s_complain("data", rc);
                goto done;
            }
            s_str_repr(repr, sizeof repr, message);
            printf("receive: Received message=%s\n", repr);
            if (!s_in_sequence(message, next)) {
                fprintf(stderr, "showcase (%s): out of sequence: %s\n", s_role, message);
                free(message);
                goto done;
            }
            free(message);
            zchan_timer_reset(timer.t, 0);
            s_print_timer(&timer);
        } else if (selected == control_command) {
            int64_t cmd = 0;
            int rc = zchan_recv_int(control_command, &cmd, 0);
            if (rc != ZCHAN_OK || !s_command_name(cmd)) {
                s_complain("control command", rc != ZCHAN_OK ? rc : ZCHAN_ETYPE);
                goto done;
            }
            printf("receive: received command: %s\n", s_command_name(cmd));
            if (cmd == CMD_PING) {
                printf("receive: Ping received, reply with pong\n");
                if ((rc = s_send_pong(control_reply, "receive")) != ZCHAN_OK) {
                    s_complain("reply", rc);
                    goto done;
                }
                pinged = true;
            } else
                told_stop = true; // STOP_SENDER: ignored, as in the original
        } else if (selected == timer.t) {
            int64_t drift = 0;
            int rc = zchan_timer_wait(timer.t, &drift, 0);
            if (rc != ZCHAN_OK) {
                s_complain("timer", rc);
                goto done;
            }
            char waited[64];
            s_timedelta_str(waited, sizeof waited, timer.interval_us + drift);
            printf("receive: No data received for %s seconds, giving up\n", waited);
            gave_up = true;
        }
    }
    printf("receive: Finished\n");
    //  Every value came in order (checked above), a PONG went out, both
    //  senders were heard. As in the original: 0 to 4 from each, and the stop
    //  before the silence.
    ok = pinged && next[0] > 0 && next[1] > 0;
    late = !told_stop || next[0] != SENDS || next[1] != SENDS;
    if (!ok || late)
        fprintf(stderr,
                "showcase (%s): %s: ping %d, stop %d, values %" PRId64 " + %" PRId64
                " (the original: 1, 1, %d + %d)\n",
                s_role, ok ? "note" : "failed", pinged, told_stop, next[0], next[1], SENDS, SENDS);
done:
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&timer.t);
    zchan_receiver_destroy(&merged);
    zchan_receiver_destroy(&receivers[0]); // still ours if zchan_merge was not reached
    zchan_receiver_destroy(&receivers[1]);
    zchan_receiver_destroy(&control_command);
    zchan_sender_destroy(&control_reply);
    for (int i = 0; i < 4; i++)
        zchan_destroy(&chans[i]);
    return !ok ? 1 : late ? EXIT_LATE : 0;
}

// ---------------------------------------------------------------------------
// main()

#define ROLES 3

static pid_t s_spawn(const char *self, const char *role, const char *arg, const char *base)
{
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) { // exec at once: the child never touches this process's ZeroMQ state
        prctl(PR_SET_PDEATHSIG, SIGTERM); // if main dies, its roles go with it
        if (getppid() != parent)
            _exit(127);
        if (arg)
            execl(self, self, "--role", role, arg, base, (char *) NULL);
        else
            execl(self, self, "--role", role, base, (char *) NULL);
        _exit(127);
    }
    if (pid < 0)
        perror("showcase: fork");
    return pid;
}

//  True if a role process has ended (it is left for s_reap to collect).
static bool s_role_ended(const pid_t pids[], int n)
{
    for (int i = 0; i < n; i++) {
        siginfo_t info = { .si_pid = 0 };
        if (pids[i] > 0 && waitid(P_PID, (id_t) pids[i], &info, WEXITED | WNOHANG | WNOWAIT) == 0
            && info.si_pid != 0)
            return true;
    }
    return false;
}

//  Receives a message into *msg_p within timeout_ms, giving up early (ECLOSED)
//  if a role process ends meanwhile: it would never answer.
static int s_recv_from_roles(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms, const pid_t pids[])
{
    int64_t deadline = s_now_ms() + timeout_ms;
    for (;;) {
        int rc = zchan_recv(r, msg_p, s_left_ms(deadline) < 200 ? s_left_ms(deadline) : 200);
        if (rc != ZCHAN_ETIMEDOUT || s_left_ms(deadline) == 0)
            return rc;
        if (s_role_ended(pids, ROLES)) {
            fprintf(stderr, "showcase: a role process ended early\n");
            return ZCHAN_ECLOSED;
        }
    }
}

//  Waits for the roles until deadline_ms, then kills those still running;
//  reaps all. Returns how many failed; counts in *late those that exited with
//  EXIT_LATE.
static int s_reap(pid_t pids[], int n, int64_t deadline_ms, int *late)
{
    int failed = 0;
    for (int i = 0; i < n; i++) {
        if (pids[i] <= 0)
            continue;
        int status = 0;
        pid_t got;
        while ((got = waitpid(pids[i], &status, WNOHANG)) == 0 && s_now_ms() < deadline_ms)
            usleep(20000);
        if (got == 0) {
            fprintf(stderr, "showcase: role process %d did not finish; killing it\n", (int) pids[i]);
            kill(pids[i], SIGKILL);
            got = waitpid(pids[i], &status, 0);
        }
        if (got == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == EXIT_LATE)
            (*late)++;
        else if (got != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "showcase: role process %d failed (status 0x%x)\n", (int) pids[i], status);
            failed++;
        }
        pids[i] = 0;
    }
    return failed;
}

//  The private runtime directory: made under $ZCHAN_IPC_DIR (or $TMPDIR, or
//  /tmp), handed to the roles through the environment, removed at the end.
static char s_rundir[4096];
static char s_parent_made[4096];

static int s_rundir_make(void)
{
    const char *parent = getenv("ZCHAN_IPC_DIR");
    bool made = false;
    if (!parent || !*parent)
        parent = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int tries = 0; tries < 3; tries++) { // a parallel run may remove parent meanwhile
        if (mkdir(parent, 0700) == 0)
            made = true;
        else if (errno != EEXIST) {
            perror(parent);
            return -1;
        }
        snprintf(s_rundir, sizeof s_rundir, "%s/showcase-XXXXXX", parent);
        if (mkdtemp(s_rundir)) {
            if (made)
                snprintf(s_parent_made, sizeof s_parent_made, "%s", parent);
            return setenv("ZCHAN_IPC_DIR", s_rundir, 1);
        }
        if (errno != ENOENT)
            break;
    }
    perror(s_rundir);
    s_rundir[0] = '\0';
    return -1;
}

static void s_rundir_remove(void)
{
    if (!s_rundir[0])
        return;
    DIR *dir = opendir(s_rundir);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(dir), e->d_name, 0);
        closedir(dir);
    }
    if (rmdir(s_rundir) != 0)
        perror(s_rundir);
    if (s_parent_made[0])
        rmdir(s_parent_made); // fails harmlessly if another run still uses it
}

//  Runs main() of the original. Returns 0 (ok), 1 (failed) or EXIT_LATE.
static int s_main(const char *self, bool tcp)
{
    zchan_ctx_t *ctx = zchan_ctx_new();
    if (!ctx) {
        s_complain("context", zchan_errno());
        return 1;
    }
    char base[256] = "ipc://";
    if (tcp) {
        if (zchan_ctx_bind(ctx, "tcp://127.0.0.1:0") != ZCHAN_OK) {
            s_complain("bind", zchan_errno());
            zchan_ctx_destroy(&ctx);
            return 1;
        }
        snprintf(base, sizeof base, "%s/", zchan_ctx_endpoint(ctx, "tcp"));
    }
    //  The channels of the original, and the plumbing (see the top).
    enum { DATA1, DATA2, CONTROL, REPLY, READY, START, NCHANS };
    const char *names[NCHANS] = { "data-channel-1", "data-channel-2", "control-channel",
                                  "reply-channel",  "showcase-ready", "showcase-start" };
    zchan_t *ch[NCHANS] = { NULL };
    pid_t pids[ROLES] = { 0 };
    zchan_sender_t *control_sender = NULL, *start_tx = NULL;
    zchan_receiver_t *reply_receiver = NULL, *ready_rx = NULL;
    int failed = 1, late = 0;
    for (int i = 0; i < NCHANS; i++) {
        char uri[256];
        s_uri(uri, sizeof uri, base, names[i]);
        ch[i] = i == CONTROL || i == START ? zchan_broadcast_new(ctx, uri, false)
                                           : zchan_anycast_new(ctx, uri, ZCHAN_ANYCAST_CAPACITY);
        if (!ch[i]) {
            s_complain(uri, zchan_errno());
            goto done;
        }
    }
    control_sender = zchan_sender_new(ch[CONTROL]);
    reply_receiver = zchan_receiver_new(ch[REPLY], 0);
    ready_rx = zchan_receiver_new(ch[READY], 0);
    start_tx = zchan_sender_new(ch[START]);
    if (!control_sender || !reply_receiver || !ready_rx || !start_tx) {
        s_complain("sender or receiver", zchan_errno());
        goto done;
    }

    //  The task group: send(data-channel-1), send(data-channel-2), receive().
    pids[0] = s_spawn(self, "send", "1", base);
    pids[1] = s_spawn(self, "send", "2", base);
    pids[2] = s_spawn(self, "receive", NULL, base);
    if (pids[0] < 0 || pids[1] < 0 || pids[2] < 0)
        goto done;
    int64_t deadline = s_now_ms() + READY_TIMEOUT_MS;
    for (int i = 0; i < ROLES; i++) {
        zchan_msg_t *who = NULL;
        int rc = s_recv_from_roles(ready_rx, &who, s_left_ms(deadline), pids);
        zchan_msg_destroy(&who);
        if (rc != ZCHAN_OK) {
            s_complain("waiting for the roles to be ready", rc);
            goto done;
        }
    }
    int rc = zchan_send_str(start_tx, "start", OP_TIMEOUT_MS);
    if (rc != ZCHAN_OK) {
        s_complain("start", rc);
        goto done;
    }

    s_sleep_ms(SETTLE_MS);

    //  Send a ping command to all tasks and wait for the replies.
    if ((rc = zchan_send_int(control_sender, CMD_PING, OP_TIMEOUT_MS)) != ZCHAN_OK) {
        s_complain("PING", rc);
        goto done;
    }
    int sources = 0; // bit per distinct source that answered
    for (int i = 0; i < ROLES; i++) {
        zchan_msg_t *msg = NULL;
        if ((rc = s_recv_from_roles(reply_receiver, &msg, REPLY_TIMEOUT_MS, pids)) != ZCHAN_OK) {
            s_complain("reply", rc);
            goto done;
        }
        const msgpack_object *o = zchan_msg_object(msg);
        const msgpack_object *reply = s_lookup(o, "reply"), *source = s_lookup(o, "source");
        if (!reply || reply->type != MSGPACK_OBJECT_POSITIVE_INTEGER || reply->via.u64 != REPLY_PONG || !source
            || source->type != MSGPACK_OBJECT_STR || source->via.str.size >= 128) {
            fprintf(stderr, "showcase: malformed reply\n");
            zchan_msg_destroy(&msg);
            goto done;
        }
        char src[128], repr[300];
        memcpy(src, source->via.str.ptr, source->via.str.size);
        src[source->via.str.size] = '\0';
        zchan_msg_destroy(&msg);
        s_str_repr(repr, sizeof repr, src);
        printf("main: Reply(reply=<ReplyCommand.PONG: %d>, source=%s)\n", REPLY_PONG, repr);
        sources |= strcmp(src, "Anycast:data-channel-1:_Sender") == 0   ? 1
                   : strcmp(src, "Anycast:data-channel-2:_Sender") == 0 ? 2
                   : strcmp(src, "receive") == 0                        ? 4
                                                                        : 8;
    }
    if (sources != 7) {
        fprintf(stderr, "showcase: the replies did not come from the three tasks\n");
        goto done;
    }

    s_sleep_ms(5000);

    //  Stop the senders; after 2 seconds without data the receiver stops too.
    if ((rc = zchan_send_int(control_sender, CMD_STOP_SENDER, OP_TIMEOUT_MS)) != ZCHAN_OK) {
        s_complain("STOP_SENDER", rc);
        goto done;
    }
    failed = 0;
done:
    //  Leaving the task group: every role finishes (or is made to).
    failed |= s_reap(pids, ROLES, s_now_ms() + (failed ? 0 : REAP_TIMEOUT_MS), &late) != 0;
    zchan_sender_destroy(&start_tx);
    zchan_receiver_destroy(&ready_rx);
    zchan_receiver_destroy(&reply_receiver);
    zchan_sender_destroy(&control_sender);
    for (int i = 0; i < NCHANS; i++)
        zchan_destroy(&ch[i]);
    zchan_ctx_destroy(&ctx);
    return failed ? 1 : late ? EXIT_LATE : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); // lines from several processes interleave whole
    if (argc >= 3 && strcmp(argv[1], "--role") == 0) {
        alarm(WATCHDOG_S); // a role that hangs anyway is ended by SIGALRM
        static char role[32];
        snprintf(role, sizeof role, "%s%s%s", argv[2], argc == 5 ? " " : "", argc == 5 ? argv[3] : "");
        s_role = role;
        zchan_ctx_t *ctx = zchan_ctx_new();
        if (!ctx) {
            s_complain("context", zchan_errno());
            return 1;
        }
        int rc = 2;
        if (argc == 5 && strcmp(argv[2], "send") == 0 && (argv[3][0] == '1' || argv[3][0] == '2'))
            rc = s_send_role(ctx, argv[4], argv[3][0] - '0');
        else if (argc == 4 && strcmp(argv[2], "receive") == 0)
            rc = s_receive_role(ctx, argv[3]);
        else
            fprintf(stderr, "showcase: bad role arguments\n");
        zchan_ctx_destroy(&ctx);
        return rc;
    }
    bool tcp = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tcp") == 0)
            tcp = true;
        else {
            fprintf(stderr, "usage: showcase [--tcp]\n");
            return 2;
        }
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        perror("showcase: readlink /proc/self/exe");
        return 1;
    }
    self[len] = '\0';
    if (s_rundir_make() != 0) {
        fprintf(stderr, "showcase: FAILED (no runtime directory)\n");
        return 1;
    }
    int rc = s_main(self, tcp);
    s_rundir_remove();
    if (rc == EXIT_LATE)
        fprintf(stderr, "showcase: ok, but this machine stalled a process long enough to change the "
                        "timing, so the output differs from the original's (see the notes above)\n");
    else
        fprintf(stderr, rc ? "showcase: FAILED\n" : "showcase: ok\n");
    return rc == 1 ? 1 : 0;
}

/*  mproc.h: the process harness of the multi-process tests (test_multiproc,
    test_faults, test_netns, test_relay_restart).

    The parent process only conducts: it never makes a zchan or ZeroMQ
    context, so it may fork at any moment. Every role runs in a child of its
    own (p_spawn), which makes its own context. A child talks to the parent
    over two pipes, one line per message: handshakes ("READY", "GO", ...) and
    results ("RESULT ...", with a bitmap of the messages it got). Children
    never call cmocka: C_CHECK prints what failed and exits with code 3, and
    the parent fails the test on any exit code it did not expect. Every child
    has a watchdog alarm() and dies with the parent (PR_SET_PDEATHSIG); the
    teardown (p_kill_all) kills and reaps whatever a failed test left running.
    All waits are handshakes on the pipes, with a deadline.

    Child-side helpers are c_*, parent-side ones p_*.
*/
#ifndef ZCHAN_TESTS_MPROC_H
#define ZCHAN_TESTS_MPROC_H

#include "testutil.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// ---------------------------------------------------------------------------
// Settings, set by mp_init

extern int mp_slow;    // timing factor: 4 under valgrind, else 1
extern int mp_wait_ms; // longest the parent waits for one line or an exit
extern int mp_recv_ms; // longest a child waits for one message
extern bool mp_tcp;    // the transport of the group being run: tcp, else ipc

#define MP_MAX_SENDERS 16
//  Sends that returned, per sender id, in memory shared by the parent and
//  every child (role_sender counts them).
extern volatile int *mp_progress;

//  Sets the timings (stretched under valgrind), maps mp_progress, and ignores
//  SIGPIPE, so that a dead child's pipe is an error, not a signal. Call first
//  in main.
void mp_init(void);

//  The monotonic clock in ms.
int64_t mp_now_ms(void);

//  What a child is to do: one struct for every role, copied by the fork.
typedef struct {
    char name[128];   // channel name to create (hosts)
    char uri[256];    // channel to join
    char host_id[64]; // ZCHAN_HOST_ID for the child, "" to keep the real one
    char netns[64];   // network namespace (/run/netns/NAME) it enters first, "" for none
    int id;           // sender id, 1-based
    int nsenders;     // senders whose messages a receiver tallies
    int count;        // messages per sender (the tally's size)
    int send_count;   // messages this sender sends (0: count)
    int half;         // a sender says "HALF" after this many sends
    size_t capacity;  // anycast capacity (hosts)
    size_t limit;     // broadcast receiver limit
    bool broadcast;   // the host makes a broadcast channel
    bool gapless;     // a receiver must get every seq of every sender, in order
    int die_after;    // a receiver stops reading after this many and waits to die
    bool self_exit;   // ...and then calls _exit itself
    int leave_after;  // a receiver destroys itself gracefully after this many
    bool wait_read;   // a receiver reads nothing until it hears "READ"
    int pause_us;     // a receiver sleeps this long after each message (a slow consumer)
} job_t;

// ---------------------------------------------------------------------------
// The child side

void __attribute__((noreturn)) c_die(int line, const char *what, int rc);

//  A condition that must hold.
#define C_CHECK(cond)                                                                                      \
    do {                                                                                                   \
        if (!(cond))                                                                                       \
            c_die(__LINE__, #cond, -1);                                                                    \
    } while (0)

//  A zchan call must return want.
#define C_RC(call, want)                                                                                   \
    do {                                                                                                   \
        int c_rc_ = (call);                                                                                \
        if (c_rc_ != (want))                                                                               \
            c_die(__LINE__, #call, c_rc_);                                                                 \
    } while (0)

//  A constructor must not return NULL.
#define C_NEW(var, call)                                                                                   \
    do {                                                                                                   \
        (var) = (call);                                                                                    \
        if (!(var))                                                                                        \
            c_die(__LINE__, #call, zchan_errno());                                                         \
    } while (0)

//  Sends one line (printf format) to the parent.
void c_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
//  Waits for one line from the parent (the watchdog bounds the wait).
void c_hear(char *line, size_t n);
//  Waits for exactly the line word; anything else ends the child (exit 3).
void c_expect(const char *word);
//  Whether the parent wrote a line that c_hear would return; never blocks.
bool c_has_line(void);

//  A new context, or the child dies.
zchan_ctx_t *c_ctx_new(void);
//  With tcp, makes the context listen on 127.0.0.1, port 0, and returns the
//  endpoint it got; NULL without.
const char *c_bind_tcp(zchan_ctx_t *ctx, bool tcp);
//  The URI of channel name hosted by ctx: "TCP-ENDPOINT/NAME" with tcp
//  (binding first), the host-wide "ipc://NAME" without.
void c_host_uri(zchan_ctx_t *ctx, bool tcp, const char *name, char *uri, size_t n);
//  Sends [sid, seq]; returns zchan_send's code.
int c_send_tag(zchan_sender_t *s, int sid, int seq, int timeout_ms);

//  What a receiver got: a bit per (sender, seq), and what was wrong.
typedef struct {
    int nsenders, count;
    bool gapless;
    uint8_t *bits;
    int *last; // per sender, -1 before the first
    long got, dups, order, bad;
} tally_t;

//  gapless: every seq of every sender must come, in order; otherwise each
//  sender's seqs must only increase.
void tally_init(tally_t *t, int nsenders, int count, bool gapless);
void tally_fini(tally_t *t);
//  Tallies one received message; anything unexpected is counted, not trusted.
void tally_msg(tally_t *t, zchan_msg_t *m);
//  Says "RESULT got dups order bad dropped HEXBITS".
void c_report(const tally_t *t, uint64_t dropped);

// ---------------------------------------------------------------------------
// Roles a child can run (p_spawn), for the message-flow tests

//  Says "STAT sent delivered dropped lost receivers senders depth".
void c_say_stat(zchan_t *ch);

//  Obeys the parent's commands about channel ch until "EXIT": "CLOSE" (says
//  "CLOSED"), "STAT" (c_say_stat) and "WATCH N" (says "GONE MS" once the
//  channel has N receivers, MS after the command came).
void c_host_serve(zchan_t *ch);

//  Hosts one channel (job->name; tcp 127.0.0.1 port 0 with mp_tcp, else the
//  host-wide ipc name): says "URI ...", then serves it (c_host_serve).
int role_host(const job_t *job);

//  Joins job->uri, says "READY" when attached, sends tagged messages after
//  "GO" (saying "HALF" after job->half of them), counts each send that
//  returned in mp_progress, and says "SENT" and exits once
//  zchan_sender_destroy has returned.
int role_sender(const job_t *job);

//  Joins job->uri, says "READY" once its receiver exists, receives until the
//  channel is closed and drained, reports ("RESULT"), and says "LEFT". With
//  die_after, it stops reading after that many, reports, says "HOLDING" and
//  waits to be killed (or with self_exit, _exits) with what the hub had
//  handed it unread. With leave_after, it reports after that many and
//  destroys its receiver (gracefully). With wait_read, it reads nothing until
//  "READ". With pause_us, it sleeps that long after each message.
int role_receiver(const job_t *job);

// ---------------------------------------------------------------------------
// The parent side

typedef struct {
    char name[32];
    pid_t pid; // 0 once reaped
    int up;    // read: lines from the child
    int down;  // write: lines to the child
    char buf[32768];
    size_t len;
    bool eof;
    int status;
} kid_t;

//  Forks a child that enters job->netns, takes job->host_id, runs fn(job)
//  (job is copied by the fork) and exits with what it returns. At most 16
//  children at a time, until p_kill_all.
kid_t *p_spawn(const char *name, int (*fn)(const job_t *job), const job_t *job);

//  Waits for the child to end (its pipe closes), reaps it, returns its status.
int p_reap(kid_t *k);
//  The child must exit 0.
void p_exit0(kid_t *k);
//  Kills the child with SIGKILL, which must be what ends it.
void p_kill(kid_t *k);
//  Waits for one line from the child.
void p_hear(kid_t *k, char *line, size_t n);
//  Waits for a line that starts with word; returns the rest (static storage).
const char *p_expect(kid_t *k, const char *word);
//  Sends one line to the child.
void p_say(kid_t *k, const char *line);
//  Waits for "READY" from each of kids, then says "GO" to each.
void p_go(kid_t **kids, int n);
//  Spawns a child that hosts the channel hj describes (role_host) and waits
//  for its "URI": *j becomes a job of zeros but for that URI, for the
//  senders and receivers that join the channel. Returns the host child.
kid_t *p_spawn_host(const char *name, const job_t *hj, job_t *j);
//  Kills and reaps every child still running; frees the results (teardown).
void p_kill_all(void);
//  "exit code N", "killed by signal N", ...
const char *mp_describe(int status);

//  A receiver's report, parsed.
typedef struct {
    long got, dups, order, bad;
    unsigned long long dropped;
    uint8_t *bits; // freed by p_kill_all
    size_t nbits;
} result_t;

//  Reads a "RESULT" line of nbits messages from the child.
void p_result(kid_t *k, result_t *res, size_t nbits);
//  Whether message i is in the result.
bool mp_bit(const result_t *r, size_t i);

#endif

/*  test_chanrules.c: a channel's rules (src/hub/channel.c), driven directly,
    without a hub and without sockets. The members are fakes: the ops table
    they are reached through records what each was told, in order, as text
    ("deliver r1 m2 dropped=0", "ack s1", "closed r1", ...), and a fake can
    be told to refuse deliveries or to have lost its connection.

    Covered: FIFO order and capacity (acceptance and its credit), the
    rendezvous, round robin, a sender beyond its credit, broadcast rings that
    drop their oldest and count it (and grow to their limit), receiver credit
    and its cap, close then drain (anycast and broadcast, data after the
    close counted lost), resend_latest, hand-back at a graceful leave, a
    receiver found gone, a cancelled rendezvous send, and the byte limits. After each step the
    rules' own checker agrees with their counts.
*/
#include "testutil.h"
#include "hub/channel.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NFAKE 8

typedef struct {
    zchan__member_t m; // first: the ops get from it to the fake
    char name[8];
    bool live;      // joined and not released
    bool refuse;    // deliveries to it fail
    bool conn_gone; // ops->gone says so
} fake_t;

typedef struct {
    fake_t fakes[NFAKE];
    char log[4096]; // what members were told, one line each
    zchan__bytes_t budget;
} env_t;

static void s_log(env_t *env, const char *fmt, const char *name, const char *extra)
{
    size_t len = strlen(env->log);
    snprintf(env->log + len, sizeof env->log - len, fmt, name, extra);
}

static int f_deliver(void *e, zchan__member_t *r, zmq_msg_t *payload)
{
    fake_t *f = (fake_t *) r;
    if (f->refuse)
        return -1;
    char what[64];
    snprintf(what, sizeof what, "%.*s dropped=%llu", (int) zmq_msg_size(payload), (char *) zmq_msg_data(payload),
             (unsigned long long) r->dropped);
    s_log(e, "deliver %s %s\n", f->name, what);
    return 0;
}

static zchan__member_t *f_sender(void *e, uint64_t token)
{
    env_t *env = e;
    if (token >= NFAKE || !env->fakes[token].live || env->fakes[token].m.receiver)
        return NULL;
    return &env->fakes[token].m;
}

static void f_ack(void *e, zchan__member_t *s) { s_log(e, "ack %s%s\n", ((fake_t *) s)->name, ""); }
static void f_owed(void *e, zchan__member_t *s) { (void) e, (void) s; }
static void f_holding(void *e, zchan__member_t *r) { (void) e, (void) r; }
static void f_over_limit(void *e, const char *what, zchan_limit_t which)
{
    (void) what;
    s_log(e, "over_limit %s%s\n", which == ZCHAN_LIMIT_CHANNEL_BYTES ? "channel" : "all", "");
}
static void f_refuse(void *e, zchan__member_t *s) { s_log(e, "refuse %s%s\n", ((fake_t *) s)->name, ""); }
static bool f_gone(void *e, zchan__member_t *r) { (void) e; return ((fake_t *) r)->conn_gone; }
static void f_close_sender(void *e, zchan__member_t *s) { s_log(e, "close_sender %s%s\n", ((fake_t *) s)->name, ""); }
static void f_closing(void *e, zchan__member_t *r) { s_log(e, "closing %s%s\n", ((fake_t *) r)->name, ""); }
static void f_closed(void *e, zchan__member_t *r) { s_log(e, "closed %s%s\n", ((fake_t *) r)->name, ""); }

static void f_release(void *e, zchan__member_t *m)
{
    fake_t *f = (fake_t *) m;
    assert_true(f->live);
    f->live = false;
    s_log(e, "release %s%s\n", f->name, "");
}

static const zchan__member_ops_t s_ops = {
    .deliver = f_deliver,
    .sender = f_sender,
    .ack = f_ack,
    .owed = f_owed,
    .holding = f_holding,
    .over_limit = f_over_limit,
    .refuse = f_refuse,
    .gone = f_gone,
    .close_sender = f_close_sender,
    .closing = f_closing,
    .closed = f_closed,
    .release = f_release,
};

static env_t s_env;

static zchan__chan_t *s_chan(zchan_kind_t kind, size_t capacity, bool resend)
{
    memset(&s_env, 0, sizeof s_env);
    s_env.budget.chan_max = s_env.budget.all_max = UINT64_MAX / 2;
    zchan__chan_t *ch = zchan__chan_new("inproc://rules", kind, capacity, resend, &s_env.budget, &s_ops, &s_env);
    assert_non_null(ch);
    return ch;
}

//  Joins fake number i (token i) as name, a sender or a receiver.
static zchan__member_t *s_join(zchan__chan_t *ch, int i, const char *name, bool receiver, size_t limit)
{
    fake_t *f = &s_env.fakes[i];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->m.token = (uint64_t) i;
    assert_int_equal(zchan__chan_join(ch, &f->m, receiver, limit), 0);
    f->live = true;
    return &f->m;
}

static int s_send(zchan__chan_t *ch, zchan__member_t *s, const char *text)
{
    zmq_msg_t msg;
    zmq_msg_init_size(&msg, strlen(text));
    memcpy(zmq_msg_data(&msg), text, strlen(text));
    int rc = zchan__chan_data(ch, s, &msg);
    zmq_msg_close(&msg);
    return rc;
}

//  Sends "m1" to "mN" from s, each accepted.
static void s_send_seq(zchan__chan_t *ch, zchan__member_t *s, int n)
{
    for (int i = 1; i <= n; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%d", i);
        assert_int_equal(s_send(ch, s, m), 0);
    }
}

//  Asserts that the members were told exactly want since the last call,
//  and that the rules' bookkeeping is consistent.
static void s_told(zchan__chan_t *ch, const char *want)
{
    assert_string_equal(s_env.log, want);
    s_env.log[0] = 0;
    assert_null(zchan__chan_check(ch));
    for (int i = 0; i < NFAKE; i++)
        if (s_env.fakes[i].live)
            assert_null(zchan__member_check(&s_env.fakes[i].m));
}

static void s_end(zchan__chan_t *ch)
{
    for (int i = 0; i < NFAKE; i++)
        if (s_env.fakes[i].live)
            zchan__member_fini(&s_env.fakes[i].m);
    zchan__chan_destroy(&ch);
    assert_null(ch);
    assert_int_equal(s_env.budget.all, 0); // every byte counted was given back
}

// ---------------------------------------------------------------------------

static void test_fifo_capacity(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 2, false);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    //  Two fit in the capacity: accepted, each owes its sender a credit.
    assert_int_equal(s_send(ch, s, "m1"), 0);
    assert_int_equal(s_send(ch, s, "m2"), 0);
    assert_int_equal(s_send(ch, s, "m3"), 0);
    s_told(ch, "ack s1\nack s1\n");
    assert_int_equal(ch->nacc, 2);
    assert_int_equal(ch->queue.len, 3);
    assert_int_equal(s->unaccepted, 1);
    assert_int_equal(zchan__chan_depth(ch), 3);
    //  A receiver with credit takes what was accepted, in order. What it was
    //  handed counts in its window, not in the capacity: once m1 and m2 are
    //  out, m3 is accepted, credited and handed, all before any consumption.
    zchan__member_t *r = s_join(ch, 1, "r1", true, 0);
    zchan__chan_credit(ch, r, 0, 2);
    s_told(ch, "deliver r1 m1 dropped=0\ndeliver r1 m2 dropped=0\nack s1\n");
    assert_int_equal(r->inflight.len, 2);
    assert_int_equal(r->avail, 0);
    assert_int_equal(ch->nacc, 1);
    assert_int_equal(s->unaccepted, 0);
    zchan__chan_credit(ch, r, 0, 8);
    s_told(ch, "deliver r1 m3 dropped=0\n");
    assert_int_equal(ch->nacc, 0);
    assert_int_equal(r->inflight.len, 3);
    //  The capacity bounds what waits: two more are accepted while the
    //  receiver holds three it has not consumed.
    s_send_seq(ch, s, 2);
    s_told(ch, "ack s1\ndeliver r1 m1 dropped=0\nack s1\ndeliver r1 m2 dropped=0\n");
    assert_int_equal(r->inflight.len, 5);
    assert_int_equal(ch->sent, 5);
    assert_int_equal(ch->delivered, 5);
    //  Consumption frees the receiver's window, not the capacity.
    zchan__chan_credit(ch, r, 5, 0);
    assert_int_equal(r->inflight.len, 0);
    assert_int_equal(r->avail, 5);
    s_end(ch);
}

static void test_sender_window(void **state)
{
    (void) state;
    //  Capacity 0: a window of 1. A second unaccepted message is a sender
    //  ignoring its credit: refused, and not counted.
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 0, false);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    assert_int_equal(s_send(ch, s, "m1"), 0);
    assert_int_equal(s_send(ch, s, "m2"), ZCHAN_EPROTO);
    s_told(ch, ""); // a rendezvous: nothing accepted without a receiver
    assert_int_equal(ch->sent, 1);
    assert_int_equal(ch->lost, 0);
    //  A receiver that waits takes it: taken means accepted.
    zchan__member_t *r = s_join(ch, 1, "r1", true, 0);
    zchan__chan_credit(ch, r, 0, 1);
    s_told(ch, "deliver r1 m1 dropped=0\nack s1\n");
    assert_int_equal(ch->nacc, 0);
    assert_int_equal(r->inflight.len, 1);
    //  Nothing waits at a rendezvous: the next send is not accepted until a
    //  receiver with credit takes it, held messages or not.
    assert_int_equal(s_send(ch, s, "m2"), 0);
    s_told(ch, "");
    assert_int_equal(s_send(ch, s, "m3"), ZCHAN_EPROTO);
    zchan__chan_credit(ch, r, 1, 1);
    s_told(ch, "deliver r1 m2 dropped=0\nack s1\n");
    s_end(ch);
}

static void test_round_robin(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 10, false);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    zchan__member_t *r1 = s_join(ch, 1, "r1", true, 0);
    zchan__member_t *r2 = s_join(ch, 2, "r2", true, 0);
    zchan__chan_credit(ch, r1, 0, 2);
    zchan__chan_credit(ch, r2, 0, 2);
    s_send_seq(ch, s, 4);
    s_told(ch, "ack s1\ndeliver r1 m1 dropped=0\nack s1\ndeliver r2 m2 dropped=0\n"
               "ack s1\ndeliver r1 m3 dropped=0\nack s1\ndeliver r2 m4 dropped=0\n");
    s_end(ch);
}

static void test_broadcast_drop_oldest(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_BROADCAST, 0, false);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    zchan__member_t *slow = s_join(ch, 1, "r1", true, 3);
    zchan__member_t *fast = s_join(ch, 2, "r2", true, 3);
    zchan__chan_credit(ch, fast, 0, 100);
    s_send_seq(ch, s, 5);
    //  The one with credit gets every message at once; senders are never
    //  acknowledged.
    s_told(ch, "deliver r2 m1 dropped=0\ndeliver r2 m2 dropped=0\ndeliver r2 m3 dropped=0\n"
               "deliver r2 m4 dropped=0\ndeliver r2 m5 dropped=0\n");
    //  The other's ring of 3 dropped the two oldest, and counted them.
    assert_int_equal(slow->ring.len, 3);
    assert_int_equal(slow->dropped, 2);
    assert_int_equal(ch->dropped, 2);
    assert_int_equal(zchan__chan_depth(ch), 3);
    zchan__chan_credit(ch, slow, 0, 10);
    s_told(ch, "deliver r1 m3 dropped=2\ndeliver r1 m4 dropped=2\ndeliver r1 m5 dropped=2\n");
    assert_int_equal(ch->delivered, 8);
    s_end(ch);
}

static void test_broadcast_ring_grows(void **state)
{
    (void) state;
    //  A ring starts at ZCHAN__RING_FIRST slots and grows to its limit
    //  before it drops anything.
    size_t limit = 3 * ZCHAN__RING_FIRST;
    zchan__chan_t *ch = s_chan(ZCHAN_BROADCAST, 0, false);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    zchan__member_t *r = s_join(ch, 1, "r1", true, limit);
    assert_int_equal(r->ring.cap, ZCHAN__RING_FIRST);
    for (size_t i = 0; i < limit; i++)
        assert_int_equal(s_send(ch, s, "x"), 0);
    assert_int_equal(r->ring.len, limit);
    assert_int_equal(r->ring.cap, limit);
    assert_int_equal(r->dropped, 0);
    assert_int_equal(s_send(ch, s, "y"), 0);
    assert_int_equal(r->ring.len, limit);
    assert_int_equal(r->dropped, 1);
    s_told(ch, "");
    s_end(ch);
}

static void test_credit(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 5, false);
    zchan__member_t *r = s_join(ch, 1, "r1", true, 0);
    //  Credit is capped, whatever a receiver grants, without wrapping.
    zchan__chan_credit(ch, r, 0, UINT64_MAX);
    assert_int_equal(r->avail, ZCHAN_WINDOW_MAX);
    zchan__chan_credit(ch, r, 0, 1);
    assert_int_equal(r->avail, ZCHAN_WINDOW_MAX);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_send(ch, s, "m"), 0);
    assert_int_equal(r->avail, ZCHAN_WINDOW_MAX - 3);
    assert_int_equal(r->inflight.len, 3);
    assert_int_equal(ch->nacc, 0);
    //  What it holds counts against the cap too: a grant without a report
    //  of consumption gives nothing more, so a receiver that crashes loses
    //  at most ZCHAN_WINDOW_MAX, whatever it granted.
    zchan__chan_credit(ch, r, 0, 3);
    assert_int_equal(r->avail, ZCHAN_WINDOW_MAX - 3);
    //  Consumed counts free its window (consumption first, then the grant);
    //  more than it holds is ignored.
    zchan__chan_credit(ch, r, 2, 3);
    assert_int_equal(r->inflight.len, 1);
    assert_int_equal(r->avail, ZCHAN_WINDOW_MAX - 1);
    zchan__chan_credit(ch, r, 1000, UINT64_MAX);
    assert_int_equal(r->inflight.len, 0);
    assert_int_equal(r->avail, ZCHAN_WINDOW_MAX);
    s_told(ch, "ack s1\ndeliver r1 m dropped=0\nack s1\ndeliver r1 m dropped=0\nack s1\ndeliver r1 m dropped=0\n");
    s_end(ch);
}

static void test_close_then_drain(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 10, false);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    zchan__member_t *r = s_join(ch, 1, "r1", true, 0);
    assert_int_equal(s_send(ch, s, "m1"), 0);
    assert_int_equal(s_send(ch, s, "m2"), 0);
    s_told(ch, "ack s1\nack s1\n");
    //  Senders are told at once, receivers that CLOSED follows their last.
    zchan__chan_close(ch);
    s_told(ch, "close_sender s1\nclosing r1\n");
    assert_true(ch->closed);
    assert_int_equal(zchan__chan_pending(ch), 3); // two messages and a CLOSED
    //  Data after the close is counted lost, never delivered.
    assert_int_equal(s_send(ch, s, "late"), ZCHAN_ECLOSED);
    assert_int_equal(ch->lost, 1);
    zchan__chan_close(ch); // again: nothing
    s_told(ch, "");
    zchan__chan_credit(ch, r, 0, 1);
    s_told(ch, "deliver r1 m1 dropped=0\n");
    zchan__chan_credit(ch, r, 1, 5);
    s_told(ch, "deliver r1 m2 dropped=0\nclosed r1\n");
    assert_int_equal(zchan__chan_pending(ch), 0);
    assert_true(r->closed_sent);
    s_end(ch);

    //  Broadcast: each receiver drains its own ring, then hears CLOSED.
    ch = s_chan(ZCHAN_BROADCAST, 0, false);
    s = s_join(ch, 0, "s1", false, 0);
    zchan__member_t *r1 = s_join(ch, 1, "r1", true, 4);
    s_join(ch, 2, "r2", true, 4);
    assert_int_equal(s_send(ch, s, "b1"), 0);
    zchan__chan_close(ch);
    s_told(ch, "close_sender s1\nclosing r1\nclosing r2\n");
    zchan__chan_credit(ch, r1, 0, 16);
    s_told(ch, "deliver r1 b1 dropped=0\nclosed r1\n");
    assert_int_equal(zchan__chan_pending(ch), 2); // r2's message and CLOSED
    s_end(ch);
}

static void test_resend_latest(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_BROADCAST, 0, true);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    assert_int_equal(s_send(ch, s, "old"), 0);
    assert_int_equal(s_send(ch, s, "new"), 0);
    zchan__member_t *r = s_join(ch, 1, "r1", true, 4);
    assert_int_equal(r->ring.len, 1);
    zchan__chan_credit(ch, r, 0, 16);
    s_told(ch, "deliver r1 new dropped=0\n");
    s_end(ch);

    //  Without it a new receiver starts empty.
    ch = s_chan(ZCHAN_BROADCAST, 0, false);
    s = s_join(ch, 0, "s1", false, 0);
    assert_int_equal(s_send(ch, s, "old"), 0);
    r = s_join(ch, 1, "r1", true, 4);
    assert_int_equal(r->ring.len, 0);
    zchan__chan_credit(ch, r, 0, 16);
    s_told(ch, "");
    s_end(ch);
}

static void test_hand_back(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 10, false);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    zchan__member_t *r1 = s_join(ch, 1, "r1", true, 0);
    zchan__chan_credit(ch, r1, 0, 3);
    s_send_seq(ch, s, 4);
    s_told(ch, "ack s1\ndeliver r1 m1 dropped=0\nack s1\ndeliver r1 m2 dropped=0\n"
               "ack s1\ndeliver r1 m3 dropped=0\nack s1\n");
    //  r1 leaves having consumed m1: m2 and m3 go back, ahead of m4.
    zchan__chan_leave(ch, r1, 1);
    s_told(ch, "release r1\n");
    assert_int_equal(ch->queue.len, 3);
    assert_int_equal(ch->nacc, 3); // given back accepted: over the capacity a while
    assert_int_equal(ch->lost, 0);
    zchan__member_t *r2 = s_join(ch, 2, "r2", true, 0);
    zchan__chan_credit(ch, r2, 0, 10);
    s_told(ch, "deliver r2 m2 dropped=0\ndeliver r2 m3 dropped=0\ndeliver r2 m4 dropped=0\n");
    //  A sender leaves: released, what it sent stays.
    zchan__chan_leave(ch, s, 0);
    s_told(ch, "release s1\n");
    assert_int_equal(ch->send.n, 0);
    s_end(ch);
}

static void test_receiver_gone(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 10, false);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    zchan__member_t *r1 = s_join(ch, 1, "r1", true, 0);
    zchan__member_t *r2 = s_join(ch, 2, "r2", true, 0);
    zchan__chan_credit(ch, r1, 0, 2);
    assert_int_equal(s_send(ch, s, "m1"), 0);
    assert_int_equal(s_send(ch, s, "m2"), 0);
    s_told(ch, "ack s1\ndeliver r1 m1 dropped=0\nack s1\ndeliver r1 m2 dropped=0\n");
    //  Found gone: what it held is lost, never handed twice.
    zchan__chan_gone(ch, r1);
    s_told(ch, "release r1\n");
    assert_int_equal(ch->lost, 2);
    assert_int_equal(ch->nacc, 0);
    //  A delivery that fails drops the receiver, and the next takes it.
    s_env.fakes[2].refuse = true;
    zchan__chan_credit(ch, r2, 0, 5);
    zchan__member_t *r3 = s_join(ch, 3, "r3", true, 0);
    zchan__chan_credit(ch, r3, 0, 5);
    assert_int_equal(s_send(ch, s, "m3"), 0);
    s_told(ch, "ack s1\nrelease r2\ndeliver r3 m3 dropped=0\n");
    //  At a close, a receiver whose connection is gone loses what it held
    //  before the others are told.
    s_env.fakes[3].conn_gone = true;
    zchan__chan_close(ch);
    s_told(ch, "release r3\nclose_sender s1\n");
    assert_int_equal(ch->lost, 3);
    assert_int_equal(ch->recv.n, 0);
    (void) r2;
    s_end(ch);
}

static void test_gone_and_unreachable(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 10, false);
    zchan__member_t *s1 = s_join(ch, 0, "s1", false, 0);
    zchan__member_t *s2 = s_join(ch, 1, "s2", false, 0);
    zchan__member_t *r = s_join(ch, 2, "r1", true, 0);
    assert_int_equal(s_send(ch, s1, "m1"), 0);
    assert_int_equal(s_send(ch, s1, "m2"), 0);
    s_told(ch, "ack s1\nack s1\n");
    //  A sender whose connection is gone leaves; what it sent stays.
    zchan__chan_gone(ch, s1);
    s_told(ch, "release s1\n");
    assert_int_equal(ch->queue.len, 2);
    //  So does a receiver that held nothing, without a loss.
    zchan__chan_gone(ch, r);
    s_told(ch, "release r1\n");
    assert_int_equal(ch->lost, 0);
    //  Closed with no receiver attached, the queue can reach nobody: it is
    //  counted lost rather than kept.
    zchan__chan_close(ch);
    s_told(ch, "close_sender s2\n");
    assert_int_equal(ch->queue.len, 0);
    assert_int_equal(ch->lost, 2);
    assert_int_equal(ch->nacc, 0);
    (void) s2;
    s_end(ch);
}

static void test_cancel(void **state)
{
    (void) state;
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 0, false);
    zchan__member_t *s1 = s_join(ch, 0, "s1", false, 0);
    zchan__member_t *s2 = s_join(ch, 1, "s2", false, 0);
    assert_int_equal(s_send(ch, s1, "a"), 0);
    assert_int_equal(s_send(ch, s2, "b"), 0);
    assert_true(zchan__chan_cancel(ch, s1));
    assert_false(zchan__chan_cancel(ch, s1));
    assert_int_equal(s1->unaccepted, 0);
    assert_int_equal(ch->queue.len, 1);
    s_told(ch, "");
    zchan__member_t *r = s_join(ch, 2, "r1", true, 0);
    zchan__chan_credit(ch, r, 0, 1);
    s_told(ch, "deliver r1 b dropped=0\nack s2\n");
    //  Taken is accepted: nothing left to cancel.
    assert_false(zchan__chan_cancel(ch, s2));
    s_end(ch);
}

#define COST(n) ((n) + ZCHAN__MSG_OVERHEAD)

static void test_byte_limits(void **state)
{
    (void) state;
    //  Anycast: a message over the channel's bytes is refused to its sender
    //  (which still gets its credit back) and counted lost.
    zchan__chan_t *ch = s_chan(ZCHAN_ANYCAST, 10, false);
    s_env.budget.chan_max = 2 * COST(2);
    zchan__member_t *s = s_join(ch, 0, "s1", false, 0);
    assert_int_equal(s_send(ch, s, "m1"), 0);
    assert_int_equal(s_send(ch, s, "m2"), 0);
    assert_int_equal(s_send(ch, s, "m3"), ZCHAN_ELIMIT);
    s_told(ch, "ack s1\nack s1\nover_limit channel\nrefuse s1\nack s1\n");
    assert_int_equal(ch->lost, 1);
    assert_int_equal(ch->sent, 2);
    assert_int_equal(s->unaccepted, 0);
    assert_int_equal(ch->bytes, 2 * COST(2));
    assert_int_equal(s_env.budget.all, 2 * COST(2));
    //  Consumed, the bytes are free again.
    zchan__member_t *r = s_join(ch, 1, "r1", true, 0);
    zchan__chan_credit(ch, r, 0, 10);
    zchan__chan_credit(ch, r, 2, 0);
    assert_int_equal(ch->bytes, 0);
    s_told(ch, "deliver r1 m1 dropped=0\ndeliver r1 m2 dropped=0\n");
    s_end(ch);

    //  Broadcast: the ring drops its oldest to make room in bytes, and a
    //  message that would not fit even in an empty ring is dropped itself.
    ch = s_chan(ZCHAN_BROADCAST, 0, false);
    s_env.budget.all_max = 2 * COST(2);
    s = s_join(ch, 0, "s1", false, 0);
    r = s_join(ch, 1, "r1", true, 10);
    assert_int_equal(s_send(ch, s, "b1"), 0);
    assert_int_equal(s_send(ch, s, "b2"), 0);
    assert_int_equal(s_send(ch, s, "b3"), 0);
    char big[2 * COST(2)];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(s_send(ch, s, big), 0); // over the limit on its own
    s_told(ch, "over_limit all\nover_limit all\n");
    assert_int_equal(r->ring.len, 2);
    assert_int_equal(r->dropped, 2);
    assert_int_equal(r->ring_bytes, 2 * COST(2));
    zchan__chan_credit(ch, r, 0, 10);
    s_told(ch, "deliver r1 b2 dropped=2\ndeliver r1 b3 dropped=2\n");
    assert_int_equal(s_env.budget.all, 0);
    s_end(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_capacity),
        cmocka_unit_test(test_sender_window),
        cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_broadcast_drop_oldest),
        cmocka_unit_test(test_broadcast_ring_grows),
        cmocka_unit_test(test_credit),
        cmocka_unit_test(test_close_then_drain),
        cmocka_unit_test(test_resend_latest),
        cmocka_unit_test(test_hand_back),
        cmocka_unit_test(test_receiver_gone),
        cmocka_unit_test(test_gone_and_unreachable),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_byte_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*  test_attach.c: the client side of an attachment (src/attach.c), shared by
    senders and receivers.

    - The state machine, driven without a hub: which moves each state takes,
      that the final states stay final, that a close and a lost attachment
      make ENDED in either order (zchan_close marks a sender closed from
      another thread), and what the hub's notices do to it.
    - When a probe is due, and that an unanswered one gives the hub up.
    - The probes' bytes on the wire (a ROUTER of the test's stands for the
      hub): a sender's FLUSH, a receiver's CREDIT and PING.
    - Against a real hub: attach as a sender and as a receiver, a close seen
      through the CLOSED notice, a probe the hub answers ENOTFOUND, attaching
      again on a new socket, and detach.
*/
#include "testutil.h"
#include "attach.h"
#include <string.h>

// ---------------------------------------------------------------------------
// The state machine

static zchan__att_t s_att_in(zchan__att_state_t st)
{
    zchan__att_t a;
    memset(&a, 0, sizeof a);
    a.probe_ms = -1;
    atomic_init(&a.state, st);
    return a;
}

static zchan__att_state_t s_after(zchan__att_state_t from, zchan__att_state_t to)
{
    zchan__att_t a = s_att_in(from);
    return zchan__att_move(&a, to);
}

static void test_moves(void **state)
{
    (void) state;
    //  Attached: closes, loses its attachment, its hub, or its context.
    assert_int_equal(s_after(ZCHAN__ATT_NONE, ZCHAN__ATT_ATTACHED), ZCHAN__ATT_ATTACHED);
    assert_int_equal(s_after(ZCHAN__ATT_ATTACHED, ZCHAN__ATT_CLOSED), ZCHAN__ATT_CLOSED);
    assert_int_equal(s_after(ZCHAN__ATT_ATTACHED, ZCHAN__ATT_REJOIN), ZCHAN__ATT_REJOIN);
    assert_int_equal(s_after(ZCHAN__ATT_ATTACHED, ZCHAN__ATT_HUB_LOST), ZCHAN__ATT_HUB_LOST);
    assert_int_equal(s_after(ZCHAN__ATT_ATTACHED, ZCHAN__ATT_DEAD), ZCHAN__ATT_DEAD);
    //  Must attach again: attached again, or ended, or the hub lost.
    assert_int_equal(s_after(ZCHAN__ATT_REJOIN, ZCHAN__ATT_ATTACHED), ZCHAN__ATT_ATTACHED);
    assert_int_equal(s_after(ZCHAN__ATT_REJOIN, ZCHAN__ATT_ENDED), ZCHAN__ATT_ENDED);
    assert_int_equal(s_after(ZCHAN__ATT_REJOIN, ZCHAN__ATT_HUB_LOST), ZCHAN__ATT_HUB_LOST);
    //  A close and a lost attachment, in either order: ended.
    assert_int_equal(s_after(ZCHAN__ATT_REJOIN, ZCHAN__ATT_CLOSED), ZCHAN__ATT_ENDED);
    assert_int_equal(s_after(ZCHAN__ATT_CLOSED, ZCHAN__ATT_REJOIN), ZCHAN__ATT_ENDED);
    //  Final states are never left for an earlier one.
    zchan__att_state_t finals[] = {ZCHAN__ATT_CLOSED, ZCHAN__ATT_ENDED, ZCHAN__ATT_HUB_LOST, ZCHAN__ATT_DEAD};
    for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++) {
        assert_int_equal(s_after(finals[i], ZCHAN__ATT_ATTACHED), finals[i]);
        assert_int_equal(s_after(finals[i], ZCHAN__ATT_CLOSED), finals[i]);
    }
    assert_int_equal(s_after(ZCHAN__ATT_HUB_LOST, ZCHAN__ATT_ENDED), ZCHAN__ATT_HUB_LOST);
    assert_int_equal(s_after(ZCHAN__ATT_ENDED, ZCHAN__ATT_HUB_LOST), ZCHAN__ATT_HUB_LOST);
    assert_int_equal(s_after(ZCHAN__ATT_DEAD, ZCHAN__ATT_HUB_LOST), ZCHAN__ATT_DEAD);
    assert_int_equal(s_after(ZCHAN__ATT_DEAD, ZCHAN__ATT_REJOIN), ZCHAN__ATT_DEAD);
}

static void test_predicates(void **state)
{
    (void) state;
    struct {
        zchan__att_state_t st;
        bool known, stopped, rejoin;
    } rows[] = {
        {ZCHAN__ATT_NONE, false, false, false},    {ZCHAN__ATT_ATTACHED, true, false, false},
        {ZCHAN__ATT_REJOIN, false, false, true},   {ZCHAN__ATT_CLOSED, true, true, false},
        {ZCHAN__ATT_ENDED, false, true, false},    {ZCHAN__ATT_HUB_LOST, false, true, false},
        {ZCHAN__ATT_DEAD, false, true, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        zchan__att_t a = s_att_in(rows[i].st);
        assert_int_equal(zchan__att_state(&a), rows[i].st);
        assert_int_equal(zchan__att_known(&a), rows[i].known);
        assert_int_equal(zchan__att_stopped(&a), rows[i].stopped);
        assert_int_equal(zchan__att_must_rejoin(&a), rows[i].rejoin);
    }
}

//  Feeds a header of n unsigned fields to zchan__att_notice.
static bool s_notice(zchan__att_t *a, size_t n, const uint64_t *fields)
{
    zchan__out_t o;
    zchan__out_init(&o, n, (int) fields[0]);
    for (size_t i = 1; i < n; i++)
        zchan__out_u64(&o, fields[i]);
    zchan__hdr_t h;
    zchan__hdr_init(&h);
    assert_int_equal(zchan__hdr_parse(&h, o.sbuf.data, o.sbuf.size), 0);
    bool taken = zchan__att_notice(a, &h);
    zchan__hdr_fini(&h);
    zchan__out_fini(&o);
    return taken;
}

static void test_notices(void **state)
{
    (void) state;
    zchan__att_t a = s_att_in(ZCHAN__ATT_ATTACHED);
    //  Credit is the owner's; but it is news from the hub: a probe is answered.
    a.probe_ms = 5;
    assert_false(s_notice(&a, 2, (uint64_t[]) {ZCHAN__ACK, 3}));
    assert_int_equal(a.probe_ms, -1);
    assert_true(a.heard_ms > 0);
    assert_int_equal(zchan__att_state(&a), ZCHAN__ATT_ATTACHED);
    //  A reply to something else, and a probe's reply with another status.
    a.probe_reqid = 77;
    assert_false(s_notice(&a, 3, (uint64_t[]) {ZCHAN__REPLY, 76, ZCHAN_ENOTFOUND}));
    assert_true(s_notice(&a, 3, (uint64_t[]) {ZCHAN__REPLY, 77, 0}));
    assert_int_equal(a.probe_reqid, 0);
    assert_int_equal(zchan__att_state(&a), ZCHAN__ATT_ATTACHED);
    //  ENOTFOUND to the probe: the hub lost the attachment.
    a.probe_reqid = 78;
    assert_true(s_notice(&a, 3, (uint64_t[]) {ZCHAN__REPLY, 78, ZCHAN_ENOTFOUND}));
    assert_int_equal(zchan__att_state(&a), ZCHAN__ATT_REJOIN);
    //  [CLOSED, NOT_ATTACHED] is not a close; [CLOSED] is.
    a = s_att_in(ZCHAN__ATT_ATTACHED);
    assert_true(s_notice(&a, 2, (uint64_t[]) {ZCHAN__CLOSED, ZCHAN__NOT_ATTACHED}));
    assert_int_equal(zchan__att_state(&a), ZCHAN__ATT_REJOIN);
    a = s_att_in(ZCHAN__ATT_ATTACHED);
    assert_true(s_notice(&a, 1, (uint64_t[]) {ZCHAN__CLOSED}));
    assert_int_equal(zchan__att_state(&a), ZCHAN__ATT_CLOSED);
    //  ...and then the hub lets go of the closed channel's party: ended.
    assert_true(s_notice(&a, 2, (uint64_t[]) {ZCHAN__CLOSED, ZCHAN__NOT_ATTACHED}));
    assert_int_equal(zchan__att_state(&a), ZCHAN__ATT_ENDED);
}

static void test_probe_due(void **state)
{
    (void) state;
    zchan__att_t a = s_att_in(ZCHAN__ATT_ATTACHED);
    a.handle = 1;
    a.heard_ms = 1000;
    assert_int_equal(zchan__att_probe_due(&a, 0), -1); // no heartbeats: never
    a.hb_ms = 100;
    assert_int_equal(zchan__att_probe_due(&a, 0), 1100);
    assert_int_equal(zchan__att_probe_due(&a, 1500), 1600); // silence counts from the later
    a.probe_ms = 2000;
    assert_int_equal(zchan__att_probe_due(&a, 1500), 2100); // giving up on the probe
    a.handle = 0;
    assert_int_equal(zchan__att_probe_due(&a, 0), -1); // not attached
    a.handle = 1;
    zchan__att_move(&a, ZCHAN__ATT_CLOSED);
    assert_int_equal(zchan__att_probe_due(&a, 0), -1); // stopped
    //  A probe unanswered when the next look is due: the hub is lost.
    a = s_att_in(ZCHAN__ATT_ATTACHED);
    a.what = "sender";
    a.probe_ms = 1;
    zchan__att_probe_step(&a, NULL);
    assert_int_equal(zchan__att_state(&a), ZCHAN__ATT_HUB_LOST);
}

static void test_rejoin_closing_ends(void **state)
{
    (void) state;
    //  A receiver told CLOSING does not bring its channel back.
    zchan__att_t a = s_att_in(ZCHAN__ATT_REJOIN);
    a.what = "receiver";
    assert_int_not_equal(zchan__att_rejoin(&a, true), 0);
    assert_int_equal(zchan__att_state(&a), ZCHAN__ATT_ENDED);
    assert_int_equal(a.reattached, 0);
    //  Detaching what the hub does not know sends nothing.
    assert_int_equal(zchan__att_detach(&a, 0, NULL, NULL), 0);
}

// ---------------------------------------------------------------------------
// The probes' bytes

//  Reads one message from router: [id, header]; returns the header's fields.
static size_t s_read_fields(void *router, uint64_t *fields, size_t max)
{
    zmq_msg_t frames[3];
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&frames[i]);
    size_t n = 0;
    assert_int_equal(zchan__recv_frames(router, frames, 3, &n, 0), 0);
    assert_int_equal(n, 2);
    zchan__hdr_t h;
    zchan__hdr_init(&h);
    assert_int_equal(zchan__hdr_parse(&h, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1])), 0);
    size_t len = zchan__hdr_len(&h);
    assert_true(len <= max);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(zchan__hdr_u64(&h, i, &fields[i]), 0);
    zchan__hdr_fini(&h);
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&frames[i]);
    return len;
}

static void test_probe_bytes(void **state)
{
    (void) state;
    void *zctx = zmq_ctx_new();
    void *router = zmq_socket(zctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(router, "inproc://test-attach-probe"), 0);
    uint64_t f[8];
    //  A sender: [FLUSH, reqid, handle], and the reqid is what its answer matches.
    zchan__att_t a = s_att_in(ZCHAN__ATT_ATTACHED);
    a.sender = true;
    a.handle = 42;
    a.sock = zmq_socket(zctx, ZMQ_DEALER);
    assert_int_equal(zmq_connect(a.sock, "inproc://test-attach-probe"), 0);
    zchan__att_probe_step(&a, NULL);
    assert_true(a.probe_ms >= 0);
    assert_int_equal(s_read_fields(router, f, 8), 3);
    assert_int_equal(f[0], ZCHAN__FLUSH);
    assert_int_equal(f[1], a.probe_reqid);
    assert_int_equal(f[2], 42);
    zmq_close(a.sock);
    //  A receiver: [CREDIT, handle, consumed, 0] (consumed now reported), [PING, reqid].
    zchan__att_t b = s_att_in(ZCHAN__ATT_ATTACHED);
    b.handle = 43;
    b.sock = zmq_socket(zctx, ZMQ_DEALER);
    assert_int_equal(zmq_connect(b.sock, "inproc://test-attach-probe"), 0);
    uint64_t consumed = 5;
    zchan__att_probe_step(&b, &consumed);
    assert_int_equal(consumed, 0);
    assert_int_equal(s_read_fields(router, f, 8), 4);
    assert_int_equal(f[0], ZCHAN__CREDIT);
    assert_int_equal(f[1], 43);
    assert_int_equal(f[2], 5);
    assert_int_equal(f[3], 0);
    assert_int_equal(s_read_fields(router, f, 8), 2);
    assert_int_equal(f[0], ZCHAN__PING);
    assert_int_equal(b.probe_reqid, 0); // a PING's answer is only news
    zmq_close(b.sock);
    zmq_close(router);
    zmq_ctx_term(zctx);
}

// ---------------------------------------------------------------------------
// Against a real hub

//  Reads messages on a's socket into zchan__att_notice until it leaves state
//  from (or a second passes).
static void s_notice_until_not(zchan__att_t *a, zchan__att_state_t from)
{
    int64_t deadline = zchan__deadline(1000 * tu_slow());
    while (zchan__att_state(a) == from) {
        zmq_msg_t frames[2];
        zmq_msg_init(&frames[0]);
        zmq_msg_init(&frames[1]);
        size_t n = 0;
        int rc = zchan__recv_until(a->sock, &a->rcvtimeo, deadline, frames, 2, &n);
        if (rc == 0) {
            zchan__hdr_t h;
            zchan__hdr_init(&h);
            if (zchan__hdr_parse(&h, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0])) == 0)
                zchan__att_notice(a, &h);
            zchan__hdr_fini(&h);
        }
        zmq_msg_close(&frames[0]);
        zmq_msg_close(&frames[1]);
        if (rc != 0)
            break;
    }
}

static void test_hub(void **state)
{
    (void) state;
    tu_ipc_dir();
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    zchan_t *ch = zchan_anycast_new(ctx, NULL, 7);
    assert_non_null(ch);
    //  Attach as a sender and as a receiver: what the hub gives.
    zchan__att_t s, r;
    memset(&s, 0, sizeof s);
    memset(&r, 0, sizeof r);
    assert_int_equal(zchan__att_open(&s, ch, true, 0), 0);
    assert_int_equal(zchan__att_state(&s), ZCHAN__ATT_ATTACHED);
    assert_int_equal(s.kind, ZCHAN_ANYCAST);
    assert_int_equal(s.given, zchan_sender_window(7));
    assert_true(s.handle != 0);
    assert_int_equal(zchan__att_open(&r, ch, false, 0), 0);
    assert_int_equal(zchan__att_state(&r), ZCHAN__ATT_ATTACHED);
    assert_int_equal(r.given, 7);
    //  A hub that does not know the handle answers the probe ENOTFOUND.
    uint64_t handle = s.handle;
    s.handle = handle + 1000;
    zchan__att_probe_step(&s, NULL);
    s_notice_until_not(&s, ZCHAN__ATT_ATTACHED);
    assert_int_equal(zchan__att_state(&s), ZCHAN__ATT_REJOIN);
    assert_int_equal(zchan__att_detach(&s, 0, NULL, NULL), 0); // nothing to detach
    //  Attaching again: a new socket, a new handle, counted.
    void *old = s.sock;
    assert_int_equal(zchan__att_rejoin(&s, false), 0);
    assert_int_equal(zchan__att_state(&s), ZCHAN__ATT_ATTACHED);
    assert_ptr_not_equal(s.sock, old);
    assert_true(s.handle != 0);
    assert_int_equal(s.reattached, 1);
    //  The close reaches the receiver as a CLOSED notice; it still detaches.
    tu_assert_rc(zchan_close(ch), 0);
    s_notice_until_not(&r, ZCHAN__ATT_ATTACHED);
    assert_int_equal(zchan__att_state(&r), ZCHAN__ATT_CLOSED);
    assert_int_equal(zchan__att_detach(&r, 0, NULL, NULL), 0);
    assert_int_equal(zchan__att_detach(&s, 0, NULL, NULL), 0);
    zchan__att_fini(&s);
    zchan__att_fini(&r);
    assert_null(s.sock);
    //  Attaching after the close: closed at once.
    zchan__att_t late;
    memset(&late, 0, sizeof late);
    assert_int_equal(zchan__att_open(&late, ch, false, 0), 0);
    assert_int_equal(zchan__att_state(&late), ZCHAN__ATT_CLOSED);
    zchan__att_kill(&late);
    assert_int_equal(zchan__att_state(&late), ZCHAN__ATT_DEAD);
    assert_null(late.sock);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    tu_cleanup_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moves),
        cmocka_unit_test(test_predicates),
        cmocka_unit_test(test_notices),
        cmocka_unit_test(test_probe_due),
        cmocka_unit_test(test_rejoin_closing_ends),
        cmocka_unit_test(test_probe_bytes),
        cmocka_unit_test(test_hub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

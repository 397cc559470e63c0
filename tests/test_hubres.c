/*  test_hubres.c: the hub gives back what nobody can use any more.

    (a) Closed channels are reclaimed once nobody is attached: a tombstone
        keeps the key closed (a late party is stopped at once) and the
        counters; unnamed channels keep a bounded number of tombstones, so
        the hub's memory does not grow with the number of channels made and
        closed. Messages of a closed channel that no receiver can take are
        freed and counted lost. These drive a hub without its thread
        (zchan__hub_new/feed), so that malloc'd bytes count the hub alone.
    (b) The same seen through zchan's API.
    (c) Attachments whose connection is gone (closed without DETACH) are
        dropped, senders and idle receivers included, within the hub's sweep
        period; STAT stops counting them.
*/
#include "testutil.h"
#include "core.h"
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  malloc'd bytes in use (0 under AddressSanitizer, whose allocator glibc's
//  mallinfo2 does not see: the byte counts below are then not checked).
static size_t s_heap(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd; // heap and mmapped chunks both
}

// ---------------------------------------------------------------------------
// A hub without its thread, replying over inproc to one DEALER

typedef struct {
    zchan_ctx_t *ctx;
    void *router, *dealer;
    zchan__hub_t *hub;
    zchan__hdr_t hdr; // the last reply...
    zmq_msg_t reply;  // ...whose frame it points into
    uint64_t reqid;
    unsigned fed;     // messages fed so far
} th_t;

static const char s_rid[] = "\x01tester";

static int th_setup(void **state)
{
    tu_ipc_dir();
    th_t *t = calloc(1, sizeof *t);
    t->ctx = zchan_ctx_new();
    assert_non_null(t->ctx);
    t->router = zmq_socket(t->ctx->zctx, ZMQ_ROUTER);
    t->dealer = zmq_socket(t->ctx->zctx, ZMQ_DEALER);
    int one = 1, zero = 0, hwm = 4096;
    zmq_setsockopt(t->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(t->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(t->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(t->dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(t->dealer, ZMQ_ROUTING_ID, s_rid, sizeof s_rid - 1);
    assert_int_equal(zmq_bind(t->router, "inproc://zchan-test-hubres"), 0);
    assert_int_equal(zmq_connect(t->dealer, "inproc://zchan-test-hubres"), 0);
    //  The router knows the peer once it has read from it.
    int timeout = WAIT_MS;
    zmq_setsockopt(t->router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(t->dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char buf[16];
    assert_int_equal(zmq_send(t->dealer, "hi", 2, 0), 2);
    assert_true(zmq_recv(t->router, buf, sizeof buf, 0) > 0);
    assert_int_equal(zmq_recv(t->router, buf, sizeof buf, 0), 2);
    //  The hub warns of each closed channel's lost messages: many here.
    static FILE *devnull;
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    zsys_set_logstream(devnull);
    t->hub = zchan__hub_new(t->ctx, t->router);
    assert_non_null(t->hub);
    zchan__hdr_init(&t->hdr);
    zmq_msg_init(&t->reply);
    t->reqid = 1000;
    *state = t;
    return 0;
}

static int th_teardown(void **state)
{
    th_t *t = (th_t *) *state;
    assert_null(zchan__hub_check(t->hub));
    zchan__hub_destroy(&t->hub);
    zsys_set_logstream(stderr);
    zchan__hdr_fini(&t->hdr);
    zmq_msg_close(&t->reply);
    zmq_close(t->dealer);
    zmq_close(t->router);
    zchan_ctx_destroy(&t->ctx);
    tu_cleanup_dir();
    free(t);
    return 0;
}

//  Feeds the header o (and a payload of n bytes when payload is not NULL) to
//  the hub as if the DEALER had sent it, and checks the hub's bookkeeping
//  (every 16th time: the check walks every tombstone).
static void th_feed(th_t *t, zchan__out_t *o, const void *payload, size_t n)
{
    zmq_msg_t frames[3];
    zmq_msg_init_size(&frames[0], sizeof s_rid - 1);
    memcpy(zmq_msg_data(&frames[0]), s_rid, sizeof s_rid - 1);
    zmq_msg_init_size(&frames[1], o->sbuf.size);
    memcpy(zmq_msg_data(&frames[1]), o->sbuf.data, o->sbuf.size);
    size_t nf = 2;
    if (payload) {
        zmq_msg_init_size(&frames[2], n);
        memcpy(zmq_msg_data(&frames[2]), payload, n);
        nf = 3;
    }
    zchan__out_fini(o);
    zchan__hub_feed(t->hub, frames, nf);
    for (size_t k = 0; k < nf; k++)
        zmq_msg_close(&frames[k]);
    const char *bad = ++t->fed % 16 ? NULL : zchan__hub_check(t->hub);
    if (bad)
        fail_msg("hub check: %s", bad);
}

//  Drops whatever the hub sent that is not the reply being waited for.
static void th_drain(th_t *t)
{
    char buf[256];
    while (zmq_recv(t->dealer, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
        ;
}

//  Feeds a request whose reqid is t->reqid, reads its reply into t->hdr and
//  returns the status.
static uint64_t th_request(th_t *t, zchan__out_t *o)
{
    th_feed(t, o, NULL, 0);
    while (true) {
        zmq_msg_t frames[2];
        zmq_msg_init(&frames[0]);
        zmq_msg_init(&frames[1]);
        size_t n = 0;
        assert_int_equal(zchan__recv_frames(t->dealer, frames, 2, &n, 0), 0);
        zmq_msg_close(&t->reply);
        zmq_msg_init(&t->reply);
        zmq_msg_move(&t->reply, &frames[0]); // t->hdr points into it
        bool done = zchan__hdr_parse(&t->hdr, zmq_msg_data(&t->reply), zmq_msg_size(&t->reply)) == 0
                    && zchan__hdr_type(&t->hdr) == ZCHAN__REPLY;
        uint64_t reqid = 0;
        done = done && zchan__hdr_u64(&t->hdr, 1, &reqid) == 0 && reqid == t->reqid;
        zmq_msg_close(&frames[0]);
        zmq_msg_close(&frames[1]);
        if (done)
            break;
    }
    uint64_t status = 99;
    assert_int_equal(zchan__hdr_u64(&t->hdr, 2, &status), 0);
    th_drain(t);
    return status;
}

//  Starts request type with a fresh reqid and the key.
static void th_out(th_t *t, zchan__out_t *o, size_t n, int type, const char *key)
{
    zchan__out_init(o, n, type);
    zchan__out_u64(o, ++t->reqid);
    zchan__out_str(o, key);
}

static uint64_t th_create(th_t *t, const char *key, zchan_kind_t kind, uint64_t capacity)
{
    zchan__out_t o;
    th_out(t, &o, 7, ZCHAN__CREATE, key);
    zchan__out_u64(&o, kind);
    zchan__out_u64(&o, capacity);
    zchan__out_bool(&o, false);
    zchan__out_u64(&o, ZCHAN_PROTO_VERSION);
    return th_request(t, &o);
}

//  The closed flag of the last CREATE or OPEN reply.
static bool th_reply_closed(th_t *t)
{
    bool closed = false;
    assert_int_equal(zchan__hdr_bool(&t->hdr, 5, &closed), 0);
    return closed;
}

static uint64_t th_open(th_t *t, const char *key)
{
    zchan__out_t o;
    th_out(t, &o, 4, ZCHAN__OPEN, key);
    zchan__out_u64(&o, ZCHAN_PROTO_VERSION);
    return th_request(t, &o);
}

static uint64_t th_close(th_t *t, const char *key)
{
    zchan__out_t o;
    th_out(t, &o, 3, ZCHAN__CLOSE, key);
    return th_request(t, &o);
}

//  ATTACH_S or ATTACH_R: the handle (0 when the channel is closed: then
//  *closed is true), or fails the test unless the status is want.
static uint64_t th_attach(th_t *t, const char *key, bool receiver, uint64_t want, bool *closed)
{
    zchan__out_t o;
    th_out(t, &o, receiver ? 5 : 4, receiver ? ZCHAN__ATTACH_R : ZCHAN__ATTACH_S, key);
    if (receiver)
        zchan__out_u64(&o, 50);
    zchan__out_u64(&o, ZCHAN_PROTO_VERSION);
    assert_int_equal(th_request(t, &o), want);
    uint64_t handle = 0;
    if (want == 0) {
        assert_int_equal(zchan__hdr_u64(&t->hdr, 3, &handle), 0);
        assert_int_equal(zchan__hdr_bool(&t->hdr, 6, closed), 0);
    }
    return handle;
}

static uint64_t th_detach(th_t *t, uint64_t handle, uint64_t consumed)
{
    zchan__out_t o;
    zchan__out_init(&o, 4, ZCHAN__DETACH);
    zchan__out_u64(&o, ++t->reqid);
    zchan__out_u64(&o, handle);
    zchan__out_u64(&o, consumed);
    return th_request(t, &o);
}

static void th_data(th_t *t, uint64_t handle, const void *payload, size_t n)
{
    zchan__out_t o;
    zchan__out_init(&o, 2, ZCHAN__DATA);
    zchan__out_u64(&o, handle);
    th_feed(t, &o, payload, n);
}

static void th_credit(th_t *t, uint64_t handle, uint64_t grant)
{
    zchan__out_t o;
    zchan__out_init(&o, 4, ZCHAN__CREDIT);
    zchan__out_u64(&o, handle);
    zchan__out_u64(&o, 0);
    zchan__out_u64(&o, grant);
    th_feed(t, &o, NULL, 0);
}

//  STAT: reads the counters into st (closed included). Returns the status.
static uint64_t th_stat(th_t *t, const char *key, zchan_stat_t *st)
{
    zchan__out_t o;
    th_out(t, &o, 3, ZCHAN__STAT, key);
    uint64_t status = th_request(t, &o);
    if (status != 0)
        return status;
    const msgpack_object *m = zchan__hdr_at(&t->hdr, 3);
    assert_non_null(m);
    assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
    memset(st, 0, sizeof *st);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_str *k = &m->via.map.ptr[i].key.via.str;
        uint64_t v = m->via.map.ptr[i].val.via.u64;
#define TH_FIELD(name, dst)                                                  \
    if (k->size == strlen(name) && memcmp(k->ptr, name, k->size) == 0) \
        dst = v;
        TH_FIELD("depth", st->depth)
        TH_FIELD("senders", st->senders)
        TH_FIELD("receivers", st->receivers)
        TH_FIELD("sent", st->sent)
        TH_FIELD("delivered", st->delivered)
        TH_FIELD("lost", st->lost)
        TH_FIELD("capacity", st->capacity)
        TH_FIELD("closed", st->closed)
#undef TH_FIELD
    }
    return 0;
}

static size_t th_chans(th_t *t, size_t *tombs)
{
    size_t chans, attached;
    zchan__hub_sizes(t->hub, &chans, tombs, &attached);
    return chans;
}

//  One request/reply-style life of channel key: created, a sender and a
//  receiver attached, 3 messages sent and one delivered, closed, and both
//  detach without the receiver consuming anything: all 3 can reach no one.
static void th_cycle(th_t *t, const char *key)
{
    bool closed = true;
    assert_int_equal(th_create(t, key, ZCHAN_ANYCAST, 4), 0);
    assert_false(th_reply_closed(t));
    uint64_t s = th_attach(t, key, false, 0, &closed);
    assert_false(closed);
    uint64_t r = th_attach(t, key, true, 0, &closed);
    assert_false(closed);
    for (int i = 0; i < 3; i++)
        th_data(t, s, "\x2a", 1);
    th_credit(t, r, 1);
    assert_int_equal(th_close(t, key), 0);
    assert_int_equal(th_detach(t, s, 0), 0);
    assert_int_equal(th_detach(t, r, 0), 0); // gives back the one it held
    th_drain(t);
}

static void s_unnamed_key(char *key, size_t n, unsigned i)
{
    snprintf(key, n, "inproc://zc-%08x%08x%08x", 0x5eedu, i, ~i);
}

// ---------------------------------------------------------------------------
// (a) Closed channels, reclaimed

//  The keys of unnamed channels are random and never reused: after 15,000
//  of them were made, used and closed, the hub holds no channel, at most
//  its bound of tombstones, and its heap did not grow over the last 10,000.
static void test_reclaim_unnamed_bounded(void **state)
{
    th_t *t = (th_t *) *state;
    char key[64];
    unsigned i = 0;
    size_t tombs;
    for (; i < 5000; i++) {
        s_unnamed_key(key, sizeof key, i);
        th_cycle(t, key);
    }
    assert_int_equal(th_chans(t, &tombs), 0);
    size_t before = s_heap();
    for (; i < 15000; i++) {
        s_unnamed_key(key, sizeof key, i);
        th_cycle(t, key);
    }
    size_t after = s_heap();
    assert_int_equal(th_chans(t, &tombs), 0);
    assert_true(tombs > 0 && tombs <= 4096);
    if (after > before + (256u << 10))
        fail_msg("the hub grew by %zu bytes over 10000 closed channels", after - before);

    //  The newest: closed, with its counters; a late receiver is stopped at
    //  once. The oldest is forgotten: its key is unknown.
    zchan_stat_t st;
    s_unnamed_key(key, sizeof key, i - 1);
    assert_int_equal(th_stat(t, key, &st), 0);
    assert_int_equal(st.closed, 1);
    assert_int_equal(st.sent, 3);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.lost, 3);
    assert_int_equal(st.senders + st.receivers + st.depth, 0);
    bool closed = false;
    assert_int_equal(th_attach(t, key, true, 0, &closed), 0);
    assert_true(closed);
    s_unnamed_key(key, sizeof key, 0);
    assert_int_equal(th_attach(t, key, true, ZCHAN_ENOTFOUND, &closed), 0);
    assert_int_equal(th_open(t, key), ZCHAN_ENOTFOUND);
}

//  A named channel stays closed after it is reclaimed: CREATE and OPEN say
//  closed, ATTACH stops the party at once, STAT keeps the counters. What it
//  keeps is a tombstone: far less than the channel it was.
static void test_reclaim_named(void **state)
{
    th_t *t = (th_t *) *state;
    th_cycle(t, "jobs");
    size_t tombs;
    assert_int_equal(th_chans(t, &tombs), 0);
    assert_int_equal(tombs, 1);
    assert_int_equal(th_create(t, "jobs", ZCHAN_ANYCAST, 4), 0);
    assert_true(th_reply_closed(t));
    assert_int_equal(th_create(t, "jobs", ZCHAN_BROADCAST, 0), ZCHAN_EINVAL);
    assert_int_equal(th_open(t, "jobs"), 0);
    assert_true(th_reply_closed(t));
    bool closed = false;
    assert_int_equal(th_attach(t, "jobs", false, 0, &closed), 0);
    assert_true(closed);
    closed = false;
    assert_int_equal(th_attach(t, "jobs", true, 0, &closed), 0);
    assert_true(closed);
    assert_int_equal(th_close(t, "jobs"), 0); // closing twice is fine
    zchan_stat_t st;
    assert_int_equal(th_stat(t, "jobs", &st), 0);
    assert_int_equal(st.closed, 1);
    assert_int_equal(st.capacity, 4);
    assert_int_equal(st.sent, 3);
    assert_int_equal(st.lost, 3);
    assert_int_equal(th_chans(t, &tombs), 0);

    //  Per named channel made and closed, a tombstone: a few hundred bytes
    //  at most (the channel itself cost about 450 before it was reclaimed).
    char key[64];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "warm-%d", i);
        th_cycle(t, key);
    }
    size_t before = s_heap();
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof key, "req-%d", i);
        th_cycle(t, key);
    }
    size_t after = s_heap();
    assert_int_equal(th_chans(t, &tombs), 0);
    assert_int_equal(tombs, 1 + 500 + 4000);
    print_message("a closed named channel keeps %zu bytes\n", after > before ? (after - before) / 4000 : 0);
    if (after > before + 4000 * 300)
        fail_msg("%zu bytes per closed named channel", (after - before) / 4000);
}

//  Named tombstones are bounded too, or a client that creates and closes
//  names without end would grow the hub without end: after 20,000 named
//  channels came and went, the hub keeps the newest 16,384 tombstones. The
//  oldest name is forgotten: unknown to OPEN, and CREATE makes it anew.
static void test_reclaim_named_bounded(void **state)
{
    th_t *t = (th_t *) *state;
    char key[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "once-%d", i);
        th_cycle(t, key);
    }
    size_t tombs;
    assert_int_equal(th_chans(t, &tombs), 0);
    assert_int_equal(tombs, 16384);
    snprintf(key, sizeof key, "once-%d", 20000 - 1);
    assert_int_equal(th_open(t, key), 0);
    assert_true(th_reply_closed(t));
    assert_int_equal(th_open(t, "once-0"), ZCHAN_ENOTFOUND);
    assert_int_equal(th_create(t, "once-0", ZCHAN_ANYCAST, 4), 0);
    assert_false(th_reply_closed(t));
    assert_int_equal(th_chans(t, &tombs), 1);
}

//  A channel closed while messages wait and no receiver is attached: no one
//  can ever take them (a receiver attached later is stopped at once). They
//  are freed at the close and counted lost, even while a sender is still
//  attached; the channel is reclaimed once that sender detaches.
static void test_closed_queue_freed(void **state)
{
    th_t *t = (th_t *) *state;
    enum { N = 300, SIZE = 64 << 10 };
    char *payload = calloc(1, SIZE);
    bool closed = true;
    assert_int_equal(th_create(t, "big", ZCHAN_ANYCAST, N), 0);
    uint64_t s = th_attach(t, "big", false, 0, &closed);
    size_t before = s_heap();
    for (int i = 0; i < N; i++)
        th_data(t, s, payload, SIZE);
    free(payload);
    th_drain(t);
    size_t full = s_heap();
    if (full > 0 && full < before + (size_t) N * SIZE / 10 * 9)
        fail_msg("the hub holds %zu bytes, expected %zu", full - before, (size_t) N * SIZE);
    zchan_stat_t st;
    assert_int_equal(th_stat(t, "big", &st), 0);
    assert_int_equal(st.depth, N);
    assert_int_equal(th_close(t, "big"), 0);
    assert_int_equal(th_stat(t, "big", &st), 0);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.lost, N);
    assert_int_equal(st.senders, 1);
    if (s_heap() > before + (1u << 20))
        fail_msg("%zu bytes still held after the close", s_heap() - before);
    //  DATA after the close is lost too; the last detach reclaims it.
    th_data(t, s, "\x01", 1);
    assert_int_equal(th_detach(t, s, 0), 0);
    size_t tombs;
    assert_int_equal(th_chans(t, &tombs), 0);
    assert_int_equal(tombs, 1);
    assert_int_equal(th_stat(t, "big", &st), 0);
    assert_int_equal(st.lost, N + 1);
    assert_int_equal(st.sent, N);
}

//  Broadcast too: a channel closed with its receivers attached is reclaimed
//  once they detach, whatever their rings held.
static void test_reclaim_broadcast(void **state)
{
    th_t *t = (th_t *) *state;
    bool closed = true;
    assert_int_equal(th_create(t, "news", ZCHAN_BROADCAST, 0), 0);
    uint64_t s = th_attach(t, "news", false, 0, &closed);
    uint64_t r1 = th_attach(t, "news", true, 0, &closed);
    uint64_t r2 = th_attach(t, "news", true, 0, &closed);
    for (int i = 0; i < 10; i++)
        th_data(t, s, "\x07", 1);
    assert_int_equal(th_close(t, "news"), 0);
    size_t tombs;
    assert_int_equal(th_chans(t, &tombs), 1);
    assert_int_equal(th_detach(t, r1, 0), 0);
    assert_int_equal(th_detach(t, s, 0), 0);
    assert_int_equal(th_chans(t, &tombs), 1);
    assert_int_equal(th_detach(t, r2, 0), 0);
    assert_int_equal(th_chans(t, &tombs), 0);
    assert_int_equal(tombs, 1);
    assert_int_equal(th_create(t, "news", ZCHAN_BROADCAST, 0), 0);
    assert_true(th_reply_closed(t));
    zchan_stat_t st;
    assert_int_equal(th_stat(t, "news", &st), 0);
    assert_int_equal(st.sent, 10);
    assert_int_equal(st.closed, 1);
}

// ---------------------------------------------------------------------------
// (b) Through zchan's API

static void test_api_close_reclaim(void **state)
{
    (void) state;
    tu_ipc_dir();
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);

    //  Named: messages queued with no receiver are lost at the close.
    zchan_t *ch = zchan_anycast_new(ctx, "inproc://hubres-named", 300);
    assert_non_null(ch);
    zchan_sender_t *s = zchan_sender_new(ch);
    for (int i = 0; i < 300; i++)
        tu_assert_rc(zchan_send_int(s, i, WAIT_MS), ZCHAN_OK);
    tu_assert_rc(zchan_close(ch), ZCHAN_OK);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_true(st.closed);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.lost, 300);
    assert_int_equal(st.senders, 1);
    zchan_sender_destroy(&s);
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK); // reclaimed: its tombstone answers
    assert_true(st.closed);
    assert_int_equal(st.senders, 0);
    assert_int_equal(st.sent, 300);
    assert_int_equal(st.lost, 300);
    //  A late receiver is stopped at once, a late sender fails, and the name
    //  stays closed.
    int64_t v;
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    assert_non_null(r);
    tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_ECLOSED);
    zchan_receiver_destroy(&r);
    s = zchan_sender_new(ch);
    assert_non_null(s);
    tu_assert_rc(zchan_send_int(s, 1, 0), ZCHAN_ECLOSED);
    zchan_sender_destroy(&s);
    zchan_t *again = zchan_anycast_new(ctx, "inproc://hubres-named", 300);
    assert_non_null(again);
    r = zchan_receiver_new(again, 0);
    assert_non_null(r);
    tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_ECLOSED);
    zchan_receiver_destroy(&r);
    zchan_destroy(&again);
    zchan_destroy(&ch);

    //  Unnamed, closed then drained: reclaimed, and still closed to a late
    //  receiver.
    ch = zchan_anycast_new(ctx, NULL, 4);
    assert_non_null(ch);
    s = zchan_sender_new(ch);
    r = zchan_receiver_new(ch, 0);
    tu_assert_rc(zchan_send_int(s, 7, WAIT_MS), ZCHAN_OK);
    tu_assert_rc(zchan_close(ch), ZCHAN_OK);
    tu_assert_rc(zchan_recv_int(r, &v, WAIT_MS), ZCHAN_OK);
    assert_int_equal(v, 7);
    tu_assert_rc(zchan_recv_int(r, &v, WAIT_MS), ZCHAN_ECLOSED);
    zchan_receiver_destroy(&r);
    zchan_sender_destroy(&s);
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_true(st.closed);
    assert_int_equal(st.receivers + st.senders, 0);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.lost, 0);
    r = zchan_receiver_new(ch, 0);
    assert_non_null(r);
    tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_ECLOSED);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    tu_cleanup_dir();
}

// ---------------------------------------------------------------------------
// (c) Attachments whose connection is gone

//  Sends a request on a raw DEALER and returns the reply's status, its
//  handle (field 3) in *handle when it has one.
static uint64_t s_raw_request(void *sock, zchan__out_t *o, uint64_t reqid, uint64_t *handle)
{
    assert_int_equal(zchan__out_send(o, sock, false, 0), 0);
    zchan__out_fini(o);
    zchan__hdr_t h;
    zchan__hdr_init(&h);
    uint64_t status = 99;
    int64_t deadline = s_now_ms() + WAIT_MS * tu_slow();
    while (s_now_ms() < deadline) {
        zmq_msg_t f[2];
        zmq_msg_init(&f[0]);
        zmq_msg_init(&f[1]);
        size_t n = 0;
        int rc = zchan__recv_frames(sock, f, 2, &n, 0);
        uint64_t type = 0, rq = 0;
        bool mine = rc == 0 && zchan__hdr_parse(&h, zmq_msg_data(&f[0]), zmq_msg_size(&f[0])) == 0
                    && zchan__hdr_u64(&h, 0, &type) == 0 && type == ZCHAN__REPLY
                    && zchan__hdr_u64(&h, 1, &rq) == 0 && rq == reqid;
        if (mine) {
            zchan__hdr_u64(&h, 2, &status);
            if (handle)
                zchan__hdr_u64(&h, 3, handle);
        }
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        if (mine)
            break;
    }
    zchan__hdr_fini(&h);
    return status;
}

static void s_raw_attach(void *sock, const char *key, bool receiver)
{
    static uint64_t reqid = 500;
    zchan__out_t o;
    zchan__out_init(&o, receiver ? 5 : 4, receiver ? ZCHAN__ATTACH_R : ZCHAN__ATTACH_S);
    zchan__out_u64(&o, ++reqid);
    zchan__out_str(&o, key);
    if (receiver)
        zchan__out_u64(&o, 50);
    zchan__out_u64(&o, ZCHAN_PROTO_VERSION);
    uint64_t handle = 0;
    assert_int_equal(s_raw_request(sock, &o, reqid, &handle), 0);
    assert_true(handle != 0);
    if (receiver) {
        //  Credit too: an idle receiver with credit holds nothing.
        zchan__out_init(&o, 4, ZCHAN__CREDIT);
        zchan__out_u64(&o, handle);
        zchan__out_u64(&o, 0);
        zchan__out_u64(&o, 8);
        assert_int_equal(zchan__out_send(&o, sock, false, 0), 0);
        zchan__out_fini(&o);
    }
}

//  Polls STAT of ch until it counts senders and receivers, within a
//  generous deadline; fails the test with what it saw last.
static void s_wait_counts(zchan_t *ch, uint64_t senders, uint64_t receivers, int64_t within_ms)
{
    zchan_stat_t st;
    memset(&st, 0, sizeof st);
    int64_t deadline = s_now_ms() + within_ms * tu_slow();
    while (true) {
        tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
        if (st.senders == senders && st.receivers == receivers)
            return;
        if (s_now_ms() > deadline)
            fail_msg("%s: %llu senders and %llu receivers, waiting for %llu and %llu", zchan_uri(ch),
                     (unsigned long long) st.senders, (unsigned long long) st.receivers,
                     (unsigned long long) senders, (unsigned long long) receivers);
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
    }
}

//  Peers attach senders and receivers over tcp and close their connections
//  without DETACH. The hub drops them all, idle receivers and senders
//  included, within its sweep period (5 s); live parties are kept, and a
//  closed channel whose last parties went that way is reclaimed.
static void test_gone_connections(void **state)
{
    (void) state;
    tu_ipc_dir();
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    tu_assert_rc(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    char ep[256], uri[300], uri_b[300], uri_c[300];
    snprintf(ep, sizeof ep, "%s", zchan_ctx_endpoint(ctx, "tcp"));
    snprintf(uri, sizeof uri, "%s/gone", ep);
    snprintf(uri_b, sizeof uri_b, "%s/gone-b", ep);
    snprintf(uri_c, sizeof uri_c, "%s/gone-c", ep);
    zchan_t *ch = zchan_anycast_new(ctx, uri, 10);
    zchan_t *chb = zchan_broadcast_new(ctx, uri_b, false);
    zchan_t *chc = zchan_anycast_new(ctx, uri_c, 10);
    assert_non_null(ch);
    assert_non_null(chb);
    assert_non_null(chc);
    //  A live pair, kept throughout.
    zchan_sender_t *live_s = zchan_sender_new(ch);
    zchan_receiver_t *live_r = zchan_receiver_new(ch, 0);
    assert_non_null(live_s);
    assert_non_null(live_r);

    void *zctx = zmq_ctx_new();
    enum { NSOCK = 8, PER = 6 };
    void *socks[NSOCK];
    for (int k = 0; k < NSOCK; k++) {
        socks[k] = zmq_socket(zctx, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt(socks[k], ZMQ_LINGER, &zero, sizeof zero);
        assert_int_equal(zmq_connect(socks[k], ep), 0);
        const char *key = k < 6 ? "gone" : k < 7 ? "gone-b" : "gone-c";
        for (int i = 0; i < PER; i++) {
            s_raw_attach(socks[k], key, false);
            s_raw_attach(socks[k], key, true);
        }
    }
    s_wait_counts(ch, 1 + 6 * PER, 1 + 6 * PER, WAIT_MS);
    s_wait_counts(chb, PER, PER, WAIT_MS);
    s_wait_counts(chc, PER, PER, WAIT_MS);
    //  One channel is closed while its parties are still attached.
    tu_assert_rc(zchan_close(chc), ZCHAN_OK);
    for (int k = 0; k < NSOCK; k++)
        zmq_close(socks[k]);
    zmq_ctx_term(zctx);

    s_wait_counts(ch, 1, 1, 30000);
    s_wait_counts(chb, 0, 0, 30000);
    s_wait_counts(chc, 0, 0, 30000);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(chc, &st), ZCHAN_OK);
    assert_true(st.closed);
    //  The live pair still works.
    int64_t v = 0;
    tu_assert_rc(zchan_send_int(live_s, 42, WAIT_MS), ZCHAN_OK);
    tu_assert_rc(zchan_recv_int(live_r, &v, WAIT_MS), ZCHAN_OK);
    assert_int_equal(v, 42);
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.senders, 1);
    assert_int_equal(st.receivers, 1);
    assert_int_equal(st.lost, 0);
    zchan_sender_destroy(&live_s);
    zchan_receiver_destroy(&live_r);
    zchan_destroy(&ch);
    zchan_destroy(&chb);
    zchan_destroy(&chc);
    zchan_ctx_destroy(&ctx);
    tu_cleanup_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reclaim_unnamed_bounded, th_setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_named_bounded, th_setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_named, th_setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_closed_queue_freed, th_setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_broadcast, th_setup, th_teardown),
        cmocka_unit_test(test_api_close_reclaim),
        cmocka_unit_test(test_gone_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*  test_limits.c: the hub's resource limits (zchan_ctx_set_limit).

    Most tests talk to a threadless hub (zchan__hub_new, fed by hand through
    zchan__hub_feed) as one raw peer, and check the hub's bookkeeping
    (zchan__hub_check, which also checks the bytes held against the limits)
    after every message. The last one goes through the library and a
    context's own hub thread, as an application sees a refusal.
*/
#include "core.h"
#include "testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COST(n) ((uint64_t) (n) + 64) // what a held message counts: its size + the hub's overhead

// ---------------------------------------------------------------------------
// A threadless hub and one raw peer

typedef struct {
    zchan_ctx_t *ctx;
    void *router, *dealer;
    zchan__hub_t *hub;
    uint64_t reqid;
    //  What the peer got besides replies.
    int refused;       // [REFUSED, ELIMIT] notices
    uint64_t acks;     // credit in ACKs
    int delivered;     // DELIVERs
    uint8_t first[64]; // first payload byte of each DELIVER
} th_t;

static int s_seq;

//  limits: by zchan_limit_t, 0 leaves the default.
static void th_open(th_t *t, const uint64_t limits[ZCHAN__NLIMITS])
{
    memset(t, 0, sizeof *t);
    t->ctx = zchan_ctx_new();
    assert_non_null(t->ctx);
    for (int k = 0; k < ZCHAN__NLIMITS; k++)
        if (limits[k])
            tu_assert_rc(zchan_ctx_set_limit(t->ctx, (zchan_limit_t) k, limits[k]), ZCHAN_OK);
    int one = 1, zero = 0;
    t->router = zmq_socket(t->ctx->zctx, ZMQ_ROUTER);
    t->dealer = zmq_socket(t->ctx->zctx, ZMQ_DEALER);
    assert_non_null(t->router);
    assert_non_null(t->dealer);
    zmq_setsockopt(t->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(t->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(t->dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(t->dealer, ZMQ_ROUTING_ID, "peer", 4);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://test-limits-%d-%d", (int) getpid(), ++s_seq);
    assert_int_equal(zmq_bind(t->router, ep), 0);
    assert_int_equal(zmq_connect(t->dealer, ep), 0);
    //  The router knows the peer once it has read from it.
    assert_int_equal(zmq_send(t->dealer, "hi", 2, 0), 2);
    char buf[16];
    assert_int_equal(zmq_recv(t->router, buf, sizeof buf, 0), 4);
    assert_int_equal(zmq_recv(t->router, buf, sizeof buf, 0), 2);
    t->hub = zchan__hub_new(t->ctx, t->router);
    assert_non_null(t->hub);
}

static void th_close(th_t *t)
{
    zchan__hub_destroy(&t->hub);
    zmq_close(t->dealer);
    zmq_close(t->router);
    zchan_ctx_destroy(&t->ctx);
}

//  Feeds the hub the header in o (freed here) and, if payload_size >= 0, a
//  payload of that many bytes, all first_byte; then checks its bookkeeping.
static void th_feed(th_t *t, zchan__out_t *o, long payload_size, uint8_t first_byte)
{
    zmq_msg_t f[3];
    size_t n = payload_size >= 0 ? 3 : 2;
    zmq_msg_init_size(&f[0], 4);
    memcpy(zmq_msg_data(&f[0]), "peer", 4);
    zmq_msg_init_size(&f[1], o->sbuf.size);
    memcpy(zmq_msg_data(&f[1]), o->sbuf.data, o->sbuf.size);
    zchan__out_fini(o);
    if (n == 3) {
        zmq_msg_init_size(&f[2], (size_t) payload_size);
        memset(zmq_msg_data(&f[2]), first_byte, (size_t) payload_size);
    }
    zchan__hub_feed(t->hub, f, n);
    for (size_t k = 0; k < n; k++)
        zmq_msg_close(&f[k]);
    const char *bad = zchan__hub_check(t->hub);
    if (bad)
        fail_msg("hub bookkeeping: %s", bad);
}

//  Reads what the hub sent the peer until the reply to reqid (0: until
//  nothing is left), noting the other messages. Returns the reply's status;
//  *reply (if not NULL) keeps the reply's header, to read and fini.
static uint64_t th_read(th_t *t, uint64_t reqid, zchan__hdr_t *reply, zmq_msg_t *reply_frame)
{
    while (true) {
        zmq_msg_t f[2];
        zmq_msg_init(&f[0]);
        zmq_msg_init(&f[1]);
        size_t n = 0;
        //  The threadless hub has sent everything before feed returned.
        int rc = zchan__recv_frames(t->dealer, f, 2, &n, ZMQ_DONTWAIT);
        if (rc != 0) {
            zmq_msg_close(&f[0]);
            zmq_msg_close(&f[1]);
            if (reqid)
                fail_msg("no reply to request %" PRIu64, reqid);
            return 0;
        }
        zchan__hdr_t h;
        zchan__hdr_init(&h);
        assert_int_equal(zchan__hdr_parse(&h, zmq_msg_data(&f[0]), zmq_msg_size(&f[0])), 0);
        uint64_t v = 0;
        int type = zchan__hdr_type(&h);
        if (type == ZCHAN__REPLY && zchan__hdr_u64(&h, 1, &v) == 0 && v == reqid) {
            uint64_t status = UINT64_MAX;
            assert_int_equal(zchan__hdr_u64(&h, 2, &status), 0);
            if (reply) {
                *reply = h;
                zmq_msg_move(reply_frame, &f[0]);
            } else
                zchan__hdr_fini(&h);
            zmq_msg_close(&f[0]);
            zmq_msg_close(&f[1]);
            return status;
        }
        if (type == ZCHAN__REFUSED) {
            assert_int_equal(zchan__hdr_u64(&h, 1, &v), 0);
            assert_int_equal(v, ZCHAN_ELIMIT);
            t->refused++;
        } else if (type == ZCHAN__ACK && zchan__hdr_u64(&h, 1, &v) == 0)
            t->acks += v;
        else if (type == ZCHAN__DELIVER) {
            assert_int_equal(n, 2);
            if (t->delivered < 64)
                t->first[t->delivered] = zmq_msg_size(&f[1]) ? *(uint8_t *) zmq_msg_data(&f[1]) : 0;
            t->delivered++;
        }
        zchan__hdr_fini(&h);
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
    }
}

static uint64_t th_request(th_t *t, zchan__out_t *o, uint64_t reqid)
{
    th_feed(t, o, -1, 0);
    return th_read(t, reqid, NULL, NULL);
}

static uint64_t th_create(th_t *t, const char *key, zchan_kind_t kind, uint64_t capacity)
{
    zchan__out_t o;
    uint64_t reqid = ++t->reqid;
    zchan__out_init(&o, 7, ZCHAN__CREATE);
    zchan__out_u64(&o, reqid);
    zchan__out_str(&o, key);
    zchan__out_u64(&o, kind);
    zchan__out_u64(&o, capacity);
    zchan__out_bool(&o, false);
    zchan__out_u64(&o, ZCHAN_PROTO_VERSION);
    return th_request(t, &o, reqid);
}

//  Attaches a sender, or a receiver with limit; its handle in *handle.
static uint64_t th_attach(th_t *t, const char *key, bool receiver, uint64_t limit, uint64_t *handle)
{
    zchan__out_t o;
    uint64_t reqid = ++t->reqid;
    zchan__out_init(&o, receiver ? 5 : 4, receiver ? ZCHAN__ATTACH_R : ZCHAN__ATTACH_S);
    zchan__out_u64(&o, reqid);
    zchan__out_str(&o, key);
    if (receiver)
        zchan__out_u64(&o, limit);
    zchan__out_u64(&o, ZCHAN_PROTO_VERSION);
    th_feed(t, &o, -1, 0);
    zchan__hdr_t h;
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    uint64_t status = th_read(t, reqid, &h, &frame);
    if (status == 0 && handle)
        assert_int_equal(zchan__hdr_u64(&h, 3, handle), 0);
    zchan__hdr_fini(&h);
    zmq_msg_close(&frame);
    return status;
}

static void th_data(th_t *t, uint64_t handle, size_t size, uint8_t first_byte)
{
    zchan__out_t o;
    zchan__out_init(&o, 2, ZCHAN__DATA);
    zchan__out_u64(&o, handle);
    th_feed(t, &o, (long) size, first_byte);
    th_read(t, 0, NULL, NULL);
}

static void th_credit(th_t *t, uint64_t handle, uint64_t consumed, uint64_t grant)
{
    zchan__out_t o;
    zchan__out_init(&o, 4, ZCHAN__CREDIT);
    zchan__out_u64(&o, handle);
    zchan__out_u64(&o, consumed);
    zchan__out_u64(&o, grant);
    th_feed(t, &o, -1, 0);
    th_read(t, 0, NULL, NULL);
}

//  One counter of a channel's STAT.
static uint64_t th_stat(th_t *t, const char *key, const char *field)
{
    zchan__out_t o;
    uint64_t reqid = ++t->reqid;
    zchan__out_init(&o, 3, ZCHAN__STAT);
    zchan__out_u64(&o, reqid);
    zchan__out_str(&o, key);
    th_feed(t, &o, -1, 0);
    zchan__hdr_t h;
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    assert_int_equal(th_read(t, reqid, &h, &frame), 0);
    const msgpack_object *m = zchan__hdr_at(&h, 3);
    assert_non_null(m);
    assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
    uint64_t v = UINT64_MAX;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(field)
            && memcmp(kv->key.via.str.ptr, field, strlen(field)) == 0)
            v = kv->val.via.u64;
    }
    zchan__hdr_fini(&h);
    zmq_msg_close(&frame);
    assert_int_not_equal(v, UINT64_MAX);
    return v;
}

// ---------------------------------------------------------------------------
// Requests over a limit

//  A hub hosts at most ZCHAN_LIMIT_CHANNELS channels; joining one is not
//  creating one.
static void test_channels(void **state)
{
    (void) state;
    th_t t;
    th_open(&t, (uint64_t[ZCHAN__NLIMITS]) {[ZCHAN_LIMIT_CHANNELS] = 3});
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, 1), ZCHAN_OK);
    assert_int_equal(th_create(&t, "b", ZCHAN_BROADCAST, 0), ZCHAN_OK);
    assert_int_equal(th_create(&t, "c", ZCHAN_ANYCAST, 1), ZCHAN_OK);
    assert_int_equal(th_create(&t, "d", ZCHAN_ANYCAST, 1), ZCHAN_ELIMIT);
    assert_int_equal(th_create(&t, "e", ZCHAN_BROADCAST, 0), ZCHAN_ELIMIT);
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, 1), ZCHAN_OK); // joins
    assert_int_equal(zchan__hub_refused(t.hub), 2);
    th_close(&t);
}

//  An anycast capacity above ZCHAN_LIMIT_CAPACITY is refused; the protocol's
//  own bound stays EINVAL.
static void test_capacity(void **state)
{
    (void) state;
    th_t t;
    th_open(&t, (uint64_t[ZCHAN__NLIMITS]) {[ZCHAN_LIMIT_CAPACITY] = 100});
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, 101), ZCHAN_ELIMIT);
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, (uint64_t) 1 << 40), ZCHAN_ELIMIT);
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, ((uint64_t) 1 << 40) + 1), ZCHAN_EINVAL);
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, 100), ZCHAN_OK);
    assert_int_equal(th_create(&t, "b", ZCHAN_BROADCAST, 0), ZCHAN_OK);
    assert_int_equal(zchan__hub_refused(t.hub), 2);
    th_close(&t);
}

//  A broadcast receiver's limit above ZCHAN_LIMIT_BROADCAST_LIMIT is refused.
static void test_broadcast_limit(void **state)
{
    (void) state;
    th_t t;
    th_open(&t, (uint64_t[ZCHAN__NLIMITS]) {[ZCHAN_LIMIT_BROADCAST_LIMIT] = 1000});
    assert_int_equal(th_create(&t, "b", ZCHAN_BROADCAST, 0), ZCHAN_OK);
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, 10), ZCHAN_OK);
    uint64_t h;
    assert_int_equal(th_attach(&t, "b", true, 1001, &h), ZCHAN_ELIMIT);
    assert_int_equal(th_attach(&t, "b", true, (uint64_t) 1 << 24, &h), ZCHAN_ELIMIT);
    assert_int_equal(th_attach(&t, "b", true, ((uint64_t) 1 << 24) + 1, &h), ZCHAN_EINVAL);
    assert_int_equal(th_attach(&t, "b", true, 1000, &h), ZCHAN_OK);
    assert_int_equal(th_attach(&t, "a", true, 5000, &h), ZCHAN_OK); // anycast: no broadcast limit
    assert_int_equal(zchan__hub_refused(t.hub), 2);
    th_close(&t);
}

//  At most ZCHAN_LIMIT_ATTACHMENTS senders and receivers, over all channels;
//  a detach makes room.
static void test_attachments(void **state)
{
    (void) state;
    th_t t;
    th_open(&t, (uint64_t[ZCHAN__NLIMITS]) {[ZCHAN_LIMIT_ATTACHMENTS] = 5});
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, 10), ZCHAN_OK);
    assert_int_equal(th_create(&t, "b", ZCHAN_BROADCAST, 0), ZCHAN_OK);
    uint64_t h[5];
    for (int i = 0; i < 3; i++)
        assert_int_equal(th_attach(&t, "a", false, 0, &h[i]), ZCHAN_OK);
    for (int i = 3; i < 5; i++)
        assert_int_equal(th_attach(&t, "b", true, 10, &h[i]), ZCHAN_OK);
    uint64_t x;
    assert_int_equal(th_attach(&t, "b", false, 0, &x), ZCHAN_ELIMIT);
    assert_int_equal(th_attach(&t, "a", true, 10, &x), ZCHAN_ELIMIT);
    assert_int_equal(zchan__hub_refused(t.hub), 2);
    zchan__out_t o;
    uint64_t reqid = ++t.reqid;
    zchan__out_init(&o, 4, ZCHAN__DETACH);
    zchan__out_u64(&o, reqid);
    zchan__out_u64(&o, h[0]);
    zchan__out_u64(&o, 0);
    assert_int_equal(th_request(&t, &o, reqid), ZCHAN_OK);
    assert_int_equal(th_attach(&t, "b", false, 0, &x), ZCHAN_OK);
    th_close(&t);
}

// ---------------------------------------------------------------------------
// Bytes held

//  An anycast message that would take its channel over
//  ZCHAN_LIMIT_CHANNEL_BYTES is dropped, counted lost, and refused to its
//  sender ([REFUSED, ELIMIT]), which gets its credit back. Once receivers
//  have consumed, messages are taken again.
static void test_anycast_channel_bytes(void **state)
{
    (void) state;
    th_t t;
    th_open(&t, (uint64_t[ZCHAN__NLIMITS]) {[ZCHAN_LIMIT_CHANNEL_BYTES] = 1000});
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, 100), ZCHAN_OK);
    uint64_t s, r;
    assert_int_equal(th_attach(&t, "a", false, 0, &s), ZCHAN_OK);
    for (int i = 0; i < 3; i++)
        th_data(&t, s, 200, (uint8_t) i);
    assert_int_equal(t.refused, 0);
    assert_int_equal(zchan__hub_bytes(t.hub), 3 * COST(200));
    th_data(&t, s, 200, 3); // 4 * 264 > 1000
    assert_int_equal(t.refused, 1);
    assert_int_equal(zchan__hub_bytes(t.hub), 3 * COST(200));
    th_data(&t, s, 100, 4); // 3 * 264 + 164 <= 1000: fits
    assert_int_equal(t.refused, 1);
    assert_int_equal(th_stat(&t, "a", "sent"), 4);
    assert_int_equal(th_stat(&t, "a", "lost"), 1);
    assert_int_equal(zchan__hub_refused(t.hub), 1);
    //  Credit for all five: four accepted, one refused (a FLUSH sends what
    //  is owed).
    zchan__out_t o;
    uint64_t reqid = ++t.reqid;
    zchan__out_init(&o, 3, ZCHAN__FLUSH);
    zchan__out_u64(&o, reqid);
    zchan__out_u64(&o, s);
    assert_int_equal(th_request(&t, &o, reqid), ZCHAN_OK);
    assert_int_equal(t.acks, 5);
    //  A receiver takes the four and reports them consumed: room again.
    assert_int_equal(th_attach(&t, "a", true, 0, &r), ZCHAN_OK);
    th_credit(&t, r, 0, 10);
    assert_int_equal(t.delivered, 4);
    assert_int_equal(t.first[2], 2);
    assert_int_equal(t.first[3], 4);
    assert_int_equal(zchan__hub_bytes(t.hub), 3 * COST(200) + COST(100)); // delivered, not yet consumed
    th_credit(&t, r, 4, 0);
    assert_int_equal(zchan__hub_bytes(t.hub), 0);
    th_data(&t, s, 900, 5);
    assert_int_equal(t.refused, 1);
    assert_int_equal(t.delivered, 5);
    th_close(&t);
}

//  ZCHAN_LIMIT_QUEUED_BYTES holds over all channels together.
static void test_anycast_queued_bytes(void **state)
{
    (void) state;
    th_t t;
    th_open(&t, (uint64_t[ZCHAN__NLIMITS]) {[ZCHAN_LIMIT_QUEUED_BYTES] = 1000});
    assert_int_equal(th_create(&t, "a", ZCHAN_ANYCAST, 100), ZCHAN_OK);
    assert_int_equal(th_create(&t, "b", ZCHAN_ANYCAST, 100), ZCHAN_OK);
    uint64_t sa, sb;
    assert_int_equal(th_attach(&t, "a", false, 0, &sa), ZCHAN_OK);
    assert_int_equal(th_attach(&t, "b", false, 0, &sb), ZCHAN_OK);
    for (int i = 0; i < 3; i++)
        th_data(&t, sa, 200, 0);
    th_data(&t, sb, 200, 0); // 3 * 264 + 264 > 1000
    assert_int_equal(t.refused, 1);
    th_data(&t, sb, 100, 0); // 792 + 164 <= 1000
    assert_int_equal(t.refused, 1);
    assert_int_equal(th_stat(&t, "a", "lost"), 0);
    assert_int_equal(th_stat(&t, "b", "lost"), 1);
    assert_int_equal(th_stat(&t, "b", "sent"), 1);
    assert_int_equal(zchan__hub_bytes(t.hub), 3 * COST(200) + COST(100));
    th_close(&t);
}

//  A broadcast receiver's buffer stays within the byte limits as within its
//  count limit: the oldest go first, counted dropped; a message larger than
//  the limit is dropped itself. A resend_latest channel's latest message
//  counts too.
static void test_broadcast_bytes(void **state)
{
    (void) state;
    th_t t;
    th_open(&t, (uint64_t[ZCHAN__NLIMITS]) {[ZCHAN_LIMIT_CHANNEL_BYTES] = 1000});
    assert_int_equal(th_create(&t, "b", ZCHAN_BROADCAST, 0), ZCHAN_OK);
    uint64_t s, r;
    assert_int_equal(th_attach(&t, "b", true, 100, &r), ZCHAN_OK); // no credit yet: all is buffered
    assert_int_equal(th_attach(&t, "b", false, 0, &s), ZCHAN_OK);
    for (int i = 0; i < 10; i++)
        th_data(&t, s, 200, (uint8_t) i);
    assert_int_equal(zchan__hub_bytes(t.hub), 3 * COST(200));
    assert_int_equal(th_stat(&t, "b", "dropped"), 7);
    assert_int_equal(th_stat(&t, "b", "depth"), 3);
    th_data(&t, s, 2000, 10); // larger than the limit: dropped itself, the ring stays
    assert_int_equal(th_stat(&t, "b", "dropped"), 8);
    th_credit(&t, r, 0, 10);
    assert_int_equal(t.delivered, 3);
    assert_int_equal(t.first[0], 7);
    assert_int_equal(t.first[2], 9);
    assert_int_equal(zchan__hub_bytes(t.hub), 0);
    assert_int_equal(t.refused, 0); // broadcast sends are never refused
    assert_true(zchan__hub_refused(t.hub) >= 1);
    th_close(&t);

    //  resend_latest: the latest message is held, and counted.
    th_open(&t, (uint64_t[ZCHAN__NLIMITS]) {[ZCHAN_LIMIT_CHANNEL_BYTES] = 1000});
    zchan__out_t o;
    uint64_t reqid = ++t.reqid;
    zchan__out_init(&o, 7, ZCHAN__CREATE);
    zchan__out_u64(&o, reqid);
    zchan__out_str(&o, "l");
    zchan__out_u64(&o, ZCHAN_BROADCAST);
    zchan__out_u64(&o, 0);
    zchan__out_bool(&o, true);
    zchan__out_u64(&o, ZCHAN_PROTO_VERSION);
    assert_int_equal(th_request(&t, &o, reqid), ZCHAN_OK);
    assert_int_equal(th_attach(&t, "l", false, 0, &s), ZCHAN_OK);
    th_data(&t, s, 500, 1);
    assert_int_equal(zchan__hub_bytes(t.hub), COST(500));
    th_data(&t, s, 2000, 2); // too large to keep: no latest now
    assert_int_equal(zchan__hub_bytes(t.hub), 0);
    th_data(&t, s, 300, 3);
    assert_int_equal(zchan__hub_bytes(t.hub), COST(300));
    assert_int_equal(th_attach(&t, "l", true, 10, &r), ZCHAN_OK); // gets the latest in its ring
    assert_int_equal(zchan__hub_bytes(t.hub), 2 * COST(300));
    th_credit(&t, r, 0, 1);
    assert_int_equal(t.delivered, 1);
    assert_int_equal(t.first[0], 3);
    th_close(&t);
}

// ---------------------------------------------------------------------------
// Through the library

static void test_library(void **state)
{
    (void) state;
    //  The hub's log goes to a file, to check that refusals are logged.
    char logpath[] = "/tmp/zchan-test-limits-XXXXXX";
    int fd = mkstemp(logpath);
    assert_true(fd >= 0);
    FILE *logf = fdopen(fd, "w+");
    assert_non_null(logf);
    zsys_set_logstream(logf);

    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    assert_int_equal(zchan_ctx_limit(ctx, ZCHAN_LIMIT_CHANNELS), ZCHAN_DEFAULT_MAX_CHANNELS);
    assert_int_equal(zchan_ctx_limit(ctx, ZCHAN_LIMIT_ATTACHMENTS), ZCHAN_DEFAULT_MAX_ATTACHMENTS);
    assert_int_equal(zchan_ctx_limit(ctx, ZCHAN_LIMIT_CAPACITY), ZCHAN_DEFAULT_MAX_CAPACITY);
    assert_int_equal(zchan_ctx_limit(ctx, ZCHAN_LIMIT_BROADCAST_LIMIT), ZCHAN_DEFAULT_MAX_BROADCAST_LIMIT);
    assert_int_equal(zchan_ctx_limit(ctx, ZCHAN_LIMIT_CHANNEL_BYTES), ZCHAN_DEFAULT_MAX_CHANNEL_BYTES);
    assert_int_equal(zchan_ctx_limit(ctx, ZCHAN_LIMIT_QUEUED_BYTES), ZCHAN_DEFAULT_MAX_QUEUED_BYTES);
    assert_int_equal(zchan_ctx_limit(ctx, (zchan_limit_t) 99), 0);
    tu_assert_rc(zchan_ctx_set_limit(ctx, (zchan_limit_t) 99, 1), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_limit(ctx, ZCHAN_LIMIT_CHANNELS, 0), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_limit(ctx, ZCHAN_LIMIT_CAPACITY, ((uint64_t) 1 << 40) + 1), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_limit(ctx, ZCHAN_LIMIT_BROADCAST_LIMIT, ((uint64_t) 1 << 24) + 1), ZCHAN_EINVAL);
    assert_string_equal(zchan_strerror(ZCHAN_ELIMIT), "refused by a hub's resource limit");

    //  Requests: NULL with ELIMIT.
    tu_assert_rc(zchan_ctx_set_limit(ctx, ZCHAN_LIMIT_CAPACITY, 100), ZCHAN_OK);
    assert_int_equal(zchan_ctx_limit(ctx, ZCHAN_LIMIT_CAPACITY), 100);
    assert_null(zchan_anycast_new(ctx, "inproc://limits-cap", 101));
    assert_int_equal(zchan_errno(), ZCHAN_ELIMIT);
    zchan_t *ch = zchan_anycast_new(ctx, "inproc://limits-cap", 100);
    assert_non_null(ch);
    zchan_destroy(&ch);
    tu_assert_rc(zchan_ctx_set_limit(ctx, ZCHAN_LIMIT_BROADCAST_LIMIT, 1000), ZCHAN_OK);
    zchan_t *bc = zchan_broadcast_new(ctx, "inproc://limits-bc", false);
    assert_non_null(bc);
    assert_null(zchan_receiver_new(bc, 1001));
    assert_int_equal(zchan_errno(), ZCHAN_ELIMIT);
    zchan_receiver_t *br = zchan_receiver_new(bc, 1000);
    assert_non_null(br);
    zchan_receiver_destroy(&br);
    zchan_destroy(&bc);

    //  Data: a send over the channel's byte limit fails with ELIMIT (a later
    //  one: sends do not wait for the hub), and nothing is lost silently:
    //  every message a send took is delivered or counted lost.
    tu_assert_rc(zchan_ctx_set_limit(ctx, ZCHAN_LIMIT_CHANNEL_BYTES, 4096), ZCHAN_OK);
    ch = zchan_anycast_new(ctx, "inproc://limits-bytes", 100);
    assert_non_null(ch);
    zchan_sender_t *s = zchan_sender_new(ch);
    assert_non_null(s);
    int rc = ZCHAN_OK, ok = 0;
    char text[201];
    //  The refusal is read at the latest when the sender's credit runs out.
    for (int i = 0; i < (int) zchan_sender_window(100) + 200 && rc == ZCHAN_OK; i++) {
        snprintf(text, sizeof text, "%03u %0196d", (unsigned) i % 1000u, 0);
        rc = zchan_send_str(s, text, 5000);
        ok += rc == ZCHAN_OK;
    }
    tu_assert_rc(rc, ZCHAN_ELIMIT);
    zchan_sender_destroy(&s); // flushed: all it sent has reached the channel
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_true(st.lost >= 1);
    assert_true(st.sent >= 1);
    assert_int_equal(st.sent + st.lost, (uint64_t) ok);
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    assert_non_null(r);
    int last = -1;
    for (uint64_t k = 0; k < st.sent; k++) {
        char *got = NULL;
        tu_assert_rc(zchan_recv_str(r, &got, 5000), ZCHAN_OK);
        int n = atoi(got);
        assert_true(n > last); // in order, the refused ones missing
        last = n;
        free(got);
    }
    //  Consumed: room again.
    s = zchan_sender_new(ch);
    assert_non_null(s);
    tu_assert_rc(zchan_send_str(s, "again", 5000), ZCHAN_OK);
    char *got = NULL;
    tu_assert_rc(zchan_recv_str(r, &got, 5000), ZCHAN_OK);
    assert_string_equal(got, "again");
    free(got);
    zchan_sender_destroy(&s);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);

    //  A rendezvous send learns of its own refusal, and keeps its message.
    ch = zchan_anycast_new(ctx, "inproc://limits-rdv", 0);
    assert_non_null(ch);
    s = zchan_sender_new(ch);
    assert_non_null(s);
    zchan_msg_t *msg = zchan_msg_new();
    assert_non_null(msg);
    char big[5000];
    memset(big, 'x', sizeof big);
    msgpack_pack_str(zchan_msg_packer(msg), sizeof big);
    msgpack_pack_str_body(zchan_msg_packer(msg), big, sizeof big);
    tu_assert_rc(zchan_send(s, &msg, 5000), ZCHAN_ELIMIT);
    assert_non_null(msg);
    zchan_msg_destroy(&msg);
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.lost, 1);
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);

    //  Refusals are logged, with the limit and a running count.
    zsys_set_logstream(stderr);
    fflush(logf);
    rewind(logf);
    char line[1024];
    int seen = 0;
    while (fgets(line, sizeof line, logf))
        seen += strstr(line, "refused") && strstr(line, "max-") && strstr(line, "refused in all");
    fclose(logf);
    unlink(logpath);
    assert_true(seen >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_broadcast_limit),
        cmocka_unit_test(test_attachments),
        cmocka_unit_test(test_anycast_channel_bytes),
        cmocka_unit_test(test_anycast_queued_bytes),
        cmocka_unit_test(test_broadcast_bytes),
        cmocka_unit_test(test_library),
    };
    tu_ipc_dir();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup_dir();
    return rc;
}

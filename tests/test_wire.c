/*  test_wire.c: the wire module (src/wire.h), without sockets.

    For each message type of docs/PROTOCOL.md: its pack function gives
    exactly the bytes of a golden vector, built here by hand with msgpack-c's
    own packer in the order PROTOCOL.md gives (the bytes the library sent
    before the wire module existed), and its parse function reads the golden
    vector back into the same struct. Then bad input: a wrong type, a missing
    or mistyped field, a value out of range, each a clear error (EPROTO, or
    EINVAL for CREATE's values), never a crash. The hub-info and reference
    codecs round-trip, and reject what is malformed.
*/
#include "testutil.h"
#include "core.h"
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Golden vectors

//  Packs a header [fields...] by hand. fmt: u uint64, s str, b bool, i int64,
//  n nil, f double, h the hub info g_info (by hand too).
typedef struct {
    msgpack_sbuffer sb;
} gold_t;

static zchan__hubinfo_t g_info;

static void s_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

//  The hub-info map in the order PROTOCOL.md section 5 gives.
static void s_gold_info(msgpack_packer *pk, const zchan__hubinfo_t *info)
{
    msgpack_pack_map(pk, info->curve[0] ? 5 : 4);
    s_str(pk, "host");
    s_str(pk, info->host);
    s_str(pk, "proc");
    s_str(pk, info->proc);
    s_str(pk, "hub");
    s_str(pk, info->hub);
    s_str(pk, "loc");
    msgpack_pack_array(pk, (size_t) info->nloc);
    for (int i = 0; i < info->nloc; i++)
        s_str(pk, info->loc[i]);
    if (info->curve[0]) {
        s_str(pk, "curve");
        s_str(pk, info->curve);
    }
}

static void s_gold(gold_t *g, const char *fmt, ...)
{
    msgpack_sbuffer_init(&g->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &g->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, strlen(fmt));
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        switch (*f) {
        case 'u': msgpack_pack_uint64(&pk, va_arg(ap, uint64_t)); break;
        case 'i': msgpack_pack_int64(&pk, va_arg(ap, int64_t)); break;
        case 's': s_str(&pk, va_arg(ap, const char *)); break;
        case 'b':
            if (va_arg(ap, int))
                msgpack_pack_true(&pk);
            else
                msgpack_pack_false(&pk);
            break;
        case 'n': msgpack_pack_nil(&pk); break;
        case 'f': msgpack_pack_double(&pk, va_arg(ap, double)); break;
        case 'h': s_gold_info(&pk, &g_info); break;
        default: fail_msg("bad fmt %c", *f);
        }
    }
    va_end(ap);
}

#define U(x) ((uint64_t) (x))

//  Asserts that o holds exactly the golden bytes, and frees both.
static void s_same(zchan__out_t *o, gold_t *g)
{
    assert_false(o->sbuf.failed);
    if (o->sbuf.size != g->sb.size || memcmp(o->sbuf.data, g->sb.data, g->sb.size) != 0) {
        char got[512] = "", want[512] = "";
        for (size_t i = 0; i < o->sbuf.size && i < 100; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%02x", (unsigned char) o->sbuf.data[i]);
        for (size_t i = 0; i < g->sb.size && i < 100; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%02x", (unsigned char) g->sb.data[i]);
        fail_msg("packed %s, expected %s", got, want);
    }
    zchan__out_fini(o);
}

//  Decodes the golden vector into h (which points into g's bytes).
static void s_hdr(zchan__hdr_t *h, const gold_t *g)
{
    assert_int_equal(zchan__hdr_parse(h, g->sb.data, g->sb.size), 0);
}

static zchan__hdr_t g_h;

static int s_setup(void **state)
{
    (void) state;
    zchan__hdr_init(&g_h);
    memset(&g_info, 0, sizeof g_info);
    snprintf(g_info.host, sizeof g_info.host, "host-1");
    snprintf(g_info.proc, sizeof g_info.proc, "host-1/42/abc");
    snprintf(g_info.hub, sizeof g_info.hub, "host-1/42/abc/1");
    snprintf(g_info.loc[g_info.nloc++], ZCHAN__EP_MAX, "inproc://zchan-1");
    snprintf(g_info.loc[g_info.nloc++], ZCHAN__EP_MAX, "tcp://127.0.0.1:5555");
    return 0;
}

static int s_teardown(void **state)
{
    (void) state;
    zchan__hdr_fini(&g_h);
    return 0;
}

static bool s_key_is(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

// ---------------------------------------------------------------------------
// Client to hub: pack gives the golden bytes, parse reads them back

static void test_create(void **state)
{
    (void) state;
    zchan__out_t o;
    gold_t g;
    zchan__wire_create_t m = {.reqid = 300, .key = "jobs", .key_len = 4, .kind = ZCHAN_BROADCAST,
                              .capacity = 70000, .resend = true};
    zchan__wire_pack_create(&o, &m);
    s_gold(&g, "uusuubu", U(ZCHAN__CREATE), U(300), "jobs", U(ZCHAN_BROADCAST), U(70000), 1,
           U(ZCHAN_PROTO_VERSION));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    zchan__wire_create_t p;
    assert_int_equal(zchan__wire_parse_create(&g_h, &p), 0);
    assert_int_equal(p.reqid, 300);
    assert_true(s_key_is(p.key, p.key_len, "jobs"));
    assert_int_equal(p.kind, ZCHAN_BROADCAST);
    assert_int_equal(p.capacity, 70000);
    assert_true(p.resend);
    msgpack_sbuffer_destroy(&g.sb);
}

static void test_keyed(void **state)
{
    (void) state;
    struct {
        int type;
        bool version;
        void (*pack)(zchan__out_t *, const zchan__wire_keyed_t *);
        int (*parse)(const zchan__hdr_t *, zchan__wire_keyed_t *);
    } t[] = {
        {ZCHAN__OPEN, true, zchan__wire_pack_open, zchan__wire_parse_open},
        {ZCHAN__CLOSE, false, zchan__wire_pack_close, zchan__wire_parse_close},
        {ZCHAN__STAT, false, zchan__wire_pack_stat, zchan__wire_parse_stat},
        {ZCHAN__ATTACH_S, true, zchan__wire_pack_attach_s, zchan__wire_parse_attach_s},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        zchan__out_t o;
        gold_t g;
        zchan__wire_keyed_t m = {.reqid = 1u << 20, .key = "@host/a.b", .key_len = 9};
        t[i].pack(&o, &m);
        if (t[i].version)
            s_gold(&g, "uusu", U(t[i].type), U(1u << 20), "@host/a.b", U(ZCHAN_PROTO_VERSION));
        else
            s_gold(&g, "uus", U(t[i].type), U(1u << 20), "@host/a.b");
        s_hdr(&g_h, &g);
        s_same(&o, &g);
        zchan__wire_keyed_t p;
        assert_int_equal(t[i].parse(&g_h, &p), 0);
        assert_int_equal(p.reqid, 1u << 20);
        assert_true(s_key_is(p.key, p.key_len, "@host/a.b"));
        //  Each parse takes only its own type.
        for (size_t j = 0; j < sizeof t / sizeof *t; j++)
            if (j != i)
                assert_int_equal(t[j].parse(&g_h, &p), ZCHAN_EPROTO);
        msgpack_sbuffer_destroy(&g.sb);
    }
}

static void test_attach_r(void **state)
{
    (void) state;
    zchan__out_t o;
    gold_t g;
    zchan__wire_attach_r_t m = {.reqid = 7, .key = "k", .key_len = 1, .limit = 1024};
    zchan__wire_pack_attach_r(&o, &m);
    s_gold(&g, "uusuu", U(ZCHAN__ATTACH_R), U(7), "k", U(1024), U(ZCHAN_PROTO_VERSION));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    zchan__wire_attach_r_t p;
    assert_int_equal(zchan__wire_parse_attach_r(&g_h, &p), 0);
    assert_int_equal(p.reqid, 7);
    assert_true(s_key_is(p.key, p.key_len, "k"));
    assert_int_equal(p.limit, 1024);
    msgpack_sbuffer_destroy(&g.sb);
}

static void test_data_path(void **state)
{
    (void) state;
    zchan__out_t o;
    gold_t g;
    //  DATA: a handle past 32 bits.
    zchan__wire_data_t d = {.handle = UINT64_C(0x123456789)};
    zchan__wire_pack_data(&o, &d);
    s_gold(&g, "uu", U(ZCHAN__DATA), UINT64_C(0x123456789));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    zchan__wire_data_t dp;
    assert_int_equal(zchan__wire_parse_data(&g_h, &dp), 0);
    assert_int_equal(dp.handle, UINT64_C(0x123456789));
    msgpack_sbuffer_destroy(&g.sb);
    //  CREDIT
    zchan__wire_credit_t c = {.handle = 5, .consumed = 200, .grant = 65536};
    zchan__wire_pack_credit(&o, &c);
    s_gold(&g, "uuuu", U(ZCHAN__CREDIT), U(5), U(200), U(65536));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    zchan__wire_credit_t cp;
    assert_int_equal(zchan__wire_parse_credit(&g_h, &cp), 0);
    assert_int_equal(cp.handle, 5);
    assert_int_equal(cp.consumed, 200);
    assert_int_equal(cp.grant, 65536);
    msgpack_sbuffer_destroy(&g.sb);
    //  ACK, DELIVER (with UINT64_MAX), REFUSED
    struct {
        int type;
        void (*pack)(zchan__out_t *, const zchan__wire_count_t *);
        int (*parse)(const zchan__hdr_t *, zchan__wire_count_t *);
        uint64_t n;
    } t[] = {
        {ZCHAN__ACK, zchan__wire_pack_ack, zchan__wire_parse_ack, 3},
        {ZCHAN__DELIVER, zchan__wire_pack_deliver, zchan__wire_parse_deliver, UINT64_MAX},
        {ZCHAN__REFUSED, zchan__wire_pack_refused, zchan__wire_parse_refused, ZCHAN_ELIMIT},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        zchan__wire_count_t m = {.n = t[i].n}, p;
        t[i].pack(&o, &m);
        s_gold(&g, "uu", U(t[i].type), t[i].n);
        s_hdr(&g_h, &g);
        s_same(&o, &g);
        assert_int_equal(t[i].parse(&g_h, &p), 0);
        assert_true(p.n == t[i].n);
        for (size_t j = 0; j < sizeof t / sizeof *t; j++)
            if (j != i)
                assert_int_equal(t[j].parse(&g_h, &p), ZCHAN_EPROTO);
        msgpack_sbuffer_destroy(&g.sb);
    }
}

static void test_handle_requests(void **state)
{
    (void) state;
    zchan__out_t o;
    gold_t g;
    zchan__wire_handle_req_t m = {.reqid = 11, .handle = 12}, p;
    zchan__wire_pack_flush(&o, &m);
    s_gold(&g, "uuu", U(ZCHAN__FLUSH), U(11), U(12));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    assert_int_equal(zchan__wire_parse_flush(&g_h, &p), 0);
    assert_int_equal(p.reqid, 11);
    assert_int_equal(p.handle, 12);
    assert_int_equal(zchan__wire_parse_cancel(&g_h, &p), ZCHAN_EPROTO);
    msgpack_sbuffer_destroy(&g.sb);

    zchan__wire_pack_cancel(&o, &m);
    s_gold(&g, "uuu", U(ZCHAN__CANCEL), U(11), U(12));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    assert_int_equal(zchan__wire_parse_cancel(&g_h, &p), 0);
    assert_int_equal(p.handle, 12);
    msgpack_sbuffer_destroy(&g.sb);

    zchan__wire_detach_t d = {.reqid = 13, .handle = 14, .consumed = 15}, dp;
    zchan__wire_pack_detach(&o, &d);
    s_gold(&g, "uuuu", U(ZCHAN__DETACH), U(13), U(14), U(15));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    assert_int_equal(zchan__wire_parse_detach(&g_h, &dp), 0);
    assert_int_equal(dp.reqid, 13);
    assert_int_equal(dp.handle, 14);
    assert_int_equal(dp.consumed, 15);
    msgpack_sbuffer_destroy(&g.sb);

    zchan__wire_pack_ping(&o, 99);
    s_gold(&g, "uu", U(ZCHAN__PING), U(99));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    uint64_t rq = 0;
    assert_int_equal(zchan__wire_parse_ping(&g_h, &rq), 0);
    assert_int_equal(rq, 99);
    rq = 0;
    assert_int_equal(zchan__wire_parse_reqid(&g_h, &rq), 0);
    assert_int_equal(rq, 99);
    msgpack_sbuffer_destroy(&g.sb);
}

// ---------------------------------------------------------------------------
// Hub to client

static void test_replies(void **state)
{
    (void) state;
    zchan__out_t o;
    gold_t g;
    //  A status-only reply
    zchan__wire_reply_t r = {.reqid = 1000, .status = ZCHAN_ENOTFOUND}, rp;
    zchan__wire_pack_reply(&o, &r);
    s_gold(&g, "uuu", U(ZCHAN__REPLY), U(1000), U(ZCHAN_ENOTFOUND));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    assert_int_equal(zchan__wire_parse_reply(&g_h, &rp), 0);
    assert_int_equal(rp.reqid, 1000);
    assert_int_equal(rp.status, ZCHAN_ENOTFOUND);
    msgpack_sbuffer_destroy(&g.sb);

    //  CREATE and OPEN's reply, with the hub info, with and without a curve key
    for (int curve = 0; curve < 2; curve++) {
        snprintf(g_info.curve, sizeof g_info.curve, "%s", curve ? "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7" : "");
        zchan__wire_reply_chan_t c = {.reqid = 2, .kind = ZCHAN_ANYCAST, .capacity = 10, .closed = false,
                                      .info = g_info};
        zchan__wire_pack_reply_chan(&o, &c);
        s_gold(&g, "uuuuubh", U(ZCHAN__REPLY), U(2), U(0), U(ZCHAN_ANYCAST), U(10), 0);
        s_hdr(&g_h, &g);
        s_same(&o, &g);
        zchan__wire_reply_chan_t *cp = malloc(sizeof *cp);
        assert_non_null(cp);
        assert_int_equal(zchan__wire_parse_reply_chan(&g_h, cp), 0);
        assert_int_equal(cp->reqid, 2);
        assert_int_equal(cp->kind, ZCHAN_ANYCAST);
        assert_int_equal(cp->capacity, 10);
        assert_false(cp->closed);
        assert_string_equal(cp->info.hub, g_info.hub);
        assert_int_equal(cp->info.nloc, 2);
        assert_string_equal(cp->info.loc[1], "tcp://127.0.0.1:5555");
        assert_string_equal(cp->info.curve, g_info.curve);
        free(cp);
        msgpack_sbuffer_destroy(&g.sb);
    }
    g_info.curve[0] = 0;

    //  ATTACH's reply
    zchan__wire_reply_attach_t a = {.reqid = 3, .handle = 77, .kind = ZCHAN_BROADCAST, .n = 0, .closed = true}, ap;
    zchan__wire_pack_reply_attach(&o, &a);
    s_gold(&g, "uuuuuub", U(ZCHAN__REPLY), U(3), U(0), U(77), U(ZCHAN_BROADCAST), U(0), 1);
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    assert_int_equal(zchan__wire_parse_reply_attach(&g_h, &ap), 0);
    assert_int_equal(ap.handle, 77);
    assert_int_equal(ap.kind, ZCHAN_BROADCAST);
    assert_int_equal(ap.n, 0);
    assert_true(ap.closed);
    msgpack_sbuffer_destroy(&g.sb);

    //  CANCEL's reply (the hub sends the field with ENOTFOUND too)
    zchan__wire_reply_cancel_t x = {.reqid = 4, .status = ZCHAN_ENOTFOUND, .cancelled = false}, xp;
    zchan__wire_pack_reply_cancel(&o, &x);
    s_gold(&g, "uuub", U(ZCHAN__REPLY), U(4), U(ZCHAN_ENOTFOUND), 0);
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    assert_int_equal(zchan__wire_parse_reply_cancel(&g_h, &xp), 0);
    assert_int_equal(xp.status, ZCHAN_ENOTFOUND);
    assert_false(xp.cancelled);
    msgpack_sbuffer_destroy(&g.sb);
}

static void test_reply_stat(void **state)
{
    (void) state;
    zchan__out_t o;
    zchan__wire_reply_stat_t m = {.reqid = 5};
    m.st = (zchan_stat_t){.kind = ZCHAN_ANYCAST, .capacity = 8, .depth = 3, .senders = 2, .receivers = 1,
                          .sent = 1000, .delivered = 997, .dropped = 0, .lost = 4, .closed = true};
    zchan__wire_pack_reply_stat(&o, &m);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, ZCHAN__REPLY);
    msgpack_pack_uint64(&pk, 5);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_map(&pk, 10);
    const char *names[] = {"kind", "capacity", "depth", "senders", "receivers",
                           "sent", "delivered", "dropped", "lost", "closed"};
    const uint64_t vals[] = {ZCHAN_ANYCAST, 8, 3, 2, 1, 1000, 997, 0, 4, 1};
    for (int i = 0; i < 10; i++) {
        s_str(&pk, names[i]);
        msgpack_pack_uint64(&pk, vals[i]);
    }
    gold_t g = {.sb = sb};
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    zchan__wire_reply_stat_t p;
    assert_int_equal(zchan__wire_parse_reply_stat(&g_h, &p), 0);
    assert_int_equal(p.reqid, 5);
    assert_memory_equal(&p.st, &m.st, sizeof p.st);
    msgpack_sbuffer_destroy(&sb);

    //  Unknown keys and values of other types are skipped; kind is required.
    msgpack_sbuffer_init(&sb);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, ZCHAN__REPLY);
    msgpack_pack_uint64(&pk, 6);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_map(&pk, 3);
    s_str(&pk, "future");
    msgpack_pack_uint64(&pk, 1);
    s_str(&pk, "depth");
    s_str(&pk, "lots");
    s_str(&pk, "closed");
    msgpack_pack_true(&pk);
    g.sb = sb;
    s_hdr(&g_h, &g);
    assert_int_equal(zchan__wire_parse_reply_stat(&g_h, &p), ZCHAN_EPROTO); // no kind
    msgpack_sbuffer_destroy(&sb);
}

static void test_closed_closing(void **state)
{
    (void) state;
    zchan__out_t o;
    gold_t g;
    zchan__wire_closed_t m = {.reason = 0}, p;
    zchan__wire_pack_closed(&o, &m);
    s_gold(&g, "u", U(ZCHAN__CLOSED));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    p.reason = 9;
    assert_int_equal(zchan__wire_parse_closed(&g_h, &p), 0);
    assert_int_equal(p.reason, 0);
    msgpack_sbuffer_destroy(&g.sb);

    m.reason = ZCHAN__NOT_ATTACHED;
    zchan__wire_pack_closed(&o, &m);
    s_gold(&g, "uu", U(ZCHAN__CLOSED), U(ZCHAN__NOT_ATTACHED));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    assert_int_equal(zchan__wire_parse_closed(&g_h, &p), 0);
    assert_int_equal(p.reason, ZCHAN__NOT_ATTACHED);
    assert_int_equal(zchan__wire_parse_closing(&g_h), ZCHAN_EPROTO);
    msgpack_sbuffer_destroy(&g.sb);

    zchan__wire_pack_closing(&o);
    s_gold(&g, "u", U(ZCHAN__CLOSING));
    s_hdr(&g_h, &g);
    s_same(&o, &g);
    assert_int_equal(zchan__wire_parse_closing(&g_h), 0);
    assert_int_equal(zchan__wire_parse_closed(&g_h, &p), ZCHAN_EPROTO);
    msgpack_sbuffer_destroy(&g.sb);
}

// ---------------------------------------------------------------------------
// Bad input

//  Parses the golden header of fmt with parse and expects err.
#define EXPECT(err, parse, m, fmt, ...)                                                 \
    do {                                                                               \
        gold_t g_;                                                                     \
        s_gold(&g_, fmt, __VA_ARGS__);                                                 \
        s_hdr(&g_h, &g_);                                                              \
        int rc_ = parse(&g_h, m);                                                      \
        if (rc_ != (err))                                                              \
            fail_msg("%s on %s: %d, expected %d", #parse, fmt, rc_, (int) (err));     \
        msgpack_sbuffer_destroy(&g_.sb);                                               \
    } while (0)

static void test_bad_requests(void **state)
{
    (void) state;
    const uint64_t V = ZCHAN_PROTO_VERSION, C = ZCHAN__CREATE;
    zchan__wire_create_t c;
    //  Missing fields, wrong types, another version, another type: EPROTO.
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_create, &c, "uusuub", C, U(1), "k", U(1), U(1), 0);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_create, &c, "uuuuubu", C, U(1), U(5), U(1), U(1), 0, V);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_create, &c, "uusiubu", C, U(1), "k", (int64_t) -1, U(1), 0, V);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_create, &c, "uusuuuu", C, U(1), "k", U(1), U(1), U(0), V);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_create, &c, "uusuubu", C, U(1), "k", U(1), U(1), 0, V + 1);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_create, &c, "uusuubn", C, U(1), "k", U(1), U(1), 0);
    {
        //  Not a header at all (no type): the decoder rejects it, and a parse
        //  of what it left behind finds nothing.
        gold_t g;
        s_gold(&g, "nusuubu", U(1), "k", U(1), U(1), 0, V);
        assert_int_equal(zchan__hdr_parse(&g_h, g.sb.data, g.sb.size), ZCHAN_EPROTO);
        assert_int_equal(zchan__wire_parse_create(&g_h, &c), ZCHAN_EPROTO);
        msgpack_sbuffer_destroy(&g.sb);
    }
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_create, &c, "uusuubu", U(ZCHAN__OPEN), U(1), "k", U(1), U(1), 0, V);
    //  Well-formed, out of range: EINVAL.
    EXPECT(ZCHAN_EINVAL, zchan__wire_parse_create, &c, "uusuubu", C, U(1), "k", U(3), U(1), 0, V);
    EXPECT(ZCHAN_EINVAL, zchan__wire_parse_create, &c, "uusuubu", C, U(1), "k", U(0), U(1), 0, V);
    EXPECT(ZCHAN_EINVAL, zchan__wire_parse_create, &c, "uusuubu", C, U(1), "", U(1), U(1), 0, V);
    EXPECT(ZCHAN_EINVAL, zchan__wire_parse_create, &c, "uusuubu", C, U(1), "k", U(1), (UINT64_C(1) << 40) + 1, 0, V);
    EXPECT(0, zchan__wire_parse_create, &c, "uusuubu", C, U(1), "k", U(1), UINT64_C(1) << 40, 0, V);
    char longkey[ZCHAN__EP_MAX + 1];
    memset(longkey, 'a', ZCHAN__EP_MAX);
    longkey[ZCHAN__EP_MAX] = 0;
    EXPECT(ZCHAN_EINVAL, zchan__wire_parse_create, &c, "uusuubu", C, U(1), longkey, U(1), U(1), 0, V);
    longkey[ZCHAN__EP_MAX - 1] = 0;
    EXPECT(0, zchan__wire_parse_create, &c, "uusuubu", C, U(1), longkey, U(1), U(1), 0, V);
    //  A zero byte inside the key: EINVAL.
    {
        zchan__out_t o;
        zchan__wire_create_t m = {.reqid = 1, .key = "a\0b", .key_len = 3, .kind = 1, .capacity = 1};
        zchan__wire_pack_create(&o, &m);
        assert_int_equal(zchan__hdr_parse(&g_h, o.sbuf.data, o.sbuf.size), 0);
        assert_int_equal(zchan__wire_parse_create(&g_h, &c), ZCHAN_EINVAL);
        zchan__out_fini(&o);
    }

    zchan__wire_keyed_t k;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_open, &k, "uus", U(ZCHAN__OPEN), U(1), "k");
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_open, &k, "uusu", U(ZCHAN__OPEN), U(1), "k", V + 1);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_open, &k, "uuuu", U(ZCHAN__OPEN), U(1), U(2), V);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_close, &k, "uu", U(ZCHAN__CLOSE), U(1));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_stat, &k, "usu", U(ZCHAN__STAT), "x", U(1));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_attach_s, &k, "uusn", U(ZCHAN__ATTACH_S), U(1), "k");
    //  Extra fields are allowed (a newer peer may send more).
    EXPECT(0, zchan__wire_parse_close, &k, "uusu", U(ZCHAN__CLOSE), U(1), "k", U(7));

    zchan__wire_attach_r_t ar;
    {
        //  An empty key (msgpack-c decodes it with a NULL pointer) parses as
        //  "" and packs back to the same bytes (found by fuzz_header: the
        //  packer handed memcpy that NULL).
        gold_t g;
        s_gold(&g, "uusuu", U(ZCHAN__ATTACH_R), U(5), "", U(5), V);
        s_hdr(&g_h, &g);
        assert_int_equal(zchan__wire_parse_attach_r(&g_h, &ar), 0);
        assert_non_null(ar.key);
        assert_int_equal(ar.key_len, 0);
        zchan__out_t o;
        zchan__wire_attach_r_t m = {.reqid = 5, .key = NULL, .key_len = 0, .limit = 5};
        zchan__wire_pack_attach_r(&o, &m);
        s_same(&o, &g);
        msgpack_sbuffer_destroy(&g.sb);
    }
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_attach_r, &ar, "uusu", U(ZCHAN__ATTACH_R), U(1), "k", V);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_attach_r, &ar, "uusbu", U(ZCHAN__ATTACH_R), U(1), "k", 1, V);

    zchan__wire_data_t d;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_data, &d, "u", U(ZCHAN__DATA));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_data, &d, "ui", U(ZCHAN__DATA), (int64_t) -3);
    zchan__wire_credit_t cr;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_credit, &cr, "uuu", U(ZCHAN__CREDIT), U(1), U(2));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_credit, &cr, "uusu", U(ZCHAN__CREDIT), U(1), "2", U(3));
    zchan__wire_handle_req_t hr;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_flush, &hr, "uu", U(ZCHAN__FLUSH), U(1));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_cancel, &hr, "uub", U(ZCHAN__CANCEL), U(1), 1);
    zchan__wire_detach_t dt;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_detach, &dt, "uuu", U(ZCHAN__DETACH), U(1), U(2));
    uint64_t rq;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_ping, &rq, "u", U(ZCHAN__PING));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_ping, &rq, "us", U(ZCHAN__PING), "id");
    //  The request id: of any type but DATA and CREDIT, unknown ones too.
    EXPECT(0, zchan__wire_parse_reqid, &rq, "uu", U(99), U(5));
    EXPECT(0, zchan__wire_parse_reqid, &rq, "uu", UINT64_MAX, U(5));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reqid, &rq, "uu", U(ZCHAN__DATA), U(5));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reqid, &rq, "uu", U(ZCHAN__CREDIT), U(5));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reqid, &rq, "uf", U(ZCHAN__PING), 1.5);
}

static void test_bad_replies(void **state)
{
    (void) state;
    const uint64_t R = ZCHAN__REPLY;
    zchan__wire_reply_t r;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply, &r, "u", R);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply, &r, "us", R, "1");
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply, &r, "uuu", U(ZCHAN__ACK), U(1), U(0));
    //  A reply to reqid whose status is missing, mistyped or unknown: status EPROTO.
    EXPECT(0, zchan__wire_parse_reply, &r, "uu", R, U(1));
    assert_int_equal(r.status, ZCHAN_EPROTO);
    EXPECT(0, zchan__wire_parse_reply, &r, "uus", R, U(1), "0");
    assert_int_equal(r.status, ZCHAN_EPROTO);
    EXPECT(0, zchan__wire_parse_reply, &r, "uuu", R, U(1), U(ZCHAN_ELIMIT + 1));
    assert_int_equal(r.status, ZCHAN_EPROTO);
    EXPECT(0, zchan__wire_parse_reply, &r, "uuu", R, U(1), U(ZCHAN_ELIMIT));
    assert_int_equal(r.status, ZCHAN_ELIMIT);

    zchan__wire_reply_chan_t *c = malloc(sizeof *c);
    assert_non_null(c);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_chan, c, "uuuuub", R, U(1), U(0), U(1), U(1), 0);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_chan, c, "uuuuubh", R, U(1), U(0), U(3), U(1), 0);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_chan, c, "uuuuuuh", R, U(1), U(0), U(1), U(1), U(0));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_chan, c, "uuuuubh", R, U(1), U(2), U(1), U(1), 0);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_chan, c, "uuuuubn", R, U(1), U(0), U(1), U(1), 0);
    free(c);

    zchan__wire_reply_attach_t a;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_attach, &a, "uuuuuu", R, U(1), U(0), U(1), U(1), U(1));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_attach, &a, "uuuuuub", R, U(1), U(0), U(1), U(0), U(1), 0);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_attach, &a, "uuuuuuu", R, U(1), U(0), U(1), U(1), U(1), U(0));
    zchan__wire_reply_cancel_t x;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_cancel, &x, "uuu", R, U(1), U(0));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_cancel, &x, "uuuu", R, U(1), U(0), U(1));
    zchan__wire_reply_stat_t st;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_stat, &st, "uuu", R, U(1), U(0));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_reply_stat, &st, "uuuu", R, U(1), U(0), U(1));

    zchan__wire_count_t n;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_ack, &n, "u", U(ZCHAN__ACK));
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_deliver, &n, "ui", U(ZCHAN__DELIVER), (int64_t) -1);
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_refused, &n, "us", U(ZCHAN__REFUSED), "x");
    zchan__wire_closed_t cl;
    EXPECT(ZCHAN_EPROTO, zchan__wire_parse_closed, &cl, "us", U(ZCHAN__CLOSED), "x");
}

// ---------------------------------------------------------------------------
// Hub info and references

static void test_ref_roundtrip(void **state)
{
    (void) state;
    snprintf(g_info.curve, sizeof g_info.curve, "rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7");
    zchan__ref_out_t out = {.kind = ZCHAN_BROADCAST, .key = "@host/news", .name = "news",
                            .uri = "zchan://@host/news", .info = &g_info};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(zchan__ref_pack(&pk, &out), 0);
    //  The golden reference: ext ZCHAN_EXT_REF of [version, kind, key, name, uri, hubinfo].
    msgpack_sbuffer body, gold;
    msgpack_sbuffer_init(&body);
    msgpack_sbuffer_init(&gold);
    msgpack_packer bpk, gpk;
    msgpack_packer_init(&bpk, &body, msgpack_sbuffer_write);
    msgpack_pack_array(&bpk, 6);
    msgpack_pack_uint64(&bpk, ZCHAN_PROTO_VERSION);
    msgpack_pack_uint64(&bpk, ZCHAN_BROADCAST);
    s_str(&bpk, "@host/news");
    s_str(&bpk, "news");
    s_str(&bpk, "zchan://@host/news");
    s_gold_info(&bpk, &g_info);
    msgpack_packer_init(&gpk, &gold, msgpack_sbuffer_write);
    msgpack_pack_ext(&gpk, body.size, ZCHAN_EXT_REF);
    msgpack_pack_ext_body(&gpk, body.data, body.size);
    assert_int_equal(sb.size, gold.size);
    assert_memory_equal(sb.data, gold.data, gold.size);

    zchan__ref_t *ref = malloc(sizeof *ref);
    assert_non_null(ref);
    assert_int_equal(zchan__ref_decode(body.data, body.size, ref), 0);
    assert_int_equal(ref->kind, ZCHAN_BROADCAST);
    assert_string_equal(ref->key, "@host/news");
    assert_string_equal(ref->name, "news");
    assert_string_equal(ref->uri, "zchan://@host/news");
    assert_string_equal(ref->info.proc, g_info.proc);
    assert_string_equal(ref->info.curve, g_info.curve);
    assert_int_equal(ref->info.nloc, 2);
    //  Truncated, or with a byte extra: EPROTO.
    for (size_t n = 0; n < body.size; n++)
        assert_int_equal(zchan__ref_decode(body.data, n, ref), ZCHAN_EPROTO);
    //  Another version, or a bad curve key in the info.
    msgpack_sbuffer_clear(&body);
    msgpack_pack_array(&bpk, 6);
    msgpack_pack_uint64(&bpk, ZCHAN_PROTO_VERSION + 1);
    msgpack_pack_uint64(&bpk, ZCHAN_BROADCAST);
    s_str(&bpk, "k");
    s_str(&bpk, "n");
    s_str(&bpk, "u");
    s_gold_info(&bpk, &g_info);
    assert_int_equal(zchan__ref_decode(body.data, body.size, ref), ZCHAN_EPROTO);
    snprintf(g_info.curve, sizeof g_info.curve, "tooshort");
    msgpack_sbuffer_clear(&body);
    msgpack_pack_array(&bpk, 6);
    msgpack_pack_uint64(&bpk, ZCHAN_PROTO_VERSION);
    msgpack_pack_uint64(&bpk, ZCHAN_BROADCAST);
    s_str(&bpk, "k");
    s_str(&bpk, "n");
    s_str(&bpk, "u");
    s_gold_info(&bpk, &g_info);
    assert_int_equal(zchan__ref_decode(body.data, body.size, ref), ZCHAN_EPROTO);
    g_info.curve[0] = 0;
    //  A hub info without locators.
    int nloc = g_info.nloc;
    g_info.nloc = 0;
    msgpack_sbuffer_clear(&body);
    s_gold_info(&bpk, &g_info);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, body.data, body.size, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(zchan__hubinfo_read(&u.data, &ref->info), ZCHAN_EPROTO);
    assert_int_equal(zchan__hubinfo_read(NULL, &ref->info), ZCHAN_EPROTO);
    msgpack_unpacked_destroy(&u);
    g_info.nloc = nloc;
    free(ref);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&gold);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_keyed),
        cmocka_unit_test(test_attach_r),
        cmocka_unit_test(test_data_path),
        cmocka_unit_test(test_handle_requests),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_reply_stat),
        cmocka_unit_test(test_closed_closing),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_ref_roundtrip),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}

/*  fuzz_header.c: header frames, as the hub and zchan's clients decode them.

    The input is one header frame, as a peer sent it. Covered:
    zchan__msgpack_check, zchan__hdr_parse and every getter on every field
    (and zchan__hubinfo_read, which reads the hubinfo of CREATE and OPEN
    replies), and every parse function of the wire module (src/wire.h), as
    the hub and the clients call them. Oracles, besides the sanitizers:
    - zchan__msgpack_check never rejects what msgpack_unpack decodes (its first
      value, with or without trailing bytes);
    - what it accepts, msgpack_unpack decodes within a small multiple of the
      input's size in memory;
    - zchan__hdr_parse accepts exactly one array with a uint first element,
      and the getters agree with the decoded object;
    - a wire parse function accepts only its own message type, returns 0,
      EPROTO (or EINVAL, CREATE only), and what it accepts packs again into a
      header that it parses back to the same struct.
*/
#include "fuzzutil.h"
#include <sanitizer/allocator_interface.h>
#include <string.h>

//  Whether data may declare an array or map of more elements than it has
//  bytes: a byte dc-df, wherever it sits, followed by such a count.
//  msgpack-c allocates a container before it reads its elements, so unchecked
//  input of this kind is not given to msgpack_unpack here. (msgpack_unpack
//  could not decode such a container whole anyway.)
static bool s_big_count(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i + 2 < size; i++) {
        uint64_t count;
        if (data[i] == 0xdc || data[i] == 0xde)
            count = (uint64_t) data[i + 1] << 8 | data[i + 2];
        else if ((data[i] == 0xdd || data[i] == 0xdf) && i + 4 < size)
            count = (uint64_t) data[i + 1] << 24 | (uint64_t) data[i + 2] << 16 | (uint64_t) data[i + 3] << 8
                    | data[i + 4];
        else
            continue;
        if (count > size)
            return true;
    }
    return false;
}

static void s_differential(const uint8_t *data, size_t size)
{
    int chk = zchan__msgpack_check(data, size);
    if (chk != 0 && s_big_count(data, size))
        return;
    msgpack_zone zone;
    FZ_ASSERT(msgpack_zone_init(&zone, 512), "zone");
    size_t before = __sanitizer_get_current_allocated_bytes();
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack((const char *) data, size, &off, &zone, &obj);
    size_t used = __sanitizer_get_current_allocated_bytes() - before;
    if (rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES)
        FZ_ASSERT(chk == 0, "msgpack_unpack decoded %zu of %zu bytes (rc %d) that the check rejected", off,
                  size, (int) rc);
    if (chk == 0)
        FZ_ASSERT(used <= 64 * size + 65536, "decoding %zu checked bytes allocated %zu", size, used);
    msgpack_zone_destroy(&zone);
}

static void s_getters(const zchan__hdr_t *h)
{
    size_t len = zchan__hdr_len(h);
    FZ_ASSERT(len >= 1, "len %zu", len);
    int type = zchan__hdr_type(h);
    FZ_ASSERT(type >= -1 && type <= 1000, "type %d", type);
    for (size_t i = 0; i <= len + 1; i++) {
        const msgpack_object *o = zchan__hdr_at(h, i);
        FZ_ASSERT((o != NULL) == (i < len), "field %zu of %zu", i, len);
        uint64_t u = 0;
        bool b = false;
        const char *p = NULL;
        size_t n = 0;
        int ru = zchan__hdr_u64(h, i, &u);
        int rb = zchan__hdr_bool(h, i, &b);
        int rs = zchan__hdr_str(h, i, &p, &n);
        FZ_ASSERT((ru == 0) == (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER), "u64 of field %zu", i);
        FZ_ASSERT((rb == 0) == (o && o->type == MSGPACK_OBJECT_BOOLEAN), "bool of field %zu", i);
        FZ_ASSERT((rs == 0) == (o && o->type == MSGPACK_OBJECT_STR), "str of field %zu", i);
        if (rs == 0) {
            fz_touch(p, n);
            //  As the hub copies a key, and the clients their strings.
            char *copy = zchan__strndup(p, n);
            FZ_ASSERT(copy && (n == 0 || memcmp(copy, p, n) == 0) && copy[n] == 0, "strndup");
            free(copy);
        }
        zchan__hubinfo_t info;
        if (zchan__hubinfo_read(o, &info) == 0) {
            FZ_ASSERT(info.nloc >= 1 && info.nloc <= ZCHAN__MAX_LOC, "nloc %d", info.nloc);
            FZ_ASSERT(strlen(info.host) < sizeof info.host && strlen(info.proc) < sizeof info.proc
                          && strlen(info.hub) < sizeof info.hub,
                      "hubinfo strings");
            for (int k = 0; k < info.nloc; k++)
                FZ_ASSERT(strlen(info.loc[k]) < ZCHAN__EP_MAX, "locator %d", k);
        }
    }
}

//  The round trip of one parse function: m (parsed from h, of type) is
//  packed, and the packed header parsed again into m2, which must equal m
//  (keys compared by their bytes, after the struct's other fields).
#define WIRE_CASE(type_, T, parse, pack, same)                                                 \
    do {                                                                                       \
        T m_, m2_;                                                                             \
        memset(&m_, 0, sizeof m_);                                                             \
        memset(&m2_, 0, sizeof m2_);                                                           \
        int rc_ = parse(h, &m_);                                                               \
        FZ_ASSERT(rc_ == 0 || rc_ == ZCHAN_EPROTO || (rc_ == ZCHAN_EINVAL && (type_) == ZCHAN__CREATE), \
                  "%s: rc %d", #parse, rc_);                                                   \
        if (rc_ == ZCHAN_EPROTO)                                                               \
            break;                                                                             \
        FZ_ASSERT(type == (type_), "%s accepted type %d", #parse, type);                      \
        if (rc_ != 0)                                                                          \
            break;                                                                             \
        zchan__out_t o_;                                                                       \
        pack(&o_, &m_);                                                                        \
        FZ_ASSERT(!o_.sbuf.failed, "pack");                                                    \
        FZ_ASSERT(zchan__hdr_parse(h2, o_.sbuf.data, o_.sbuf.size) == 0, "%s: repacked", #parse); \
        FZ_ASSERT(parse(h2, &m2_) == 0, "%s: reparse", #parse);                                \
        FZ_ASSERT(same(&m_, &m2_), "%s: round trip differs", #parse);                          \
        zchan__out_fini(&o_);                                                                  \
    } while (0)

static bool s_key_same(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static bool s_same_create(const zchan__wire_create_t *a, const zchan__wire_create_t *b)
{
    return a->reqid == b->reqid && s_key_same(a->key, a->key_len, b->key, b->key_len) && a->kind == b->kind
           && a->capacity == b->capacity && a->resend == b->resend;
}

static bool s_same_keyed(const zchan__wire_keyed_t *a, const zchan__wire_keyed_t *b)
{
    return a->reqid == b->reqid && s_key_same(a->key, a->key_len, b->key, b->key_len);
}

static bool s_same_attach_r(const zchan__wire_attach_r_t *a, const zchan__wire_attach_r_t *b)
{
    return a->reqid == b->reqid && s_key_same(a->key, a->key_len, b->key, b->key_len) && a->limit == b->limit;
}

#define SAME_BYTES(T)                                                                          \
    static bool s_same_##T(const zchan__wire_##T##_t *a, const zchan__wire_##T##_t *b)         \
    {                                                                                          \
        return memcmp(a, b, sizeof *a) == 0;                                                   \
    }
SAME_BYTES(data)
SAME_BYTES(handle_req)
SAME_BYTES(credit)
SAME_BYTES(detach)
SAME_BYTES(count)
SAME_BYTES(closed)

static bool s_same_reply(const zchan__wire_reply_t *a, const zchan__wire_reply_t *b)
{
    //  A status that is not a zchan_err_t reads as EPROTO, and packs so.
    return a->reqid == b->reqid && a->status == b->status;
}

static bool s_same_reply_attach(const zchan__wire_reply_attach_t *a, const zchan__wire_reply_attach_t *b)
{
    return a->reqid == b->reqid && a->handle == b->handle && a->kind == b->kind && a->n == b->n
           && a->closed == b->closed;
}

static bool s_same_reply_cancel(const zchan__wire_reply_cancel_t *a, const zchan__wire_reply_cancel_t *b)
{
    return a->reqid == b->reqid && a->status == b->status && a->cancelled == b->cancelled;
}

static bool s_same_reply_stat(const zchan__wire_reply_stat_t *a, const zchan__wire_reply_stat_t *b)
{
    const zchan_stat_t *x = &a->st, *y = &b->st;
    return a->reqid == b->reqid && x->kind == y->kind && x->capacity == y->capacity && x->depth == y->depth
           && x->senders == y->senders && x->receivers == y->receivers && x->sent == y->sent
           && x->delivered == y->delivered && x->dropped == y->dropped && x->lost == y->lost
           && x->closed == y->closed;
}

static bool s_same_reply_chan(const zchan__wire_reply_chan_t *a, const zchan__wire_reply_chan_t *b)
{
    const zchan__hubinfo_t *x = &a->info, *y = &b->info;
    if (a->reqid != b->reqid || a->kind != b->kind || a->capacity != b->capacity || a->closed != b->closed
        || strcmp(x->host, y->host) || strcmp(x->proc, y->proc) || strcmp(x->hub, y->hub)
        || strcmp(x->curve, y->curve) || x->nloc != y->nloc)
        return false;
    for (int i = 0; i < x->nloc; i++)
        if (strcmp(x->loc[i], y->loc[i]))
            return false;
    return true;
}

//  The parse functions without a struct, wrapped to fit WIRE_CASE.
typedef struct {
    uint64_t reqid;
} ping_t;
static int s_parse_ping(const zchan__hdr_t *h, ping_t *m) { return zchan__wire_parse_ping(h, &m->reqid); }
static void s_pack_ping(zchan__out_t *o, const ping_t *m) { zchan__wire_pack_ping(o, m->reqid); }
static bool s_same_ping(const ping_t *a, const ping_t *b) { return a->reqid == b->reqid; }
typedef struct {
    int unused;
} closing_t;
static int s_parse_closing(const zchan__hdr_t *h, closing_t *m) { (void) m; return zchan__wire_parse_closing(h); }
static void s_pack_closing(zchan__out_t *o, const closing_t *m) { (void) m; zchan__wire_pack_closing(o); }
static bool s_same_closing(const closing_t *a, const closing_t *b) { (void) a, (void) b; return true; }

//  Every parse function of the wire module on h (h2: a second decoder).
static void s_wire(const zchan__hdr_t *h, zchan__hdr_t *h2)
{
    int type = zchan__hdr_type(h);
    WIRE_CASE(ZCHAN__CREATE, zchan__wire_create_t, zchan__wire_parse_create, zchan__wire_pack_create, s_same_create);
    WIRE_CASE(ZCHAN__OPEN, zchan__wire_keyed_t, zchan__wire_parse_open, zchan__wire_pack_open, s_same_keyed);
    WIRE_CASE(ZCHAN__CLOSE, zchan__wire_keyed_t, zchan__wire_parse_close, zchan__wire_pack_close, s_same_keyed);
    WIRE_CASE(ZCHAN__STAT, zchan__wire_keyed_t, zchan__wire_parse_stat, zchan__wire_pack_stat, s_same_keyed);
    WIRE_CASE(ZCHAN__ATTACH_S, zchan__wire_keyed_t, zchan__wire_parse_attach_s, zchan__wire_pack_attach_s,
              s_same_keyed);
    WIRE_CASE(ZCHAN__ATTACH_R, zchan__wire_attach_r_t, zchan__wire_parse_attach_r, zchan__wire_pack_attach_r,
              s_same_attach_r);
    WIRE_CASE(ZCHAN__DATA, zchan__wire_data_t, zchan__wire_parse_data, zchan__wire_pack_data, s_same_data);
    WIRE_CASE(ZCHAN__FLUSH, zchan__wire_handle_req_t, zchan__wire_parse_flush, zchan__wire_pack_flush,
              s_same_handle_req);
    WIRE_CASE(ZCHAN__CANCEL, zchan__wire_handle_req_t, zchan__wire_parse_cancel, zchan__wire_pack_cancel,
              s_same_handle_req);
    WIRE_CASE(ZCHAN__CREDIT, zchan__wire_credit_t, zchan__wire_parse_credit, zchan__wire_pack_credit,
              s_same_credit);
    WIRE_CASE(ZCHAN__DETACH, zchan__wire_detach_t, zchan__wire_parse_detach, zchan__wire_pack_detach,
              s_same_detach);
    WIRE_CASE(ZCHAN__PING, ping_t, s_parse_ping, s_pack_ping, s_same_ping);
    WIRE_CASE(ZCHAN__REPLY, zchan__wire_reply_t, zchan__wire_parse_reply, zchan__wire_pack_reply, s_same_reply);
    WIRE_CASE(ZCHAN__REPLY, zchan__wire_reply_attach_t, zchan__wire_parse_reply_attach,
              zchan__wire_pack_reply_attach, s_same_reply_attach);
    WIRE_CASE(ZCHAN__REPLY, zchan__wire_reply_cancel_t, zchan__wire_parse_reply_cancel,
              zchan__wire_pack_reply_cancel, s_same_reply_cancel);
    WIRE_CASE(ZCHAN__REPLY, zchan__wire_reply_stat_t, zchan__wire_parse_reply_stat, zchan__wire_pack_reply_stat,
              s_same_reply_stat);
    WIRE_CASE(ZCHAN__ACK, zchan__wire_count_t, zchan__wire_parse_ack, zchan__wire_pack_ack, s_same_count);
    WIRE_CASE(ZCHAN__DELIVER, zchan__wire_count_t, zchan__wire_parse_deliver, zchan__wire_pack_deliver,
              s_same_count);
    WIRE_CASE(ZCHAN__REFUSED, zchan__wire_count_t, zchan__wire_parse_refused, zchan__wire_pack_refused,
              s_same_count);
    WIRE_CASE(ZCHAN__CLOSED, zchan__wire_closed_t, zchan__wire_parse_closed, zchan__wire_pack_closed,
              s_same_closed);
    WIRE_CASE(ZCHAN__CLOSING, closing_t, s_parse_closing, s_pack_closing, s_same_closing);
    //  The reply to CREATE and OPEN holds a hub info of 2.4 KiB: static.
    static zchan__wire_reply_chan_t c, c2;
    if (zchan__wire_parse_reply_chan(h, &c) == 0) {
        FZ_ASSERT(type == ZCHAN__REPLY, "reply_chan accepted type %d", type);
        zchan__out_t o;
        zchan__wire_pack_reply_chan(&o, &c);
        FZ_ASSERT(!o.sbuf.failed && zchan__hdr_parse(h2, o.sbuf.data, o.sbuf.size) == 0, "reply_chan repacked");
        FZ_ASSERT(zchan__wire_parse_reply_chan(h2, &c2) == 0 && s_same_reply_chan(&c, &c2),
                  "reply_chan round trip");
        zchan__out_fini(&o);
    }
    uint64_t reqid;
    if (zchan__wire_parse_reqid(h, &reqid) == 0)
        FZ_ASSERT(type != ZCHAN__DATA && type != ZCHAN__CREDIT, "a request id in type %d", type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_differential(data, size);
    zchan__hdr_t h;
    zchan__hdr_init(&h);
    int rc = zchan__hdr_parse(&h, data, size);
    if (rc == 0) {
        //  Exactly one array with a uint first element, every byte used.
        FZ_ASSERT(zchan__msgpack_check(data, size) == 0, "parsed what the check rejects");
        FZ_ASSERT(h.obj.type == MSGPACK_OBJECT_ARRAY && h.obj.via.array.size >= 1
                      && h.obj.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER,
                  "not a header");
        s_getters(&h);
        zchan__hdr_t h2;
        zchan__hdr_init(&h2);
        s_wire(&h, &h2);
        zchan__hdr_fini(&h2);
    } else {
        FZ_ASSERT(rc == ZCHAN_EPROTO, "rc %d", rc);
        FZ_ASSERT(zchan__hdr_len(&h) == 0 && zchan__hdr_type(&h) == -1 && !zchan__hdr_at(&h, 0),
                  "getters of a rejected header");
    }
    //  A decoder is reused, as the hub reuses its own: parse again.
    int again = zchan__hdr_parse(&h, data, size);
    FZ_ASSERT(again == rc, "second parse %d, first %d", again, rc);
    zchan__hdr_fini(&h);
    return 0;
}

/*  wire.c: the layouts of zchan's messages (wire.h). Every field's
    position is written here once: in a pack function and in the matching
    parse function, next to each other.
*/
#include "wire.h"
#include <string.h>

//  Whether h is a header of type with at least n elements (type included).
//  Extra elements are allowed: a newer peer may send more.
static bool s_is(const zchan__hdr_t *h, int type, size_t n)
{
    return zchan__hdr_type(h) == type && zchan__hdr_len(h) >= n;
}

static int s_version(const zchan__hdr_t *h, size_t i)
{
    uint64_t v;
    if (zchan__hdr_u64(h, i, &v) != 0 || v != ZCHAN_PROTO_VERSION)
        return ZCHAN_EPROTO;
    return 0;
}

//  A str field as a key: never NULL (msgpack-c gives "" a NULL pointer).
static int s_key(const zchan__hdr_t *h, size_t i, const char **key, size_t *len)
{
    if (zchan__hdr_str(h, i, key, len))
        return ZCHAN_EPROTO;
    if (*len == 0)
        *key = "";
    return 0;
}

static bool s_kind_ok(uint64_t kind)
{
    return kind == ZCHAN_ANYCAST || kind == ZCHAN_BROADCAST;
}

// ---------------------------------------------------------------------------
// Client to hub

void zchan__wire_pack_create(zchan__out_t *o, const zchan__wire_create_t *m)
{
    zchan__out_init(o, 7, ZCHAN__CREATE);
    zchan__out_u64(o, m->reqid);
    zchan__out_strn(o, m->key, m->key_len);
    zchan__out_u64(o, m->kind);
    zchan__out_u64(o, m->capacity);
    zchan__out_bool(o, m->resend);
    zchan__out_u64(o, ZCHAN_PROTO_VERSION);
}

int zchan__wire_parse_create(const zchan__hdr_t *h, zchan__wire_create_t *m)
{
    if (!s_is(h, ZCHAN__CREATE, 7) || zchan__hdr_u64(h, 1, &m->reqid) || s_key(h, 2, &m->key, &m->key_len)
        || zchan__hdr_u64(h, 3, &m->kind) || zchan__hdr_u64(h, 4, &m->capacity)
        || zchan__hdr_bool(h, 5, &m->resend) || s_version(h, 6))
        return ZCHAN_EPROTO;
    if (!s_kind_ok(m->kind) || m->key_len == 0 || m->key_len >= ZCHAN__EP_MAX || memchr(m->key, 0, m->key_len)
        || m->capacity > (uint64_t) 1 << 40)
        return ZCHAN_EINVAL;
    return 0;
}

//  [type, reqid, key] and, with version, [type, reqid, key, version].
static void s_pack_keyed(zchan__out_t *o, int type, const zchan__wire_keyed_t *m, bool version)
{
    zchan__out_init(o, version ? 4 : 3, type);
    zchan__out_u64(o, m->reqid);
    zchan__out_strn(o, m->key, m->key_len);
    if (version)
        zchan__out_u64(o, ZCHAN_PROTO_VERSION);
}

static int s_parse_keyed(const zchan__hdr_t *h, int type, zchan__wire_keyed_t *m, bool version)
{
    if (!s_is(h, type, version ? 4 : 3) || zchan__hdr_u64(h, 1, &m->reqid)
        || s_key(h, 2, &m->key, &m->key_len) || (version && s_version(h, 3)))
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_open(zchan__out_t *o, const zchan__wire_keyed_t *m)
{
    s_pack_keyed(o, ZCHAN__OPEN, m, true);
}

int zchan__wire_parse_open(const zchan__hdr_t *h, zchan__wire_keyed_t *m)
{
    return s_parse_keyed(h, ZCHAN__OPEN, m, true);
}

void zchan__wire_pack_close(zchan__out_t *o, const zchan__wire_keyed_t *m)
{
    s_pack_keyed(o, ZCHAN__CLOSE, m, false);
}

int zchan__wire_parse_close(const zchan__hdr_t *h, zchan__wire_keyed_t *m)
{
    return s_parse_keyed(h, ZCHAN__CLOSE, m, false);
}

void zchan__wire_pack_stat(zchan__out_t *o, const zchan__wire_keyed_t *m)
{
    s_pack_keyed(o, ZCHAN__STAT, m, false);
}

int zchan__wire_parse_stat(const zchan__hdr_t *h, zchan__wire_keyed_t *m)
{
    return s_parse_keyed(h, ZCHAN__STAT, m, false);
}

void zchan__wire_pack_attach_s(zchan__out_t *o, const zchan__wire_keyed_t *m)
{
    s_pack_keyed(o, ZCHAN__ATTACH_S, m, true);
}

int zchan__wire_parse_attach_s(const zchan__hdr_t *h, zchan__wire_keyed_t *m)
{
    return s_parse_keyed(h, ZCHAN__ATTACH_S, m, true);
}

void zchan__wire_pack_attach_r(zchan__out_t *o, const zchan__wire_attach_r_t *m)
{
    zchan__out_init(o, 5, ZCHAN__ATTACH_R);
    zchan__out_u64(o, m->reqid);
    zchan__out_strn(o, m->key, m->key_len);
    zchan__out_u64(o, m->limit);
    zchan__out_u64(o, ZCHAN_PROTO_VERSION);
}

int zchan__wire_parse_attach_r(const zchan__hdr_t *h, zchan__wire_attach_r_t *m)
{
    if (!s_is(h, ZCHAN__ATTACH_R, 5) || zchan__hdr_u64(h, 1, &m->reqid)
        || s_key(h, 2, &m->key, &m->key_len) || zchan__hdr_u64(h, 3, &m->limit) || s_version(h, 4))
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_data(zchan__out_t *o, const zchan__wire_data_t *m)
{
    zchan__out_init(o, 2, ZCHAN__DATA);
    zchan__out_u64(o, m->handle);
}

int zchan__wire_parse_data(const zchan__hdr_t *h, zchan__wire_data_t *m)
{
    if (!s_is(h, ZCHAN__DATA, 2) || zchan__hdr_u64(h, 1, &m->handle))
        return ZCHAN_EPROTO;
    return 0;
}

static void s_pack_handle_req(zchan__out_t *o, int type, const zchan__wire_handle_req_t *m)
{
    zchan__out_init(o, 3, type);
    zchan__out_u64(o, m->reqid);
    zchan__out_u64(o, m->handle);
}

static int s_parse_handle_req(const zchan__hdr_t *h, int type, zchan__wire_handle_req_t *m)
{
    if (!s_is(h, type, 3) || zchan__hdr_u64(h, 1, &m->reqid) || zchan__hdr_u64(h, 2, &m->handle))
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_flush(zchan__out_t *o, const zchan__wire_handle_req_t *m)
{
    s_pack_handle_req(o, ZCHAN__FLUSH, m);
}

int zchan__wire_parse_flush(const zchan__hdr_t *h, zchan__wire_handle_req_t *m)
{
    return s_parse_handle_req(h, ZCHAN__FLUSH, m);
}

void zchan__wire_pack_cancel(zchan__out_t *o, const zchan__wire_handle_req_t *m)
{
    s_pack_handle_req(o, ZCHAN__CANCEL, m);
}

int zchan__wire_parse_cancel(const zchan__hdr_t *h, zchan__wire_handle_req_t *m)
{
    return s_parse_handle_req(h, ZCHAN__CANCEL, m);
}

void zchan__wire_pack_credit(zchan__out_t *o, const zchan__wire_credit_t *m)
{
    zchan__out_init(o, 4, ZCHAN__CREDIT);
    zchan__out_u64(o, m->handle);
    zchan__out_u64(o, m->consumed);
    zchan__out_u64(o, m->grant);
}

int zchan__wire_parse_credit(const zchan__hdr_t *h, zchan__wire_credit_t *m)
{
    if (!s_is(h, ZCHAN__CREDIT, 4) || zchan__hdr_u64(h, 1, &m->handle) || zchan__hdr_u64(h, 2, &m->consumed)
        || zchan__hdr_u64(h, 3, &m->grant))
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_detach(zchan__out_t *o, const zchan__wire_detach_t *m)
{
    zchan__out_init(o, 4, ZCHAN__DETACH);
    zchan__out_u64(o, m->reqid);
    zchan__out_u64(o, m->handle);
    zchan__out_u64(o, m->consumed);
}

int zchan__wire_parse_detach(const zchan__hdr_t *h, zchan__wire_detach_t *m)
{
    if (!s_is(h, ZCHAN__DETACH, 4) || zchan__hdr_u64(h, 1, &m->reqid) || zchan__hdr_u64(h, 2, &m->handle)
        || zchan__hdr_u64(h, 3, &m->consumed))
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_ping(zchan__out_t *o, uint64_t reqid)
{
    zchan__out_init(o, 2, ZCHAN__PING);
    zchan__out_u64(o, reqid);
}

int zchan__wire_parse_ping(const zchan__hdr_t *h, uint64_t *reqid)
{
    if (!s_is(h, ZCHAN__PING, 2) || zchan__hdr_u64(h, 1, reqid))
        return ZCHAN_EPROTO;
    return 0;
}

int zchan__wire_parse_reqid(const zchan__hdr_t *h, uint64_t *reqid)
{
    int type = zchan__hdr_type(h); // -1 for an unknown type past 1000: still a request
    if (type == ZCHAN__DATA || type == ZCHAN__CREDIT || zchan__hdr_u64(h, 1, reqid))
        return ZCHAN_EPROTO;
    return 0;
}

// ---------------------------------------------------------------------------
// Hub to client

//  [REPLY, reqid, status] followed by more fields.
static void s_reply_init(zchan__out_t *o, uint64_t reqid, int status, size_t more)
{
    zchan__out_init(o, 3 + more, ZCHAN__REPLY);
    zchan__out_u64(o, reqid);
    zchan__out_u64(o, (uint64_t) status);
}

void zchan__wire_pack_reply(zchan__out_t *o, const zchan__wire_reply_t *m)
{
    s_reply_init(o, m->reqid, m->status, 0);
}

int zchan__wire_parse_reply(const zchan__hdr_t *h, zchan__wire_reply_t *m)
{
    if (!s_is(h, ZCHAN__REPLY, 2) || zchan__hdr_u64(h, 1, &m->reqid))
        return ZCHAN_EPROTO;
    uint64_t status;
    if (zchan__hdr_u64(h, 2, &status) != 0 || status > ZCHAN_ELIMIT)
        m->status = ZCHAN_EPROTO;
    else
        m->status = (int) status;
    return 0;
}

//  A successful reply's reqid and status 0, with at least n fields in all.
static int s_parse_ok_reply(const zchan__hdr_t *h, size_t n, uint64_t *reqid)
{
    uint64_t status;
    if (!s_is(h, ZCHAN__REPLY, n) || zchan__hdr_u64(h, 1, reqid) || zchan__hdr_u64(h, 2, &status) || status != 0)
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_reply_chan(zchan__out_t *o, const zchan__wire_reply_chan_t *m)
{
    s_reply_init(o, m->reqid, 0, 4);
    zchan__out_u64(o, m->kind);
    zchan__out_u64(o, m->capacity);
    zchan__out_bool(o, m->closed);
    zchan__hubinfo_pack(&o->pk, &m->info);
}

int zchan__wire_parse_reply_chan(const zchan__hdr_t *h, zchan__wire_reply_chan_t *m)
{
    if (s_parse_ok_reply(h, 7, &m->reqid) || zchan__hdr_u64(h, 3, &m->kind) || !s_kind_ok(m->kind)
        || zchan__hdr_u64(h, 4, &m->capacity) || zchan__hdr_bool(h, 5, &m->closed)
        || zchan__hubinfo_read(zchan__hdr_at(h, 6), &m->info))
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_reply_attach(zchan__out_t *o, const zchan__wire_reply_attach_t *m)
{
    s_reply_init(o, m->reqid, 0, 4);
    zchan__out_u64(o, m->handle);
    zchan__out_u64(o, m->kind);
    zchan__out_u64(o, m->n);
    zchan__out_bool(o, m->closed);
}

int zchan__wire_parse_reply_attach(const zchan__hdr_t *h, zchan__wire_reply_attach_t *m)
{
    if (s_parse_ok_reply(h, 7, &m->reqid) || zchan__hdr_u64(h, 3, &m->handle) || zchan__hdr_u64(h, 4, &m->kind)
        || zchan__hdr_u64(h, 5, &m->n) || zchan__hdr_bool(h, 6, &m->closed) || !s_kind_ok(m->kind))
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_reply_cancel(zchan__out_t *o, const zchan__wire_reply_cancel_t *m)
{
    s_reply_init(o, m->reqid, m->status, 1);
    zchan__out_bool(o, m->cancelled);
}

int zchan__wire_parse_reply_cancel(const zchan__hdr_t *h, zchan__wire_reply_cancel_t *m)
{
    zchan__wire_reply_t r;
    if (zchan__wire_parse_reply(h, &r) || zchan__hdr_bool(h, 3, &m->cancelled))
        return ZCHAN_EPROTO;
    m->reqid = r.reqid;
    m->status = r.status;
    return 0;
}

static const char *const s_stat_names[] = {"kind", "capacity", "depth", "senders", "receivers",
                                           "sent", "delivered", "dropped", "lost", "closed"};
#define STAT_N (sizeof s_stat_names / sizeof s_stat_names[0])

void zchan__wire_pack_reply_stat(zchan__out_t *o, const zchan__wire_reply_stat_t *m)
{
    const zchan_stat_t *st = &m->st;
    uint64_t vals[STAT_N] = {st->kind, st->capacity, st->depth, st->senders, st->receivers,
                             st->sent, st->delivered, st->dropped, st->lost, st->closed};
    s_reply_init(o, m->reqid, 0, 1);
    msgpack_pack_map(&o->pk, STAT_N);
    for (size_t i = 0; i < STAT_N; i++) {
        zchan__out_str(o, s_stat_names[i]);
        zchan__out_u64(o, vals[i]);
    }
}

int zchan__wire_parse_reply_stat(const zchan__hdr_t *h, zchan__wire_reply_stat_t *m)
{
    const msgpack_object *map = zchan__hdr_at(h, 3);
    if (s_parse_ok_reply(h, 4, &m->reqid) || map->type != MSGPACK_OBJECT_MAP)
        return ZCHAN_EPROTO;
    zchan_stat_t *st = &m->st;
    memset(st, 0, sizeof *st);
    uint64_t *fields[STAT_N] = {NULL, &st->capacity, &st->depth, &st->senders, &st->receivers,
                                &st->sent, &st->delivered, &st->dropped, &st->lost, NULL};
    uint64_t closed = 0, kind = 0;
    fields[0] = &kind;
    fields[STAT_N - 1] = &closed;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key, *v = &map->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR)
            continue;
        uint64_t val;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            val = v->via.u64;
        else if (v->type == MSGPACK_OBJECT_BOOLEAN)
            val = v->via.boolean;
        else
            continue;
        for (size_t j = 0; j < STAT_N; j++)
            if (k->via.str.size == strlen(s_stat_names[j])
                && memcmp(k->via.str.ptr, s_stat_names[j], k->via.str.size) == 0)
                *fields[j] = val;
    }
    if (!s_kind_ok(kind))
        return ZCHAN_EPROTO;
    st->kind = (zchan_kind_t) kind;
    st->closed = closed != 0;
    return 0;
}

static void s_pack_count(zchan__out_t *o, int type, uint64_t n)
{
    zchan__out_init(o, 2, type);
    zchan__out_u64(o, n);
}

static int s_parse_count(const zchan__hdr_t *h, int type, zchan__wire_count_t *m)
{
    if (!s_is(h, type, 2) || zchan__hdr_u64(h, 1, &m->n))
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_ack(zchan__out_t *o, const zchan__wire_count_t *m)
{
    s_pack_count(o, ZCHAN__ACK, m->n);
}

int zchan__wire_parse_ack(const zchan__hdr_t *h, zchan__wire_count_t *m)
{
    return s_parse_count(h, ZCHAN__ACK, m);
}

void zchan__wire_pack_deliver(zchan__out_t *o, const zchan__wire_count_t *m)
{
    s_pack_count(o, ZCHAN__DELIVER, m->n);
}

int zchan__wire_parse_deliver(const zchan__hdr_t *h, zchan__wire_count_t *m)
{
    return s_parse_count(h, ZCHAN__DELIVER, m);
}

void zchan__wire_pack_refused(zchan__out_t *o, const zchan__wire_count_t *m)
{
    s_pack_count(o, ZCHAN__REFUSED, m->n);
}

int zchan__wire_parse_refused(const zchan__hdr_t *h, zchan__wire_count_t *m)
{
    return s_parse_count(h, ZCHAN__REFUSED, m);
}

void zchan__wire_pack_closed(zchan__out_t *o, const zchan__wire_closed_t *m)
{
    zchan__out_init(o, m->reason ? 2 : 1, ZCHAN__CLOSED);
    if (m->reason)
        zchan__out_u64(o, m->reason);
}

int zchan__wire_parse_closed(const zchan__hdr_t *h, zchan__wire_closed_t *m)
{
    if (!s_is(h, ZCHAN__CLOSED, 1))
        return ZCHAN_EPROTO;
    m->reason = 0;
    if (zchan__hdr_len(h) >= 2 && zchan__hdr_u64(h, 1, &m->reason))
        return ZCHAN_EPROTO;
    return 0;
}

void zchan__wire_pack_closing(zchan__out_t *o)
{
    zchan__out_init(o, 1, ZCHAN__CLOSING);
}

int zchan__wire_parse_closing(const zchan__hdr_t *h)
{
    return s_is(h, ZCHAN__CLOSING, 1) ? 0 : ZCHAN_EPROTO;
}

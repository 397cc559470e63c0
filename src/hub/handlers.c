/*  handlers.c: one handler per request the hub takes, each given the
    request as a value (hub_req_t: routing id, header, frames). A handler
    checks the request, finds the channel and the attachment it names (an
    attachment is checked against the routing id), tells the channel's rules
    (channel.c) and replies (out.c). Bad requests are answered EPROTO, or
    counted and dropped when they expect no reply.
*/
#include "hub.h"
#include <string.h>

//  [REPLY, reqid, status, kind, capacity, closed, info]
static void s_reply_chan(hub_t *hub, const hub_req_t *rq, zchan_kind_t kind, size_t capacity, bool closed)
{
    zchan__out_t o;
    zchan__hub_reply_init(&o, rq, 0, 4);
    zchan__out_u64(&o, kind);
    zchan__out_u64(&o, capacity);
    zchan__out_bool(&o, closed);
    pthread_mutex_lock(&hub->ctx->lock);
    zchan__hubinfo_pack(&o.pk, &hub->ctx->info);
    pthread_mutex_unlock(&hub->ctx->lock);
    zchan__hub_reply_send(hub, rq, &o);
}

static int s_check_version(const zchan__hdr_t *h, size_t i)
{
    uint64_t v;
    if (zchan__hdr_u64(h, i, &v) != 0 || v != ZCHAN_PROTO_VERSION)
        return ZCHAN_EPROTO;
    return 0;
}

static void s_on_create(hub_t *hub, const hub_req_t *rq)
{
    const char *kp;
    size_t klen;
    uint64_t kind, capacity;
    bool resend;
    const zchan__hdr_t *h = rq->hdr;
    if (zchan__hdr_str(h, 2, &kp, &klen) || zchan__hdr_u64(h, 3, &kind) || zchan__hdr_u64(h, 4, &capacity)
        || zchan__hdr_bool(h, 5, &resend) || s_check_version(h, 6)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    if ((kind != ZCHAN_ANYCAST && kind != ZCHAN_BROADCAST) || klen == 0 || klen >= ZCHAN__EP_MAX
        || memchr(kp, 0, klen) || capacity > (uint64_t) 1 << 40) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EINVAL);
        return;
    }
    zchan__chan_t *ch = zchan__chans_lookup(hub, kp, klen);
    if (ch) {
        if (ch->kind != (zchan_kind_t) kind)
            zchan__hub_reply_status(hub, rq, ZCHAN_EINVAL);
        else
            s_reply_chan(hub, rq, ch->kind, ch->capacity, ch->closed);
        return;
    }
    const hub_tomb_t *t = zchan__chans_tomb(hub, kp, klen);
    if (t) {
        //  Closed and reclaimed: the key stays taken, closed.
        if (t->kind != (zchan_kind_t) kind)
            zchan__hub_reply_status(hub, rq, ZCHAN_EINVAL);
        else
            s_reply_chan(hub, rq, t->kind, t->capacity, true);
        return;
    }
    if (hub->closing) {
        //  The hub is shutting down (zchan-relay after SIGTERM).
        zchan__hub_reply_status(hub, rq, ZCHAN_ECLOSED);
        return;
    }
    if (kind == ZCHAN_ANYCAST && capacity > hub->limit[ZCHAN_LIMIT_CAPACITY]) {
        zchan__hub_refuse(hub, "a channel's capacity", ZCHAN_LIMIT_CAPACITY);
        zchan__hub_reply_status(hub, rq, ZCHAN_ELIMIT);
        return;
    }
    if (zhashx_size(hub->chans) >= hub->limit[ZCHAN_LIMIT_CHANNELS]) {
        zchan__hub_refuse(hub, "a new channel", ZCHAN_LIMIT_CHANNELS);
        zchan__hub_reply_status(hub, rq, ZCHAN_ELIMIT);
        return;
    }
    char key[ZCHAN__EP_MAX];
    memcpy(key, kp, klen);
    key[klen] = 0;
    ch = zchan__chan_new(key, (zchan_kind_t) kind, (size_t) capacity, resend, &hub->budget,
                         &zchan__hub_member_ops, hub);
    if (!ch) {
        zchan__hub_reply_status(hub, rq, ZCHAN_ENOMEM);
        return;
    }
    zhashx_insert(hub->chans, key, ch);
    s_reply_chan(hub, rq, ch->kind, ch->capacity, ch->closed);
}

//  The channel a request names by key in field 2 (*ch), or its tombstone
//  (*t). false once the request has been answered EPROTO (no key) or
//  ENOTFOUND (neither).
static bool s_request_chan(hub_t *hub, const hub_req_t *rq, zchan__chan_t **ch, hub_tomb_t **t)
{
    const char *kp;
    size_t klen;
    if (zchan__hdr_str(rq->hdr, 2, &kp, &klen)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return false;
    }
    *ch = zchan__chans_lookup(hub, kp, klen);
    *t = *ch ? NULL : zchan__chans_tomb(hub, kp, klen);
    if (!*ch && !*t)
        zchan__hub_reply_status(hub, rq, ZCHAN_ENOTFOUND);
    return *ch || *t;
}

static void s_on_open(hub_t *hub, const hub_req_t *rq)
{
    if (s_check_version(rq->hdr, 3)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    zchan__chan_t *ch;
    hub_tomb_t *t;
    if (!s_request_chan(hub, rq, &ch, &t))
        return;
    if (ch)
        s_reply_chan(hub, rq, ch->kind, ch->capacity, ch->closed);
    else
        s_reply_chan(hub, rq, t->kind, t->capacity, true);
}

static void s_on_close(hub_t *hub, const hub_req_t *rq)
{
    zchan__chan_t *ch;
    hub_tomb_t *t;
    if (!s_request_chan(hub, rq, &ch, &t))
        return;
    if (ch) {
        zchan__chan_close(ch);
        zchan__chans_reclaim(hub, ch);
    }
    zchan__hub_reply_status(hub, rq, 0);
}

//  [REPLY, reqid, status, handle, kind, capacity or window, closed]
static void s_reply_attach(hub_t *hub, const hub_req_t *rq, uint64_t handle, zchan_kind_t kind, uint64_t n,
                           bool closed)
{
    zchan__out_t o;
    zchan__hub_reply_init(&o, rq, 0, 4);
    zchan__out_u64(&o, handle);
    zchan__out_u64(&o, kind);
    zchan__out_u64(&o, n);
    zchan__out_bool(&o, closed);
    zchan__hub_reply_send(hub, rq, &o);
}

static void s_on_attach(hub_t *hub, const hub_req_t *rq, bool receiver)
{
    const char *kp;
    size_t klen;
    uint64_t limit = 0;
    const zchan__hdr_t *h = rq->hdr;
    if (zchan__hdr_str(h, 2, &kp, &klen)
        || (receiver ? (zchan__hdr_u64(h, 3, &limit) || s_check_version(h, 4)) : s_check_version(h, 3))) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    zchan__chan_t *ch = zchan__chans_lookup(hub, kp, klen);
    const hub_tomb_t *t = ch ? NULL : zchan__chans_tomb(hub, kp, klen);
    if (!ch && !t) {
        zchan__hub_reply_status(hub, rq, ZCHAN_ENOTFOUND);
        return;
    }
    zchan_kind_t kind = ch ? ch->kind : t->kind;
    size_t capacity = ch ? ch->capacity : t->capacity;
    uint64_t window = kind == ZCHAN_BROADCAST ? 0 : zchan_sender_window(capacity);
    if (!ch || ch->closed) {
        //  Nothing to keep: the party is stopped at once.
        s_reply_attach(hub, rq, 0, kind, receiver ? capacity : window, true);
        return;
    }
    if (receiver && ch->kind == ZCHAN_BROADCAST && (limit == 0 || limit > ((uint64_t) 1 << 24))) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EINVAL);
        return;
    }
    if (receiver && ch->kind == ZCHAN_BROADCAST && limit > hub->limit[ZCHAN_LIMIT_BROADCAST_LIMIT]) {
        zchan__hub_refuse(hub, "a broadcast receiver's limit", ZCHAN_LIMIT_BROADCAST_LIMIT);
        zchan__hub_reply_status(hub, rq, ZCHAN_ELIMIT);
        return;
    }
    //  Live attachments: the peer table less its free slots.
    if (hub->npeers - hub->free.n >= hub->limit[ZCHAN_LIMIT_ATTACHMENTS]) {
        zchan__hub_refuse(hub, "an attachment", ZCHAN_LIMIT_ATTACHMENTS);
        zchan__hub_reply_status(hub, rq, ZCHAN_ELIMIT);
        return;
    }
    //  One zchan sender or receiver is one connection; a peer that attaches
    //  more than this on one connection is refused, so it cannot make the hub
    //  keep state for it without bound.
    if (zchan__conn_count(hub, rq->rid, rq->rid_len) >= HUB_ATTACH_PER_CONN) {
        zchan__hub_proto_error(hub, "too many attachments on one connection");
        zchan__hub_reply_status(hub, rq, ZCHAN_EINVAL);
        return;
    }
    if (zchan__conn_add(hub, rq->rid, rq->rid_len, +1) != 0) {
        zchan__hub_reply_status(hub, rq, ZCHAN_ENOMEM);
        return;
    }
    peer_t *p = zchan__peer_new(hub, rq, receiver ? ROLE_RECEIVER : ROLE_SENDER);
    if (!p) {
        zchan__conn_add(hub, rq->rid, rq->rid_len, -1);
        zchan__hub_reply_status(hub, rq, ZCHAN_ENOMEM);
        return;
    }
    int rc = zchan__chan_join(ch, &p->m, receiver, (size_t) limit);
    if (rc != 0) {
        zchan__peer_free(hub, p);
        zchan__hub_reply_status(hub, rq, rc);
        return;
    }
    zchan__peers_arm_sweep(hub, p);
    s_reply_attach(hub, rq, p->m.token, ch->kind, receiver ? ch->capacity : window, false);
}

static void s_on_data(hub_t *hub, const hub_req_t *rq)
{
    uint64_t handle;
    if (zchan__hdr_u64(rq->hdr, 1, &handle)) {
        zchan__hub_proto_error(hub, "DATA header");
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, handle, ROLE_SENDER);
    if (!p) {
        //  Not attached here (the hub restarted, or a stranger): tell it the
        //  channel is closed for it, so it stops rather than waits.
        zchan__hub_proto_error(hub, "DATA from an unknown sender");
        zchan__hub_send_not_attached(hub, rq);
        return;
    }
    if (zchan__chan_data(p->m.ch, &p->m, rq->payload) == ZCHAN_EPROTO)
        zchan__hub_proto_error(hub, "DATA beyond the sender's credit");
}

static void s_on_credit(hub_t *hub, const hub_req_t *rq)
{
    uint64_t handle, consumed, grant;
    const zchan__hdr_t *h = rq->hdr;
    if (zchan__hdr_u64(h, 1, &handle) || zchan__hdr_u64(h, 2, &consumed) || zchan__hdr_u64(h, 3, &grant)) {
        zchan__hub_proto_error(hub, "CREDIT header");
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, handle, ROLE_RECEIVER);
    if (!p) {
        zchan__hub_proto_error(hub, "CREDIT from an unknown receiver");
        zchan__hub_send_not_attached(hub, rq);
        return;
    }
    zchan__peer_heard(hub, p);
    zchan__chan_t *ch = p->m.ch;
    zchan__chan_credit(ch, &p->m, consumed, grant);
    zchan__chans_reclaim(hub, ch); // a delivery that failed may have dropped the last member
}

static void s_on_flush(hub_t *hub, const hub_req_t *rq)
{
    uint64_t handle;
    if (zchan__hdr_u64(rq->hdr, 2, &handle)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, handle, ROLE_SENDER);
    if (p)
        zchan__hub_flush_ack(hub, p);
    //  Everything this peer sent before the flush has been handled.
    zchan__hub_reply_status(hub, rq, p ? 0 : ZCHAN_ENOTFOUND);
}

static void s_on_detach(hub_t *hub, const hub_req_t *rq)
{
    uint64_t handle, consumed;
    if (zchan__hdr_u64(rq->hdr, 2, &handle) || zchan__hdr_u64(rq->hdr, 3, &consumed)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, handle, ROLE_SENDER);
    if (!p)
        p = zchan__peer_find(hub, rq, handle, ROLE_RECEIVER);
    if (!p) {
        zchan__hub_reply_status(hub, rq, ZCHAN_ENOTFOUND);
        return;
    }
    //  A receiver hands back what it did not consume; p is released.
    zchan__chan_t *ch = p->m.ch;
    zchan__chan_leave(ch, &p->m, consumed);
    zchan__chans_reclaim(hub, ch);
    zchan__hub_reply_status(hub, rq, 0);
}

static void s_on_cancel(hub_t *hub, const hub_req_t *rq)
{
    uint64_t handle;
    if (zchan__hdr_u64(rq->hdr, 2, &handle)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, handle, ROLE_SENDER);
    bool cancelled = false;
    if (p) {
        //  Remove the sender's unaccepted messages, if still waiting.
        cancelled = zchan__chan_cancel(p->m.ch, &p->m);
        zchan__hub_flush_ack(hub, p);
    }
    zchan__out_t o;
    zchan__hub_reply_init(&o, rq, p ? 0 : ZCHAN_ENOTFOUND, 1);
    zchan__out_bool(&o, cancelled);
    zchan__hub_reply_send(hub, rq, &o);
}

static void s_on_stat(hub_t *hub, const hub_req_t *rq)
{
    zchan__chan_t *ch;
    hub_tomb_t *t;
    if (!s_request_chan(hub, rq, &ch, &t))
        return;
    uint64_t vals[10];
    if (ch) {
        uint64_t v[] = {ch->kind, ch->capacity, zchan__chan_depth(ch), ch->send.n, ch->recv.n,
                        ch->sent, ch->delivered, ch->dropped, ch->lost, ch->closed};
        memcpy(vals, v, sizeof vals);
    } else {
        uint64_t v[] = {t->kind, t->capacity, 0, 0, 0, t->sent, t->delivered, t->dropped, t->lost, 1};
        memcpy(vals, v, sizeof vals);
    }
    zchan__out_t o;
    zchan__hub_reply_init(&o, rq, 0, 1);
    msgpack_packer *pk = &o.pk;
    msgpack_pack_map(pk, 10);
    const char *names[] = {"kind", "capacity", "depth", "senders", "receivers",
                           "sent", "delivered", "dropped", "lost", "closed"};
    for (size_t i = 0; i < 10; i++) {
        zchan__out_str(&o, names[i]);
        zchan__out_u64(&o, vals[i]);
    }
    zchan__hub_reply_send(hub, rq, &o);
}

void zchan__hub_dispatch(hub_t *hub, zmq_msg_t *frames, size_t n)
{
    if (n < 2 || n > 3 || zmq_msg_size(&frames[0]) > 255) {
        zchan__hub_proto_error(hub, "wrong frame count");
        return;
    }
    hub_req_t rq = {
        .rid = zmq_msg_data(&frames[0]),
        .rid_len = zmq_msg_size(&frames[0]),
        .hdr = &hub->hdr,
        .hdr_frame = &frames[1],
        .payload = n == 3 ? &frames[2] : NULL,
    };
    if (zchan__hdr_parse(&hub->hdr, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1])) != 0) {
        zchan__hub_proto_error(hub, "header is not a msgpack array");
        return;
    }
    int type = zchan__hdr_type(&hub->hdr);
    if (type == ZCHAN__DATA) {
        if (n != 3)
            zchan__hub_proto_error(hub, "DATA without payload");
        else
            s_on_data(hub, &rq);
        return;
    }
    if (type == ZCHAN__CREDIT) {
        s_on_credit(hub, &rq);
        return;
    }
    if (n != 2 || zchan__hdr_u64(&hub->hdr, 1, &rq.reqid) != 0) {
        zchan__hub_proto_error(hub, "request without a request id");
        return;
    }
    switch (type) {
    case ZCHAN__CREATE: s_on_create(hub, &rq); break;
    case ZCHAN__OPEN: s_on_open(hub, &rq); break;
    case ZCHAN__CLOSE: s_on_close(hub, &rq); break;
    case ZCHAN__ATTACH_S: s_on_attach(hub, &rq, false); break;
    case ZCHAN__ATTACH_R: s_on_attach(hub, &rq, true); break;
    case ZCHAN__FLUSH: s_on_flush(hub, &rq); break;
    case ZCHAN__DETACH: s_on_detach(hub, &rq); break;
    case ZCHAN__CANCEL: s_on_cancel(hub, &rq); break;
    case ZCHAN__STAT: s_on_stat(hub, &rq); break;
    case ZCHAN__PING: zchan__hub_reply_status(hub, &rq, 0); break;
    default:
        zchan__hub_proto_error(hub, "unknown message type");
        zchan__hub_reply_status(hub, &rq, ZCHAN_EPROTO);
    }
}

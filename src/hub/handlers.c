/*  handlers.c: one handler per request the hub takes, each given the
    request as a value (hub_req_t: routing id, header, frames). A handler
    checks the request, finds the channel and the attachment it names (an
    attachment is checked against the routing id), tells the channel's rules
    (channel.c) and replies (out.c). Bad requests are answered EPROTO, or
    counted and dropped when they expect no reply.
*/
#include "hub.h"
#include <string.h>

//  The reply to CREATE and OPEN (wire.h: zchan__wire_reply_chan_t).
static void s_reply_chan(hub_t *hub, const hub_req_t *rq, zchan_kind_t kind, size_t capacity, bool closed)
{
    zchan__out_t o;
    zchan__wire_reply_chan_t m = {.reqid = rq->reqid, .kind = kind, .capacity = capacity, .closed = closed};
    pthread_mutex_lock(&hub->ctx->lock);
    m.info = hub->ctx->info;
    pthread_mutex_unlock(&hub->ctx->lock);
    zchan__wire_pack_reply_chan(&o, &m);
    zchan__hub_reply_send(hub, rq, &o);
}

static void s_on_create(hub_t *hub, const hub_req_t *rq)
{
    zchan__wire_create_t q;
    int prc = zchan__wire_parse_create(rq->hdr, &q);
    if (prc != 0) {
        zchan__hub_reply_status(hub, rq, prc); // EPROTO, or EINVAL for values out of range
        return;
    }
    const char *kp = q.key;
    size_t klen = q.key_len;
    uint64_t kind = q.kind, capacity = q.capacity;
    bool resend = q.resend;
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

//  The channel a request (OPEN, CLOSE or STAT, parsed by parse) names by
//  key (*ch), or its tombstone (*t). false once the request has been
//  answered EPROTO (not such a request) or ENOTFOUND (neither).
static bool s_request_chan(hub_t *hub, const hub_req_t *rq, int (*parse)(const zchan__hdr_t *, zchan__wire_keyed_t *),
                           zchan__chan_t **ch, hub_tomb_t **t)
{
    zchan__wire_keyed_t q;
    if (parse(rq->hdr, &q)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return false;
    }
    *ch = zchan__chans_lookup(hub, q.key, q.key_len);
    *t = *ch ? NULL : zchan__chans_tomb(hub, q.key, q.key_len);
    if (!*ch && !*t)
        zchan__hub_reply_status(hub, rq, ZCHAN_ENOTFOUND);
    return *ch || *t;
}

static void s_on_open(hub_t *hub, const hub_req_t *rq)
{
    zchan__chan_t *ch;
    hub_tomb_t *t;
    if (!s_request_chan(hub, rq, zchan__wire_parse_open, &ch, &t))
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
    if (!s_request_chan(hub, rq, zchan__wire_parse_close, &ch, &t))
        return;
    if (ch) {
        zchan__chan_close(ch);
        zchan__chans_reclaim(hub, ch);
    }
    zchan__hub_reply_status(hub, rq, 0);
}

//  The reply to ATTACH_S and ATTACH_R (n: the sender's window, or the
//  channel's capacity for a receiver).
static void s_reply_attach(hub_t *hub, const hub_req_t *rq, uint64_t handle, zchan_kind_t kind, uint64_t n,
                           bool closed)
{
    zchan__out_t o;
    zchan__wire_reply_attach_t m = {.reqid = rq->reqid, .handle = handle, .kind = kind, .n = n, .closed = closed};
    zchan__wire_pack_reply_attach(&o, &m);
    zchan__hub_reply_send(hub, rq, &o);
}

int zchan__hub_attach_allowed(hub_t *hub, const zchan__chan_t *ch, bool receiver, uint64_t limit)
{
    if (receiver && ch->kind == ZCHAN_BROADCAST && (limit == 0 || limit > ((uint64_t) 1 << 24)))
        return ZCHAN_EINVAL;
    if (receiver && ch->kind == ZCHAN_BROADCAST && limit > hub->limit[ZCHAN_LIMIT_BROADCAST_LIMIT]) {
        zchan__hub_refuse(hub, "a broadcast receiver's limit", ZCHAN_LIMIT_BROADCAST_LIMIT);
        return ZCHAN_ELIMIT;
    }
    //  Live attachments: the peer table less its free slots.
    if (hub->npeers - hub->free.n >= hub->limit[ZCHAN_LIMIT_ATTACHMENTS]) {
        zchan__hub_refuse(hub, "an attachment", ZCHAN_LIMIT_ATTACHMENTS);
        return ZCHAN_ELIMIT;
    }
    return 0;
}

static void s_on_attach(hub_t *hub, const hub_req_t *rq, bool receiver)
{
    zchan__wire_attach_r_t q = {0};
    int prc;
    if (receiver)
        prc = zchan__wire_parse_attach_r(rq->hdr, &q);
    else {
        zchan__wire_keyed_t qs;
        prc = zchan__wire_parse_attach_s(rq->hdr, &qs);
        q.key = qs.key;
        q.key_len = qs.key_len;
    }
    if (prc) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    const char *kp = q.key;
    size_t klen = q.key_len;
    uint64_t limit = q.limit;
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
    int arc = zchan__hub_attach_allowed(hub, ch, receiver, limit);
    if (arc != 0) {
        zchan__hub_reply_status(hub, rq, arc);
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
    zchan__wire_data_t q;
    if (zchan__wire_parse_data(rq->hdr, &q)) {
        zchan__hub_proto_error(hub, "DATA header");
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, q.handle, ROLE_SENDER);
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
    zchan__wire_credit_t q;
    if (zchan__wire_parse_credit(rq->hdr, &q)) {
        zchan__hub_proto_error(hub, "CREDIT header");
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, q.handle, ROLE_RECEIVER);
    if (!p) {
        zchan__hub_proto_error(hub, "CREDIT from an unknown receiver");
        zchan__hub_send_not_attached(hub, rq);
        return;
    }
    zchan__peer_heard(hub, p);
    zchan__chan_t *ch = p->m.ch;
    zchan__chan_credit(ch, &p->m, q.consumed, q.grant);
    zchan__chans_reclaim(hub, ch); // a delivery that failed may have dropped the last member
}

static void s_on_flush(hub_t *hub, const hub_req_t *rq)
{
    zchan__wire_handle_req_t q;
    if (zchan__wire_parse_flush(rq->hdr, &q)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, q.handle, ROLE_SENDER);
    if (p)
        zchan__hub_flush_ack(hub, p);
    //  Everything this peer sent before the flush has been handled.
    zchan__hub_reply_status(hub, rq, p ? 0 : ZCHAN_ENOTFOUND);
}

static void s_on_detach(hub_t *hub, const hub_req_t *rq)
{
    zchan__wire_detach_t q;
    if (zchan__wire_parse_detach(rq->hdr, &q)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, q.handle, ROLE_SENDER);
    if (!p)
        p = zchan__peer_find(hub, rq, q.handle, ROLE_RECEIVER);
    if (!p) {
        zchan__hub_reply_status(hub, rq, ZCHAN_ENOTFOUND);
        return;
    }
    //  A receiver hands back what it did not consume; p is released.
    zchan__chan_t *ch = p->m.ch;
    zchan__chan_leave(ch, &p->m, q.consumed);
    zchan__chans_reclaim(hub, ch);
    zchan__hub_reply_status(hub, rq, 0);
}

static void s_on_cancel(hub_t *hub, const hub_req_t *rq)
{
    zchan__wire_handle_req_t q;
    if (zchan__wire_parse_cancel(rq->hdr, &q)) {
        zchan__hub_reply_status(hub, rq, ZCHAN_EPROTO);
        return;
    }
    peer_t *p = zchan__peer_find(hub, rq, q.handle, ROLE_SENDER);
    bool cancelled = false;
    if (p) {
        //  Remove the sender's unaccepted messages, if still waiting.
        cancelled = zchan__chan_cancel(p->m.ch, &p->m);
        zchan__hub_flush_ack(hub, p);
    }
    zchan__out_t o;
    zchan__wire_reply_cancel_t m = {.reqid = rq->reqid, .status = p ? 0 : ZCHAN_ENOTFOUND, .cancelled = cancelled};
    zchan__wire_pack_reply_cancel(&o, &m);
    zchan__hub_reply_send(hub, rq, &o);
}

static void s_on_stat(hub_t *hub, const hub_req_t *rq)
{
    zchan__chan_t *ch;
    hub_tomb_t *t;
    if (!s_request_chan(hub, rq, zchan__wire_parse_stat, &ch, &t))
        return;
    zchan__wire_reply_stat_t m = {.reqid = rq->reqid};
    zchan_stat_t *st = &m.st;
    if (ch) {
        *st = (zchan_stat_t){.kind = ch->kind, .capacity = ch->capacity, .depth = zchan__chan_depth(ch),
                             .senders = ch->send.n, .receivers = ch->recv.n, .sent = ch->sent,
                             .delivered = ch->delivered, .dropped = ch->dropped, .lost = ch->lost,
                             .closed = ch->closed};
    } else {
        *st = (zchan_stat_t){.kind = t->kind, .capacity = t->capacity, .sent = t->sent, .delivered = t->delivered,
                             .dropped = t->dropped, .lost = t->lost, .closed = true};
    }
    zchan__out_t o;
    zchan__wire_pack_reply_stat(&o, &m);
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
    if (n != 2 || zchan__wire_parse_reqid(&hub->hdr, &rq.reqid) != 0) {
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

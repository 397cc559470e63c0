/*  out.c: what the hub sends on its ROUTER: replies to requests, credit
    (ACK, batched at the end of a read burst), deliveries and close notices.
    It implements the member ops (member.h) for the hub's remote members,
    and logs peers' bad messages at a limited rate.

    A send to a peer that has gone fails (ZMQ_ROUTER_MANDATORY); a delivery
    that fails tells the rules, which drop the receiver. Nothing here blocks.
*/
#include "hub.h"

//  Counts a bad message and logs it at most once a second.
void zchan__hub_proto_error(hub_t *hub, const char *what)
{
    hub->proto_errors++;
    int64_t now = zchan__now_ms();
    if (now - hub->last_log_ms >= 1000) {
        zsys_warning("zchan hub: dropped a bad message (%s); %" PRIu64 " bad in all, %" PRIu64
                     " not logged",
                     what, hub->proto_errors, hub->unlogged);
        hub->last_log_ms = now;
        hub->unlogged = 0;
    } else
        hub->unlogged++;
}

static const char *s_limit_names[ZCHAN__NLIMITS] = {"max-channels",        "max-attachments",
                                                    "max-capacity",        "max-broadcast-limit",
                                                    "max-channel-bytes",   "max-queued-bytes"};

void zchan__hub_refuse(hub_t *hub, const char *what, zchan_limit_t which)
{
    hub->refused++;
    int64_t now = zchan__now_ms();
    if (hub->refuse_log_ms == 0 || now - hub->refuse_log_ms >= 1000) {
        zsys_warning("zchan hub: refused %s over a resource limit (%s %" PRIu64 "); %" PRIu64
                     " refused in all, %" PRIu64 " not logged",
                     what, s_limit_names[which], hub->limit[which], hub->refused, hub->refuse_unlogged);
        hub->refuse_log_ms = now;
        hub->refuse_unlogged = 0;
    } else
        hub->refuse_unlogged++;
}

//  Sends a routing frame rid, then o's header. 0, or -1 (peer gone or its
//  pipe full).
static int s_send_hdr(hub_t *hub, const uint8_t *rid, size_t rid_len, zchan__out_t *o, bool more)
{
    if (zmq_send(hub->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    return zmq_send(hub->router, o->sbuf.data, o->sbuf.size, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

//  Sends header o, then a copy of payload if there is one, to remote peer
//  p; from a local party's thread, puts them in the outbox instead (a
//  delivery then counts as made: one that fails later drops the receiver,
//  as here). 0, or -1 (peer gone, its pipe full, or out of memory).
static int s_send_peer_msg(hub_t *hub, peer_t *p, zchan__out_t *o, zmq_msg_t *payload, bool deliver)
{
    if (zchan__hub_deferred(hub))
        return zchan__hub_outbox_add(hub, p, o, payload, deliver);
    if (s_send_hdr(hub, p->rid, p->rid_len, o, payload != NULL) != 0)
        return -1;
    if (!payload)
        return 0;
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, payload);
    if (zmq_msg_send(&copy, hub->router, 0) < 0) {
        zmq_msg_close(&copy);
        return -1;
    }
    return 0;
}

static int s_send_peer(hub_t *hub, peer_t *p, zchan__out_t *o)
{
    return s_send_peer_msg(hub, p, o, NULL, false);
}

static void s_send_closed(hub_t *hub, peer_t *p)
{
    zchan__out_t o;
    zchan__wire_closed_t m = {.reason = 0};
    zchan__wire_pack_closed(&o, &m);
    s_send_peer(hub, p, &o);
    zchan__out_fini(&o);
}

//  [CLOSED, NOT_ATTACHED] to the sender of rq: its handle is not an
//  attachment of this connection (the hub restarted, or a stranger). A
//  client that knows the field attaches again; an older one stops.
void zchan__hub_send_not_attached(hub_t *hub, const hub_req_t *rq)
{
    zchan__out_t o;
    zchan__wire_closed_t m = {.reason = ZCHAN__NOT_ATTACHED};
    zchan__wire_pack_closed(&o, &m);
    s_send_hdr(hub, rq->rid, rq->rid_len, &o, false);
    zchan__out_fini(&o);
}

void zchan__hub_flush_ack(hub_t *hub, peer_t *p)
{
    if (p->pending_ack == 0)
        return;
    zchan__out_t o;
    zchan__wire_count_t m = {.n = p->pending_ack};
    zchan__wire_pack_ack(&o, &m);
    s_send_peer(hub, p, &o);
    zchan__out_fini(&o);
    p->pending_ack = 0;
}

//  Sends the ACKs owed to senders, at the end of a read burst: to a sender
//  only once what it has out (accepted but not acknowledged, or not yet
//  accepted) is half its window or more. Below that it still holds more than
//  half its window, and an ACK per message would cost a message back per
//  message. The sender's true credit is never more than the hub's view, so
//  one that runs out has half a window or more out here, and gets its ACK.
void zchan__hub_flush_acks(hub_t *hub)
{
    for (size_t i = 0; i < hub->dirty.n; i++) {
        peer_t *p = (peer_t *) hub->dirty.v[i];
        p->dirty = false;
        if (p->role == ROLE_SENDER && p->m.ch
            && p->pending_ack + p->m.unaccepted >= (zchan_sender_window(p->m.ch->capacity) + 1) / 2)
            zchan__hub_flush_ack(hub, p);
    }
    hub->dirty.n = 0;
}

//  Puts sender p on the list whose ACKs are looked at after this burst.
static void s_mark_dirty(hub_t *hub, peer_t *p)
{
    if (!p->dirty && zchan__vec_add(&hub->dirty, p) == 0)
        p->dirty = true;
}

void zchan__hub_reply_send(hub_t *hub, const hub_req_t *rq, zchan__out_t *o)
{
    s_send_hdr(hub, rq->rid, rq->rid_len, o, false);
    zchan__out_fini(o);
}

void zchan__hub_reply_status(hub_t *hub, const hub_req_t *rq, int status)
{
    zchan__out_t o;
    zchan__wire_reply_t m = {.reqid = rq->reqid, .status = status};
    zchan__wire_pack_reply(&o, &m);
    zchan__hub_reply_send(hub, rq, &o);
}

// ---------------------------------------------------------------------------
// The member ops for the hub's peers

//  [DELIVER, dropped] + a copy of payload to receiver r.
static int s_deliver(void *env, zchan__member_t *r, zmq_msg_t *payload)
{
    hub_t *hub = env;
    if (r->local)
        return zchan__local_op_deliver(hub, r, payload);
    zchan__out_t o;
    zchan__wire_count_t m = {.n = r->dropped};
    zchan__wire_pack_deliver(&o, &m);
    int rc = s_send_peer_msg(hub, hub_peer_of(r), &o, payload, true);
    zchan__out_fini(&o);
    if (rc != 0)
        return -1;
    zchan__peer_arm(hub);
    return 0;
}

static zchan__member_t *s_sender(void *env, uint64_t token)
{
    peer_t *p = zchan__peer_get(env, token, ROLE_SENDER);
    return p ? &p->m : NULL;
}

static void s_ack(void *env, zchan__member_t *s)
{
    if (s->local) {
        zchan__local_op_ack(env, s);
        return;
    }
    peer_t *p = hub_peer_of(s);
    p->pending_ack++;
    s_mark_dirty(env, p);
    if (zchan__hub_deferred(env))
        zchan__hub_kick(env); // the hub sends it at the end of its wake-up
}

//  What it has out grew: its ACK may be due at the end of this burst.
static void s_owed(void *env, zchan__member_t *s)
{
    if (!s->local && hub_peer_of(s)->pending_ack) {
        s_mark_dirty(env, hub_peer_of(s));
        if (zchan__hub_deferred(env))
            zchan__hub_kick(env);
    }
}

static void s_holding(void *env, zchan__member_t *r)
{
    if (r->local)
        return; // a local party is never checked for being gone
    zchan__peer_arm(env);
    if (zchan__hub_deferred(env))
        zchan__hub_kick(env); // so that its sleep counts the check
}

static void s_over_limit(void *env, const char *what, zchan_limit_t which)
{
    zchan__hub_refuse(env, what, which);
}

//  [REFUSED, ELIMIT] to sender s.
static void s_refuse(void *env, zchan__member_t *s)
{
    if (s->local) {
        zchan__local_op_refuse(env, s);
        return;
    }
    zchan__out_t o;
    zchan__wire_count_t m = {.n = ZCHAN_ELIMIT};
    zchan__wire_pack_refused(&o, &m);
    s_send_peer(env, hub_peer_of(s), &o);
    zchan__out_fini(&o);
}

static bool s_gone(void *env, zchan__member_t *r)
{
    (void) env;
    return !r->local && zchan__peer_gone(hub_peer_of(r));
}

static void s_close_sender(void *env, zchan__member_t *s)
{
    if (s->local) {
        zchan__local_op_closed(env, s);
        return;
    }
    zchan__hub_flush_ack(env, hub_peer_of(s));
    s_send_closed(env, hub_peer_of(s));
}

//  [CLOSING] to receiver r: the channel is closed; CLOSED follows once r has
//  drained. A receiver that heard it does not bring the channel back if the
//  hub restarts before it drained.
static void s_closing(void *env, zchan__member_t *r)
{
    if (r->local)
        return; // a local receiver needs no warning: it reads on until CLOSED
    zchan__out_t o;
    zchan__wire_pack_closing(&o);
    s_send_peer(env, hub_peer_of(r), &o);
    zchan__out_fini(&o);
}

static void s_closed(void *env, zchan__member_t *r)
{
    if (r->local)
        zchan__local_op_closed(env, r);
    else
        s_send_closed(env, hub_peer_of(r));
}

static void s_release(void *env, zchan__member_t *m)
{
    if (m->local)
        zchan__local_op_release(env, m);
    else
        zchan__peer_free(env, hub_peer_of(m));
}

const zchan__member_ops_t zchan__hub_member_ops = {
    .deliver = s_deliver,
    .sender = s_sender,
    .ack = s_ack,
    .owed = s_owed,
    .holding = s_holding,
    .over_limit = s_over_limit,
    .refuse = s_refuse,
    .gone = s_gone,
    .close_sender = s_close_sender,
    .closing = s_closing,
    .closed = s_closed,
    .release = s_release,
};

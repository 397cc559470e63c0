/*  attach.c: the client side of one attachment (attach.h), shared by senders
    and receivers: attach, request, probe a silent hub, attach again after the
    hub lost the attachment, detach; and the attachment's one state.
*/
#include "attach.h"
#include <string.h>

//  The state a move to `to` reaches from cur (see the diagram in attach.h).
static int s_next(int cur, int to)
{
    if (cur == ZCHAN__ATT_DEAD || cur == to)
        return cur;
    switch (to) {
    case ZCHAN__ATT_ATTACHED:
        return cur == ZCHAN__ATT_NONE || cur == ZCHAN__ATT_REJOIN ? to : cur;
    case ZCHAN__ATT_REJOIN:
        return cur == ZCHAN__ATT_ATTACHED ? to : cur == ZCHAN__ATT_CLOSED ? ZCHAN__ATT_ENDED : cur;
    case ZCHAN__ATT_CLOSED:
        return cur == ZCHAN__ATT_NONE || cur == ZCHAN__ATT_ATTACHED ? to
               : cur == ZCHAN__ATT_REJOIN                           ? ZCHAN__ATT_ENDED
                                                                    : cur;
    case ZCHAN__ATT_ENDED:
        return cur == ZCHAN__ATT_HUB_LOST ? cur : to;
    case ZCHAN__ATT_HUB_LOST:
    case ZCHAN__ATT_DEAD:
        return to;
    default:
        return cur;
    }
}

zchan__att_state_t zchan__att_move(zchan__att_t *a, zchan__att_state_t to)
{
    int cur = atomic_load(&a->state);
    int next;
    do
        next = s_next(cur, (int) to);
    while (next != cur && !atomic_compare_exchange_weak(&a->state, &cur, next));
    return (zchan__att_state_t) next;
}

zchan__att_state_t zchan__att_state(const zchan__att_t *a)
{
    return (zchan__att_state_t) atomic_load(&a->state);
}

bool zchan__att_known(const zchan__att_t *a)
{
    int s = atomic_load(&a->state);
    return s == ZCHAN__ATT_ATTACHED || s == ZCHAN__ATT_CLOSED;
}

bool zchan__att_stopped(const zchan__att_t *a)
{
    return atomic_load(&a->state) >= ZCHAN__ATT_CLOSED;
}

bool zchan__att_must_rejoin(const zchan__att_t *a)
{
    return atomic_load(&a->state) == ZCHAN__ATT_REJOIN;
}

int zchan__att_request(zchan__att_t *a, zchan__out_t *o, uint64_t reqid, zchan__reply_t *reply,
                       zchan__att_other_fn *on_other, void *arg)
{
    int rc = zchan__out_send(o, a->sock, false, 0);
    if (rc != 0) {
        zmq_msg_init(&reply->frame);
        zchan__hdr_init(&reply->hdr);
        reply->status = rc;
        return rc;
    }
    return zchan__await_reply(a->sock, reqid, zchan__deadline(a->ctx->timeout_ms), reply, on_other, arg);
}

//  Attaches a's socket to its channel (ATTACH_S or ATTACH_R) and takes the
//  handle, kind and window or capacity the hub gives. Returns 0 or an error
//  (then handle is 0 and the state unchanged).
static int s_attach(zchan__att_t *a)
{
    zchan__out_t o;
    uint64_t reqid = zchan__reqid();
    if (a->sender) {
        zchan__wire_keyed_t q = {.reqid = reqid, .key = a->loc.key, .key_len = strlen(a->loc.key)};
        zchan__wire_pack_attach_s(&o, &q);
    } else {
        zchan__wire_attach_r_t q = {.reqid = reqid, .key = a->loc.key, .key_len = strlen(a->loc.key),
                                    .limit = a->limit ? a->limit : ZCHAN_BROADCAST_LIMIT};
        zchan__wire_pack_attach_r(&o, &q);
    }
    zchan__reply_t r;
    int rc = zchan__att_request(a, &o, reqid, &r, NULL, NULL);
    zchan__out_fini(&o);
    zchan__wire_reply_attach_t ra;
    if (rc == 0 && zchan__wire_parse_reply_attach(&r.hdr, &ra) != 0)
        rc = ZCHAN_EPROTO;
    zchan__reply_fini(&r);
    if (rc != 0) {
        a->handle = 0;
        return rc;
    }
    bool closed = ra.closed;
    a->handle = ra.handle;
    a->kind = (zchan_kind_t) ra.kind;
    a->given = ra.n;
    a->heard_ms = zchan__now_ms();
    a->probe_ms = -1;
    a->probe_reqid = 0;
    zchan__att_move(a, ZCHAN__ATT_ATTACHED);
    if (closed) // attached after a close: stopped at once
        zchan__att_move(a, ZCHAN__ATT_CLOSED);
    return 0;
}

//  A new DEALER socket connected to where a's channel is. NULL on failure.
static void *s_connect(zchan__att_t *a)
{
    int err;
    return zchan__dealer(a->ctx, a->loc.endpoint, a->loc.curve, &err);
}

int zchan__att_open(zchan__att_t *a, zchan_t *ch, bool sender, uint64_t limit)
{
    a->ctx = ch->ctx;
    a->what = sender ? "sender" : "receiver";
    a->sender = sender;
    a->limit = limit;
    a->rcvtimeo = -1;
    a->probe_ms = -1;
    atomic_init(&a->state, ZCHAN__ATT_NONE);
    zchan__chan_loc(ch, &a->loc);
    snprintf(a->endpoint, sizeof a->endpoint, "%s", ch->endpoint);
    //  A hub reached over inproc lives in this process: no probes.
    a->hb_ms = zchan__endpoint_in_process(ch->endpoint) ? 0 : zchan__ctx_heartbeat_timeout(ch->ctx);
    a->sock = s_connect(a);
    if (!a->sock)
        return ZCHAN_ESYS;
    return s_attach(a);
}

void zchan__att_fini(zchan__att_t *a)
{
    if (a->sock)
        zmq_close(a->sock);
    a->sock = NULL;
}

void zchan__att_kill(zchan__att_t *a)
{
    zchan__att_fini(a);
    zchan__att_move(a, ZCHAN__ATT_DEAD);
}

bool zchan__att_notice(zchan__att_t *a, zchan__hdr_t *h)
{
    int type = zchan__hdr_type(h);
    zchan__wire_closed_t cl;
    zchan__wire_reply_t rep;
    a->heard_ms = zchan__now_ms(); // anything, a probe's reply included
    a->probe_ms = -1;
    if (type == ZCHAN__CLOSED && zchan__wire_parse_closed(h, &cl) == 0 && cl.reason == ZCHAN__NOT_ATTACHED)
        zchan__att_move(a, ZCHAN__ATT_REJOIN); // not a close: the hub lost us
    else if (type == ZCHAN__CLOSED)
        zchan__att_closed(a);
    else if (type == ZCHAN__REPLY && a->probe_reqid && zchan__wire_parse_reply(h, &rep) == 0
             && rep.reqid == a->probe_reqid) {
        a->probe_reqid = 0;
        if (rep.status == ZCHAN_ENOTFOUND)
            zchan__att_move(a, ZCHAN__ATT_REJOIN);
    } else
        return false;
    return true;
}

int64_t zchan__att_probe_due(const zchan__att_t *a, int64_t since)
{
    if (a->hb_ms <= 0 || a->handle == 0 || zchan__att_state(a) != ZCHAN__ATT_ATTACHED)
        return -1;
    if (a->probe_ms >= 0)
        return a->probe_ms + a->hb_ms;
    return (a->heard_ms > since ? a->heard_ms : since) + a->hb_ms;
}

//  Sends the probe (see zchan__att_probe_step).
static void s_probe(zchan__att_t *a, uint64_t *consumed)
{
    zchan__out_t o;
    if (a->sender) {
        a->probe_reqid = zchan__reqid();
        zchan__wire_handle_req_t m = {.reqid = a->probe_reqid, .handle = a->handle};
        zchan__wire_pack_flush(&o, &m);
        zchan__out_send(&o, a->sock, false, ZMQ_DONTWAIT);
        zchan__out_fini(&o);
    } else {
        zchan__wire_credit_t m = {.handle = a->handle, .consumed = consumed ? *consumed : 0, .grant = 0};
        zchan__wire_pack_credit(&o, &m);
        if (zchan__out_send(&o, a->sock, false, ZMQ_DONTWAIT) == 0 && consumed)
            *consumed = 0;
        zchan__out_fini(&o);
        zchan__wire_pack_ping(&o, zchan__reqid());
        zchan__out_send(&o, a->sock, false, ZMQ_DONTWAIT);
        zchan__out_fini(&o);
    }
    a->probe_ms = zchan__now_ms();
}

void zchan__att_probe_step(zchan__att_t *a, uint64_t *consumed)
{
    if (a->probe_ms < 0) {
        s_probe(a, consumed);
        return;
    }
    zsys_warning("zchan: %s on %s: the hub at %s has not answered for %d ms; the %s stops", a->what, a->loc.key,
                 a->endpoint, (int) (zchan__now_ms() - a->heard_ms), a->what);
    zchan__att_move(a, ZCHAN__ATT_HUB_LOST);
}

int zchan__att_rejoin(zchan__att_t *a, bool closing)
{
    bool closed = closing;
    int rc = closed ? 0 : zchan__chan_rejoin(a->ctx, &a->loc, &closed);
    void *sock = NULL;
    if (rc == 0 && !closed) {
        sock = s_connect(a);
        if (!sock)
            rc = ZCHAN_ESYS;
    }
    if (rc == 0 && !closed) {
        zmq_close(a->sock);
        a->sock = sock;
        a->rcvtimeo = -1; // a new socket: ZeroMQ's default
        rc = s_attach(a);
    }
    if (rc == 0 && !closed) {
        a->reattached++;
        zsys_info("zchan: %s on %s: attached again at %s", a->what, a->loc.key, a->endpoint);
        return 0;
    }
    if (rc != 0) {
        zsys_warning("zchan: %s on %s: cannot attach again at %s (%s); the %s stops", a->what, a->loc.key,
                     a->endpoint, zchan_strerror(rc), a->what);
        zchan__att_move(a, ZCHAN__ATT_HUB_LOST);
        return rc;
    }
    zchan__att_move(a, ZCHAN__ATT_ENDED); // no DETACH to a hub that does not know us
    return ZCHAN_ECLOSED;
}

int zchan__att_detach(zchan__att_t *a, uint64_t consumed, zchan__att_other_fn *on_other, void *arg)
{
    if (!a->sock || !a->handle || !zchan__att_known(a))
        return 0;
    zchan__out_t o;
    uint64_t reqid = zchan__reqid();
    zchan__wire_detach_t m = {.reqid = reqid, .handle = a->handle, .consumed = consumed};
    zchan__wire_pack_detach(&o, &m);
    zchan__reply_t r;
    int rc = zchan__att_request(a, &o, reqid, &r, on_other, arg);
    zchan__out_fini(&o);
    zchan__reply_fini(&r);
    return rc;
}

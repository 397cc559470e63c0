/*  sender.c: a sender is one attachment (attach.c: its DEALER socket, state,
    probes and rejoining) to one channel on its hub, and its credit.

    Anycast sends spend credit: the hub grants a window at attach
    (zchan_sender_window of the capacity) and one more (ACK) for each message
    it accepts into the capacity. At capacity 0 the window is 1 and a send
    waits for its own acceptance, which is a receiver taking it; a send that
    times out cancels its message at the hub. Broadcast sends never wait for
    credit.

    Reading the socket when nothing is there costs ZeroMQ a system call, so a
    send reads what the hub sent (credit, a close) only when it is out of
    credit or every SENDER_PUMP_EVERY sends, never on every send.

    A send that waits for credit watches its hub as a receiver does: with
    heartbeats on, a hub silent for the heartbeat timeout is probed (FLUSH),
    and one that does not answer within another timeout is taken as gone: the
    sender stops and its sends fail with ECLOSED. A hub that answers that it
    does not know this sender (it restarted: ENOTFOUND to the probe, or
    [CLOSED, NOT_ATTACHED] to a DATA) is joined again: the sender finds its
    channel by name and attaches again, on a new connection, and the send
    goes on.
*/
#include "attach.h"
#include "local.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SENDER_PUMP_EVERY 32 // sends between reads of the hub's messages

struct zchan_sender_t {
    zchan__party_t party; // of ctx: inert once ctx is shut down
    zchan_ctx_t *ctx;
    zchan__att_t att;     // its attachment: socket, handle, state, probes
    uint64_t credit;
    bool rendezvous;
    bool unlimited;
    bool unflushed;       // sent since the last flush
    unsigned since_pump;  // sends since the hub's messages were last read
    pthread_t last_thread; // the thread that last sent
    bool used;
    char hub[ZCHAN__ID_MAX];
    char key[ZCHAN__EP_MAX];
    void *link; // this sender's place in ctx->senders
    int pins;   // zchan__senders_flush calls flushing it (under ctx->lock)
    zmq_msg_t hdr; // the DATA header, the same for every message
    int64_t wait_ms;      // when the current wait for credit began (probes count from here)
    int refused;          // the hub refused a message of it ([REFUSED, status]): the next send fails with that status
    bool lost;            // an attachment was lost with sends unconfirmed (zchan_sender_flush)
    bool local;           // hosted by its context's own hub: the fast path (lp, not att)
    zchan__lparty_t lp;
};

//  Handles a message from the hub that is not the reply being waited for.
static void s_on_other(void *arg, zchan__hdr_t *h, zmq_msg_t *payload)
{
    (void) payload;
    zchan_sender_t *s = (zchan_sender_t *) arg;
    if (zchan__att_notice(&s->att, h)) // a close, a lost attachment, a probe's answer
        return;
    int type = zchan__hdr_type(h);
    zchan__wire_count_t c;
    if (type == ZCHAN__ACK && zchan__wire_parse_ack(h, &c) == 0)
        s->credit += c.n;
    else if (type == ZCHAN__REFUSED && zchan__wire_parse_refused(h, &c) == 0)
        s->refused = c.n == ZCHAN_ELIMIT ? ZCHAN_ELIMIT : ZCHAN_EPROTO;
}

//  Reads every message waiting from the hub. Never blocks.
static void s_pump(zchan_sender_t *s)
{
    s->since_pump = 0;
    zchan__hdr_t h;
    bool init = false;
    while (true) {
        zmq_msg_t frames[2];
        zmq_msg_init(&frames[0]);
        zmq_msg_init(&frames[1]);
        size_t n = 0;
        int rc = zchan__recv_frames(s->att.sock, frames, 2, &n, ZMQ_DONTWAIT);
        if (rc == 0) {
            if (!init) {
                zchan__hdr_init(&h);
                init = true;
            }
            if (zchan__hdr_parse(&h, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0])) == 0)
                s_on_other(s, &h, NULL);
        }
        zmq_msg_close(&frames[0]);
        zmq_msg_close(&frames[1]);
        if (rc != 0)
            break;
    }
    if (init)
        zchan__hdr_fini(&h);
}

//  Waits until the hub sends something or the deadline passes, then pumps.
//  A hub silent for the heartbeat timeout is probed, and one that stays
//  silent for another is taken as gone (closed). Blocks in the socket's own
//  receive (one system call to sleep) rather than in zmq_poll, which costs
//  several. Returns 0 or ETIMEDOUT.
static int s_wait(zchan_sender_t *s, int64_t deadline)
{
    int64_t due = zchan__att_probe_due(&s->att, s->wait_ms);
    int64_t until = due >= 0 && (deadline < 0 || due < deadline) ? due : deadline;
    zmq_msg_t frames[2];
    zmq_msg_init(&frames[0]);
    zmq_msg_init(&frames[1]);
    size_t n = 0;
    int rc = zchan__recv_until(s->att.sock, &s->att.rcvtimeo, until, frames, 2, &n);
    if (rc == 0) {
        zchan__hdr_t h;
        zchan__hdr_init(&h);
        if (zchan__hdr_parse(&h, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0])) == 0)
            s_on_other(s, &h, NULL);
        zchan__hdr_fini(&h);
    }
    zmq_msg_close(&frames[0]);
    zmq_msg_close(&frames[1]);
    if (rc == 0) {
        s_pump(s);
        return 0;
    }
    if (rc != ZCHAN_ETIMEDOUT)
        return rc;
    int64_t now = zchan__now_ms();
    if (deadline >= 0 && now >= deadline)
        return ZCHAN_ETIMEDOUT;
    if (due >= 0 && now >= due)
        zchan__att_probe_step(&s->att, NULL);
    return 0;
}

//  One request on the sender's own socket, taking credit and close notices
//  that arrive before the reply.
static int s_request(zchan_sender_t *s, zchan__out_t *o, uint64_t reqid, zchan__reply_t *r)
{
    return zchan__att_request(&s->att, o, reqid, r, s_on_other, s);
}

//  Takes what the hub gave at an attach: the window, and the header of every
//  DATA message ([DATA, handle]).
static void s_attached(zchan_sender_t *s)
{
    zchan_kind_t kind = s->att.kind;
    s->credit = s->att.given;
    s->unlimited = kind == ZCHAN_BROADCAST;
    s->rendezvous = kind == ZCHAN_ANYCAST && s->att.given == 1;
    zchan__out_t o;
    zchan__wire_data_t d = {.handle = s->att.handle};
    zchan__wire_pack_data(&o, &d);
    zmq_msg_close(&s->hdr);
    zmq_msg_init_size(&s->hdr, o.sbuf.size);
    memcpy(zmq_msg_data(&s->hdr), o.sbuf.data, o.sbuf.size);
    zchan__out_fini(&o);
}

//  The context was shut down (destroyed, or the process exits) with this
//  sender not destroyed, and no call is in progress on it: its socket closes
//  and its sends fail with ECLOSED.
static void s_close_party(zchan__party_t *p)
{
    zchan_sender_t *s = (zchan_sender_t *) p;
    if (!s->local)
        zchan__att_kill(&s->att); // a local sender's calls see the shutdown themselves
}

//  A sender on a channel of its context's own hub: no socket, the channel's
//  state directly (local.h).
static zchan_sender_t *s_new_local(zchan_sender_t *s, zchan_t *ch, int saved_errno)
{
    s->local = true;
    int rc = zchan__local_attach(&s->lp, ch, false, 0);
    if (rc == 0)
        rc = zchan__party_join(s->ctx, &s->party, "sender", s->key, s_close_party);
    if (rc != 0) {
        zchan_sender_destroy(&s);
        return zchan__fail_null(rc);
    }
    zchan__errno_restore(saved_errno);
    return s;
}

zchan_sender_t *zchan_sender_new(zchan_t *ch)
{
    zchan__assert(ch);
    if (zchan__party_dead(&ch->party))
        return zchan__fail_null(ZCHAN_ECLOSED);
    int saved_errno = zchan_errno();
    zchan_sender_t *s = calloc(1, sizeof *s);
    if (!s)
        return zchan__fail_null(ZCHAN_ENOMEM);
    s->ctx = ch->ctx;
    zmq_msg_init(&s->hdr);
    snprintf(s->hub, sizeof s->hub, "%s", ch->info.hub);
    snprintf(s->key, sizeof s->key, "%s", ch->key);
    if (zchan__local_eligible(ch))
        return s_new_local(s, ch, saved_errno);
    int rc = zchan__att_open(&s->att, ch, true, 0);
    if (rc != 0) {
        zchan_sender_destroy(&s);
        return zchan__fail_null(rc);
    }
    s_attached(s);
    rc = zchan__party_join(s->ctx, &s->party, "sender", s->key, s_close_party);
    if (rc != 0) {
        zchan_sender_destroy(&s);
        return zchan__fail_null(rc);
    }
    pthread_mutex_lock(&s->ctx->lock);
    s->link = zlistx_add_end(s->ctx->senders, s);
    pthread_mutex_unlock(&s->ctx->lock);
    zchan__errno_restore(saved_errno);
    return s;
}

//  Attaches again, when the hub lost the attachment (a relay restarted; see
//  zchan__att_rejoin). Messages the hub had not accepted are not sent again:
//  nothing is delivered twice. On failure the sender stops (closed).
static void s_rejoin(zchan_sender_t *s)
{
    if (s->unflushed)
        s->lost = true; // what the old attachment had not confirmed may be gone
    if (zchan__att_rejoin(&s->att, false) == 0)
        s_attached(s);
}

uint64_t zchan_sender_reattached(const zchan_sender_t *s)
{
    zchan__assert(s);
    return s->att.reattached;
}

//  Stopped because its hub was lost (or, as before, its context was shut down).
static bool s_hub_lost(const zchan_sender_t *s)
{
    zchan__att_state_t st = zchan__att_state(&s->att);
    return st == ZCHAN__ATT_HUB_LOST || st == ZCHAN__ATT_DEAD;
}

bool zchan_sender_hub_lost(const zchan_sender_t *s)
{
    zchan__assert(s);
    return s_hub_lost(s);
}

//  Flush: when it returns 0, the hub has handled everything sent before.
static int s_flush(zchan_sender_t *s)
{
    zchan__out_t o;
    uint64_t reqid = zchan__reqid();
    zchan__wire_handle_req_t m = {.reqid = reqid, .handle = s->att.handle};
    zchan__wire_pack_flush(&o, &m);
    zchan__reply_t r;
    int rc = s_request(s, &o, reqid, &r);
    zchan__out_fini(&o);
    zchan__reply_fini(&r);
    if (rc == 0)
        s->unflushed = false;
    return rc;
}

#define SENDER_FLUSH_RESEND_MS 500 // a FLUSH unanswered this long is sent again

//  FLUSH, sent again (same request id) while unanswered: a request that was
//  on a connection the hub dropped (a message over its maximum size) is lost
//  with it, and the copy on the new connection gets the hub's answer for the
//  attachment (ENOTFOUND). A duplicate's late reply is skipped as stale.
static int s_flush_confirm(zchan_sender_t *s)
{
    uint64_t reqid = zchan__reqid();
    int64_t deadline = zchan__deadline(s->ctx->timeout_ms);
    while (true) {
        zchan__out_t o;
        zchan__wire_handle_req_t m = {.reqid = reqid, .handle = s->att.handle};
        zchan__wire_pack_flush(&o, &m);
        int rc = zchan__out_send(&o, s->att.sock, false, 0);
        zchan__out_fini(&o);
        if (rc != 0)
            return rc;
        int64_t now = zchan__now_ms(), until = now + SENDER_FLUSH_RESEND_MS;
        zchan__reply_t r;
        rc = zchan__await_reply(s->att.sock, reqid, deadline >= 0 && deadline < until ? deadline : until, &r,
                                s_on_other, s);
        zchan__reply_fini(&r);
        if (rc != ZCHAN_ETIMEDOUT || (deadline >= 0 && zchan__now_ms() >= deadline))
            return rc;
    }
}

//  zchan_sender_flush without the context check: waits for the hub to confirm
//  what s sent, and reports an attachment lost with sends unconfirmed.
static int s_flush_report(zchan_sender_t *s)
{
    int rc = 0;
    if (s_hub_lost(s))
        rc = ZCHAN_ECLOSED;
    else if (s->att.handle && zchan__att_known(&s->att) && s->unflushed) {
        rc = s_flush_confirm(s);
        if (rc == ZCHAN_ENOTFOUND && zchan__att_stopped(&s->att))
            rc = ZCHAN_ECLOSED; // the hub let go of a closed channel's sender
        else if (rc == ZCHAN_ENOTFOUND) {
            zchan__att_move(&s->att, ZCHAN__ATT_REJOIN); // it attaches again at its next send
            rc = 0;
        }
    }
    if (rc == 0 && !zchan__att_known(&s->att) && s->unflushed)
        s->lost = true; // the hub that had them forgot them
    if (rc == 0 && s->lost)
        rc = ZCHAN_ENOTFOUND;
    if (rc != ZCHAN_ETIMEDOUT && !s_hub_lost(s)) {
        s->lost = false;
        s->unflushed = false;
    }
    return rc ? zchan__fail(rc) : 0;
}

int zchan_sender_flush(zchan_sender_t *s)
{
    zchan__assert(s);
    if (!zchan__party_enter(&s->party))
        return zchan__fail(ZCHAN_ECLOSED); // its context was shut down
    //  A local sender's sends are at the channel once they returned.
    int rc = s->local ? 0 : s_flush_report(s);
    zchan__party_exit(&s->party);
    return rc;
}

void zchan_sender_destroy(zchan_sender_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    zchan_sender_t *s = *s_p;
    if (s->link) {
        pthread_mutex_lock(&s->ctx->lock);
        zlistx_delete(s->ctx->senders, s->link);
        while (s->pins > 0) // a close in another thread is flushing it
            pthread_cond_wait(&s->ctx->unpinned, &s->ctx->lock);
        pthread_mutex_unlock(&s->ctx->lock);
    }
    if (s->local)
        zchan__local_fini(&s->lp); // leaves the channel, unless the context was shut down
    //  A call that never ends: a shutdown of the context from now on leaves
    //  the socket to this destroy. A dead sender's socket is already closed.
    else if (zchan__party_enter(&s->party)) {
        //  Detaching also flushes: the hub answers after all this sender's data.
        int rc = zchan__att_detach(&s->att, 0, s_on_other, s);
        if (rc != 0 && s->unflushed)
            zsys_warning("zchan: sender on %s: could not confirm delivery of its last sends: %s", s->key,
                         zchan_strerror(rc));
        zchan__att_fini(&s->att);
    }
    zchan__party_leave(&s->party);
    zmq_msg_close(&s->hdr);
    free(s);
    *s_p = NULL;
}

//  Cancels an unaccepted rendezvous message. Returns true if it was cancelled
//  (so the send failed), false if a receiver took it meanwhile.
static bool s_cancel(zchan_sender_t *s)
{
    zchan__out_t o;
    uint64_t reqid = zchan__reqid();
    zchan__wire_handle_req_t m = {.reqid = reqid, .handle = s->att.handle};
    zchan__wire_pack_cancel(&o, &m);
    zchan__reply_t r;
    int rc = s_request(s, &o, reqid, &r);
    zchan__out_fini(&o);
    bool cancelled = true;
    zchan__wire_reply_cancel_t rc_m;
    if (rc == 0 && zchan__wire_parse_reply_cancel(&r.hdr, &rc_m) == 0)
        cancelled = rc_m.cancelled;
    zchan__reply_fini(&r);
    //  Either way the window is free again: the hub dropped the message, or
    //  a receiver took it (and its ACK came before this reply).
    if (s->credit == 0)
        s->credit = 1;
    return cancelled;
}

//  Sends the header and the payload frame, waiting for room until deadline.
static int s_send_frames(zchan_sender_t *s, zmq_msg_t *payload, int64_t deadline)
{
    while (true) {
        zmq_msg_t hdr;
        zmq_msg_init(&hdr);
        zmq_msg_copy(&hdr, &s->hdr);
        if (zmq_msg_send(&hdr, s->att.sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0) {
            //  The rest of a multipart message is always accepted.
            if (zmq_msg_send(payload, s->att.sock, 0) < 0)
                return zchan__zmq_error("send payload");
            return 0;
        }
        zmq_msg_close(&hdr);
        if (zmq_errno() != EAGAIN)
            return zchan__zmq_error("send");
        zmq_pollitem_t item = {s->att.sock, 0, ZMQ_POLLOUT, 0};
        if (zmq_poll(&item, 1, zchan__remaining(deadline)) == 0 && deadline >= 0 && zchan__now_ms() >= deadline)
            return ZCHAN_ETIMEDOUT;
    }
}

//  A local sender's send: straight into the channel (local.h).
static int s_send_local(zchan_sender_t *s, zchan_msg_t **msg_p, int timeout_ms)
{
    int rc = zchan__local_send(&s->lp, *msg_p, zchan__deadline(timeout_ms));
    if (rc != 0)
        return zchan__fail(rc);
    zchan_msg_destroy(msg_p);
    return 0;
}

static int s_send(zchan_sender_t *s, zchan_msg_t **msg_p, int timeout_ms)
{
    if (s->local)
        return s_send_local(s, msg_p, timeout_ms);
    s->last_thread = pthread_self();
    s->used = true;
    int64_t deadline = zchan__deadline(timeout_ms);
    if (s->credit == 0 || zchan__att_must_rejoin(&s->att) || ++s->since_pump >= SENDER_PUMP_EVERY)
        s_pump(s);
    bool waiting = false;
    while (!zchan__att_stopped(&s->att) && (zchan__att_must_rejoin(&s->att) || (!s->unlimited && s->credit == 0))) {
        if (!waiting) {
            s->wait_ms = zchan__now_ms(); // probes count from here
            waiting = true;
        }
        if (zchan__att_must_rejoin(&s->att)) {
            s_rejoin(s);
            continue;
        }
        int rc = s_wait(s, deadline);
        if (rc != 0)
            return zchan__fail(rc);
    }
    if (zchan__att_stopped(&s->att))
        return zchan__fail(ZCHAN_ECLOSED);
    if (s->refused) {
        //  An earlier message was refused by the hub (and counted lost
        //  there): this send reports it, once, and sends nothing.
        int err = s->refused;
        s->refused = 0;
        return zchan__fail(err);
    }
    zmq_msg_t payload;
    zmq_msg_init(&payload);
    //  A rendezvous send may be cancelled: keep the caller's copy until then.
    int rc = zchan__msg_to_frame(*msg_p, &payload, !s->rendezvous);
    if (rc == 0)
        rc = s_send_frames(s, &payload, deadline);
    if (rc != 0) {
        zmq_msg_close(&payload);
        return zchan__fail(rc);
    }
    s->unflushed = true;
    if (!s->unlimited)
        s->credit--;
    if (s->rendezvous) {
        //  Complete only when a receiver has taken it.
        s->wait_ms = zchan__now_ms();
        while (s->credit == 0 && zchan__att_state(&s->att) == ZCHAN__ATT_ATTACHED && !s->refused) {
            rc = s_wait(s, deadline);
            if (rc == ZCHAN_ETIMEDOUT && s_cancel(s))
                return zchan__fail(ZCHAN_ETIMEDOUT);
            if (rc != 0 && rc != ZCHAN_ETIMEDOUT)
                return zchan__fail(rc);
        }
        if (s_hub_lost(s))
            return zchan__fail(ZCHAN_ECLOSED); // never taken: the hub is gone
        if (s->refused) {
            //  The hub refused this one: the caller keeps it.
            rc = s->refused;
            s->refused = 0;
            return zchan__fail(rc);
        }
        if (zchan__att_must_rejoin(&s->att)) {
            //  The hub that had it forgot it: it was never taken. Attach
            //  again for the next send; this one fails, keeping the message.
            s_rejoin(s);
            return zchan__fail(zchan__att_stopped(&s->att) ? ZCHAN_ECLOSED : ZCHAN_ETIMEDOUT);
        }
        if (zchan__att_state(&s->att) == ZCHAN__ATT_ENDED)
            return zchan__fail(ZCHAN_ECLOSED); // closed, and forgotten by the hub: never taken
    }
    zchan_msg_destroy(msg_p);
    return 0;
}

int zchan_send(zchan_sender_t *s, zchan_msg_t **msg_p, int timeout_ms)
{
    zchan__assert(s);
    if (!msg_p || !*msg_p)
        return zchan__fail(ZCHAN_EINVAL);
    if (!zchan__party_enter(&s->party))
        return zchan__fail(ZCHAN_ECLOSED); // its context was shut down
    int saved_errno = zchan_errno();
    int rc = s_send(s, msg_p, timeout_ms);
    zchan__party_exit(&s->party);
    if (rc == 0)
        zchan__errno_restore(saved_errno); // reading the hub's messages may meet EAGAIN
    return rc;
}

int zchan__senders_flush(zchan_ctx_t *ctx, const char *hub, const char *key)
{
    //  The senders to flush are picked under ctx->lock, and flushed outside
    //  it: the hub takes ctx->lock to answer a create or an open, so a round
    //  trip to it under the lock would stall until the request timed out.
    //  Each picked sender is marked in a call, so a shutdown of the context
    //  does not close its socket under the flush, and pinned, so a destroy
    //  in another thread waits for the flush to end.
    int rc = 0;
    pthread_t self = pthread_self();
    zchan_sender_t **picked = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&ctx->lock);
    for (zchan_sender_t *s = zlistx_first(ctx->senders); s && rc == 0; s = zlistx_next(ctx->senders))
        if (s->used && s->unflushed && pthread_equal(s->last_thread, self) && streq(s->hub, hub)
            && streq(s->key, key) && zchan__att_state(&s->att) == ZCHAN__ATT_ATTACHED) {
            if (n == cap) {
                size_t new_cap = cap ? 2 * cap : 4;
                zchan_sender_t **more = realloc(picked, new_cap * sizeof *more);
                if (!more) {
                    rc = ZCHAN_ENOMEM;
                    break;
                }
                picked = more;
                cap = new_cap;
            }
            if (zchan__party_enter(&s->party)) {
                s->pins++;
                picked[n++] = s;
            }
        }
    pthread_mutex_unlock(&ctx->lock);
    for (size_t i = 0; i < n; i++) {
        zchan_sender_t *s = picked[i];
        if (rc == 0) {
            rc = s_flush(s);
            if (rc == ZCHAN_ENOTFOUND) {
                //  The hub lost this sender (it restarted): nothing of it to
                //  flush there. It attaches again at its next send.
                zchan__att_move(&s->att, ZCHAN__ATT_REJOIN);
                rc = 0;
            }
        }
        zchan__party_exit(&s->party);
    }
    if (n > 0) {
        pthread_mutex_lock(&ctx->lock);
        for (size_t i = 0; i < n; i++)
            picked[i]->pins--;
        pthread_cond_broadcast(&ctx->unpinned);
        pthread_mutex_unlock(&ctx->lock);
    }
    free(picked);
    return rc;
}

void zchan__senders_mark_closed(zchan_ctx_t *ctx, const char *hub, const char *key)
{
    pthread_mutex_lock(&ctx->lock);
    for (zchan_sender_t *s = zlistx_first(ctx->senders); s; s = zlistx_next(ctx->senders))
        if (streq(s->hub, hub) && streq(s->key, key))
            zchan__att_closed(&s->att);
    pthread_mutex_unlock(&ctx->lock);
}

static int s_send_built(zchan_sender_t *s, zchan_msg_t *msg, int timeout_ms)
{
    if (!msg)
        return zchan__fail(ZCHAN_ENOMEM);
    int rc = zchan_send(s, &msg, timeout_ms);
    zchan_msg_destroy(&msg);
    return rc;
}

int zchan_send_str(zchan_sender_t *s, const char *str, int timeout_ms)
{
    zchan__assert(s);
    if (!str)
        return zchan__fail(ZCHAN_EINVAL);
    zchan_msg_t *msg = zchan_msg_new();
    if (msg) {
        size_t n = strlen(str);
        msgpack_pack_str(zchan_msg_packer(msg), n);
        msgpack_pack_str_body(zchan_msg_packer(msg), str, n);
    }
    return s_send_built(s, msg, timeout_ms);
}

int zchan_send_int(zchan_sender_t *s, int64_t value, int timeout_ms)
{
    zchan__assert(s);
    zchan_msg_t *msg = zchan_msg_new();
    if (msg)
        msgpack_pack_int64(zchan_msg_packer(msg), value);
    return s_send_built(s, msg, timeout_ms);
}

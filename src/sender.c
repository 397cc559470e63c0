/*  sender.c: a sender is one DEALER socket attached to one channel on its hub.

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
#include "core.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SENDER_PUMP_EVERY 32 // sends between reads of the hub's messages

struct zchan_sender_t {
    zchan__party_t party; // of ctx: inert once ctx is shut down
    zchan_ctx_t *ctx;
    void *sock;
    uint64_t handle;
    zchan_kind_t kind;
    uint64_t credit;
    bool rendezvous;
    bool unlimited;
    atomic_bool closed;
    bool unflushed;       // sent since the last flush
    unsigned since_pump;  // sends since the hub's messages were last read
    int rcvtimeo;         // the socket's ZMQ_RCVTIMEO as last set
    pthread_t last_thread; // the thread that last sent
    bool used;
    char hub[ZCHAN__ID_MAX];
    char key[ZCHAN__EP_MAX];
    void *link; // this sender's place in ctx->senders
    int pins;   // zchan__senders_flush calls flushing it (under ctx->lock)
    zmq_msg_t hdr; // the DATA header, the same for every message
    //  Probes of a silent hub while a send waits (s_wait).
    int hb_ms;            // the context's heartbeat timeout, 0: no probes
    int64_t heard_ms;     // when the hub was last heard from
    int64_t wait_ms;      // when the current wait for credit began
    int64_t probe_ms;     // when an unanswered probe was sent, -1: none
    uint64_t probe_reqid; // the probe's request id, 0: none
    bool hub_lost;        // stopped because the hub was found gone
    bool detached;        // the hub does not know this attachment: attach again
    int refused;          // the hub refused a message of it ([REFUSED, status]): the next send fails with that status
    bool lost;            // an attachment was lost with sends unconfirmed (zchan_sender_flush)
    uint64_t reattached;  // how many times it did
    zchan__chanloc_t loc;   // ...where it finds its channel again
    char endpoint[ZCHAN__EP_MAX];
};

static void s_hub_lost(zchan_sender_t *s, const char *why);

//  Handles a message from the hub that is not the reply being waited for.
static void s_on_other(void *arg, zchan__hdr_t *h, zmq_msg_t *payload)
{
    (void) payload;
    zchan_sender_t *s = (zchan_sender_t *) arg;
    int type = zchan__hdr_type(h);
    zchan__wire_count_t c;
    zchan__wire_closed_t cl;
    zchan__wire_reply_t rep;
    s->heard_ms = zchan__now_ms(); // anything, a probe's reply included
    s->probe_ms = -1;
    if (type == ZCHAN__ACK && zchan__wire_parse_ack(h, &c) == 0)
        s->credit += c.n;
    else if (type == ZCHAN__CLOSED && zchan__wire_parse_closed(h, &cl) == 0 && cl.reason == ZCHAN__NOT_ATTACHED)
        s->detached = true;
    else if (type == ZCHAN__CLOSED)
        atomic_store(&s->closed, true);
    else if (type == ZCHAN__REFUSED && zchan__wire_parse_refused(h, &c) == 0)
        s->refused = c.n == ZCHAN_ELIMIT ? ZCHAN_ELIMIT : ZCHAN_EPROTO;
    else if (type == ZCHAN__REPLY && s->probe_reqid && zchan__wire_parse_reply(h, &rep) == 0
             && rep.reqid == s->probe_reqid) {
        s->probe_reqid = 0;
        if (rep.status == ZCHAN_ENOTFOUND)
            s->detached = true;
    }
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
        int rc = zchan__recv_frames(s->sock, frames, 2, &n, ZMQ_DONTWAIT);
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

// ---------------------------------------------------------------------------
// Watching the hub while a send waits

//  The sender stops for good: its hub vanished, or lost its attachment.
static void s_hub_lost(zchan_sender_t *s, const char *why)
{
    zsys_warning("zchan: sender on %s: the hub at %s %s; the sender stops", s->key, s->endpoint, why);
    s->hub_lost = true;
    atomic_store(&s->closed, true);
}

//  Asks the hub whether it still knows this sender: a FLUSH, which a live hub
//  answers at once (ENOTFOUND if the attachment is gone). Never blocks; on a
//  connection that is down the probe goes nowhere and stays unanswered.
static void s_probe(zchan_sender_t *s)
{
    zchan__out_t o;
    s->probe_reqid = zchan__reqid();
    zchan__wire_handle_req_t m = {.reqid = s->probe_reqid, .handle = s->handle};
    zchan__wire_pack_flush(&o, &m);
    zchan__out_send(&o, s->sock, false, ZMQ_DONTWAIT);
    zchan__out_fini(&o);
    s->probe_ms = zchan__now_ms();
}

//  When the hub is next due a look (a probe, or giving up on one), -1 never.
static int64_t s_probe_due(const zchan_sender_t *s)
{
    if (s->hb_ms <= 0 || s->hub_lost)
        return -1;
    if (s->probe_ms >= 0)
        return s->probe_ms + s->hb_ms;
    return (s->heard_ms > s->wait_ms ? s->heard_ms : s->wait_ms) + s->hb_ms;
}

//  A probe is due: send one, or give up on the one unanswered for hb_ms.
static void s_probe_step(zchan_sender_t *s)
{
    if (s->probe_ms < 0)
        s_probe(s);
    else
        s_hub_lost(s, "has not answered a probe");
}

//  Waits until the hub sends something or the deadline passes, then pumps.
//  A hub silent for the heartbeat timeout is probed, and one that stays
//  silent for another is taken as gone (closed). Blocks in the socket's own
//  receive (one system call to sleep) rather than in zmq_poll, which costs
//  several. Returns 0 or ETIMEDOUT.
static int s_wait(zchan_sender_t *s, int64_t deadline)
{
    int64_t due = s_probe_due(s);
    int64_t until = due >= 0 && (deadline < 0 || due < deadline) ? due : deadline;
    zmq_msg_t frames[2];
    zmq_msg_init(&frames[0]);
    zmq_msg_init(&frames[1]);
    size_t n = 0;
    int rc = zchan__recv_until(s->sock, &s->rcvtimeo, until, frames, 2, &n);
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
        s_probe_step(s);
    return 0;
}

//  One request on the sender's own socket, taking credit and close notices
//  that arrive before the reply.
static int s_request(zchan_sender_t *s, zchan__out_t *o, uint64_t reqid, zchan__reply_t *r)
{
    int rc = zchan__out_send(o, s->sock, false, 0);
    if (rc != 0) {
        zmq_msg_init(&r->frame);
        zchan__hdr_init(&r->hdr);
        return rc;
    }
    return zchan__await_reply(s->sock, reqid, zchan__deadline(s->ctx->timeout_ms), r, s_on_other, s);
}

//  Attaches the sender's socket to its channel (ATTACH_S) and takes the
//  handle, kind and window the hub gives. Returns 0 or an error.
static int s_attach(zchan_sender_t *s)
{
    zchan__out_t o;
    uint64_t reqid = zchan__reqid();
    zchan__wire_keyed_t q = {.reqid = reqid, .key = s->key, .key_len = strlen(s->key)};
    zchan__wire_pack_attach_s(&o, &q);
    zchan__reply_t r;
    int rc = s_request(s, &o, reqid, &r);
    zchan__out_fini(&o);
    zchan__wire_reply_attach_t a;
    if (rc == 0 && zchan__wire_parse_reply_attach(&r.hdr, &a) != 0)
        rc = ZCHAN_EPROTO;
    zchan__reply_fini(&r);
    if (rc != 0)
        return rc;
    uint64_t kind = a.kind, window = a.n;
    bool closed = a.closed;
    s->handle = a.handle;
    s->kind = (zchan_kind_t) kind;
    s->credit = window;
    s->unlimited = kind == ZCHAN_BROADCAST;
    s->rendezvous = kind == ZCHAN_ANYCAST && window == 1;
    atomic_store(&s->closed, closed);
    //  The header of every DATA message: [DATA, handle].
    zchan__wire_data_t d = {.handle = s->handle};
    zchan__wire_pack_data(&o, &d);
    zmq_msg_close(&s->hdr);
    zmq_msg_init_size(&s->hdr, o.sbuf.size);
    memcpy(zmq_msg_data(&s->hdr), o.sbuf.data, o.sbuf.size);
    zchan__out_fini(&o);
    return 0;
}

//  The context was shut down (destroyed, or the process exits) with this
//  sender not destroyed, and no call is in progress on it: its socket closes
//  and its sends fail with ECLOSED.
static void s_close_party(zchan__party_t *p)
{
    zchan_sender_t *s = (zchan_sender_t *) p;
    if (s->sock)
        zmq_close(s->sock);
    s->sock = NULL;
    s->hub_lost = true;
    atomic_store(&s->closed, true);
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
    s->rcvtimeo = -1;
    s->probe_ms = -1;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", ch->endpoint);
    zchan__chan_loc(ch, &s->loc);
    //  A hub reached over inproc lives in this process: no probes.
    s->hb_ms = strncmp(ch->endpoint, "inproc://", 9) == 0 ? 0 : zchan__ctx_heartbeat_timeout(ch->ctx);
    zmq_msg_init(&s->hdr);
    snprintf(s->hub, sizeof s->hub, "%s", ch->info.hub);
    snprintf(s->key, sizeof s->key, "%s", ch->key);
    s->sock = zchan__socket(ch->ctx, ZMQ_DEALER);
    if (!s->sock || zchan__connect(ch->ctx, s->sock, ch->endpoint, ch->info.curve) != 0) {
        zchan_sender_destroy(&s);
        return zchan__fail_null(ZCHAN_ESYS);
    }
    int rc = s_attach(s);
    if (rc != 0) {
        s->handle = 0;
        zchan_sender_destroy(&s);
        return zchan__fail_null(rc);
    }
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

// ---------------------------------------------------------------------------
// Attaching again, when the hub lost the attachment (a relay restarted)

//  Finds the channel again (creating it when its settings are known) and
//  attaches a fresh socket to it: a new connection, so nothing the old one
//  still carries (DATA the hub refuses, its refusals) can be mistaken for
//  the new attachment's. Messages the hub had not accepted are not sent
//  again: nothing is delivered twice. On failure the sender stops (closed).
static void s_rejoin(zchan_sender_t *s)
{
    s->detached = false;
    if (s->unflushed)
        s->lost = true; // what the old attachment had not confirmed may be gone

    bool closed = false;
    int rc = zchan__chan_rejoin(s->ctx, &s->loc, &closed);
    void *sock = NULL;
    if (rc == 0 && !closed) {
        sock = zchan__socket(s->ctx, ZMQ_DEALER);
        if (!sock || zchan__connect(s->ctx, sock, s->loc.endpoint, s->loc.curve) != 0)
            rc = ZCHAN_ESYS;
    }
    if (rc == 0 && !closed) {
        zmq_close(s->sock);
        s->sock = sock;
        s->rcvtimeo = -1; // a new socket: ZeroMQ's default
        sock = NULL;
        s->probe_ms = -1;
        s->probe_reqid = 0;
        s->heard_ms = zchan__now_ms();
        rc = s_attach(s);
    }
    if (sock)
        zmq_close(sock);
    if (rc == 0 && !closed) {
        s->reattached++;
        zsys_info("zchan: sender on %s: attached again at %s", s->key, s->endpoint);
        return;
    }
    if (rc != 0)
        zsys_warning("zchan: sender on %s: cannot attach again at %s (%s); the sender stops", s->key, s->endpoint,
                     zchan_strerror(rc));
    s->hub_lost = rc != 0; // no DETACH to a hub that does not know us
    atomic_store(&s->closed, true);
}

uint64_t zchan_sender_reattached(const zchan_sender_t *s)
{
    zchan__assert(s);
    return s->reattached;
}

bool zchan_sender_hub_lost(const zchan_sender_t *s)
{
    zchan__assert(s);
    return s->hub_lost;
}

//  Flush: when it returns 0, the hub has handled everything sent before.
static int s_flush(zchan_sender_t *s, int type)
{
    zchan__out_t o;
    uint64_t reqid = zchan__reqid();
    if (type == ZCHAN__DETACH) {
        zchan__wire_detach_t m = {.reqid = reqid, .handle = s->handle, .consumed = 0};
        zchan__wire_pack_detach(&o, &m);
    } else {
        zchan__wire_handle_req_t m = {.reqid = reqid, .handle = s->handle};
        zchan__wire_pack_flush(&o, &m);
    }
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
        zchan__wire_handle_req_t m = {.reqid = reqid, .handle = s->handle};
        zchan__wire_pack_flush(&o, &m);
        int rc = zchan__out_send(&o, s->sock, false, 0);
        zchan__out_fini(&o);
        if (rc != 0)
            return rc;
        int64_t now = zchan__now_ms(), until = now + SENDER_FLUSH_RESEND_MS;
        zchan__reply_t r;
        rc = zchan__await_reply(s->sock, reqid, deadline >= 0 && deadline < until ? deadline : until, &r,
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
    if (s->hub_lost)
        rc = ZCHAN_ECLOSED;
    else if (s->handle && !s->detached && s->unflushed) {
        rc = s_flush_confirm(s);
        if (rc == ZCHAN_ENOTFOUND && atomic_load(&s->closed))
            rc = ZCHAN_ECLOSED; // the hub let go of a closed channel's sender
        else if (rc == ZCHAN_ENOTFOUND) {
            s->detached = true; // it attaches again at its next send
            rc = 0;
        }
    }
    if (rc == 0 && s->detached && s->unflushed)
        s->lost = true;
    if (rc == 0 && s->lost)
        rc = ZCHAN_ENOTFOUND;
    if (rc != ZCHAN_ETIMEDOUT && !s->hub_lost) {
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
    int rc = s_flush_report(s);
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
    //  A call that never ends: a shutdown of the context from now on leaves
    //  the socket to this destroy. A dead sender's socket is already closed.
    if (zchan__party_enter(&s->party)) {
        //  Detaching also flushes: the hub answers after all this sender's data.
        if (s->sock && s->handle && !s->hub_lost && !s->detached) {
            int rc = s_flush(s, ZCHAN__DETACH);
            if (rc != 0 && s->unflushed)
                zsys_warning("zchan: sender on %s: could not confirm delivery of its last sends: %s", s->key,
                             zchan_strerror(rc));
        }
        if (s->sock)
            zmq_close(s->sock);
        s->sock = NULL;
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
    zchan__wire_handle_req_t m = {.reqid = reqid, .handle = s->handle};
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
        if (zmq_msg_send(&hdr, s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0) {
            //  The rest of a multipart message is always accepted.
            if (zmq_msg_send(payload, s->sock, 0) < 0)
                return zchan__zmq_error("send payload");
            return 0;
        }
        zmq_msg_close(&hdr);
        if (zmq_errno() != EAGAIN)
            return zchan__zmq_error("send");
        zmq_pollitem_t item = {s->sock, 0, ZMQ_POLLOUT, 0};
        if (zmq_poll(&item, 1, zchan__remaining(deadline)) == 0 && deadline >= 0 && zchan__now_ms() >= deadline)
            return ZCHAN_ETIMEDOUT;
    }
}

static int s_send(zchan_sender_t *s, zchan_msg_t **msg_p, int timeout_ms)
{
    s->last_thread = pthread_self();
    s->used = true;
    int64_t deadline = zchan__deadline(timeout_ms);
    if (s->credit == 0 || s->detached || ++s->since_pump >= SENDER_PUMP_EVERY)
        s_pump(s);
    bool waiting = false;
    while (!atomic_load(&s->closed) && (s->detached || (!s->unlimited && s->credit == 0))) {
        if (!waiting) {
            s->wait_ms = zchan__now_ms(); // probes count from here
            waiting = true;
        }
        if (s->detached) {
            s_rejoin(s);
            continue;
        }
        int rc = s_wait(s, deadline);
        if (rc != 0)
            return zchan__fail(rc);
    }
    if (atomic_load(&s->closed))
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
        while (s->credit == 0 && !atomic_load(&s->closed) && !s->detached && !s->refused) {
            rc = s_wait(s, deadline);
            if (rc == ZCHAN_ETIMEDOUT && s_cancel(s))
                return zchan__fail(ZCHAN_ETIMEDOUT);
            if (rc != 0 && rc != ZCHAN_ETIMEDOUT)
                return zchan__fail(rc);
        }
        if (s->hub_lost)
            return zchan__fail(ZCHAN_ECLOSED); // never taken: the hub is gone
        if (s->refused) {
            //  The hub refused this one: the caller keeps it.
            rc = s->refused;
            s->refused = 0;
            return zchan__fail(rc);
        }
        if (s->detached) {
            //  The hub that had it forgot it: it was never taken. Attach
            //  again for the next send; this one fails, keeping the message.
            s_rejoin(s);
            return zchan__fail(atomic_load(&s->closed) ? ZCHAN_ECLOSED : ZCHAN_ETIMEDOUT);
        }
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
            && streq(s->key, key) && !atomic_load(&s->closed) && !s->detached) {
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
            rc = s_flush(s, ZCHAN__FLUSH);
            if (rc == ZCHAN_ENOTFOUND) {
                //  The hub lost this sender (it restarted): nothing of it to
                //  flush there. It attaches again at its next send.
                s->detached = true;
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
            atomic_store(&s->closed, true);
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

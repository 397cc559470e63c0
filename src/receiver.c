/*  receiver.c: the public receiver calls (which dispatch on the receiver's
    kind) and the channel receiver: one attachment to a channel (attach.c:
    its DEALER socket, state, probes and rejoining), and its credit window.

    A channel receiver grants the hub credit (at most its window of messages
    on the way to it) and reports what it consumed. It asks for nothing until
    its first read or select, so a broadcast receiver that never reads holds
    exactly its limit at the hub. At anycast capacity 0 it asks for one
    message only while it waits, which is what makes a rendezvous.

    An anycast receiver's window fits its consumer: it starts at
    min(capacity, RECV_START) and doubles, up to ZCHAN_WINDOW_MAX, when the
    receiver runs dry (a read or select finds no message waiting on its
    socket) having consumed a whole window since its window last changed:
    its consumer keeps up, and more messages on the way would have been
    taken. A receiver that sits on messages never runs dry and keeps its
    small window, so it never hoards work a faster one could do. Doubling
    from w costs w messages consumed, so its window is at most
    min(capacity, RECV_START) + what it consumed. It reports (one CREDIT: what it consumed, and the grant
    that tops its credit up to its window) once half its window was handed
    to it since its last report, and when it runs dry: one report per half
    window while messages keep coming, none per message, and a lone message
    never waits for a report (its credit was granted before it came).
*/
#include "attach.h"
#include "local.h"
#include <stdlib.h>
#include <string.h>

#define RECV_WINDOW 16 // a broadcast receiver's smallest window
#define RECV_START 16  // an anycast receiver's first window, at most

//  A broadcast receiver's window: a quarter of its limit, at least RECV_WINDOW
//  and at most ZCHAN_WINDOW_MAX. So the default limit keeps the window of 16,
//  and a receiver given a large limit takes messages in large batches.
static uint64_t s_broadcast_window(uint64_t limit)
{
    uint64_t w = limit / 4;
    return w < RECV_WINDOW ? RECV_WINDOW : w > ZCHAN_WINDOW_MAX ? ZCHAN_WINDOW_MAX : w;
}

typedef struct {
    zchan_receiver_t head;
    zchan__party_t party; // of ctx: inert once ctx is shut down
    zchan_ctx_t *ctx;
    zchan__att_t att;    // its attachment: socket, handle, state, probes
    uint64_t window;
    uint64_t window_max; // what the window may grow to (anycast); broadcast: fixed
    uint64_t since_grow; // consumed since the window last changed
    uint64_t avail;      // messages the hub may still send
    uint64_t unreported; // consumed, not yet reported
    bool lazy;           // rendezvous: ask only while waiting
    zchan_msg_t *look;   // read from the socket, not yet returned
    uint64_t dropped;
    zchan__hdr_t hdr;    // decodes the hub's headers (its zone is reused)
    bool closing;        // the hub said the channel is closed (CLOSED follows)
} chan_recv_t;

//  Whether the receiver has stopped, its head's flag (which select, merge and
//  adaptors read) brought up to the attachment's state.
static bool s_stopped(chan_recv_t *cr)
{
    if (zchan__att_stopped(&cr->att))
        cr->head.stopped = true;
    return cr->head.stopped;
}

static void s_report(chan_recv_t *cr, uint64_t grant)
{
    if (grant == 0 && cr->unreported == 0)
        return;
    zchan__out_t o;
    zchan__wire_credit_t m = {.handle = cr->att.handle, .consumed = cr->unreported, .grant = grant};
    zchan__wire_pack_credit(&o, &m);
    if (zchan__out_send(&o, cr->att.sock, false, ZMQ_DONTWAIT) == 0) {
        cr->avail += grant;
        cr->unreported = 0;
    }
    zchan__out_fini(&o);
}

//  While messages flow: reports (consumption and a grant up to the window)
//  once half the window was handed since the last report.
static void s_report_due(chan_recv_t *cr)
{
    uint64_t grant = cr->window > cr->avail ? cr->window - cr->avail : 0;
    if (grant > 0 && grant >= (cr->window + 1) / 2)
        s_report(cr, grant);
}

//  Before a wait: the receiver ran dry (nothing waits on its socket). Once
//  it consumed a whole window since the window last changed, the window
//  doubles (up to window_max). Then it reports what it consumed and tops its
//  credit up to the window, if either is due: a receiver about to wait
//  leaves the hub nothing to wait for, so a credit the hub and it count
//  differently (say, a message lost with a connection) heals here.
static int s_prepare(zchan_receiver_t *r)
{
    chan_recv_t *cr = (chan_recv_t *) r;
    if (r->stopped || cr->look || !zchan__party_enter(&cr->party))
        return 0;
    if (cr->lazy)
        s_report(cr, cr->avail == 0 ? 1 : 0);
    else {
        if (cr->since_grow >= cr->window && cr->window < cr->window_max) {
            cr->window = cr->window * 2 < cr->window_max ? cr->window * 2 : cr->window_max;
            cr->since_grow = 0;
        }
        s_report(cr, cr->window > cr->avail ? cr->window - cr->avail : 0);
    }
    zchan__party_exit(&cr->party);
    return 0;
}

static size_t s_pollitems(zchan_receiver_t *r, zmq_pollitem_t *items, size_t max)
{
    chan_recv_t *cr = (chan_recv_t *) r;
    if (max >= 1) {
        //  A dead receiver has no socket: an fd of -1 is never ready (and it
        //  is ready itself, so its owner does not wait on it).
        items[0].socket = cr->att.sock;
        items[0].fd = cr->att.sock ? 0 : -1;
        items[0].events = ZMQ_POLLIN;
        items[0].revents = 0;
    }
    return 1;
}

//  Takes one message from the hub. Returns true if it set look or stopped.
static bool s_take(chan_recv_t *cr, zmq_msg_t *frames, size_t n)
{
    zchan__hdr_t *h = &cr->hdr;
    bool got = false;
    if (zchan__hdr_parse(h, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0])) == 0) {
        int type = zchan__hdr_type(h);
        zchan__wire_count_t d;
        if (zchan__att_notice(&cr->att, h)) { // a close, or the hub lost us
            s_stopped(cr);
            got = true;
        } else if (type == ZCHAN__DELIVER && n == 2 && zchan__wire_parse_deliver(h, &d) == 0) {
            if (cr->avail > 0)
                cr->avail--;
            cr->dropped = d.n;
            cr->look = zchan__msg_from_frame(&frames[1]);
            got = cr->look != NULL;
        } else if (type == ZCHAN__CLOSING)
            cr->closing = true;
    }
    return got;
}

static bool s_ready(zchan_receiver_t *r)
{
    chan_recv_t *cr = (chan_recv_t *) r;
    if (!zchan__party_enter(&cr->party))
        return true; // a read gives ECLOSED at once
    while (!cr->look && !r->stopped && !zchan__att_must_rejoin(&cr->att)) {
        zmq_msg_t frames[2];
        zmq_msg_init(&frames[0]);
        zmq_msg_init(&frames[1]);
        size_t n = 0;
        int rc = zchan__recv_frames(cr->att.sock, frames, 2, &n, ZMQ_DONTWAIT);
        if (rc == 0)
            s_take(cr, frames, n);
        zmq_msg_close(&frames[0]);
        zmq_msg_close(&frames[1]);
        if (rc != 0)
            break;
    }
    zchan__party_exit(&cr->party);
    return cr->look || r->stopped || zchan__att_must_rejoin(&cr->att);
}

//  Waits in the socket's own receive for one message from the hub, until
//  deadline: one system call to sleep, where zmq_poll costs several. Returns
//  0 (something came, or nothing and the deadline is not yet past: look
//  again) or an error (ETIMEDOUT once the deadline has passed).
static int s_block(chan_recv_t *cr, int64_t deadline)
{
    zmq_msg_t frames[2];
    zmq_msg_init(&frames[0]);
    zmq_msg_init(&frames[1]);
    size_t n = 0;
    //  What waits already needs no report and no wait; only a receiver that
    //  ran dry grants more (s_prepare) and sleeps.
    int rc = zchan__recv_frames(cr->att.sock, frames, 2, &n, ZMQ_DONTWAIT);
    if (rc != 0) {
        s_prepare(&cr->head);
        rc = zchan__recv_until(cr->att.sock, &cr->att.rcvtimeo, deadline, frames, 2, &n);
    }
    if (rc == 0)
        s_take(cr, frames, n);
    zmq_msg_close(&frames[0]);
    zmq_msg_close(&frames[1]);
    if (rc == ZCHAN_ETIMEDOUT)
        return deadline >= 0 && zchan__now_ms() >= deadline ? ZCHAN_ETIMEDOUT : 0;
    return rc;
}

//  Waits until a message or the stop is ready, or the deadline passes.
static int s_wait_until(chan_recv_t *cr, int64_t deadline)
{
    while (!cr->look && !cr->head.stopped && !zchan__att_must_rejoin(&cr->att)) {
        int rc = s_block(cr, deadline);
        if (rc != 0)
            return rc;
    }
    return 0;
}

//  Waits until a message or the stop is ready, or the deadline passes. With
//  heartbeats on, a hub silent for hb_ms is probed, and one that then stays
//  silent for hb_ms more is taken as gone: the receiver stops (ECLOSED).
static int s_wait(chan_recv_t *cr, int64_t deadline)
{
    while (true) {
        int64_t due = zchan__att_probe_due(&cr->att, 0);
        if (due < 0)
            return s_wait_until(cr, deadline);
        int rc = s_wait_until(cr, deadline >= 0 && deadline < due ? deadline : due);
        if (rc != ZCHAN_ETIMEDOUT || (deadline >= 0 && zchan__now_ms() >= deadline))
            return rc;
        due = zchan__att_probe_due(&cr->att, 0); // what came meanwhile counts
        if (due >= 0 && zchan__now_ms() >= due) {
            zchan__att_probe_step(&cr->att, &cr->unreported);
            if (s_stopped(cr))
                return 0; // the hub did not answer the probe
        }
    }
}

static void s_rejoin(chan_recv_t *cr);

static int s_recv_live(chan_recv_t *cr, zchan_msg_t **msg_p, int timeout_ms);

static int s_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms)
{
    chan_recv_t *cr = (chan_recv_t *) r;
    if (!zchan__party_enter(&cr->party))
        return zchan__fail(ZCHAN_ECLOSED); // its context was shut down
    int saved_errno = zchan_errno();
    int rc = s_recv_live(cr, msg_p, timeout_ms);
    zchan__party_exit(&cr->party);
    if (rc == 0)
        zchan__errno_restore(saved_errno); // waits and reads meet EAGAIN on the way
    return rc;
}

static int s_recv_live(chan_recv_t *cr, zchan_msg_t **msg_p, int timeout_ms)
{
    zchan_receiver_t *r = &cr->head;
    int64_t deadline = zchan__deadline(timeout_ms);
    while (true) {
        if (!cr->look && !r->stopped) {
            int rc = s_wait(cr, deadline);
            if (rc != 0)
                return zchan__fail(rc);
        }
        if (!zchan__att_must_rejoin(&cr->att) || r->stopped || cr->look)
            break;
        s_rejoin(cr); // then wait on, within the same deadline
        s_prepare(r);
    }
    if (!cr->look)
        return zchan__fail(ZCHAN_ECLOSED);
    zchan_msg_t *msg = cr->look;
    cr->look = NULL;
    cr->unreported++;
    cr->since_grow++;
    //  Keep the hub's view of consumption fresh while messages flow.
    if (!cr->lazy)
        s_report_due(cr);
    if (!zchan__msg_valid(msg)) {
        zchan_msg_destroy(&msg);
        return zchan__fail(ZCHAN_EPROTO);
    }
    *msg_p = msg;
    return 0;
}

static void s_destroy(zchan_receiver_t *r)
{
    chan_recv_t *cr = (chan_recv_t *) r;
    //  A call that never ends: a shutdown of the context from now on leaves
    //  the socket to this destroy. A dead receiver's socket is already closed.
    if (zchan__party_enter(&cr->party)) {
        //  Graceful: the hub takes back whatever it handed us that we did not
        //  return from zchan_recv (the look-ahead included). A receiver that
        //  stopped on the close detaches too: the hub learns what it consumed
        //  since its last report, rather than taking it for a dead receiver's.
        //  Messages that come before the reply are the hub's to take back.
        int rc = zchan__att_detach(&cr->att, cr->unreported, NULL, NULL);
        if (rc != 0)
            zsys_warning("zchan: receiver could not detach: %s", zchan_strerror(rc));
        zchan__att_fini(&cr->att);
    }
    zchan__party_leave(&cr->party);
    zchan_msg_destroy(&cr->look);
    zchan__hdr_fini(&cr->hdr);
}

static void s_hold(zchan_receiver_t *r, bool on)
{
    chan_recv_t *cr = (chan_recv_t *) r;
    if (on)
        zchan__party_hold(&cr->party);
    else
        zchan__party_exit(&cr->party);
}

static const zchan__recv_ops_t s_chan_ops = {
    .prepare = s_prepare,
    .pollitems = s_pollitems,
    .ready = s_ready,
    .recv = s_recv,
    .destroy = s_destroy,
    .hold = s_hold,
};

//  Takes what the hub gave at an attach: the kind and capacity, which make
//  the window; a channel closed already stops the receiver at once.
static void s_attached(chan_recv_t *cr)
{
    zchan_kind_t kind = cr->att.kind;
    uint64_t capacity = cr->att.given, limit = cr->att.limit;
    cr->lazy = kind == ZCHAN_ANYCAST && capacity == 0;
    //  Broadcast: a fixed window. Anycast: min(capacity, RECV_START) to
    //  start with (1 at capacity 0, where it stays), growing to
    //  ZCHAN_WINDOW_MAX with a consumer that keeps up.
    cr->window = kind == ZCHAN_BROADCAST ? s_broadcast_window(limit ? limit : ZCHAN_BROADCAST_LIMIT)
                 : capacity < RECV_START ? (capacity ? capacity : 1) : RECV_START;
    cr->window_max = kind == ZCHAN_BROADCAST || cr->lazy ? cr->window : ZCHAN_WINDOW_MAX;
    cr->since_grow = 0;
    s_stopped(cr);
}

//  The context was shut down (destroyed, or the process exits) with this
//  receiver not destroyed, and no call is in progress on it: its socket
//  closes and its reads give ECLOSED.
static void s_close_party(zchan__party_t *p)
{
    chan_recv_t *cr = (chan_recv_t *) ((char *) p - offsetof(chan_recv_t, party));
    zchan__att_kill(&cr->att);
    cr->head.stopped = true;
}

zchan_receiver_t *zchan_receiver_new(zchan_t *ch, size_t limit)
{
    zchan__assert(ch);
    if (zchan__party_dead(&ch->party))
        return zchan__fail_null(ZCHAN_ECLOSED);
    if (zchan__local_eligible(ch))
        return zchan__local_receiver_new(ch, limit); // hosted by our own hub: the fast path
    int saved_errno = zchan_errno();
    chan_recv_t *cr = calloc(1, sizeof *cr);
    if (!cr)
        return zchan__fail_null(ZCHAN_ENOMEM);
    cr->head.ops = &s_chan_ops;
    cr->ctx = ch->ctx;
    zchan__hdr_init(&cr->hdr);
    zchan_receiver_t *r = &cr->head;
    int rc = zchan__att_open(&cr->att, ch, false, limit);
    if (rc != 0) {
        zchan_receiver_destroy(&r);
        return zchan__fail_null(rc);
    }
    s_attached(cr);
    rc = zchan__party_join(cr->ctx, &cr->party, "receiver", cr->att.loc.key, s_close_party);
    if (rc != 0) {
        zchan_receiver_destroy(&r);
        return zchan__fail_null(rc);
    }
    zchan__errno_restore(saved_errno);
    return r;
}

//  Attaches again, when the hub lost the attachment (a relay restarted; see
//  zchan__att_rejoin). By the time the hub's [CLOSED, NOT_ATTACHED] is read,
//  every DELIVER that reached this socket before it has been returned by
//  zchan_recv, so nothing it was handed is lost or read twice. A receiver
//  told CLOSING (the channel was closed before the hub lost it) does not
//  bring the channel back: it stops. On failure it stops too (ECLOSED).
static void s_rejoin(chan_recv_t *cr)
{
    cr->avail = 0;
    cr->unreported = 0; // consumed at the hub that forgot us
    if (zchan__att_rejoin(&cr->att, cr->closing) == 0)
        s_attached(cr);
    s_stopped(cr);
}

uint64_t zchan_receiver_reattached(const zchan_receiver_t *r)
{
    zchan__assert(r);
    if (r->ops != &s_chan_ops)
        return 0;
    return ((const chan_recv_t *) r)->att.reattached;
}

bool zchan_receiver_hub_lost(const zchan_receiver_t *r)
{
    zchan__assert(r);
    if (r->ops != &s_chan_ops)
        return false;
    return zchan__att_state(&((const chan_recv_t *) r)->att) == ZCHAN__ATT_HUB_LOST;
}

uint64_t zchan_receiver_dropped(const zchan_receiver_t *r)
{
    zchan__assert(r);
    uint64_t dropped;
    if (zchan__local_receiver_dropped(r, &dropped))
        return dropped;
    if (r->ops != &s_chan_ops)
        return 0;
    return ((const chan_recv_t *) r)->dropped;
}

void zchan_receiver_destroy(zchan_receiver_t **r_p)
{
    if (!r_p || !*r_p)
        return;
    zchan_receiver_t *r = *r_p;
    r->ops->destroy(r);
    free(r);
    *r_p = NULL;
}

int zchan_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms)
{
    zchan__assert(r);
    if (!msg_p)
        return zchan__fail(ZCHAN_EINVAL);
    r->selected_unread = false;
    return r->ops->recv(r, msg_p, timeout_ms);
}

int zchan_recv_str(zchan_receiver_t *r, char **str_p, int timeout_ms)
{
    zchan__assert(r);
    if (!str_p)
        return zchan__fail(ZCHAN_EINVAL);
    zchan_msg_t *msg = NULL;
    int rc = zchan_recv(r, &msg, timeout_ms);
    if (rc != 0)
        return rc;
    const msgpack_object *o = zchan_msg_object(msg);
    rc = ZCHAN_ETYPE;
    if (o && (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN)) {
        const char *p = o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr : o->via.bin.ptr;
        size_t n = o->type == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
        *str_p = zchan__strndup(p, n);
        rc = *str_p ? 0 : ZCHAN_ENOMEM;
    }
    zchan_msg_destroy(&msg);
    return rc ? zchan__fail(rc) : 0;
}

int zchan_recv_int(zchan_receiver_t *r, int64_t *value_p, int timeout_ms)
{
    zchan__assert(r);
    if (!value_p)
        return zchan__fail(ZCHAN_EINVAL);
    zchan_msg_t *msg = NULL;
    int rc = zchan_recv(r, &msg, timeout_ms);
    if (rc != 0)
        return rc;
    const msgpack_object *o = zchan_msg_object(msg);
    rc = ZCHAN_ETYPE;
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *value_p = (int64_t) o->via.u64;
        rc = 0;
    } else if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *value_p = o->via.i64;
        rc = 0;
    }
    zchan_msg_destroy(&msg);
    return rc ? zchan__fail(rc) : 0;
}

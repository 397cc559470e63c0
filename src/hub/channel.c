/*  channel.c: a channel's rules (see channel.h). No sockets: the members are
    reached through ch->ops. Nothing here asserts on what a peer sent.
*/
#include "channel.h"
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// The bytes held

uint64_t zchan__msg_cost(const zmq_msg_t *msg)
{
    return (uint64_t) zmq_msg_size((zmq_msg_t *) msg) + ZCHAN__MSG_OVERHEAD;
}

//  true if ch (and its budget) may hold cost more bytes within their limits.
static bool s_bytes_fit(const zchan__chan_t *ch, uint64_t cost)
{
    return ch->bytes + cost <= ch->budget->chan_max && ch->budget->all + cost <= ch->budget->all_max;
}

//  The limit that cost more bytes in ch would break.
static zchan_limit_t s_over(const zchan__chan_t *ch, uint64_t cost)
{
    return ch->bytes + cost > ch->budget->chan_max ? ZCHAN_LIMIT_CHANNEL_BYTES : ZCHAN_LIMIT_QUEUED_BYTES;
}

static void s_bytes_add(zchan__chan_t *ch, uint64_t cost)
{
    ch->bytes += cost;
    ch->budget->all += cost;
}

static void s_bytes_sub(zchan__chan_t *ch, uint64_t cost)
{
    ch->bytes -= cost;
    ch->budget->all -= cost;
}

//  Frees node n of ch, and its bytes.
static void s_node_free(zchan__chan_t *ch, zchan__node_t *n)
{
    s_bytes_sub(ch, zchan__msg_cost(&n->payload));
    zchan__node_free(n);
}

static void s_fifo_clear(zchan__chan_t *ch, zchan__fifo_t *f)
{
    zchan__node_t *n;
    while ((n = zchan__fifo_pop(f)))
        s_node_free(ch, n);
}

//  Takes the oldest message out of r's ring, and its bytes out of the count.
static void s_ring_pop(zchan__chan_t *ch, zchan__member_t *r)
{
    uint64_t cost = zchan__msg_cost(zchan__ring_at(&r->ring, 0));
    r->ring_bytes -= cost;
    s_bytes_sub(ch, cost);
    zchan__ring_pop(&r->ring);
}

// ---------------------------------------------------------------------------
// A channel and its members

zchan__chan_t *zchan__chan_new(const char *key, zchan_kind_t kind, size_t capacity, bool resend_latest,
                               zchan__bytes_t *budget, const zchan__member_ops_t *ops, void *env)
{
    zchan__chan_t *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->key = strdup(key);
    if (!ch->key) {
        free(ch);
        return NULL;
    }
    ch->kind = kind;
    ch->capacity = capacity;
    ch->resend_latest = resend_latest;
    ch->budget = budget;
    ch->ops = ops;
    ch->env = env;
    zmq_msg_init(&ch->latest);
    return ch;
}

void zchan__chan_destroy(zchan__chan_t **ch_p)
{
    zchan__chan_t *ch = *ch_p;
    if (!ch)
        return;
    s_fifo_clear(ch, &ch->queue);
    if (ch->has_latest)
        s_bytes_sub(ch, zchan__msg_cost(&ch->latest));
    zmq_msg_close(&ch->latest);
    zchan__vec_fini(&ch->recv);
    zchan__vec_fini(&ch->send);
    free(ch->key);
    free(ch);
    *ch_p = NULL;
}

void zchan__member_fini(zchan__member_t *m)
{
    if (m->ch) {
        s_fifo_clear(m->ch, &m->inflight);
        s_bytes_sub(m->ch, m->ring_bytes);
    } else
        zchan__fifo_clear(&m->inflight);
    m->ring_bytes = 0;
    zchan__ring_fini(&m->ring);
}

static zchan__member_t *s_recv(const zchan__chan_t *ch, size_t i)
{
    return (zchan__member_t *) ch->recv.v[i];
}

//  Credits the sender named token with one accepted message, if it is there.
static void s_ack(zchan__chan_t *ch, uint64_t token)
{
    zchan__member_t *s = ch->ops->sender(ch->env, token);
    if (!s)
        return; // the sender has gone; nobody waits for this credit
    if (s->unaccepted > 0)
        s->unaccepted--;
    ch->ops->ack(ch->env, s);
}

//  Takes receiver r out of ch and releases it. An anycast receiver's
//  inflight messages go back to the front of the queue (requeue) or are
//  counted lost.
static void s_receiver_gone(zchan__chan_t *ch, zchan__member_t *r, bool requeue)
{
    if (ch->kind == ZCHAN_ANYCAST) {
        //  Give back in order, at the front: they were first in line.
        size_t k = r->inflight.len;
        zchan__node_t **tmp = k ? malloc(k * sizeof *tmp) : NULL;
        if (requeue && tmp) {
            for (size_t i = 0; i < k; i++)
                tmp[i] = zchan__fifo_pop(&r->inflight);
            for (size_t i = k; i-- > 0;)
                zchan__fifo_push_front(&ch->queue, tmp[i]);
            ch->nacc += k; // accepted already: the channel may wait with more than its capacity a while
            ch->unacc = NULL;
            ch->unacc_stale = true;
        } else {
            ch->lost += r->inflight.len;
            s_fifo_clear(ch, &r->inflight);
        }
        free(tmp);
    }
    zchan__vec_remove(&ch->recv, r);
    if (ch->rr >= ch->recv.n)
        ch->rr = 0;
    zchan__member_fini(r);
    r->ch = NULL;
    ch->ops->release(ch->env, r);
}

//  Drops receiver r, found gone. What it held is counted lost, not given
//  back: it may have consumed some of it, and nothing is delivered twice.
static void s_drop_gone(zchan__chan_t *ch, zchan__member_t *r)
{
    if (ch->kind == ZCHAN_ANYCAST)
        zsys_warning("zchan hub: a receiver of %s is gone; the %zu messages it held are counted lost",
                     ch->key, r->inflight.len);
    else
        zsys_warning("zchan hub: a receiver of %s is gone; %zu messages kept for it are dropped", ch->key,
                     r->ring.len);
    s_receiver_gone(ch, r, false);
}

// ---------------------------------------------------------------------------
// Anycast

//  Accepts queued messages while the capacity allows, crediting their
//  senders. The capacity counts only what waits here (the accepted, not yet
//  delivered): what a receiver was handed counts in its window instead.
static void s_anycast_accept(zchan__chan_t *ch)
{
    if (ch->nacc >= ch->capacity || ch->nacc >= ch->queue.len)
        return; // full, or nothing waits to be accepted
    zchan__node_t *n = ch->unacc;
    if (ch->unacc_stale) {
        //  Only after a hand-back or a cancel: the common changes (a push at
        //  the tail, a pop at the head) keep unacc, so this is not O(C) per
        //  message.
        n = ch->queue.head;
        for (size_t i = 0; i < ch->nacc && n; i++)
            n = n->next;
    }
    while (n && ch->nacc < ch->capacity) {
        ch->nacc++;
        s_ack(ch, n->sender);
        n = n->next;
    }
    ch->unacc = n;
    ch->unacc_stale = false;
}

//  Takes the head off ch's queue, keeping track of the first unaccepted node.
static zchan__node_t *s_queue_pop(zchan__chan_t *ch)
{
    zchan__node_t *n = zchan__fifo_pop(&ch->queue);
    if (n && n == ch->unacc)
        ch->unacc = ch->queue.head; // nothing was accepted: the next is not either
    return n;
}

//  The next receiver (round robin) with credit, or NULL.
static zchan__member_t *s_next_receiver(zchan__chan_t *ch)
{
    for (size_t k = 0; k < ch->recv.n; k++) {
        size_t i = (ch->rr + k) % ch->recv.n;
        zchan__member_t *r = s_recv(ch, i);
        if (r->avail > 0 && !r->closed_sent) {
            ch->rr = (i + 1) % ch->recv.n;
            return r;
        }
    }
    return NULL;
}

static void s_anycast_deliver(zchan__chan_t *ch)
{
    while (ch->queue.len > 0) {
        if (ch->nacc == 0 && !ch->closed && ch->capacity > 0)
            s_anycast_accept(ch); // a delivery made room: the next is accepted first
        bool accepted = ch->nacc > 0;
        if (!accepted && !ch->closed && ch->capacity > 0)
            break; // nothing accepted
        zchan__member_t *r = s_next_receiver(ch);
        if (!r)
            break;
        zchan__node_t *n = ch->queue.head;
        if (ch->ops->deliver(ch->env, r, &n->payload) != 0) {
            //  Gone: what it held is lost, as for a receiver found dead.
            s_drop_gone(ch, r);
            s_anycast_accept(ch); // its share of the capacity is free
            continue;
        }
        s_queue_pop(ch);
        if (accepted)
            ch->nacc--;
        else {
            //  Rendezvous (or after a close): taken means accepted.
            s_ack(ch, n->sender);
        }
        r->avail--;
        zchan__fifo_push(&r->inflight, n);
        ch->delivered++;
    }
}

static void s_anycast_finish_close(zchan__chan_t *ch)
{
    if (!ch->closed || ch->queue.len > 0)
        return;
    for (size_t i = 0; i < ch->recv.n; i++) {
        zchan__member_t *r = s_recv(ch, i);
        if (!r->closed_sent) {
            ch->ops->closed(ch->env, r);
            r->closed_sent = true;
        }
    }
}

static void s_anycast_pump(zchan__chan_t *ch)
{
    s_anycast_accept(ch);
    s_anycast_deliver(ch);
    s_anycast_accept(ch); // the room the deliveries made
    if (ch->closed && ch->queue.len > 0) {
        //  Messages that no receiver can take any more reach nobody: those
        //  returned after every receiver was told of the close, and those of
        //  a channel closed with no receiver attached (one attaching later is
        //  stopped at once). Count them rather than keep them forever.
        bool anyone = false;
        for (size_t i = 0; i < ch->recv.n && !anyone; i++)
            anyone = !s_recv(ch, i)->closed_sent;
        if (!anyone) {
            ch->lost += ch->queue.len;
            zsys_warning("zchan hub: %zu messages of closed channel %s had no receiver left",
                         ch->queue.len, ch->key);
            s_fifo_clear(ch, &ch->queue);
            ch->nacc = 0;
            ch->unacc = NULL;
            ch->unacc_stale = false;
        }
    }
    s_anycast_finish_close(ch);
}

//  Marks count inflight messages of an anycast receiver consumed.
static void s_consumed(zchan__chan_t *ch, zchan__member_t *r, uint64_t count)
{
    while (count-- > 0 && r->inflight.len > 0)
        s_node_free(ch, zchan__fifo_pop(&r->inflight));
}

// ---------------------------------------------------------------------------
// Broadcast

static void s_ring_push(zchan__chan_t *ch, zchan__member_t *r, zmq_msg_t *payload)
{
    if (!r->ring.slot)
        return;
    //  The byte limits hold as the count limit does: the oldest go first,
    //  counted dropped; a message larger than what is left is dropped itself.
    uint64_t cost = zchan__msg_cost(payload);
    if (!s_bytes_fit(ch, cost)) {
        ch->ops->over_limit(ch->env, "to keep a broadcast message for a receiver", s_over(ch, cost));
        //  What the others hold stays: if the message does not fit even in
        //  an empty ring, it is the one dropped.
        if (ch->bytes - r->ring_bytes + cost > ch->budget->chan_max
            || ch->budget->all - r->ring_bytes + cost > ch->budget->all_max) {
            r->dropped++;
            ch->dropped++;
            return;
        }
        while (r->ring.len > 0 && !s_bytes_fit(ch, cost)) {
            s_ring_pop(ch, r);
            r->dropped++;
            ch->dropped++;
        }
    }
    if (!zchan__ring_make_room(&r->ring)) {
        s_ring_pop(ch, r);
        r->dropped++;
        ch->dropped++;
    }
    zchan__ring_push(&r->ring, payload);
    r->ring_bytes += cost;
    s_bytes_add(ch, cost);
}

//  Hands receiver r what its credit allows from its ring; tells it of the
//  close once it is empty. r may be released (gone).
static void s_broadcast_pump(zchan__chan_t *ch, zchan__member_t *r)
{
    while (r->avail > 0 && r->ring.len > 0) {
        if (ch->ops->deliver(ch->env, r, zchan__ring_at(&r->ring, 0)) != 0) {
            s_receiver_gone(ch, r, false);
            return;
        }
        s_ring_pop(ch, r);
        r->avail--;
        ch->delivered++;
    }
    if (ch->closed && r->ring.len == 0 && !r->closed_sent) {
        ch->ops->closed(ch->env, r);
        r->closed_sent = true;
    }
}

static void s_broadcast_data(zchan__chan_t *ch, zmq_msg_t *payload)
{
    for (size_t i = 0; i < ch->recv.n; i++) {
        zchan__member_t *r = s_recv(ch, i);
        if (r->avail > 0 && r->ring.len == 0) {
            if (ch->ops->deliver(ch->env, r, payload) == 0) {
                r->avail--;
                ch->delivered++;
                continue;
            }
            s_receiver_gone(ch, r, false);
            i--;
            continue;
        }
        s_ring_push(ch, r, payload);
        ch->ops->holding(ch->env, r);
    }
    if (ch->resend_latest) {
        //  The latest message counts against the byte limits too; one that
        //  does not fit is not kept, and a new receiver gets none.
        if (ch->has_latest)
            s_bytes_sub(ch, zchan__msg_cost(&ch->latest));
        zmq_msg_close(&ch->latest);
        zmq_msg_init(&ch->latest);
        ch->has_latest = false;
        uint64_t cost = zchan__msg_cost(payload);
        if (s_bytes_fit(ch, cost)) {
            zmq_msg_copy(&ch->latest, payload);
            s_bytes_add(ch, cost);
            ch->has_latest = true;
        } else
            ch->ops->over_limit(ch->env, "to keep a broadcast channel's latest message", s_over(ch, cost));
    }
}

// ---------------------------------------------------------------------------
// What members do

int zchan__chan_join(zchan__chan_t *ch, zchan__member_t *m, bool receiver, size_t limit)
{
    m->receiver = receiver;
    if (!receiver) {
        if (zchan__vec_add(&ch->send, m) != 0)
            return ZCHAN_ENOMEM;
        m->ch = ch;
        return 0;
    }
    if (ch->kind == ZCHAN_BROADCAST) {
        //  The ring starts small and grows toward the limit as it fills:
        //  a receiver asking for a large limit costs what it holds.
        if (zchan__ring_init(&m->ring, limit, ZCHAN__RING_FIRST) != 0)
            return ZCHAN_ENOMEM;
    }
    if (zchan__vec_add(&ch->recv, m) != 0) {
        zchan__ring_fini(&m->ring);
        return ZCHAN_ENOMEM;
    }
    m->ch = ch;
    if (ch->kind == ZCHAN_BROADCAST && ch->has_latest)
        s_ring_push(ch, m, &ch->latest);
    return 0;
}

void zchan__chan_leave(zchan__chan_t *ch, zchan__member_t *m, uint64_t consumed)
{
    if (!m->receiver) {
        zchan__vec_remove(&ch->send, m);
        m->ch = NULL;
        ch->ops->release(ch->env, m);
        return;
    }
    if (ch->kind == ZCHAN_ANYCAST)
        s_consumed(ch, m, consumed);
    s_receiver_gone(ch, m, true);
    if (ch->kind == ZCHAN_ANYCAST)
        s_anycast_pump(ch);
}

void zchan__chan_gone(zchan__chan_t *ch, zchan__member_t *m)
{
    if (!m->receiver) {
        zchan__vec_remove(&ch->send, m);
        m->ch = NULL;
        ch->ops->release(ch->env, m);
    } else if (m->inflight.len > 0 || m->ring.len > 0)
        s_drop_gone(ch, m);
    else
        s_receiver_gone(ch, m, false); // it held nothing: no warning
    if (ch->kind == ZCHAN_ANYCAST)
        s_anycast_pump(ch); // what it held no longer takes up the capacity
}

int zchan__chan_data(zchan__chan_t *ch, zchan__member_t *s, zmq_msg_t *payload)
{
    if (ch->closed) {
        ch->lost++;
        return ZCHAN_ECLOSED;
    }
    if (ch->kind == ZCHAN_ANYCAST) {
        //  A sender may have at most its window of unaccepted messages (the
        //  credit it was given at attach); more is a peer ignoring its credit,
        //  and keeping it would let one peer grow the queue without bound.
        if (s->unaccepted >= zchan_sender_window(ch->capacity))
            return ZCHAN_EPROTO;
        s->unaccepted++;
        ch->ops->owed(ch->env, s);
        uint64_t cost = zchan__msg_cost(payload);
        if (!s_bytes_fit(ch, cost)) {
            //  Dropped and counted lost; the sender gets its credit back (its
            //  ACK, as if accepted) and [REFUSED, ELIMIT] at once, so that
            //  its next send (a rendezvous send: this one) fails with ELIMIT.
            ch->ops->over_limit(ch->env, "an anycast message", s_over(ch, cost));
            ch->lost++;
            s->unaccepted--;
            ch->ops->refuse(ch->env, s);
            ch->ops->ack(ch->env, s);
            return ZCHAN_ELIMIT;
        }
    }
    ch->sent++;
    if (ch->kind == ZCHAN_BROADCAST) {
        s_broadcast_data(ch, payload);
        return 0;
    }
    zchan__node_t *n = zchan__node_new(payload, s->token);
    if (!n) {
        ch->lost++;
        zsys_error("zchan hub: out of memory; a message on %s was lost", ch->key);
        return ZCHAN_ENOMEM;
    }
    s_bytes_add(ch, zchan__msg_cost(&n->payload));
    zchan__fifo_push(&ch->queue, n);
    if (!ch->unacc && !ch->unacc_stale)
        ch->unacc = n;
    s_anycast_pump(ch);
    return 0;
}

void zchan__chan_credit(zchan__chan_t *ch, zchan__member_t *r, uint64_t consumed, uint64_t grant)
{
    //  What a receiver holds (inflight: handed, not reported consumed) and
    //  may still be handed (avail) is at most ZCHAN_WINDOW_MAX together, so
    //  that a receiver that crashes loses at most that, whatever it granted.
    //  Consumption first: it makes room. Compare without adding, so that a
    //  huge grant cannot wrap around.
    if (ch->kind == ZCHAN_ANYCAST)
        s_consumed(ch, r, consumed);
    uint64_t held = r->inflight.len + r->avail;
    uint64_t room = held < ZCHAN_WINDOW_MAX ? ZCHAN_WINDOW_MAX - held : 0;
    r->avail += grant < room ? grant : room;
    if (ch->kind == ZCHAN_ANYCAST) {
        s_anycast_pump(ch);
    } else
        s_broadcast_pump(ch, r);
}

bool zchan__chan_takeable(const zchan__chan_t *ch, const zchan__member_t *r)
{
    if (r->closed_sent)
        return false;
    if (ch->kind == ZCHAN_BROADCAST)
        return r->ring.len > 0;
    //  An accepted message; or, at a rendezvous or after a close, any: the
    //  receiver waits for it, and taking it accepts it.
    return ch->queue.len > 0 && (ch->nacc > 0 || ch->closed || ch->capacity == 0);
}

bool zchan__chan_take(zchan__chan_t *ch, zchan__member_t *r, zmq_msg_t *out, uint64_t *dropped)
{
    if (!zchan__chan_takeable(ch, r))
        return false;
    if (ch->kind == ZCHAN_BROADCAST) {
        zmq_msg_t *head = zchan__ring_at(&r->ring, 0);
        uint64_t cost = zchan__msg_cost(head);
        zmq_msg_move(out, head);
        r->ring_bytes -= cost;
        s_bytes_sub(ch, cost);
        zchan__ring_pop(&r->ring);
        *dropped = r->dropped;
        ch->delivered++;
        if (ch->closed && r->ring.len == 0 && !r->closed_sent) {
            ch->ops->closed(ch->env, r);
            r->closed_sent = true;
        }
        return true;
    }
    zchan__node_t *n = s_queue_pop(ch);
    if (ch->nacc > 0)
        ch->nacc--; // its place in the capacity is free
    else
        s_ack(ch, n->sender); // taken means accepted
    s_bytes_sub(ch, zchan__msg_cost(&n->payload));
    zmq_msg_move(out, &n->payload);
    zchan__node_free(n);
    *dropped = 0;
    ch->delivered++;
    s_anycast_pump(ch); // the next one fits in the capacity now
    return true;
}

bool zchan__chan_cancel(zchan__chan_t *ch, zchan__member_t *s)
{
    bool cancelled = false;
    zchan__node_t *prev = NULL, *n = ch->queue.head;
    for (size_t i = 0; n; i++) {
        zchan__node_t *next = n->next;
        if (i >= ch->nacc && n->sender == s->token) {
            zchan__fifo_unlink(&ch->queue, prev, n);
            ch->unacc = NULL;
            ch->unacc_stale = true;
            s_node_free(ch, n);
            if (s->unaccepted > 0)
                s->unaccepted--;
            cancelled = true;
        } else
            prev = n;
        n = next;
    }
    return cancelled;
}

void zchan__chan_close(zchan__chan_t *ch)
{
    if (ch->closed)
        return;
    ch->closed = true;
    //  The others get what a receiver that died held before they get the close.
    for (size_t i = ch->recv.n; i-- > 0;) {
        zchan__member_t *r = s_recv(ch, i);
        if (ch->kind == ZCHAN_ANYCAST && r->inflight.len > 0 && ch->ops->gone(ch->env, r))
            s_drop_gone(ch, r);
    }
    for (size_t i = 0; i < ch->send.n; i++)
        ch->ops->close_sender(ch->env, (zchan__member_t *) ch->send.v[i]);
    for (size_t i = 0; i < ch->recv.n; i++)
        ch->ops->closing(ch->env, s_recv(ch, i));
    if (ch->kind == ZCHAN_ANYCAST)
        s_anycast_pump(ch);
    else
        for (size_t i = ch->recv.n; i-- > 0;)
            s_broadcast_pump(ch, s_recv(ch, i));
}

// ---------------------------------------------------------------------------
// What the hub reads

uint64_t zchan__chan_pending(const zchan__chan_t *ch)
{
    uint64_t pending = 0;
    if (ch->recv.n > 0 && ch->kind == ZCHAN_ANYCAST)
        pending += ch->queue.len;
    for (size_t i = 0; i < ch->recv.n; i++) {
        const zchan__member_t *r = s_recv(ch, i);
        pending += r->ring.len + (r->closed_sent ? 0 : 1);
    }
    return pending;
}

size_t zchan__chan_depth(const zchan__chan_t *ch)
{
    size_t depth = ch->queue.len;
    if (ch->kind == ZCHAN_BROADCAST)
        for (size_t i = 0; i < ch->recv.n; i++)
            depth = s_recv(ch, i)->ring.len > depth ? s_recv(ch, i)->ring.len : depth;
    return depth;
}

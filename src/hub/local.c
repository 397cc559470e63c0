/*  local.c: the fast path (src/local.h) where it meets the hub: the lock the
    hub shares with its context's local parties, the outbox of what their
    calls owe remote peers, the member ops for local members, and the calls
    of local senders and receivers, which drive the channel's rules
    (channel.c) directly, under the lock.

    Every function here runs under share->lock, from the hub's thread or a
    local party's. The hub's own code (handlers, timers) runs under it too
    (loop.c takes it per message), so the rules stay one thread at a time.
*/
#include "hub.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
// The share

int zchan__share_init(zchan_ctx_t *ctx)
{
    zchan__share_t *sh = calloc(1, sizeof *sh);
    if (!sh)
        return ZCHAN_ENOMEM;
    //  Adaptive: a thread that finds the lock taken spins a little before it
    //  sleeps, since whoever holds it holds it for a few hundred instructions
    //  (sleeping costs both sides a system call).
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(&sh->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    const char *env = getenv("ZCHAN_LOCAL");
    sh->enabled = !(env && streq(env, "0"));
    ctx->share = sh;
    return 0;
}

void zchan__share_fini(zchan_ctx_t *ctx)
{
    if (!ctx->share)
        return;
    pthread_mutex_destroy(&ctx->share->lock);
    free(ctx->share);
    ctx->share = NULL;
}

bool zchan__local_eligible(const zchan_t *ch)
{
    zchan__share_t *sh = ch->ctx->share;
    return sh && sh->enabled && strcmp(ch->info.hub, ch->ctx->info.hub) == 0;
}

// ---------------------------------------------------------------------------
// The hub's side: its lock, its outbox, its kick

bool zchan__hub_deferred(const hub_t *hub)
{
    return hub->share && !pthread_equal(pthread_self(), hub->thread);
}

void zchan__hub_kick(hub_t *hub)
{
    if (hub->kicked || hub->kick_fd < 0)
        return;
    uint64_t one = 1;
    if (write(hub->kick_fd, &one, sizeof one) == (ssize_t) sizeof one)
        hub->kicked = true;
}

void zchan__hub_unkick(hub_t *hub)
{
    uint64_t n;
    if (hub->kick_fd >= 0 && read(hub->kick_fd, &n, sizeof n) < 0 && errno != EAGAIN)
        zsys_error("zchan hub: cannot read its wake-up descriptor: %s", strerror(errno));
    hub->kicked = false;
}

int zchan__hub_outbox_add(hub_t *hub, peer_t *p, zchan__out_t *o, zmq_msg_t *payload, bool deliver)
{
    if (o->sbuf.size > sizeof hub->outbox[0].hdr)
        return -1; // never: the notices a member is owed are short
    if (hub->nout == hub->outcap) {
        size_t cap = hub->outcap ? hub->outcap * 2 : 64;
        hub_outmsg_t *more = realloc(hub->outbox, cap * sizeof *more);
        if (!more)
            return -1;
        hub->outbox = more;
        hub->outcap = cap;
    }
    hub_outmsg_t *e = &hub->outbox[hub->nout];
    e->p = p;
    e->gen = p->gen;
    e->deliver = deliver;
    e->rid_len = p->rid_len;
    memcpy(e->rid, p->rid, p->rid_len);
    e->hlen = (uint8_t) o->sbuf.size;
    memcpy(e->hdr, o->sbuf.data, o->sbuf.size);
    e->has_payload = payload != NULL;
    zmq_msg_init(&e->payload);
    if (payload)
        zmq_msg_copy(&e->payload, payload);
    hub->nout++;
    zchan__hub_kick(hub);
    return 0;
}

//  Sends what the outbox holds, in order, and empties it. A delivery that
//  fails drops its receiver, as a direct one does (out.c). Hub thread, under
//  the lock: what dropping a receiver makes the hub send goes out directly,
//  so nothing joins the outbox meanwhile.
static void s_outbox_drain(hub_t *hub)
{
    for (size_t i = 0; i < hub->nout; i++) {
        hub_outmsg_t *e = &hub->outbox[i];
        bool ok = zmq_send(hub->router, e->rid, e->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0
                  && zmq_send(hub->router, e->hdr, e->hlen, e->has_payload ? ZMQ_SNDMORE : 0) >= 0;
        if (ok && e->has_payload)
            ok = zmq_msg_send(&e->payload, hub->router, 0) >= 0;
        zmq_msg_close(&e->payload);
        if (!ok && e->deliver && e->p->gen == e->gen && e->p->role == ROLE_RECEIVER && e->p->m.ch)
            zchan__hub_member_gone(hub, e->p);
        else if (ok && e->deliver)
            zchan__peer_arm(hub);
    }
    hub->nout = 0;
}

void zchan__hub_lock(hub_t *hub)
{
    if (!hub->share)
        return;
    pthread_mutex_lock(&hub->share->lock);
    if (hub->nout)
        s_outbox_drain(hub);
}

void zchan__hub_unlock(hub_t *hub)
{
    if (hub->share)
        pthread_mutex_unlock(&hub->share->lock);
}

void zchan__hub_local_fini(hub_t *hub)
{
    for (size_t i = 0; i < hub->nout; i++)
        zmq_msg_close(&hub->outbox[i].payload);
    free(hub->outbox);
    hub->outbox = NULL;
    hub->nout = hub->outcap = 0;
    if (hub->kick_fd >= 0)
        close(hub->kick_fd);
    hub->kick_fd = -1;
}

// ---------------------------------------------------------------------------
// Waking a local party

//  Tells lp something changed: wakes its thread if it sleeps, and writes its
//  eventfd if a select waits on it. Under the lock.
static void s_wake(zchan__lparty_t *lp)
{
    atomic_fetch_add_explicit(&lp->events, 1, memory_order_release);
    if (lp->sleeping)
        pthread_cond_broadcast(&lp->cond);
    if (lp->armed && !lp->signalled && lp->efd >= 0) {
        uint64_t one = 1;
        if (write(lp->efd, &one, sizeof one) == (ssize_t) sizeof one)
            lp->signalled = true;
    }
}

//  The local party of member m, or NULL once the context was shut down (its
//  memory may be gone: the hub leaves it alone).
static zchan__lparty_t *s_lp(hub_t *hub, zchan__member_t *m)
{
    return hub->share && hub->share->dead ? NULL : m->local;
}

// ---------------------------------------------------------------------------
// The member ops for local members

int zchan__local_op_deliver(hub_t *hub, zchan__member_t *r, zmq_msg_t *payload)
{
    zchan__lparty_t *lp = s_lp(hub, r);
    if (!lp)
        return 0; // shut down: nobody will read it
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, payload);
    zchan__node_t *n = zchan__node_new(&copy, r->dropped);
    if (!n) {
        zmq_msg_close(&copy);
        return -1;
    }
    zchan__fifo_push(&lp->box, n);
    s_wake(lp);
    return 0;
}

void zchan__local_op_ack(hub_t *hub, zchan__member_t *s)
{
    zchan__lparty_t *lp = s_lp(hub, s);
    if (!lp)
        return;
    lp->credit++;
    s_wake(lp);
}

void zchan__local_op_refuse(hub_t *hub, zchan__member_t *s)
{
    zchan__lparty_t *lp = s_lp(hub, s);
    if (lp)
        lp->refused = ZCHAN_ELIMIT;
}

void zchan__local_op_closed(hub_t *hub, zchan__member_t *m)
{
    zchan__lparty_t *lp = s_lp(hub, m);
    if (!lp)
        return;
    lp->closed = true;
    s_wake(lp);
}

void zchan__local_op_release(hub_t *hub, zchan__member_t *m)
{
    zchan__lparty_t *lp = s_lp(hub, m);
    peer_t *p = hub_peer_of(m);
    zchan__peer_free(hub, p);
    m->local = NULL;
    if (lp) {
        lp->peer = NULL;
        s_wake(lp);
    }
}

// ---------------------------------------------------------------------------
// Local parties' calls

//  The running hub of lp, or NULL once the context was shut down. Under the lock.
static hub_t *s_hub(zchan__lparty_t *lp)
{
    return lp->share->dead ? NULL : lp->share->hub;
}

static zchan__member_t *s_member(zchan__lparty_t *lp)
{
    return lp->peer ? &((peer_t *) lp->peer)->m : NULL;
}

#define LOCAL_SENDER_WINDOW 16 // a local sender's messages beyond a full channel, at most
#define LOCAL_SPIN_US 20 // a waiting party watches for a change this long before it sleeps

//  Spins, without the lock, for up to LOCAL_SPIN_US or until lp's state
//  changes: a wake-up that comes meanwhile costs neither side a system call
//  (the waker signals only sleepers). Called and returns under the lock;
//  true if something changed.
static bool s_spin(zchan__lparty_t *lp, int64_t deadline)
{
    if (!zchan__spin_worth())
        return false;
    unsigned seen = atomic_load_explicit(&lp->events, memory_order_acquire);
    pthread_mutex_unlock(&lp->share->lock);
    int64_t until = zchan__now_us() + LOCAL_SPIN_US;
    if (deadline >= 0 && deadline * 1000 < until)
        until = deadline * 1000;
    bool changed = false;
    for (unsigned i = 1; !changed; i++) {
        changed = atomic_load_explicit(&lp->events, memory_order_acquire) != seen;
        if (!changed && i % 32 == 0 && zchan__now_us() >= until)
            break;
        zchan__relax();
    }
    pthread_mutex_lock(&lp->share->lock);
    return changed || atomic_load_explicit(&lp->events, memory_order_relaxed) != seen;
}

//  Waits until lp's state changes or deadline (ms, -1 forever): spins a
//  little, then sleeps on its condition. Under the lock. ETIMEDOUT once the
//  deadline has passed, else 0 (look again).
static int s_sleep(zchan__lparty_t *lp, int64_t deadline)
{
    if (deadline >= 0 && zchan__now_ms() >= deadline)
        return ZCHAN_ETIMEDOUT;
    if (s_spin(lp, deadline))
        return 0;
    lp->sleeping++;
    if (deadline < 0)
        pthread_cond_wait(&lp->cond, &lp->share->lock);
    else {
        struct timespec ts = {.tv_sec = (time_t) (deadline / 1000), .tv_nsec = (long) (deadline % 1000) * 1000000};
        pthread_cond_timedwait(&lp->cond, &lp->share->lock, &ts);
    }
    lp->sleeping--;
    return 0;
}

int zchan__local_attach(zchan__lparty_t *lp, zchan_t *ch, bool receiver, uint64_t limit)
{
    zchan__share_t *sh = ch->ctx->share;
    lp->share = sh;
    lp->efd = -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); // the clock of zchan__now_ms
    pthread_cond_init(&lp->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (receiver && limit == 0)
        limit = ZCHAN_BROADCAST_LIMIT;
    int rc = 0;
    pthread_mutex_lock(&sh->lock);
    hub_t *hub = s_hub(lp);
    zchan__chan_t *c = hub ? zchan__chans_lookup(hub, ch->key, strlen(ch->key)) : NULL;
    const hub_tomb_t *t = hub && !c ? zchan__chans_tomb(hub, ch->key, strlen(ch->key)) : NULL;
    if (!hub)
        rc = ZCHAN_ECLOSED;
    else if (!c && !t)
        rc = ZCHAN_ENOTFOUND;
    else {
        lp->kind = c ? c->kind : t->kind;
        lp->capacity = c ? c->capacity : t->capacity;
        if (!c || c->closed)
            lp->closed = true; // nothing to join: the party is stopped at once
        else if ((rc = zchan__hub_attach_allowed(hub, c, receiver, limit)) == 0) {
            peer_t *p = zchan__peer_new_local(hub, receiver ? ROLE_RECEIVER : ROLE_SENDER);
            if (!p)
                rc = ZCHAN_ENOMEM;
            else {
                p->m.local = lp;
                rc = zchan__chan_join(c, &p->m, receiver, (size_t) limit);
                if (rc != 0) {
                    p->m.local = NULL;
                    zchan__peer_free(hub, p);
                } else
                    lp->peer = p;
            }
        }
    }
    lp->unlimited = lp->kind == ZCHAN_BROADCAST;
    //  A local sender needs no window to cover a round trip: it runs at most
    //  LOCAL_SENDER_WINDOW ahead of a full channel, close to a Go channel's
    //  sender, which blocks once the buffer is full.
    size_t w = zchan_sender_window(lp->capacity);
    lp->credit = lp->unlimited ? 0 : w < LOCAL_SENDER_WINDOW ? w : LOCAL_SENDER_WINDOW;
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

void zchan__local_fini(zchan__lparty_t *lp)
{
    zchan__share_t *sh = lp->share;
    if (!sh)
        return;
    pthread_mutex_lock(&sh->lock);
    hub_t *hub = s_hub(lp);
    zchan__member_t *m = s_member(lp);
    if (hub && m) {
        //  Gracefully: an anycast receiver's box holds copies of what the
        //  channel handed it and it did not consume (it reports each message
        //  as it takes it); the channel takes those back, at the front.
        zchan__chan_t *ch = m->ch;
        zchan__chan_leave(ch, m, 0); // releases m
        zchan__chans_reclaim(hub, ch);
    }
    zchan__fifo_clear(&lp->box);
    pthread_mutex_unlock(&sh->lock);
    if (lp->efd >= 0)
        close(lp->efd);
    pthread_cond_destroy(&lp->cond);
    lp->share = NULL;
}

//  Whether a message waits at a capacity-0 channel only while the receiver
//  waits: it asks then, and takes its credit back after.
static bool s_rendezvous(const zchan__lparty_t *lp)
{
    return lp->kind == ZCHAN_ANYCAST && lp->capacity == 0;
}

//  Asks the channel for one message, while lp waits (or a select waits on
//  it): the channel hands the next one that comes to its box. Under the lock.
static void s_ask(zchan__lparty_t *lp)
{
    zchan__member_t *m = s_member(lp);
    if (m && m->avail == 0 && lp->box.len == 0)
        zchan__chan_credit(m->ch, m, 0, 1);
}

//  No longer waits: takes back the credit of s_ask, if nothing came for it,
//  so that a message waits at the channel (in its capacity) rather than in
//  the box of a receiver that does not read.
static void s_unask(zchan__lparty_t *lp)
{
    zchan__member_t *m = s_member(lp);
    if (m && lp->box.len == 0)
        m->avail = 0;
}

//  Whether a read of lp would find something now (its box, or the channel).
static bool s_has(zchan__lparty_t *lp)
{
    zchan__member_t *m = s_member(lp);
    return lp->box.len > 0 || (m && zchan__chan_takeable(m->ch, m));
}

//  What a read of lp would give now: 1 a message, 2 ECLOSED (the channel
//  closed and drained, the party released, or the context shut down), 0
//  nothing yet; with ask, lp then asks the channel for one (a select about
//  to wait on it). Under the lock.
static int s_readiness(zchan__lparty_t *lp, bool ask)
{
    if (!s_hub(lp))
        return 2;
    if (s_has(lp))
        return 1;
    if (lp->closed || !lp->peer)
        return 2;
    if (ask)
        s_ask(lp);
    return s_has(lp) ? 1 : 0;
}

int zchan__local_send(zchan__lparty_t *lp, zchan_msg_t *msg, int64_t deadline)
{
    pthread_mutex_lock(&lp->share->lock);
    int rc = 0;
    while (true) {
        if (!s_hub(lp) || !lp->peer || lp->closed) {
            rc = ZCHAN_ECLOSED;
            break;
        }
        if (lp->refused) {
            //  An earlier message was refused (counted lost): this send
            //  reports it, once, and sends nothing.
            rc = lp->refused;
            lp->refused = 0;
            break;
        }
        if (lp->unlimited || lp->credit > 0)
            break;
        if ((rc = s_sleep(lp, deadline)) != 0)
            break;
    }
    zmq_msg_t payload;
    zmq_msg_init(&payload);
    //  Only now, with room for it, the message becomes a frame: a send that
    //  failed so far leaves the caller's message whole. A rendezvous send may
    //  still time out: it copies.
    if (rc == 0)
        rc = zchan__msg_to_frame(msg, &payload, !s_rendezvous(lp));
    if (rc == 0) {
        zchan__member_t *m = s_member(lp);
        zchan__chan_t *ch = m->ch;
        if (!lp->unlimited)
            lp->credit--;
        rc = zchan__chan_data(ch, m, &payload);
        //  Refused over a byte limit (counted lost): as for a remote sender,
        //  the next send reports it; at capacity 0 this one does, and the
        //  caller keeps the message.
        if (rc == ZCHAN_ELIMIT && !s_rendezvous(lp))
            rc = 0;
        else if (rc == ZCHAN_ELIMIT)
            lp->refused = 0;
        while (rc == 0 && s_rendezvous(lp) && lp->credit == 0 && lp->peer && !lp->closed && s_hub(lp)) {
            //  Complete only when a receiver has taken it.
            if (s_sleep(lp, deadline) == ZCHAN_ETIMEDOUT && (m = s_member(lp))
                && zchan__chan_cancel(m->ch, m)) {
                lp->credit = 1;
                rc = ZCHAN_ETIMEDOUT;
            }
        }
        if (rc == 0 && s_rendezvous(lp) && lp->credit == 0 && !s_hub(lp))
            rc = ZCHAN_ECLOSED; // shut down before anyone took it
    }
    pthread_mutex_unlock(&lp->share->lock);
    zmq_msg_close(&payload);
    return rc;
}

int zchan__local_recv(zchan__lparty_t *lp, zmq_msg_t *payload, uint64_t *dropped, int64_t deadline)
{
    pthread_mutex_lock(&lp->share->lock);
    int rc = 0;
    while (true) {
        hub_t *hub = s_hub(lp);
        if (!hub) {
            rc = ZCHAN_ECLOSED;
            break;
        }
        //  First what the channel handed it while it waited (older), then
        //  straight from the channel.
        zchan__node_t *n = zchan__fifo_pop(&lp->box);
        zchan__member_t *m = s_member(lp);
        if (n) {
            zmq_msg_move(payload, &n->payload);
            *dropped = n->sender;
            zchan__node_free(n);
            if (m && lp->kind == ZCHAN_ANYCAST)
                zchan__chan_credit(m->ch, m, 1, 0); // consumed: its place in the capacity is free
            break;
        }
        if (m && zchan__chan_take(m->ch, m, payload, dropped))
            break;
        if (lp->closed || !m) {
            rc = ZCHAN_ECLOSED;
            break;
        }
        s_ask(lp);
        if (lp->box.len > 0)
            continue;
        if ((rc = s_sleep(lp, deadline)) != 0)
            break;
    }
    if (rc == ZCHAN_ETIMEDOUT)
        s_unask(lp); // no longer waiting: a sender must not think it taken
    pthread_mutex_unlock(&lp->share->lock);
    return rc;
}

int zchan__local_ready(zchan__lparty_t *lp)
{
    pthread_mutex_lock(&lp->share->lock);
    if (lp->signalled) {
        uint64_t n;
        if (read(lp->efd, &n, sizeof n) < 0 && errno != EAGAIN)
            zsys_error("zchan: cannot read a receiver's wake-up descriptor: %s", strerror(errno));
        lp->signalled = false;
    }
    lp->armed = false;
    int ready = s_readiness(lp, false);
    pthread_mutex_unlock(&lp->share->lock);
    return ready;
}

int zchan__local_arm(zchan__lparty_t *lp)
{
    pthread_mutex_lock(&lp->share->lock);
    if (lp->efd < 0) {
        lp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (lp->efd < 0)
            zsys_error("zchan: cannot make a receiver's wake-up descriptor: %s", strerror(errno));
    }
    //  What comes while the select sleeps is handed to the box.
    int ready = s_readiness(lp, true);
    lp->armed = true;
    if (ready)
        s_wake(lp); // ready already: the poll returns at once
    int fd = lp->efd;
    pthread_mutex_unlock(&lp->share->lock);
    return fd;
}

unsigned zchan__local_watch(zchan__lparty_t *lp)
{
    pthread_mutex_lock(&lp->share->lock);
    int ready = s_readiness(lp, true);
    unsigned ev = atomic_load_explicit(&lp->events, memory_order_relaxed);
    if (ready)
        ev--; // ready already: the spin sees a change at once
    pthread_mutex_unlock(&lp->share->lock);
    return ev;
}

void zchan__local_shutdown(zchan_ctx_t *ctx)
{
    zchan__share_t *sh = ctx->share;
    if (!sh)
        return;
    pthread_mutex_lock(&sh->lock);
    hub_t *hub = sh->hub;
    //  Every local party still joined is alive now (one that is destroyed
    //  leaves first): wake them all, then never touch them again.
    for (size_t i = 0; hub && i < hub->npeers; i++) {
        peer_t *p = hub->peers[i];
        if (p->role != ROLE_FREE && p->m.local)
            s_wake(p->m.local);
    }
    sh->dead = true;
    pthread_mutex_unlock(&sh->lock);
}

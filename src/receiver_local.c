/*  receiver_local.c: the local receiver, a receiver of a channel hosted by
    the hub of its own context (the fast path, local.h). It takes messages
    from its box under the lock its context shares with the hub, sleeps on
    its own condition variable in zchan_recv, and offers select one eventfd
    (zmq_poll takes plain descriptors), written only while a select waits.
*/
#include "local.h"
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    zchan_receiver_t head;
    zchan__party_t party; // of ctx: inert once ctx is shut down
    zchan__lparty_t lp;
    int fd;               // the eventfd of the last arm, -1: none
    uint64_t dropped;
    char key[ZCHAN__EP_MAX]; // its channel's key, for logs
} local_recv_t;

static int s_prepare(zchan_receiver_t *r)
{
    local_recv_t *lr = (local_recv_t *) r;
    if (r->stopped || !zchan__party_enter(&lr->party))
        return 0;
    lr->fd = zchan__local_arm(&lr->lp);
    zchan__party_exit(&lr->party);
    return 0;
}

static size_t s_pollitems(zchan_receiver_t *r, zmq_pollitem_t *items, size_t max)
{
    local_recv_t *lr = (local_recv_t *) r;
    if (max >= 1) {
        items[0].socket = NULL;
        items[0].fd = lr->fd; // -1 (never ready) if no eventfd could be made
        items[0].events = ZMQ_POLLIN;
        items[0].revents = 0;
    }
    return 1;
}

static bool s_ready(zchan_receiver_t *r)
{
    local_recv_t *lr = (local_recv_t *) r;
    if (r->stopped || !zchan__party_enter(&lr->party))
        return true; // a read gives ECLOSED at once
    int ready = zchan__local_ready(&lr->lp);
    zchan__party_exit(&lr->party);
    if (ready == 2)
        r->stopped = true; // select reports it once
    return ready != 0;
}

static int s_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms)
{
    local_recv_t *lr = (local_recv_t *) r;
    if (r->stopped || !zchan__party_enter(&lr->party)) {
        r->stopped = true;
        return zchan__fail(ZCHAN_ECLOSED);
    }
    zmq_msg_t payload;
    zmq_msg_init(&payload);
    int rc = zchan__local_recv(&lr->lp, &payload, &lr->dropped, zchan__deadline(timeout_ms));
    zchan__party_exit(&lr->party);
    zchan_msg_t *msg = NULL;
    if (rc == 0) {
        msg = zchan__msg_from_frame(&payload);
        rc = !msg ? ZCHAN_ENOMEM : !zchan__msg_valid(msg) ? ZCHAN_EPROTO : 0;
    }
    zmq_msg_close(&payload);
    if (rc == ZCHAN_ECLOSED)
        r->stopped = true;
    if (rc != 0) {
        zchan_msg_destroy(&msg);
        return zchan__fail(rc);
    }
    *msg_p = msg;
    return 0;
}

static void s_destroy(zchan_receiver_t *r)
{
    local_recv_t *lr = (local_recv_t *) r;
    //  Leaves gracefully (what the box holds goes back to the channel),
    //  unless the context was shut down: then the hub is gone or going.
    zchan__local_fini(&lr->lp);
    zchan__party_leave(&lr->party);
}

static unsigned s_watch(zchan_receiver_t *r)
{
    local_recv_t *lr = (local_recv_t *) r;
    if (r->stopped || !zchan__party_enter(&lr->party))
        return 0;
    unsigned ev = zchan__local_watch(&lr->lp);
    zchan__party_exit(&lr->party);
    return ev;
}

static unsigned s_events(zchan_receiver_t *r)
{
    return atomic_load_explicit(&((local_recv_t *) r)->lp.events, memory_order_acquire);
}

static const zchan__recv_ops_t s_local_ops = {
    .prepare = s_prepare,
    .pollitems = s_pollitems,
    .ready = s_ready,
    .recv = s_recv,
    .destroy = s_destroy,
    .hold = NULL, // its eventfd is closed only by its destroy
    .watch = s_watch,
    .events = s_events,
};

//  The context was shut down with this receiver not destroyed: its reads
//  give ECLOSED from now on (zchan__local_shutdown woke any wait).
static void s_close_party(zchan__party_t *p)
{
    local_recv_t *lr = (local_recv_t *) ((char *) p - offsetof(local_recv_t, party));
    lr->head.stopped = true;
}

zchan_receiver_t *zchan__local_receiver_new(zchan_t *ch, size_t limit)
{
    int saved_errno = zchan_errno();
    local_recv_t *lr = calloc(1, sizeof *lr);
    if (!lr)
        return zchan__fail_null(ZCHAN_ENOMEM);
    lr->head.ops = &s_local_ops;
    lr->fd = -1;
    snprintf(lr->key, sizeof lr->key, "%s", ch->key);
    zchan_receiver_t *r = &lr->head;
    int rc = zchan__local_attach(&lr->lp, ch, true, limit);
    if (rc == 0)
        rc = zchan__party_join(ch->ctx, &lr->party, "receiver", lr->key, s_close_party);
    if (rc != 0) {
        zchan_receiver_destroy(&r);
        return zchan__fail_null(rc);
    }
    zchan__errno_restore(saved_errno);
    return r;
}

bool zchan__local_receiver_dropped(const zchan_receiver_t *r, uint64_t *dropped)
{
    if (r->ops != &s_local_ops)
        return false;
    *dropped = ((const local_recv_t *) r)->dropped;
    return true;
}

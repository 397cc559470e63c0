/*  adapt_map.c: the adaptors that work on messages in the caller's or the
    reader's thread (docs/ADAPTORS.md).

    - zchan_msg_dup: a deep copy of a message.
    - zchan_map, zchan_filter: receiver kinds that wrap another receiver and
      run a callback in the reading thread.
*/
#include "core.h"
#include <stdlib.h>

// ---------------------------------------------------------------------------
// Message copies

//  Returns a new message holding the same bytes as msg, written into its
//  packer as if they had been packed there: independent of msg, and sendable
//  or destroyable in either order. NULL with EINVAL if msg does not hold
//  exactly one msgpack value, ENOMEM.
zchan_msg_t *zchan_msg_dup(zchan_msg_t *msg)
{
    zchan__assert(msg);
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    int rc = zchan__msg_to_frame(msg, &frame, false);
    zchan_msg_t *copy = NULL;
    if (rc == 0) {
        copy = zchan_msg_new();
        msgpack_packer *pk = copy ? zchan_msg_packer(copy) : NULL;
        if (!pk || pk->callback(pk->data, zmq_msg_data(&frame), zmq_msg_size(&frame)) != 0)
            rc = ZCHAN_ENOMEM;
    }
    zmq_msg_close(&frame);
    if (rc != 0) {
        zchan_msg_destroy(&copy);
        return zchan__fail_null(rc);
    }
    return copy;
}

// ---------------------------------------------------------------------------
// Map

typedef struct {
    zchan_receiver_t head; // first: a map is a zchan_receiver_t
    zchan_receiver_t *src;
    zchan_map_fn *fn;
    void *user;
} s_map_t;

static int s_map_prepare(zchan_receiver_t *r)
{
    zchan_receiver_t *src = ((s_map_t *) r)->src;
    return src->ops->prepare(src);
}

static size_t s_map_pollitems(zchan_receiver_t *r, zmq_pollitem_t *items, size_t max)
{
    zchan_receiver_t *src = ((s_map_t *) r)->src;
    return src->ops->pollitems(src, items, max);
}

//  Ready exactly when the source is: the callback runs at the read, and a
//  read of a ready map gives a message or an error, never ETIMEDOUT.
static bool s_map_ready(zchan_receiver_t *r)
{
    zchan_receiver_t *src = ((s_map_t *) r)->src;
    bool ready = src->ops->ready(src);
    if (ready && src->stopped)
        r->stopped = true;
    return ready;
}

//  The error a reader gets when the callback fails: the callback's own code,
//  unless it is one that would lie about the map's state (ETIMEDOUT,
//  ECLOSED) or is not a zchan error at all; those become EINVAL.
static int s_map_error(int rc)
{
    return rc > ZCHAN_ECLOSED && rc <= ZCHAN_ELIMIT ? rc : ZCHAN_EINVAL;
}

static int s_map_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms)
{
    s_map_t *m = (s_map_t *) r;
    zchan_msg_t *msg = NULL;
    int rc = m->src->ops->recv(m->src, &msg, timeout_ms);
    if (rc == ZCHAN_ECLOSED)
        r->stopped = true;
    if (rc != 0)
        return zchan__fail(rc);
    rc = m->fn(&msg, m->user);
    if (rc == 0 && !msg)
        rc = ZCHAN_EINVAL; // the callback must leave a message on success
    if (rc != 0) {
        //  The message was taken from the source: it is consumed, and the
        //  reader is told. The callback may have kept it (*msg_p = NULL).
        zchan_msg_destroy(&msg);
        return zchan__fail(s_map_error(rc));
    }
    *msg_p = msg;
    return 0;
}

static void s_map_destroy(zchan_receiver_t *r)
{
    zchan_receiver_destroy(&((s_map_t *) r)->src);
}

static void s_map_hold(zchan_receiver_t *r, bool on)
{
    zchan__receiver_hold(((s_map_t *) r)->src, on);
}

static const zchan__recv_ops_t s_map_ops = {
    .prepare = s_map_prepare,
    .pollitems = s_map_pollitems,
    .ready = s_map_ready,
    .recv = s_map_recv,
    .destroy = s_map_destroy,
    .hold = s_map_hold,
};

zchan_receiver_t *zchan_map(zchan_receiver_t *src, zchan_map_fn *fn, void *user)
{
    if (!src || !fn) {
        zchan_receiver_destroy(&src);
        return zchan__fail_null(ZCHAN_EINVAL);
    }
    s_map_t *m = calloc(1, sizeof *m);
    if (!m) {
        zchan_receiver_destroy(&src);
        return zchan__fail_null(ZCHAN_ENOMEM);
    }
    m->head.ops = &s_map_ops;
    m->src = src;
    m->fn = fn;
    m->user = user;
    return &m->head;
}

// ---------------------------------------------------------------------------
// Filter

typedef struct {
    zchan_receiver_t head; // first: a filter is a zchan_receiver_t
    zchan_receiver_t *src;
    zchan_filter_fn *fn;
    void *user;
    zchan_msg_t *look; // taken from the source, kept by fn, not yet returned
    int pending;       // an error the source gave, not yet returned
} s_filter_t;

//  Never blocks. Takes what the source has ready, dropping the messages the
//  predicate rejects, until one is kept, the source gives an error or stops,
//  or it has nothing ready. True in the first three cases.
static bool s_filter_ready(zchan_receiver_t *r)
{
    s_filter_t *f = (s_filter_t *) r;
    zchan_receiver_t *src = f->src;
    while (!f->look && !f->pending && !r->stopped) {
        if (!src->ops->ready(src))
            return false;
        zchan_msg_t *msg = NULL;
        int rc = src->ops->recv(src, &msg, 0);
        if (rc == ZCHAN_ECLOSED)
            r->stopped = true;
        else if (rc == ZCHAN_ETIMEDOUT)
            return false;
        else if (rc != 0)
            f->pending = rc;
        else if (f->fn(msg, f->user))
            f->look = msg;
        else
            zchan_msg_destroy(&msg);
    }
    return true;
}

static int s_filter_prepare(zchan_receiver_t *r)
{
    s_filter_t *f = (s_filter_t *) r;
    if (f->look || f->pending || r->stopped)
        return 0;
    return f->src->ops->prepare(f->src);
}

static size_t s_filter_pollitems(zchan_receiver_t *r, zmq_pollitem_t *items, size_t max)
{
    zchan_receiver_t *src = ((s_filter_t *) r)->src;
    return src->ops->pollitems(src, items, max);
}

//  Waits, against one deadline, until a message passes the predicate: the
//  rejected ones are dropped inside the wait, so they do not extend it.
static int s_filter_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms)
{
    s_filter_t *f = (s_filter_t *) r;
    if (!s_filter_ready(r)) {
        int rc = zchan__receiver_wait(r, zchan__deadline(timeout_ms));
        if (rc != 0)
            return zchan__fail(rc);
    }
    if (f->look) {
        *msg_p = f->look;
        f->look = NULL;
        return 0;
    }
    if (f->pending) {
        int rc = f->pending;
        f->pending = 0;
        return zchan__fail(rc);
    }
    return zchan__fail(ZCHAN_ECLOSED);
}

static void s_filter_destroy(zchan_receiver_t *r)
{
    s_filter_t *f = (s_filter_t *) r;
    if (f->look) {
        //  Only possible when a select reported the filter ready and it was
        //  destroyed instead of read: the message cannot go back.
        zchan__log_init();
        zsys_warning("zchan: filter destroyed holding a message select had reported; it is lost");
        zchan_msg_destroy(&f->look);
    }
    zchan_receiver_destroy(&f->src);
}

static void s_filter_hold(zchan_receiver_t *r, bool on)
{
    zchan__receiver_hold(((s_filter_t *) r)->src, on);
}

static const zchan__recv_ops_t s_filter_ops = {
    .prepare = s_filter_prepare,
    .pollitems = s_filter_pollitems,
    .ready = s_filter_ready,
    .recv = s_filter_recv,
    .destroy = s_filter_destroy,
    .hold = s_filter_hold,
};

zchan_receiver_t *zchan_filter(zchan_receiver_t *src, zchan_filter_fn *fn, void *user)
{
    if (!src || !fn) {
        zchan_receiver_destroy(&src);
        return zchan__fail_null(ZCHAN_EINVAL);
    }
    s_filter_t *f = calloc(1, sizeof *f);
    if (!f) {
        zchan_receiver_destroy(&src);
        return zchan__fail_null(ZCHAN_ENOMEM);
    }
    f->head.ops = &s_filter_ops;
    f->src = src;
    f->fn = fn;
    f->user = user;
    return &f->head;
}

/*  merge.c: one receiver that yields the messages of many (frequenz-channels'
    merge). It is a receiver kind of its own, so it can be selected on and
    merged again.

    The merge owns its sources. A source that stops is dropped silently; the
    merge stops (its reads give ECLOSED) when the last source has stopped.
    Reads take from the ready sources in round-robin order, so a busy source
    cannot starve the others.
*/
#include "internal.h"
#include <stdlib.h>

typedef struct {
    zchan_receiver_t head;  // first: a merge is a zchan_receiver_t
    zchan_receiver_t **srcs;
    bool *gone;             // srcs[i] has stopped and is left out
    size_t n;
    size_t live;            // sources not gone
    size_t next;            // where the next read starts looking
} s_merge_t;

//  Drops source i after it stopped; the merge stops with the last one.
static void s_drop(s_merge_t *m, size_t i)
{
    if (m->gone[i])
        return;
    m->gone[i] = true;
    if (--m->live == 0)
        m->head.stopped = true;
}

//  Never blocks. True if source i is live and has a message; drops it if it
//  turns out to have stopped.
static bool s_src_ready(s_merge_t *m, size_t i)
{
    if (m->gone[i])
        return false;
    zchan_receiver_t *src = m->srcs[i];
    if (!src->ops->ready(src))
        return false;
    if (src->stopped) {
        s_drop(m, i);
        return false;
    }
    return true;
}

//  Does the non-blocking preparation of every live source. Returns 0 or the
//  first error a source gave (the others are still prepared).
static int s_prepare(zchan_receiver_t *r)
{
    s_merge_t *m = (s_merge_t *) r;
    int first = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->gone[i])
            continue;
        int rc = m->srcs[i]->ops->prepare(m->srcs[i]);
        if (rc != 0 && first == 0)
            first = rc;
    }
    return first;
}

//  Writes the poll items of every live source (up to max) and returns how
//  many there are in all.
static size_t s_pollitems(zchan_receiver_t *r, zmq_pollitem_t *items, size_t max)
{
    s_merge_t *m = (s_merge_t *) r;
    size_t total = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->gone[i])
            continue;
        bool fits = total < max;
        total += m->srcs[i]->ops->pollitems(m->srcs[i], fits ? items + total : NULL,
                                            fits ? max - total : 0);
    }
    return total;
}

//  Never blocks. True if a live source has a message, or if every source has
//  stopped (the merge has then stopped too).
static bool s_ready(zchan_receiver_t *r)
{
    s_merge_t *m = (s_merge_t *) r;
    for (size_t k = 0; k < m->n; k++)
        if (s_src_ready(m, (m->next + k) % m->n))
            return true;
    return r->stopped;
}

//  Reads one message from the first ready source in round-robin order.
//  Returns 0, the source's error, or ETIMEDOUT if no source is ready.
static int s_take(s_merge_t *m, zchan_msg_t **msg_p)
{
    for (size_t k = 0; k < m->n; k++) {
        size_t i = (m->next + k) % m->n;
        if (!s_src_ready(m, i))
            continue;
        m->next = (i + 1) % m->n;
        zchan_receiver_t *src = m->srcs[i];
        int rc = src->ops->recv(src, msg_p, 0);
        if (rc == ZCHAN_ECLOSED) {
            s_drop(m, i);
            continue;
        }
        return rc;
    }
    return ZCHAN_ETIMEDOUT;
}

//  Receives the next message of any source, waiting at most timeout_ms.
//  ECLOSED once every source has stopped; ETIMEDOUT; or a source's error
//  (EPROTO, ETYPE...: that message is consumed).
static int s_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms)
{
    s_merge_t *m = (s_merge_t *) r;
    int64_t deadline_ms = zchan__deadline(timeout_ms);
    for (;;) {
        int rc = s_take(m, msg_p);
        if (rc != ZCHAN_ETIMEDOUT)
            return rc ? zchan__fail(rc) : 0;
        if (r->stopped)
            return zchan__fail(ZCHAN_ECLOSED);
        rc = zchan__receiver_wait(r, deadline_ms);
        if (rc != 0)
            return zchan__fail(rc);
    }
}

//  Destroys every source (each gracefully, as zchan_receiver_destroy does)
//  and what the merge owns, but not the merge itself.
static void s_destroy(zchan_receiver_t *r)
{
    s_merge_t *m = (s_merge_t *) r;
    for (size_t i = 0; i < m->n; i++)
        zchan_receiver_destroy(&m->srcs[i]);
    free(m->srcs);
    free(m->gone);
}

//  Holds or lets go of every source, live or gone, so the two calls pair up.
static void s_hold(zchan_receiver_t *r, bool on)
{
    s_merge_t *m = (s_merge_t *) r;
    for (size_t i = 0; i < m->n; i++)
        zchan__receiver_hold(m->srcs[i], on);
}

static const zchan__recv_ops_t s_merge_ops = {
    .prepare = s_prepare,
    .pollitems = s_pollitems,
    .ready = s_ready,
    .recv = s_recv,
    .destroy = s_destroy,
    .hold = s_hold,
};

//  Destroys the n receivers and nulls them (zchan_merge owns them even when it
//  fails).
static void s_destroy_all(zchan_receiver_t **receivers, size_t n)
{
    for (size_t i = 0; receivers && i < n; i++)
        zchan_receiver_destroy(&receivers[i]);
}

//  Returns a receiver that yields the messages of the n receivers and stops
//  when all have stopped. Takes the n receivers in every case and nulls
//  receivers[i]. NULL with EINVAL (n is 0, receivers is NULL or holds a
//  NULL) or ENOMEM; the receivers are then destroyed.
zchan_receiver_t *zchan_merge(zchan_receiver_t **receivers, size_t n)
{
    if (!receivers || n == 0)
        return zchan__fail_null(ZCHAN_EINVAL);
    for (size_t i = 0; i < n; i++) {
        if (!receivers[i]) {
            s_destroy_all(receivers, n);
            return zchan__fail_null(ZCHAN_EINVAL);
        }
    }
    s_merge_t *m = calloc(1, sizeof *m);
    if (!m)
        goto fail_nomem;
    m->srcs = calloc(n, sizeof *m->srcs);
    m->gone = calloc(n, sizeof *m->gone);
    if (!m->srcs || !m->gone)
        goto fail_free_merge;
    m->head.ops = &s_merge_ops;
    m->n = n;
    m->live = n;
    for (size_t i = 0; i < n; i++) {
        m->srcs[i] = receivers[i];
        receivers[i] = NULL;
    }
    return &m->head;

fail_free_merge:
    free(m->srcs);
    free(m->gone);
    free(m);
fail_nomem:
    s_destroy_all(receivers, n);
    return zchan__fail_null(ZCHAN_ENOMEM);
}

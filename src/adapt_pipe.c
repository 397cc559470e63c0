/*  adapt_pipe.c: the adaptors that run a background thread
    (docs/ADAPTORS.md).

    - zchan_latest_t, zchan_pipe_t: a background thread that owns a receiver
      (and, for the pipe, a sender) and sleeps in zmq_poll on the receiver's
      poll items and on an internal stop event (adapt_event.c).
*/
#include "adapt.h"
#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

// ---------------------------------------------------------------------------
// Helpers shared by the two threads below

//  Initialises a condition variable that waits on the monotonic clock, the
//  clock of zchan__deadline. Returns 0 or ESYS.
static int s_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return ZCHAN_ESYS;
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 && pthread_cond_init(cond, &attr) == 0
                 ? 0
                 : ZCHAN_ESYS;
    pthread_condattr_destroy(&attr);
    return rc;
}

//  Waits on cond (mx held) until signalled or deadline_ms (absolute
//  monotonic ms, -1 forever). Returns ETIMEDOUT once the deadline has passed,
//  else 0 (which may be a spurious wake-up: the caller re-checks).
static int s_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mx, int64_t deadline_ms)
{
    if (deadline_ms < 0) {
        pthread_cond_wait(cond, mx);
        return 0;
    }
    struct timespec ts = {
        .tv_sec = (time_t) (deadline_ms / 1000),
        .tv_nsec = (long) (deadline_ms % 1000) * 1000000,
    };
    return pthread_cond_timedwait(cond, mx, &ts) == ETIMEDOUT ? ZCHAN_ETIMEDOUT : 0;
}

//  Blocks, without CPU, until src is ready (returns 0), stop is set (returns
//  ECLOSED), or the source's prepare or zmq_poll fails (returns that error).
//  Used by the background threads, which own src.
static int s_wait_src_or_stop(zchan_receiver_t *src, zchan_event_t *stop)
{
    zmq_pollitem_t inline_items[8];
    zmq_pollitem_t *items = inline_items;
    size_t cap = sizeof inline_items / sizeof inline_items[0];
    int rc;
    for (;;) {
        if (zchan_event_is_set(stop)) {
            rc = ZCHAN_ECLOSED;
            break;
        }
        if (src->ops->ready(src)) {
            rc = 0;
            break;
        }
        if ((rc = src->ops->prepare(src)) != 0)
            break;
        zchan__receiver_hold(src, true); // no close under the poll (at exit)
        size_t need = src->ops->pollitems(src, items + 1, cap - 1);
        if (need > cap - 1) {
            zchan__receiver_hold(src, false);
            zmq_pollitem_t *more = malloc((need + 1) * sizeof *more);
            if (!more) {
                rc = ZCHAN_ENOMEM;
                break;
            }
            if (items != inline_items)
                free(items);
            items = more;
            cap = need + 1;
            continue; // gather them again, from the top
        }
        items[0] = (zmq_pollitem_t) { .socket = NULL, .fd = zchan__event_fd(stop), .events = ZMQ_POLLIN };
        for (size_t i = 0; i <= need; i++)
            items[i].revents = 0;
        bool failed = zmq_poll(items, (int) need + 1, -1) < 0 && zmq_errno() != EINTR;
        if (failed)
            rc = zchan__zmq_error("zmq_poll");
        zchan__receiver_hold(src, false);
        if (failed)
            break;
    }
    if (items != inline_items)
        free(items);
    return rc;
}

// ---------------------------------------------------------------------------
// Latest-value cache

struct zchan_latest_t {
    zchan_receiver_t *src;  // the thread's until it is joined
    zchan_event_t *stop;
    pthread_t thread;
    pthread_mutex_t lock;   // guards what follows
    pthread_cond_t cond;    // signalled when count or stopped changes
    zchan_msg_t *value;     // the last message taken, NULL before the first
    uint64_t count;         // messages taken
    bool stopped;           // the thread has ended
};

static void *s_latest_run(void *arg)
{
    zchan_latest_t *l = (zchan_latest_t *) arg;
    for (;;) {
        int rc = s_wait_src_or_stop(l->src, l->stop);
        if (rc == ZCHAN_ECLOSED)
            break;
        if (rc != 0) {
            zchan__log_init();
            zsys_error("zchan: latest-value cache stops: %s", zchan_strerror(rc));
            break;
        }
        zchan_msg_t *msg = NULL;
        rc = l->src->ops->recv(l->src, &msg, 0);
        if (rc == ZCHAN_ECLOSED)
            break;
        if (rc != 0)
            continue; // a message the source reported bad: keep the last good one
        pthread_mutex_lock(&l->lock);
        zchan_msg_t *old = l->value;
        l->value = msg;
        l->count++;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
        zchan_msg_destroy(&old);
    }
    pthread_mutex_lock(&l->lock);
    l->stopped = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

zchan_latest_t *zchan_latest_new(zchan_receiver_t *src)
{
    if (!src)
        return zchan__fail_null(ZCHAN_EINVAL);
    zchan_latest_t *l = calloc(1, sizeof *l);
    if (!l) {
        zchan_receiver_destroy(&src);
        return zchan__fail_null(ZCHAN_ENOMEM);
    }
    l->src = src;
    int err = ZCHAN_ESYS;
    if (pthread_mutex_init(&l->lock, NULL) != 0)
        goto fail_free;
    if (s_cond_init(&l->cond) != 0)
        goto fail_mutex;
    l->stop = zchan_event_new();
    if (!l->stop) {
        err = zchan_errno();
        goto fail_cond;
    }
    if (pthread_create(&l->thread, NULL, s_latest_run, l) != 0)
        goto fail_event;
    return l;

fail_event:
    zchan_event_destroy(&l->stop);
fail_cond:
    pthread_cond_destroy(&l->cond);
fail_mutex:
    pthread_mutex_destroy(&l->lock);
fail_free:
    zchan_receiver_destroy(&l->src);
    free(l);
    return zchan__fail_null(err);
}

int zchan_latest_get(zchan_latest_t *l, zchan_msg_t **copy_p)
{
    zchan__assert(l);
    if (!copy_p)
        return zchan__fail(ZCHAN_EINVAL);
    zchan_msg_t *copy = NULL;
    int rc;
    pthread_mutex_lock(&l->lock);
    if (!l->value)
        rc = l->stopped ? ZCHAN_ECLOSED : ZCHAN_ETIMEDOUT;
    else {
        copy = zchan_msg_dup(l->value);
        rc = copy ? 0 : zchan_errno();
    }
    pthread_mutex_unlock(&l->lock);
    if (rc != 0)
        return zchan__fail(rc);
    *copy_p = copy;
    return 0;
}

uint64_t zchan_latest_count(zchan_latest_t *l)
{
    zchan__assert(l);
    pthread_mutex_lock(&l->lock);
    uint64_t count = l->count;
    pthread_mutex_unlock(&l->lock);
    return count;
}

int zchan_latest_wait(zchan_latest_t *l, uint64_t count, int timeout_ms)
{
    zchan__assert(l);
    int64_t deadline_ms = zchan__deadline(timeout_ms);
    pthread_mutex_lock(&l->lock);
    while (l->count <= count && !l->stopped)
        if (s_cond_wait(&l->cond, &l->lock, deadline_ms) == ZCHAN_ETIMEDOUT)
            break;
    int rc = l->count > count ? 0 : l->stopped ? ZCHAN_ECLOSED : ZCHAN_ETIMEDOUT;
    pthread_mutex_unlock(&l->lock);
    return rc ? zchan__fail(rc) : 0;
}

void zchan_latest_destroy(zchan_latest_t **l_p)
{
    if (!l_p || !*l_p)
        return;
    zchan_latest_t *l = *l_p;
    zchan_event_set(l->stop);
    pthread_join(l->thread, NULL);
    zchan_receiver_destroy(&l->src);
    zchan_msg_destroy(&l->value);
    zchan_event_destroy(&l->stop);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
    *l_p = NULL;
}

// ---------------------------------------------------------------------------
// Pipe

//  How long one send attempt of the pipe may block before it checks whether
//  it was asked to stop. A sender has no pollable stop hook, so a full
//  destination is retried in slices this long (10 wake-ups a second, only
//  while the destination is full).
#define S_PIPE_SLICE_MS 100

struct zchan_pipe_t {
    zchan_receiver_t *src;   // the thread's until it is joined
    zchan_sender_t *dst;     // likewise
    zchan_event_t *stop;
    pthread_t thread;
    bool joined;
    zchan_msg_t *held;       // taken from src, not delivered; set by the thread
    atomic_uint_fast64_t forwarded;
    atomic_uint_fast64_t skipped;
    pthread_mutex_t lock;    // guards done and status
    pthread_cond_t cond;
    bool done;
    int status;
};

//  Sends *msg_p to the destination, retrying while it is full, until it is
//  delivered (0), the pipe is stopped (ECLOSED), or the send fails with
//  another error. On failure the message stays in *msg_p.
static int s_pipe_deliver(zchan_pipe_t *p, zchan_msg_t **msg_p)
{
    for (;;) {
        int rc = zchan_send(p->dst, msg_p, S_PIPE_SLICE_MS);
        if (rc != ZCHAN_ETIMEDOUT)
            return rc;
        if (zchan_event_is_set(p->stop))
            return ZCHAN_ECLOSED;
    }
}

//  The forwarding loop. Returns the pipe's status: 0 when the source has
//  stopped, ECLOSED when asked to stop or when the destination closed, or an
//  error. A message that could not be delivered is left in p->held.
static int s_pipe_forward(zchan_pipe_t *p)
{
    for (;;) {
        int rc = s_wait_src_or_stop(p->src, p->stop);
        if (rc != 0)
            return rc; // ECLOSED: stopped; nothing taken is left undelivered
        zchan_msg_t *msg = NULL;
        rc = p->src->ops->recv(p->src, &msg, 0);
        if (rc == ZCHAN_ECLOSED)
            return 0;
        if (rc == ZCHAN_ETIMEDOUT)
            continue;
        if (rc != 0) {
            //  The source consumed a message it could not give (EPROTO, a
            //  map callback's error): count it and go on.
            atomic_fetch_add(&p->skipped, 1);
            continue;
        }
        rc = s_pipe_deliver(p, &msg);
        if (rc != 0) {
            p->held = msg;
            return rc;
        }
        atomic_fetch_add(&p->forwarded, 1);
    }
}

static void *s_pipe_run(void *arg)
{
    zchan_pipe_t *p = (zchan_pipe_t *) arg;
    int status = s_pipe_forward(p);
    pthread_mutex_lock(&p->lock);
    p->status = status;
    p->done = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

zchan_pipe_t *zchan_pipe_new(zchan_receiver_t *src, zchan_sender_t *dst)
{
    int err = ZCHAN_EINVAL;
    zchan_pipe_t *p = NULL;
    if (!src || !dst)
        goto fail_args;
    err = ZCHAN_ENOMEM;
    p = calloc(1, sizeof *p);
    if (!p)
        goto fail_args;
    err = ZCHAN_ESYS;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        goto fail_free;
    if (s_cond_init(&p->cond) != 0)
        goto fail_mutex;
    p->stop = zchan_event_new();
    if (!p->stop) {
        err = zchan_errno();
        goto fail_cond;
    }
    p->src = src;
    p->dst = dst;
    atomic_init(&p->forwarded, 0);
    atomic_init(&p->skipped, 0);
    if (pthread_create(&p->thread, NULL, s_pipe_run, p) != 0)
        goto fail_event;
    return p;

fail_event:
    zchan_event_destroy(&p->stop);
fail_cond:
    pthread_cond_destroy(&p->cond);
fail_mutex:
    pthread_mutex_destroy(&p->lock);
fail_free:
    free(p);
fail_args:
    zchan_receiver_destroy(&src);
    zchan_sender_destroy(&dst);
    return zchan__fail_null(err);
}

int zchan_pipe_wait(zchan_pipe_t *p, int timeout_ms)
{
    zchan__assert(p);
    int64_t deadline_ms = zchan__deadline(timeout_ms);
    pthread_mutex_lock(&p->lock);
    while (!p->done)
        if (s_cond_wait(&p->cond, &p->lock, deadline_ms) == ZCHAN_ETIMEDOUT)
            break;
    int rc = p->done ? p->status : ZCHAN_ETIMEDOUT;
    pthread_mutex_unlock(&p->lock);
    return rc ? zchan__fail(rc) : 0;
}

int zchan_pipe_stop(zchan_pipe_t *p, zchan_msg_t **undelivered_p)
{
    zchan__assert(p);
    if (!p->joined) {
        zchan_event_set(p->stop);
        pthread_join(p->thread, NULL);
        p->joined = true;
    }
    if (undelivered_p)
        *undelivered_p = p->held;
    else if (p->held) {
        zchan__log_init();
        zsys_warning("zchan: pipe stopped holding one undelivered message; it is dropped");
        zchan_msg_destroy(&p->held);
    }
    p->held = NULL;
    //  The thread has ended: done is set and no one else writes it.
    return p->status ? zchan__fail(p->status) : 0;
}

uint64_t zchan_pipe_forwarded(zchan_pipe_t *p)
{
    zchan__assert(p);
    return atomic_load(&p->forwarded);
}

uint64_t zchan_pipe_skipped(zchan_pipe_t *p)
{
    zchan__assert(p);
    return atomic_load(&p->skipped);
}

void zchan_pipe_destroy(zchan_pipe_t **p_p)
{
    if (!p_p || !*p_p)
        return;
    zchan_pipe_t *p = *p_p;
    zchan_pipe_stop(p, NULL);
    zchan_receiver_destroy(&p->src);
    zchan_sender_destroy(&p->dst);
    zchan_event_destroy(&p->stop);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
    *p_p = NULL;
}

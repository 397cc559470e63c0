/*  adapt.c: receiver adaptors and utilities (docs/ADAPTORS.md).

    - zchan_msg_dup: a deep copy of a message.
    - zchan_map, zchan_filter: receiver kinds that wrap another receiver and
      run a callback in the reading thread.
    - zchan_event_t: a one-shot, thread-safe signal. Its wake-up is the read
      end of an OS pipe that becomes readable, and stays readable, once the
      event is set, so zmq_poll (select, a receiver's wait) sleeps on it like
      on any socket. An fd rather than a zmq socket: a zmq socket belongs to
      one thread, while any thread may set an event.
    - zchan_oneshot_t: an anycast channel of capacity 1 that is closed right
      after its one send, built on the public channel API.
    - zchan_latest_t, zchan_pipe_t: a background thread that owns a receiver
      (and, for the pipe, a sender) and sleeps in zmq_poll on the receiver's
      poll items and on an internal stop event.
*/
#include "core.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
// Helpers shared by the utilities below

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

// ---------------------------------------------------------------------------
// Event

struct zchan_event_t {
    atomic_int refs;  // the event itself and each of its receivers
    atomic_bool set;
    int rfd;          // readable once set; never read, so it stays readable
    int wfd;
};

//  Creates an unset event. NULL (ESYS, ENOMEM).
zchan_event_t *zchan_event_new(void)
{
    zchan_event_t *ev = calloc(1, sizeof *ev);
    if (!ev)
        return zchan__fail_null(ZCHAN_ENOMEM);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        zchan__log_init();
        zsys_error("zchan: event: pipe: %s", strerror(errno));
        free(ev);
        return zchan__fail_null(ZCHAN_ESYS);
    }
    ev->rfd = fds[0];
    ev->wfd = fds[1];
    atomic_init(&ev->refs, 1);
    atomic_init(&ev->set, false);
    return ev;
}

//  Drops one reference; the last one frees the event.
static void s_event_unref(zchan_event_t *ev)
{
    if (atomic_fetch_sub(&ev->refs, 1) != 1)
        return;
    close(ev->rfd);
    close(ev->wfd);
    free(ev);
}

void zchan_event_destroy(zchan_event_t **ev_p)
{
    if (!ev_p || !*ev_p)
        return;
    s_event_unref(*ev_p);
    *ev_p = NULL;
}

int zchan_event_set(zchan_event_t *ev)
{
    zchan__assert(ev);
    if (atomic_exchange(&ev->set, true))
        return 0;
    //  The first set writes the one byte that makes rfd readable forever.
    ssize_t n;
    do
        n = write(ev->wfd, "!", 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        zchan__log_init();
        zsys_error("zchan: event: cannot wake waiters: %s", strerror(errno));
        return zchan__fail(ZCHAN_ESYS);
    }
    return 0;
}

bool zchan_event_is_set(zchan_event_t *ev)
{
    zchan__assert(ev);
    return atomic_load(&ev->set);
}

int zchan_event_wait(zchan_event_t *ev, int timeout_ms)
{
    zchan__assert(ev);
    int64_t deadline_ms = zchan__deadline(timeout_ms);
    while (!atomic_load(&ev->set)) {
        struct pollfd pfd = { .fd = ev->rfd, .events = POLLIN };
        long left = zchan__remaining(deadline_ms);
        int rc = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int) left);
        if (rc < 0 && errno != EINTR) {
            zchan__log_init();
            zsys_error("zchan: event: poll: %s", strerror(errno));
            return zchan__fail(ZCHAN_ESYS);
        }
        if (rc == 0 && deadline_ms >= 0 && zchan__now_ms() >= deadline_ms)
            return atomic_load(&ev->set) ? 0 : zchan__fail(ZCHAN_ETIMEDOUT);
    }
    return 0;
}

//  The event's receiver kind: never a message; stopped once the event is set.
typedef struct {
    zchan_receiver_t head;
    zchan_event_t *ev; // one reference
} s_evrecv_t;

static int s_evrecv_prepare(zchan_receiver_t *r)
{
    (void) r;
    return 0;
}

static size_t s_evrecv_pollitems(zchan_receiver_t *r, zmq_pollitem_t *items, size_t max)
{
    if (max >= 1)
        items[0] = (zmq_pollitem_t) { .socket = NULL, .fd = ((s_evrecv_t *) r)->ev->rfd, .events = ZMQ_POLLIN };
    return 1;
}

static bool s_evrecv_ready(zchan_receiver_t *r)
{
    if (atomic_load(&((s_evrecv_t *) r)->ev->set))
        r->stopped = true;
    return r->stopped;
}

static int s_evrecv_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms)
{
    (void) msg_p;
    if (!s_evrecv_ready(r)) {
        int rc = zchan__receiver_wait(r, zchan__deadline(timeout_ms));
        if (rc != 0)
            return zchan__fail(rc);
    }
    return zchan__fail(ZCHAN_ECLOSED);
}

static void s_evrecv_destroy(zchan_receiver_t *r)
{
    s_event_unref(((s_evrecv_t *) r)->ev);
}

static const zchan__recv_ops_t s_evrecv_ops = {
    .prepare = s_evrecv_prepare,
    .pollitems = s_evrecv_pollitems,
    .ready = s_evrecv_ready,
    .recv = s_evrecv_recv,
    .destroy = s_evrecv_destroy,
};

zchan_receiver_t *zchan_event_receiver(zchan_event_t *ev)
{
    zchan__assert(ev);
    s_evrecv_t *er = calloc(1, sizeof *er);
    if (!er)
        return zchan__fail_null(ZCHAN_ENOMEM);
    er->head.ops = &s_evrecv_ops;
    atomic_fetch_add(&ev->refs, 1);
    er->ev = ev;
    return &er->head;
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
        if (atomic_load(&stop->set)) {
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
        items[0] = (zmq_pollitem_t) { .socket = NULL, .fd = stop->rfd, .events = ZMQ_POLLIN };
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
// Oneshot

struct zchan_oneshot_t {
    zchan_t *ch;
    zchan_sender_t *s;
    bool sent;   // the one send has happened: later sends give ECLOSED
    bool closed; // the channel has been closed
};

//  Closes the channel once; logs a failure (destroy retries it).
static void s_oneshot_close(zchan_oneshot_t *os)
{
    if (os->closed || !os->ch)
        return;
    int rc = zchan_close(os->ch);
    if (rc == 0)
        os->closed = true;
    else {
        zchan__log_init();
        zsys_warning("zchan: oneshot %s: cannot close: %s", zchan_name(os->ch), zchan_strerror(rc));
    }
}

zchan_oneshot_t *zchan_oneshot_new(zchan_ctx_t *ctx, zchan_receiver_t **r_p)
{
    zchan__assert(ctx);
    if (!r_p)
        return zchan__fail_null(ZCHAN_EINVAL);
    zchan_oneshot_t *os = calloc(1, sizeof *os);
    if (!os)
        return zchan__fail_null(ZCHAN_ENOMEM);
    zchan_receiver_t *r = NULL;
    int err;
    os->ch = zchan_anycast_new(ctx, NULL, 1);
    if (!os->ch)
        goto fail;
    os->s = zchan_sender_new(os->ch);
    if (!os->s)
        goto fail;
    r = zchan_receiver_new(os->ch, 0);
    if (!r)
        goto fail;
    *r_p = r;
    return os;

fail:
    err = zchan_errno();
    zchan_oneshot_destroy(&os);
    return zchan__fail_null(err);
}

int zchan_oneshot_send(zchan_oneshot_t *os, zchan_msg_t **msg_p, int timeout_ms)
{
    zchan__assert(os);
    if (!msg_p || !*msg_p)
        return zchan__fail(ZCHAN_EINVAL);
    if (os->sent)
        return zchan__fail(ZCHAN_ECLOSED);
    int rc = zchan_send(os->s, msg_p, timeout_ms);
    if (rc != 0)
        return rc;
    os->sent = true;
    //  The close follows the message: the receiver gets it, then ECLOSED.
    s_oneshot_close(os);
    return 0;
}

void zchan_oneshot_destroy(zchan_oneshot_t **os_p)
{
    if (!os_p || !*os_p)
        return;
    zchan_oneshot_t *os = *os_p;
    //  Unsent: the receiver stops with ECLOSED.
    if (os->s)
        s_oneshot_close(os);
    zchan_sender_destroy(&os->s);
    zchan_destroy(&os->ch);
    free(os);
    *os_p = NULL;
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
        if (atomic_load(&p->stop->set))
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

/*  adapt_event.c: one-shot signals (docs/ADAPTORS.md).

    - zchan_event_t: a one-shot, thread-safe signal. Its wake-up is the read
      end of an OS pipe that becomes readable, and stays readable, once the
      event is set, so zmq_poll (select, a receiver's wait) sleeps on it like
      on any socket. An fd rather than a zmq socket: a zmq socket belongs to
      one thread, while any thread may set an event. The event's layout is
      this file's own; the background threads of adapt_pipe.c poll on it
      through zchan__event_fd (adapt.h).
    - zchan_oneshot_t: an anycast channel of capacity 1 that is closed right
      after its one send, built on the public channel API.
*/
#include "adapt.h"
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int zchan__event_fd(zchan_event_t *ev)
{
    return ev->rfd;
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

/*  select.c: waiting on many receivers and timers at once, and on one
    receiver alone (zchan__receiver_wait), with zmq_poll.

    Receivers are polymorphic (see zchan__recv_ops_t in internal.h): a
    select asks each for readiness without blocking, and when none is ready it
    prepares them, gathers their poll items and sleeps in zmq_poll until a
    socket is readable, the nearest timer tick is due, or the caller's
    timeout passes. Waiting uses no CPU.

    Fairness: each wait scans the items in round-robin order, starting after
    the item the previous wait returned, so a ready item is returned within n
    waits whatever the others do.
*/
#include "internal.h"
#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---------------------------------------------------------------------------
// A growable array of poll items, first in an inline buffer.

#define S_POLL_INLINE 8

typedef struct {
    zmq_pollitem_t *items; // inline or on the heap
    size_t n;
    size_t cap;
    zmq_pollitem_t inline_items[S_POLL_INLINE];
} s_pollset_t;

//  Empties ps into its inline buffer. ps must not move while in use.
static void s_pollset_init(s_pollset_t *ps)
{
    ps->items = ps->inline_items;
    ps->n = 0;
    ps->cap = S_POLL_INLINE;
}

//  Frees what the pollset holds on the heap.
static void s_pollset_fini(s_pollset_t *ps)
{
    if (ps->items != ps->inline_items)
        free(ps->items);
    s_pollset_init(ps);
}

//  Makes room for at least cap items, keeping those held. ENOMEM.
static int s_pollset_reserve(s_pollset_t *ps, size_t cap)
{
    if (cap <= ps->cap)
        return 0;
    size_t new_cap = ps->cap * 2 > cap ? ps->cap * 2 : cap;
    zmq_pollitem_t *items = malloc(new_cap * sizeof *items);
    if (!items)
        return ZCHAN_ENOMEM;
    memcpy(items, ps->items, ps->n * sizeof *items);
    if (ps->items != ps->inline_items)
        free(ps->items);
    ps->items = items;
    ps->cap = new_cap;
    return 0;
}

//  Appends the poll items of receiver r. ENOMEM.
static int s_pollset_add(s_pollset_t *ps, zchan_receiver_t *r)
{
    for (;;) {
        size_t room = ps->cap - ps->n;
        size_t need = r->ops->pollitems(r, ps->items + ps->n, room);
        if (need <= room) {
            ps->n += need;
            return 0;
        }
        if (s_pollset_reserve(ps, ps->n + need) != 0)
            return ZCHAN_ENOMEM;
    }
}

//  Sleeps in zmq_poll on the pollset for at most timeout_us (-1: forever),
//  rounded up to whole milliseconds. Returns 0 when something may have
//  changed (readable, timeout or signal) or an error. With no items it sleeps
//  on the monotonic clock instead.
static int s_pollset_wait(s_pollset_t *ps, int64_t timeout_us)
{
    if (ps->n == 0) {
        //  Only timers (or receivers without sockets): a plain, precise sleep.
        int64_t us = timeout_us < 0 ? 3600 * INT64_C(1000000) : timeout_us;
        struct timespec ts = { .tv_sec = (time_t) (us / 1000000), .tv_nsec = (long) (us % 1000000) * 1000 };
        nanosleep(&ts, NULL);
        return 0;
    }
    long timeout_ms = timeout_us < 0 ? -1 : (long) ((timeout_us + 999) / 1000);
    for (size_t i = 0; i < ps->n; i++)
        ps->items[i].revents = 0;
    if (zmq_poll(ps->items, (int) ps->n, timeout_ms) < 0 && zmq_errno() != EINTR)
        return zchan__zmq_error("zmq_poll");
    return 0;
}

// ---------------------------------------------------------------------------
// Waiting on one receiver

//  Waits on r's poll items until r is ready (a read with timeout 0 gives a
//  message or ECLOSED) or deadline_ms (absolute, -1 forever) passes. Returns
//  0 when ready, ETIMEDOUT, or the error of prepare or zmq_poll. Checks once
//  more after the last poll, so a deadline in the past still does one
//  non-blocking round of prepare and poll.
int zchan__receiver_wait(zchan_receiver_t *r, int64_t deadline_ms)
{
    zchan__assert(r);
    s_pollset_t ps;
    s_pollset_init(&ps);
    int rc = ZCHAN_ETIMEDOUT;
    for (bool last = false;;) {
        if (r->ops->ready(r)) {
            rc = 0;
            break;
        }
        if (last)
            break;
        ps.n = 0;
        if ((rc = r->ops->prepare(r)) != 0)
            break;
        //  Held across the poll: a shutdown at exit does not close its sockets under it.
        zchan__receiver_hold(r, true);
        long left = zchan__remaining(deadline_ms);
        if ((rc = s_pollset_add(&ps, r)) == 0)
            rc = s_pollset_wait(&ps, left < 0 ? -1 : (int64_t) left * 1000);
        zchan__receiver_hold(r, false);
        if (rc != 0)
            break;
        rc = ZCHAN_ETIMEDOUT;
        last = deadline_ms >= 0 && zchan__now_ms() >= deadline_ms;
    }
    s_pollset_fini(&ps);
    return rc ? zchan__fail(rc) : 0;
}

// ---------------------------------------------------------------------------
// Select

typedef enum { S_RECEIVER, S_TIMER } s_kind_t;

typedef struct {
    s_kind_t kind;
    void *ptr;  // zchan_receiver_t * or zchan_timer_t *
    bool done;  // stopped and reported; left out until a timer is reset
} s_item_t;

struct zchan_select_t {
    s_item_t *items;
    size_t n;
    size_t cap;
    size_t next;     // where the next scan starts (after the last item returned)
    size_t last;     // index of the item the previous wait returned
    bool has_last;
    s_pollset_t ps;  // reused by every wait
};

//  Creates an empty select set. NULL (ENOMEM). The caller owns it.
zchan_select_t *zchan_select_new(void)
{
    zchan_select_t *sel = calloc(1, sizeof *sel);
    if (!sel)
        return zchan__fail_null(ZCHAN_ENOMEM);
    s_pollset_init(&sel->ps);
    return sel;
}

//  Frees the select set and nulls *sel_p; its receivers and timers stay with
//  their owners.
void zchan_select_destroy(zchan_select_t **sel_p)
{
    if (!sel_p || !*sel_p)
        return;
    zchan_select_t *sel = *sel_p;
    s_pollset_fini(&sel->ps);
    free(sel->items);
    free(sel);
    *sel_p = NULL;
}

//  Adds ptr of the given kind (borrowed). EINVAL if present, ENOMEM.
static int s_add(zchan_select_t *sel, s_kind_t kind, void *ptr)
{
    for (size_t i = 0; i < sel->n; i++)
        if (sel->items[i].ptr == ptr)
            return zchan__fail(ZCHAN_EINVAL);
    if (sel->n == sel->cap) {
        size_t cap = sel->cap ? sel->cap * 2 : 8;
        s_item_t *items = realloc(sel->items, cap * sizeof *items);
        if (!items)
            return zchan__fail(ZCHAN_ENOMEM);
        sel->items = items;
        sel->cap = cap;
    }
    sel->items[sel->n++] = (s_item_t) { .kind = kind, .ptr = ptr, .done = false };
    return 0;
}

//  Adds a receiver of any kind (borrowed). EINVAL if already added, ENOMEM.
int zchan_select_add_receiver(zchan_select_t *sel, zchan_receiver_t *r)
{
    zchan__assert(sel);
    zchan__assert(r);
    return s_add(sel, S_RECEIVER, r);
}

//  Adds a timer (borrowed). EINVAL if already added, ENOMEM.
int zchan_select_add_timer(zchan_select_t *sel, zchan_timer_t *t)
{
    zchan__assert(sel);
    zchan__assert(t);
    return s_add(sel, S_TIMER, t);
}

//  Never blocks. True if the item should be returned now: a timer whose tick
//  is due, a receiver that is ready, or either one newly stopped (which is
//  then marked done so it is returned only once).
static bool s_item_ready(s_item_t *it, int64_t now_us)
{
    if (it->kind == S_TIMER) {
        zchan_timer_t *t = it->ptr;
        if (zchan__timer_stopped(t)) {
            if (it->done)
                return false;
            it->done = true;
            return true;
        }
        it->done = false; // reset since it was reported stopped
        return zchan__timer_next_us(t) <= now_us;
    }
    zchan_receiver_t *r = it->ptr;
    if (it->done || !r->ops->ready(r))
        return false;
    if (r->stopped)
        it->done = true;
    return true;
}

//  Scans every item once, in round-robin order, and returns the index of the
//  first ready one (recording it for fairness and the debug check), or -1.
static long s_scan(zchan_select_t *sel, int64_t now_us)
{
    for (size_t k = 0; k < sel->n; k++) {
        size_t i = (sel->next + k) % sel->n;
        s_item_t *it = &sel->items[i];
        if (!s_item_ready(it, now_us))
            continue;
        sel->next = (i + 1) % sel->n;
        sel->last = i;
        sel->has_last = true;
        if (it->kind == S_TIMER)
            zchan__timer_set_selected(it->ptr, true);
        else
            ((zchan_receiver_t *) it->ptr)->selected_unread = true;
        return (long) i;
    }
    return -1;
}

//  True if every item has stopped and has been reported.
static bool s_all_done(const zchan_select_t *sel)
{
    for (size_t i = 0; i < sel->n; i++)
        if (!sel->items[i].done)
            return false;
    return true;
}

//  Debug builds: warns when the item the previous wait returned was not read
//  (frequenz-channels' unhandled-selected check), then forgets it.
static void s_check_unhandled(zchan_select_t *sel)
{
#ifndef NDEBUG
    if (!sel->has_last || sel->last >= sel->n)
        return;
    s_item_t *it = &sel->items[sel->last];
    bool unread = it->kind == S_TIMER ? zchan__timer_selected(it->ptr)
                                      : ((zchan_receiver_t *) it->ptr)->selected_unread;
    if (unread) {
        zchan__log_init();
        zsys_warning("zchan: select returned a %s (%p) that was not read before the next wait",
                     it->kind == S_TIMER ? "timer" : "receiver", it->ptr);
    }
    if (it->kind == S_TIMER)
        zchan__timer_set_selected(it->ptr, false);
    else
        ((zchan_receiver_t *) it->ptr)->selected_unread = false;
#endif
    sel->has_last = false;
}

#define SELECT_SPIN_US 20 // a select on watchable receivers spins this long before it sleeps

//  Before a select sleeps: if some of its receivers can be watched without
//  system calls (local receivers), asks each for a message and spins for up
//  to SELECT_SPIN_US (not past deadline_us), or until one of them changed.
//  true if one did: scan again instead of sleeping. With one CPU it does not
//  spin: whoever would wake it cannot run meanwhile.
static bool s_spin(zchan_select_t *sel, int64_t deadline_us)
{
    if (!zchan__spin_worth())
        return false;
    unsigned seen[S_POLL_INLINE];
    size_t nw = 0;
    int64_t until = zchan__now_us() + SELECT_SPIN_US;
    if (deadline_us >= 0 && deadline_us < until)
        until = deadline_us;
    //  Every timer bounds the spin; the first S_POLL_INLINE watchable
    //  receivers are watched (others are left to the poll).
    for (size_t i = 0; i < sel->n; i++) {
        s_item_t *it = &sel->items[i];
        zchan_receiver_t *r = it->ptr;
        if (it->kind == S_TIMER) {
            int64_t next_us = zchan__timer_next_us(it->ptr); // not past a tick
            if (next_us >= 0 && next_us < until)
                until = next_us;
        } else if (!it->done && r->ops->watch && nw < S_POLL_INLINE)
            seen[nw++] = r->ops->watch(r);
    }
    if (nw == 0)
        return false;
    for (unsigned k = 1;; k++) {
        size_t w = 0;
        for (size_t i = 0; i < sel->n && w < nw; i++) {
            s_item_t *it = &sel->items[i];
            zchan_receiver_t *r = it->ptr;
            if (it->kind == S_RECEIVER && !it->done && r->ops->watch && r->ops->events(r) != seen[w++])
                return true;
        }
        if (k % 16 == 0 && zchan__now_us() >= until)
            return false;
        zchan__relax();
    }
}

//  Prepares every live receiver and sleeps in zmq_poll on all their poll
//  items until one is readable, the nearest live timer is due, or deadline_us
//  (absolute, -1 forever) passes. Returns 0 or an error.
static int s_sleep(zchan_select_t *sel, int64_t deadline_us)
{
    s_pollset_t *ps = &sel->ps;
    ps->n = 0;
    int64_t wake_us = deadline_us;
    int rc = 0;
    size_t i;
    for (i = 0; i < sel->n && rc == 0; i++) {
        s_item_t *it = &sel->items[i];
        if (it->kind == S_TIMER) {
            int64_t next_us = zchan__timer_next_us(it->ptr);
            if (next_us >= 0 && (wake_us < 0 || next_us < wake_us))
                wake_us = next_us;
            continue;
        }
        if (it->done)
            continue;
        zchan_receiver_t *r = it->ptr;
        //  Held across the poll: a shutdown at exit does not close its
        //  sockets under it.
        zchan__receiver_hold(r, true);
        rc = r->ops->prepare(r);
        if (rc == 0)
            rc = s_pollset_add(ps, r);
    }
    if (rc == 0) {
        int64_t timeout_us = -1;
        if (wake_us >= 0) {
            timeout_us = wake_us - zchan__now_us();
            if (timeout_us < 0)
                timeout_us = 0;
        }
        rc = s_pollset_wait(ps, timeout_us);
    }
    //  Let go of the receivers held above: those before item i.
    for (size_t j = 0; j < i; j++)
        if (sel->items[j].kind != S_TIMER && !sel->items[j].done)
            zchan__receiver_hold(sel->items[j].ptr, false);
    return rc;
}

//  Blocks (in zmq_poll, without CPU) until an item is ready or timeout_ms
//  passes, and returns that item: a zchan_receiver_t * or a zchan_timer_t *
//  (borrowed) for the caller to read with timeout 0. A stopped item is
//  returned once, then left out (a timer comes back when it is reset).
//  NULL with ETIMEDOUT, with ECLOSED when every item has stopped (or there
//  are none), or with the error of a receiver's prepare or of zmq_poll.
void *zchan_select_wait(zchan_select_t *sel, int timeout_ms)
{
    zchan__assert(sel);
    s_check_unhandled(sel);
    if (sel->n == 0)
        return zchan__fail_null(ZCHAN_ECLOSED);
    int64_t deadline_us = timeout_ms < 0 ? -1 : zchan__now_us() + (int64_t) timeout_ms * 1000;
    for (bool last = false;;) {
        long i = s_scan(sel, zchan__now_us());
        if (i >= 0)
            return sel->items[i].ptr;
        if (s_all_done(sel))
            return zchan__fail_null(ZCHAN_ECLOSED);
        if (last)
            return zchan__fail_null(ZCHAN_ETIMEDOUT);
        if (s_spin(sel, deadline_us))
            continue; // a local receiver changed: no need to sleep
        int rc = s_sleep(sel, deadline_us);
        if (rc != 0)
            return zchan__fail_null(rc);
        last = deadline_us >= 0 && zchan__now_us() >= deadline_us;
    }
}

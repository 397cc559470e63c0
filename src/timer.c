/*  timer.c: periodic timers on the monotonic clock, with frequenz-channels'
    three missed-tick policies.

    A timer is a deadline and nothing else: no thread, no fd. zchan_timer_wait
    sleeps until the deadline (clock_nanosleep on CLOCK_MONOTONIC, absolute,
    so no drift accumulates from the sleep itself), and select folds the
    deadline into its zmq_poll timeout through zchan__timer_next_us.

    After a tick scheduled at T is consumed at time now (drift = now - T), the
    next tick is scheduled at:
    - TRIGGER_ALL_MISSED:    T + interval; missed ticks fire back to back.
    - SKIP_MISSED_AND_RESYNC: the first point of the grid after now.
    - SKIP_MISSED_AND_DRIFT:  T + interval if drift <= tolerance, otherwise
      now + interval (the grid restarts from now).
*/
#include "internal.h"
#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

struct zchan_timer_t {
    int64_t interval_us;
    int64_t tolerance_us;
    bool tolerance_set;   // set by the caller: keep it when the interval changes
    zchan_missed_t policy;
    int64_t next_us;      // absolute monotonic time of the next tick
    bool stopped;
    bool selected_unread; // returned by select, not waited on since (debug check)
};

//  Sleeps until the monotonic clock reads at least until_us. Retries when a
//  signal interrupts the sleep.
static void s_sleep_until(int64_t until_us)
{
    struct timespec ts = {
        .tv_sec = (time_t) (until_us / 1000000),
        .tv_nsec = (long) (until_us % 1000000) * 1000,
    };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

//  Returns when the tick after the one scheduled at tick_us, consumed at
//  now_us, is due under the timer's policy.
static int64_t s_next_tick(const zchan_timer_t *t, int64_t tick_us, int64_t now_us)
{
    int64_t drift = now_us - tick_us;
    switch (t->policy) {
    case ZCHAN_SKIP_MISSED_AND_RESYNC:
        //  tick_us is on the grid, so this is the first grid point > now.
        return now_us + t->interval_us - drift % t->interval_us;
    case ZCHAN_SKIP_MISSED_AND_DRIFT:
        return drift > t->tolerance_us ? now_us + t->interval_us : tick_us + t->interval_us;
    case ZCHAN_TRIGGER_ALL_MISSED:
    default:
        return tick_us + t->interval_us;
    }
}

//  Creates a running timer whose first tick is one interval from now.
//  NULL (EINVAL) if interval_us <= 0 or policy is unknown, NULL (ENOMEM).
//  The caller owns the timer and frees it with zchan_timer_destroy.
zchan_timer_t *zchan_timer_new(int64_t interval_us, zchan_missed_t policy)
{
    if (interval_us <= 0 || (policy != ZCHAN_TRIGGER_ALL_MISSED
                             && policy != ZCHAN_SKIP_MISSED_AND_RESYNC
                             && policy != ZCHAN_SKIP_MISSED_AND_DRIFT))
        return zchan__fail_null(ZCHAN_EINVAL);
    zchan_timer_t *t = calloc(1, sizeof *t);
    if (!t)
        return zchan__fail_null(ZCHAN_ENOMEM);
    t->interval_us = interval_us;
    t->tolerance_us = interval_us / 10;
    t->policy = policy;
    t->next_us = zchan__now_us() + interval_us;
    return t;
}

//  Sets the delay (>= 0) up to which SKIP_MISSED_AND_DRIFT keeps the grid.
//  Once set, it no longer follows the interval when a reset changes it.
void zchan_timer_set_tolerance(zchan_timer_t *t, int64_t tolerance_us)
{
    zchan__assert(t);
    if (tolerance_us < 0) {
        zsys_warning("zchan: timer tolerance %lld us is negative; using 0", (long long) tolerance_us);
        tolerance_us = 0;
    }
    t->tolerance_us = tolerance_us;
    t->tolerance_set = true;
}

//  Consumes the tick that is due at now_us and schedules the next one.
static int s_consume(zchan_timer_t *t, int64_t now_us, int64_t *drift_us)
{
    int64_t tick_us = t->next_us;
    if (drift_us)
        *drift_us = now_us - tick_us;
    t->next_us = s_next_tick(t, tick_us, now_us);
    return ZCHAN_OK;
}

//  Blocks (sleeping, without CPU) until the next tick is due, at most
//  timeout_ms (-1 forever, 0 not at all), then consumes it and stores its
//  drift. ECLOSED at once if the timer is stopped; ETIMEDOUT when the tick is
//  not due within the timeout (nothing is consumed).
int zchan_timer_wait(zchan_timer_t *t, int64_t *drift_us, int timeout_ms)
{
    zchan__assert(t);
    t->selected_unread = false;
    if (t->stopped)
        return zchan__fail(ZCHAN_ECLOSED);
    int64_t now_us = zchan__now_us();
    if (t->next_us > now_us) {
        if (timeout_ms == 0)
            return zchan__fail(ZCHAN_ETIMEDOUT);
        if (timeout_ms > 0 && t->next_us > now_us + (int64_t) timeout_ms * 1000) {
            s_sleep_until(now_us + (int64_t) timeout_ms * 1000);
            return zchan__fail(ZCHAN_ETIMEDOUT);
        }
        s_sleep_until(t->next_us);
        now_us = zchan__now_us();
    }
    return s_consume(t, now_us, drift_us);
}

//  Schedules the next tick one interval from now, which becomes the grid's
//  origin. interval_us > 0 replaces the interval (and the default tolerance
//  with it), 0 keeps it. Restarts a stopped timer. Never blocks.
void zchan_timer_reset(zchan_timer_t *t, int64_t interval_us)
{
    zchan__assert(t);
    if (interval_us < 0)
        zsys_warning("zchan: timer reset to a negative interval (%lld us); keeping the interval",
                     (long long) interval_us);
    if (interval_us > 0) {
        t->interval_us = interval_us;
        if (!t->tolerance_set)
            t->tolerance_us = interval_us / 10;
    }
    t->stopped = false;
    t->next_us = zchan__now_us() + t->interval_us;
}

//  Stops the timer: waits give ECLOSED (and select reports it once) until a
//  reset. Never blocks.
void zchan_timer_stop(zchan_timer_t *t)
{
    zchan__assert(t);
    t->stopped = true;
}

//  Frees the timer and nulls *t_p; does nothing if *t_p is NULL. The timer
//  must not be in a select that is still used.
void zchan_timer_destroy(zchan_timer_t **t_p)
{
    if (!t_p || !*t_p)
        return;
    free(*t_p);
    *t_p = NULL;
}

//  Returns the absolute monotonic time (us) of the next tick, -1 if stopped.
int64_t zchan__timer_next_us(const zchan_timer_t *t)
{
    zchan__assert(t);
    return t->stopped ? -1 : t->next_us;
}

//  True if the timer is stopped.
bool zchan__timer_stopped(const zchan_timer_t *t)
{
    zchan__assert(t);
    return t->stopped;
}

//  Records that select returned the timer (true), or that it was handled
//  (false). zchan_timer_wait clears it.
void zchan__timer_set_selected(zchan_timer_t *t, bool selected)
{
    zchan__assert(t);
    t->selected_unread = selected;
}

//  True if select returned the timer and no wait has happened since.
bool zchan__timer_selected(const zchan_timer_t *t)
{
    zchan__assert(t);
    return t->selected_unread;
}

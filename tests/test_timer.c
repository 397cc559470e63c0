/*  test_timer.c: timers, their three missed-tick policies, timeouts, stop and
    reset.

    Times are checked against the timer's own grid (read through
    zchan__timer_next_us), with margins that hold on a loaded 2-core machine
    yet tell the policies apart: the interval is 20 ms and a 110 ms stall
    misses about five ticks.
*/
#include "internal.h"
#include "testutil.h"
#include <czmq.h> // only to capture the library's log (zsys_set_logstream)
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS 1000 // microseconds per millisecond

//  Sleeps for ms milliseconds (the timer's thread stalling).
static void s_stall(int64_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

//  Sleeps until the monotonic clock reads at least until_us.
static void s_stall_until(int64_t until_us)
{
    int64_t now = zchan__now_us();
    if (until_us > now)
        s_stall((until_us - now + MS - 1) / MS);
}

//  The process's CPU time in microseconds.
static int64_t s_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

// ---------------------------------------------------------------------------

//  An interval <= 0 is refused with EINVAL; destroy nulls and tolerates NULL.
static void test_timer_invalid(void **state)
{
    (void) state;
    assert_null(zchan_timer_new(0, ZCHAN_TRIGGER_ALL_MISSED));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    assert_null(zchan_timer_new(-5, ZCHAN_SKIP_MISSED_AND_DRIFT));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    assert_null(zchan_timer_new(1000, (zchan_missed_t) 42));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);

    //  Bad numbers in calls that return nothing are logged, not fatal: a
    //  negative tolerance counts as 0, a negative reset keeps the interval.
    //  The log is captured to check the two warnings.
    FILE *log = tmpfile();
    assert_non_null(log);
    zsys_set_logstream(log);
    const int64_t iv = 200 * MS;
    zchan_timer_t *t = zchan_timer_new(iv, ZCHAN_SKIP_MISSED_AND_DRIFT);
    assert_non_null(t);
    zchan_timer_set_tolerance(t, -5);
    //  The reset keeps the 200 ms interval: the next tick is 200 ms from now.
    int64_t before = zchan__now_us();
    zchan_timer_reset(t, -1);
    int64_t after = zchan__now_us();
    int64_t tick = zchan__timer_next_us(t);
    assert_between(tick, before + iv, after + iv);
    //  Tolerance 0: a tick taken 5 ms late restarts the grid from the moment
    //  it was taken. (The default tolerance, 20 ms, would keep the grid: the
    //  next tick would be tick + iv.)
    s_stall_until(tick + 5 * MS);
    int64_t drift = -1;
    before = zchan__now_us();
    assert_int_equal(zchan_timer_wait(t, &drift, 0), ZCHAN_OK);
    after = zchan__now_us();
    assert_between(drift, before - tick, after - tick);
    assert_true(drift >= 5 * MS);
    assert_between(zchan__timer_next_us(t), before + iv, after + iv);
    zchan_timer_destroy(&t);
    zsys_set_logstream(stderr);
    char text[1024];
    rewind(log);
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = 0;
    fclose(log);
    if (!strstr(text, "timer tolerance -5 us is negative; using 0")
        || !strstr(text, "timer reset to a negative interval (-1 us); keeping the interval"))
        fail_msg("the two warnings were not logged; the log was:\n%s", text);
    assert_null(t);
    zchan_timer_destroy(&t);
    zchan_timer_destroy(NULL);
}

//  The first tick is one interval after creation; a wait with timeout -1
//  sleeps until it and reports a small drift.
static void test_timer_first_tick(void **state)
{
    (void) state;
    int64_t before = zchan__now_us();
    zchan_timer_t *t = zchan_timer_new(30 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    int64_t after = zchan__now_us();
    assert_non_null(t);
    int64_t first = zchan__timer_next_us(t);
    assert_between(first, before + 30 * MS, after + 30 * MS);
    assert_false(zchan__timer_stopped(t));

    int64_t drift = -1;
    tu_assert_rc(zchan_timer_wait(t, &drift, -1), 0);
    int64_t woke = zchan__now_us();
    assert_true(woke >= first);
    assert_between(drift, 0, 10 * MS);
    assert_between(woke - first, 0, 10 * MS);
    //  The next tick is one interval later, on the grid.
    assert_int_equal(zchan__timer_next_us(t), first + 30 * MS);
    zchan_timer_destroy(&t);
}

//  Timeout 0 never waits, N waits N ms then gives ETIMEDOUT without
//  consuming, and N beyond the tick returns at the tick.
static void test_timer_timeouts(void **state)
{
    (void) state;
    zchan_timer_t *t = zchan_timer_new(200 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    assert_non_null(t);
    int64_t next = zchan__timer_next_us(t);

    int64_t t0 = zchan__now_us();
    tu_assert_rc(zchan_timer_wait(t, NULL, 0), ZCHAN_ETIMEDOUT);
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    assert_between(zchan__now_us() - t0, 0, 5 * MS);

    t0 = zchan__now_us();
    tu_assert_rc(zchan_timer_wait(t, NULL, 50), ZCHAN_ETIMEDOUT);
    assert_between(zchan__now_us() - t0, 50 * MS, 120 * MS);
    assert_int_equal(zchan__timer_next_us(t), next); // nothing consumed

    int64_t drift = -1;
    tu_assert_rc(zchan_timer_wait(t, &drift, 5000), 0);
    int64_t woke = zchan__now_us();
    assert_between(woke - next, 0, 20 * MS);
    assert_between(drift, 0, 20 * MS);
    assert_int_equal(zchan__timer_next_us(t), next + 200 * MS);
    zchan_timer_destroy(&t);
}

//  Waiting sleeps: a 150 ms wait lasts until the tick (a wait that returns
//  at once fails here) and costs almost no CPU (one that spins for 150 ms
//  uses about that much, or on a loaded machine at least its share of it).
static void test_timer_wait_no_spin(void **state)
{
    (void) state;
    zchan_timer_t *t = zchan_timer_new(150 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    assert_non_null(t);
    int64_t tick = zchan__timer_next_us(t);
    int64_t cpu0 = s_cpu_us();
    int64_t w0 = zchan__now_us();
    tu_assert_rc(zchan_timer_wait(t, NULL, -1), 0);
    int64_t woke = zchan__now_us();
    int64_t cpu = s_cpu_us() - cpu0;
    assert_true(woke >= tick);
    assert_between(woke - w0, 140 * MS, 1000 * MS);
    assert_between(cpu, 0, 15 * MS);
    zchan_timer_destroy(&t);
}

//  TRIGGER_ALL_MISSED: after a 110 ms stall every missed tick fires at once,
//  back to back, with drifts that shrink by one interval each; the next tick
//  is on the original grid.
static void test_timer_trigger_all_missed(void **state)
{
    (void) state;
    const int64_t iv = 20 * MS;
    zchan_timer_t *t = zchan_timer_new(iv, ZCHAN_TRIGGER_ALL_MISSED);
    assert_non_null(t);
    int64_t origin = zchan__timer_next_us(t) - iv;
    s_stall(110);
    int64_t stalled_until = zchan__now_us();
    int64_t due = (stalled_until - origin) / iv; // ticks due now (5 unless loaded)
    assert_true(due >= 5);

    int64_t drifts[64];
    int n = 0;
    while (n < 64 && zchan_timer_wait(t, &drifts[n], 0) == 0)
        n++;
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    //  Ticks that came due while we drained count too.
    assert_true(n >= due);
    assert_true(n <= due + 2);
    for (int i = 0; i < n; i++) {
        //  Tick i was scheduled at origin + (i + 1) * iv.
        int64_t sched = origin + (i + 1) * iv;
        assert_between(drifts[i], stalled_until - sched, zchan__now_us() - sched);
        if (i > 0)
            assert_between(drifts[i - 1] - drifts[i], iv - 5 * MS, iv);
    }
    assert_true(drifts[0] >= 85 * MS);
    assert_true(drifts[n - 1] < iv);
    //  Caught up: the next tick is on the grid, one after the last consumed.
    int64_t next = zchan__timer_next_us(t);
    assert_int_equal(next, origin + (n + 1) * iv);
    int64_t drift;
    tu_assert_rc(zchan_timer_wait(t, &drift, -1), 0);
    assert_between(zchan__now_us() - next, 0, 10 * MS);
    assert_between(drift, 0, 10 * MS);
    zchan_timer_destroy(&t);
}

//  SKIP_MISSED_AND_RESYNC: after the stall one late tick fires, the missed
//  ones are skipped, and the next tick is the first grid point after it.
static void test_timer_skip_missed_and_resync(void **state)
{
    (void) state;
    const int64_t iv = 20 * MS;
    zchan_timer_t *t = zchan_timer_new(iv, ZCHAN_SKIP_MISSED_AND_RESYNC);
    assert_non_null(t);
    int64_t origin = zchan__timer_next_us(t) - iv;
    s_stall(110);

    int64_t drift;
    int64_t before = zchan__now_us();
    tu_assert_rc(zchan_timer_wait(t, &drift, 0), 0);
    int64_t after = zchan__now_us();
    //  The late tick is the first one, scheduled at origin + iv.
    assert_between(drift, before - (origin + iv), after - (origin + iv));
    assert_true(drift >= 85 * MS);

    //  Back on the original grid, at the first point after the late tick.
    int64_t next = zchan__timer_next_us(t);
    assert_int_equal((next - origin) % iv, 0);
    assert_true(next > before);
    assert_true(next - iv <= after);
    //  The missed ticks were skipped.
    int64_t now = zchan__now_us();
    if (next > now + MS) // (unless the machine is so loaded that it is due again)
        tu_assert_rc(zchan_timer_wait(t, NULL, 0), ZCHAN_ETIMEDOUT);

    tu_assert_rc(zchan_timer_wait(t, &drift, -1), 0);
    assert_between(zchan__now_us() - next, 0, 10 * MS);
    assert_between(drift, 0, 10 * MS);
    assert_int_equal(zchan__timer_next_us(t), next + iv);
    zchan_timer_destroy(&t);
}

//  SKIP_MISSED_AND_DRIFT: after the stall (far beyond the default tolerance
//  of interval / 10) one late tick fires, and the next comes a full interval
//  after it, off the original grid.
static void test_timer_skip_missed_and_drift(void **state)
{
    (void) state;
    const int64_t iv = 20 * MS;
    zchan_timer_t *t = zchan_timer_new(iv, ZCHAN_SKIP_MISSED_AND_DRIFT);
    assert_non_null(t);
    int64_t origin = zchan__timer_next_us(t) - iv;
    s_stall(110);

    int64_t drift;
    int64_t before = zchan__now_us();
    tu_assert_rc(zchan_timer_wait(t, &drift, 0), 0);
    int64_t after = zchan__now_us();
    assert_between(drift, before - (origin + iv), after - (origin + iv));
    assert_true(drift >= 85 * MS);

    //  The grid restarted from the moment of the late tick.
    int64_t next = zchan__timer_next_us(t);
    assert_between(next - iv, before, after);
    tu_assert_rc(zchan_timer_wait(t, NULL, 0), ZCHAN_ETIMEDOUT);

    tu_assert_rc(zchan_timer_wait(t, &drift, -1), 0);
    int64_t woke = zchan__now_us();
    assert_between(woke - next, 0, 10 * MS);
    assert_between(woke - after, iv - MS, iv + 10 * MS);
    assert_between(drift, 0, 10 * MS);
    zchan_timer_destroy(&t);
}

//  SKIP_MISSED_AND_DRIFT with a delay within the tolerance keeps the grid.
static void test_timer_drift_within_tolerance(void **state)
{
    (void) state;
    const int64_t iv = 40 * MS;
    zchan_timer_t *t = zchan_timer_new(iv, ZCHAN_SKIP_MISSED_AND_DRIFT);
    assert_non_null(t);
    zchan_timer_set_tolerance(t, 25 * MS);
    int64_t origin = zchan__timer_next_us(t) - iv;
    s_stall_until(origin + iv + 4 * MS); // 4 ms late

    int64_t drift;
    tu_assert_rc(zchan_timer_wait(t, &drift, 0), 0);
    assert_between(drift, 4 * MS, 25 * MS);
    assert_int_equal(zchan__timer_next_us(t), origin + 2 * iv);

    //  And beyond the tolerance it drifts.
    s_stall_until(origin + 2 * iv + 30 * MS);
    int64_t before = zchan__now_us();
    tu_assert_rc(zchan_timer_wait(t, &drift, 0), 0);
    int64_t after = zchan__now_us();
    assert_true(drift > 25 * MS);
    assert_between(zchan__timer_next_us(t) - iv, before, after);
    zchan_timer_destroy(&t);
}

//  Stop makes waits give ECLOSED at once (even with timeout -1) until a
//  reset, which schedules the next tick one interval from the reset.
static void test_timer_stop_and_reset(void **state)
{
    (void) state;
    zchan_timer_t *t = zchan_timer_new(20 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    assert_non_null(t);
    zchan_timer_stop(t);
    assert_true(zchan__timer_stopped(t));
    assert_int_equal(zchan__timer_next_us(t), -1);
    int64_t t0 = zchan__now_us();
    tu_assert_rc(zchan_timer_wait(t, NULL, -1), ZCHAN_ECLOSED);
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);
    s_stall(50); // ticks that would have been due are not kept
    tu_assert_rc(zchan_timer_wait(t, NULL, 0), ZCHAN_ECLOSED);
    assert_between(zchan__now_us() - t0, 0, 100 * MS);

    int64_t before = zchan__now_us();
    zchan_timer_reset(t, 0);
    int64_t after = zchan__now_us();
    assert_false(zchan__timer_stopped(t));
    int64_t next = zchan__timer_next_us(t);
    assert_between(next, before + 20 * MS, after + 20 * MS);
    tu_assert_rc(zchan_timer_wait(t, NULL, 0), ZCHAN_ETIMEDOUT);
    int64_t drift;
    tu_assert_rc(zchan_timer_wait(t, &drift, -1), 0);
    assert_between(zchan__now_us() - next, 0, 10 * MS);
    zchan_timer_destroy(&t);
}

//  Reset with a new interval changes it and moves the grid's origin to now;
//  reset with 0 keeps it.
static void test_timer_reset_interval(void **state)
{
    (void) state;
    zchan_timer_t *t = zchan_timer_new(500 * MS, ZCHAN_SKIP_MISSED_AND_RESYNC);
    assert_non_null(t);
    s_stall(5);
    int64_t before = zchan__now_us();
    zchan_timer_reset(t, 25 * MS);
    int64_t after = zchan__now_us();
    int64_t next = zchan__timer_next_us(t);
    assert_between(next, before + 25 * MS, after + 25 * MS);

    int64_t t0 = zchan__now_us();
    tu_assert_rc(zchan_timer_wait(t, NULL, 1000), 0);
    assert_between(zchan__now_us() - t0, 20 * MS, 45 * MS);
    //  The grid is the new one: origin at the reset, step 25 ms.
    assert_int_equal(zchan__timer_next_us(t), next + 25 * MS);

    before = zchan__now_us();
    zchan_timer_reset(t, 0);
    after = zchan__now_us();
    assert_between(zchan__timer_next_us(t), before + 25 * MS, after + 25 * MS);
    zchan_timer_destroy(&t);
}

//  A reset also restarts the default tolerance from the new interval: after a
//  reset to 100 ms, a 5 ms delay (beyond the old 2 ms, within the new 10 ms)
//  keeps the grid.
static void test_timer_reset_tolerance(void **state)
{
    (void) state;
    zchan_timer_t *t = zchan_timer_new(20 * MS, ZCHAN_SKIP_MISSED_AND_DRIFT);
    assert_non_null(t);
    zchan_timer_reset(t, 100 * MS);
    int64_t origin = zchan__timer_next_us(t) - 100 * MS;
    s_stall_until(origin + 100 * MS + 4 * MS);
    int64_t drift;
    tu_assert_rc(zchan_timer_wait(t, &drift, 0), 0);
    if (drift <= 10 * MS)
        assert_int_equal(zchan__timer_next_us(t), origin + 200 * MS);
    else
        print_message("machine too loaded to check the tolerance (drift %lld us)\n", (long long) drift);
    zchan_timer_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_invalid),
        cmocka_unit_test(test_timer_first_tick),
        cmocka_unit_test(test_timer_timeouts),
        cmocka_unit_test(test_timer_wait_no_spin),
        cmocka_unit_test(test_timer_trigger_all_missed),
        cmocka_unit_test(test_timer_skip_missed_and_resync),
        cmocka_unit_test(test_timer_skip_missed_and_drift),
        cmocka_unit_test(test_timer_drift_within_tolerance),
        cmocka_unit_test(test_timer_stop_and_reset),
        cmocka_unit_test(test_timer_reset_interval),
        cmocka_unit_test(test_timer_reset_tolerance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

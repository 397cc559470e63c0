/*  test_relay_restart.c: a zchan-relay killed (SIGKILL) and restarted on the
    same tcp port, with real client processes that carry on by themselves
    (docs/ARCHITECTURE.md, "A relay that restarts").

    1. Under load: a sender process streams [1, seq] into an anycast channel
       of capacity RR_CAPACITY on the relay, a receiver process reads it. The
       relay is killed mid-stream and started again on the same port. Neither
       process reopens anything: each attaches again by itself, the sender
       recreating the channel. Bound, at most once: no message is received
       twice, each sender's messages arrive in order, and at most
       capacity + ZCHAN_SENDER_SLACK (one sender) + the receiver's window
       (the relay's DELIVERs on their way to it) messages whose send
       returned are lost; both processes finish.
    2. A channel closed before the restart stays gone: a receiver still
       draining it when the relay dies stops with ECLOSED instead of
       recreating it, and the sender that closed it stays closed.

    The parent never makes a context (tests/mproc.c); the relay is exec'ed.
    Heartbeats are short ($ZCHAN_HEARTBEAT_MS), so clients notice the restart
    within about two heartbeat timeouts.
*/
#include "mproc.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define RR_HB_IVL_MS 250
#define RR_HB_TIMEOUT_MS 2000
#define RR_CAPACITY 10
#define RR_MAX 60000     // the most messages the sender sends (the tally's size)
#define RR_BEFORE 2000   // received before the relay is killed
#define RR_AFTER 3000    // received after it, before the sender stops

static char s_bin[PATH_MAX];
static pid_t s_relay = -1;
static char s_endpoint[64];
static int s_seq;

// ---------------------------------------------------------------------------
// The relay, exec'ed from the parent

//  Starts zchan-relay on s_endpoint and waits until it listens (its endpoint
//  file appears).
static void s_relay_start(void)
{
    char exe[PATH_MAX + 16], epfile[300], log[300];
    snprintf(exe, sizeof exe, "%s/zchan-relay", s_bin);
    snprintf(epfile, sizeof epfile, "%s/relay-%d.ep", tu_ipc_dir(), ++s_seq);
    snprintf(log, sizeof log, "%s/relay-%d.log", tu_ipc_dir(), s_seq);
    char *argv[] = {exe, "--bind", s_endpoint, "--endpoint-file", epfile, "--log-file", log, NULL};
    if (posix_spawn(&s_relay, exe, NULL, NULL, argv, environ) != 0)
        fail_msg("cannot start %s", exe);
    int64_t deadline = mp_now_ms() + 10000L * mp_slow;
    while (access(epfile, F_OK) != 0) {
        int status;
        if (waitpid(s_relay, &status, WNOHANG) == s_relay) {
            s_relay = -1;
            fail_msg("the relay did not start (%s); see %s", mp_describe(status), log);
        }
        if (mp_now_ms() > deadline)
            fail_msg("the relay did not listen within 10 s; see %s", log);
        usleep(10000); // the relay says it listens by writing the file: no event to wait on
    }
}

static void s_relay_kill(void)
{
    if (s_relay <= 0)
        return;
    kill(s_relay, SIGKILL);
    while (waitpid(s_relay, NULL, 0) < 0 && errno == EINTR)
        ;
    s_relay = -1;
}

static int s_teardown(void **state)
{
    (void) state;
    p_kill_all();
    s_relay_kill();
    return 0;
}

// ---------------------------------------------------------------------------
// 1. Under load

//  Creates the channel, sends [1, seq] after "GO" (about one every 0.1 ms)
//  until "STOP" or RR_MAX, and says "SENT n reattached" once its sender is
//  destroyed and the channel closed.
static int child_rr_sender(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_anycast_new(ctx, job->uri, RR_CAPACITY));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(ch));
    c_say("READY");
    c_expect("GO");
    int n = 0;
    while (n < RR_MAX && !c_has_line()) {
        C_RC(c_send_tag(s, 1, n, mp_recv_ms), ZCHAN_OK);
        n++;
        usleep(100); // a steady stream, so that the kill lands mid-stream
    }
    if (n < RR_MAX)
        c_expect("STOP");
    uint64_t again = zchan_sender_reattached(s);
    zchan_sender_destroy(&s);
    C_RC(zchan_close(ch), ZCHAN_OK);
    c_say("SENT %d %llu", n, (unsigned long long) again);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Joins the channel, receives until it is closed, saying "AT n" every 500,
//  then "REJOINED k" and its RESULT.
static int child_rr_receiver(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_anycast_new(ctx, job->uri, RR_CAPACITY));
    zchan_receiver_t *r;
    C_NEW(r, zchan_receiver_new(ch, 0));
    c_say("READY");
    tally_t t;
    tally_init(&t, 1, RR_MAX, false);
    while (true) {
        zchan_msg_t *m = NULL;
        int rc = zchan_recv(r, &m, mp_recv_ms);
        if (rc == ZCHAN_ECLOSED)
            break;
        C_RC(rc, ZCHAN_OK);
        tally_msg(&t, m);
        zchan_msg_destroy(&m);
        if (t.got % 500 == 0)
            c_say("AT %ld", t.got);
    }
    c_say("REJOINED %llu", (unsigned long long) zchan_receiver_reattached(r));
    c_report(&t, 0);
    tally_fini(&t);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Reads the receiver's "AT n" lines until n >= target.
static long p_until(kid_t *recv, long target)
{
    long at = 0;
    while (at < target)
        at = atol(p_expect(recv, "AT"));
    return at;
}

static void test_restart_under_load(void **state)
{
    (void) state;
    s_relay_start();
    job_t j = {0};
    snprintf(j.uri, sizeof j.uri, "%s/rr-%d-load", s_endpoint, (int) getpid());
    kid_t *recv = p_spawn("receiver", child_rr_receiver, &j);
    p_expect(recv, "READY");
    kid_t *send = p_spawn("sender", child_rr_sender, &j);
    p_go(&send, 1);
    long at_kill = p_until(recv, RR_BEFORE);

    int64_t t0 = mp_now_ms();
    s_relay_kill();
    s_relay_start();
    long restart_ms = (long) (mp_now_ms() - t0);
    long at_back = p_until(recv, at_kill + 500);
    long resumed_ms = (long) (mp_now_ms() - t0);
    p_until(recv, at_back + RR_AFTER);
    p_say(send, "STOP");
    int sent = 0;
    unsigned long long sender_again = 0, receiver_again = 0;
    assert_int_equal(sscanf(p_expect(send, "SENT"), "%d %llu", &sent, &sender_again), 2);
    p_exit0(send);
    receiver_again = strtoull(p_expect(recv, "REJOINED"), NULL, 10);
    result_t res;
    p_result(recv, &res, RR_MAX);
    p_exit0(recv);
    s_relay_kill();

    long lost = sent - res.got;
    //  What waited at the relay, the sender's window, and what was on its
    //  way to the receiver: at most the receiver's window, which grows with
    //  what it consumed (thousands here) up to ZCHAN_WINDOW_MAX.
    const long bound = RR_CAPACITY + ZCHAN_SENDER_SLACK + ZCHAN_WINDOW_MAX;
    long first_gap = -1, gaps = 0;
    for (long seq = 0; seq < sent; seq++)
        if (!mp_bit(&res, (size_t) seq)) {
            gaps++;
            if (first_gap < 0)
                first_gap = seq;
        }
    print_message("relay restart under load: killed after %ld received, back in %ld ms, traffic resumed %ld ms after "
                  "the kill; sent %d, received %ld, lost %ld (bound %ld, first at %ld), duplicates %ld, out of order "
                  "%ld; the sender attached again %llu time(s), the receiver %llu\n",
                  at_kill, restart_ms, resumed_ms, sent, res.got, lost, bound, first_gap, res.dups, res.order,
                  sender_again, receiver_again);
    assert_int_equal(res.bad, 0);
    assert_int_equal(res.dups, 0);
    assert_int_equal(res.order, 0);
    assert_true(lost >= 0);
    assert_int_equal(gaps, lost);
    assert_true(lost <= bound);
    assert_int_equal(sender_again, 1);
    assert_int_equal(receiver_again, 1);
}

// ---------------------------------------------------------------------------
// 2. A closed channel does not come back

#define CL_QUEUED 5

//  Attaches a receiver that reads nothing until "READ". Then: the channel was
//  closed and the relay restarted; the read must stop with ECLOSED, and the
//  channel must not exist at the new relay. Says "DONE MS".
static int child_cl_receiver(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_anycast_new(ctx, job->uri, RR_CAPACITY));
    zchan_receiver_t *r;
    C_NEW(r, zchan_receiver_new(ch, 0));
    c_say("READY");
    c_expect("READ");
    int64_t t0 = mp_now_ms();
    zchan_msg_t *m = NULL;
    C_RC(zchan_recv(r, &m, mp_recv_ms), ZCHAN_ECLOSED);
    long ms = (long) (mp_now_ms() - t0);
    C_CHECK(zchan_receiver_reattached(r) == 0);
    zchan_stat_t st;
    C_RC(zchan_stat(ch, &st), ZCHAN_ENOTFOUND);
    zchan_receiver_destroy(&r);
    c_say("DONE %ld", ms);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Sends CL_QUEUED messages and closes the channel; says "CLOSED". After the
//  restart ("AGAIN"), its sends fail with ECLOSED and nothing recreates the
//  channel. Says "DONE".
static int child_cl_sender(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch;
    C_NEW(ch, zchan_open(ctx, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(ch));
    for (int i = 0; i < CL_QUEUED; i++)
        C_RC(c_send_tag(s, 1, i, mp_recv_ms), ZCHAN_OK);
    C_RC(zchan_close(ch), ZCHAN_OK);
    c_say("CLOSED");
    c_expect("AGAIN");
    C_RC(c_send_tag(s, 1, CL_QUEUED, mp_recv_ms), ZCHAN_ECLOSED);
    C_CHECK(zchan_sender_reattached(s) == 0);
    zchan_stat_t st;
    C_RC(zchan_stat(ch, &st), ZCHAN_ENOTFOUND);
    zchan_sender_destroy(&s);
    c_say("DONE");
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

static void test_closed_stays_closed(void **state)
{
    (void) state;
    s_relay_start();
    job_t j = {0};
    snprintf(j.uri, sizeof j.uri, "%s/rr-%d-closed", s_endpoint, (int) getpid());
    kid_t *recv = p_spawn("draining receiver", child_cl_receiver, &j);
    p_expect(recv, "READY");
    kid_t *send = p_spawn("closing sender", child_cl_sender, &j);
    p_expect(send, "CLOSED");
    s_relay_kill();
    s_relay_start();
    p_say(send, "AGAIN");
    p_expect(send, "DONE");
    p_exit0(send);
    p_say(recv, "READ");
    long ms = atol(p_expect(recv, "DONE"));
    p_exit0(recv);
    s_relay_kill();
    print_message("closed before the restart: the draining receiver stopped with ECLOSED in %ld ms (its %d queued "
                  "messages went with the relay); the channel was not recreated\n",
                  ms, CL_QUEUED);
}

int main(void)
{
    mp_init();
    char hb[32];
    snprintf(hb, sizeof hb, "%d", RR_HB_IVL_MS);
    setenv("ZCHAN_HEARTBEAT_MS", hb, 1);
    snprintf(hb, sizeof hb, "%d", RR_HB_TIMEOUT_MS);
    setenv("ZCHAN_HEARTBEAT_TIMEOUT_MS", hb, 1);
    const char *bin = getenv("ZCHAN_TEST_BIN_DIR");
    snprintf(s_bin, sizeof s_bin, "%s/tools", bin ? bin : "..");
    snprintf(s_endpoint, sizeof s_endpoint, "tcp://127.0.0.1:%d", tu_free_port());
    tu_ipc_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_restart_under_load, s_teardown),
        cmocka_unit_test_teardown(test_closed_stays_closed, s_teardown),
    };
    int failed = cmocka_run_group_tests_name("a relay killed and restarted", tests, NULL, NULL);
    p_kill_all();
    s_relay_kill();
    tu_cleanup_dir();
    return failed ? 1 : 0;
}

/*  test_select_mixed.c: select and merge over real channels of every
    transport at once, with a timer: a channel hosted in this process
    (inproc), one hosted by another process on this host (ipc://NAME), and a
    broadcast channel on that process's tcp hub.

    The other process is forked before this one makes any ZeroMQ context. It
    only hosts: every message goes from this process to its hub and back.
*/
#include "testutil.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t s_host = -1;
static int s_to_host = -1;     // closing it tells the host to exit
static char s_ipc_uri[128];
static char s_tcp_uri[256];

//  The host process: makes the two channels, says where they are, and waits
//  for the test to finish (its stdin pipe closing).
static void s_host_main(int report, int quit)
{
    alarm(120); // never outlive a stuck test
    zchan_ctx_t *ctx = zchan_ctx_new();
    int ok = ctx && zchan_ctx_bind(ctx, "tcp://127.0.0.1:0") == ZCHAN_OK;
    zchan_t *a = NULL, *b = NULL;
    char tcp[256] = "";
    if (ok) {
        snprintf(tcp, sizeof tcp, "%s/mixed-b", zchan_ctx_endpoint(ctx, "tcp"));
        a = zchan_anycast_new(ctx, s_ipc_uri, 10);
        b = zchan_broadcast_new(ctx, tcp, false);
        ok = a && b;
    }
    dprintf(report, "%s\n", ok ? tcp : "FAIL");
    close(report);
    char c;
    while (read(quit, &c, 1) > 0) {
    }
    zchan_destroy(&a);
    zchan_destroy(&b);
    zchan_ctx_destroy(&ctx);
    exit(ok ? 0 : 1); // not _exit: czmq shuts its own context down at exit
}

static void s_start_host(void)
{
    snprintf(s_ipc_uri, sizeof s_ipc_uri, "ipc://mixed-%d-a", (int) getpid());
    int report[2], quit[2];
    if (pipe(report) || pipe(quit))
        abort();
    fflush(NULL);
    s_host = fork();
    if (s_host == 0) {
        close(report[0]);
        close(quit[1]);
        s_host_main(report[1], quit[0]);
    }
    close(report[1]);
    close(quit[0]);
    s_to_host = quit[1];
    FILE *f = fdopen(report[0], "r");
    if (!f || !fgets(s_tcp_uri, sizeof s_tcp_uri, f))
        s_tcp_uri[0] = 0;
    if (f)
        fclose(f);
    s_tcp_uri[strcspn(s_tcp_uri, "\n")] = 0;
}

static int s_stop_host(void)
{
    int status = -1;
    if (s_to_host >= 0)
        close(s_to_host);
    if (s_host > 0 && waitpid(s_host, &status, 0) != s_host)
        status = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

// ---------------------------------------------------------------------------

static void test_select_and_merge_across_transports(void **state)
{
    (void) state;
    assert_true(strncmp(s_tcp_uri, "tcp://", 6) == 0);
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    char local_uri[64];
    snprintf(local_uri, sizeof local_uri, "inproc://mixed-%d-local", (int) getpid());
    zchan_t *local = zchan_anycast_new(ctx, local_uri, 10);
    zchan_t *a = zchan_open(ctx, s_ipc_uri);   // hosted by the other process, over ipc
    zchan_t *b = zchan_open(ctx, s_tcp_uri);   // hosted by the other process, over tcp
    assert_non_null(local);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(zchan_kind(b), ZCHAN_BROADCAST);

    zchan_receiver_t *r_local = zchan_receiver_new(local, 0);
    zchan_receiver_t *srcs[2] = { zchan_receiver_new(a, 0), zchan_receiver_new(b, 0) };
    assert_non_null(r_local);
    assert_non_null(srcs[0]);
    assert_non_null(srcs[1]);
    zchan_receiver_t *merged = zchan_merge(srcs, 2);
    assert_non_null(merged);
    zchan_timer_t *timer = zchan_timer_new(30 * 1000, ZCHAN_TRIGGER_ALL_MISSED);
    assert_non_null(timer);

    zchan_select_t *sel = zchan_select_new();
    tu_assert_rc(zchan_select_add_receiver(sel, r_local), ZCHAN_OK);
    tu_assert_rc(zchan_select_add_receiver(sel, merged), ZCHAN_OK);
    tu_assert_rc(zchan_select_add_timer(sel, timer), ZCHAN_OK);

    zchan_sender_t *s_local = zchan_sender_new(local);
    zchan_sender_t *s_a = zchan_sender_new(a);
    zchan_sender_t *s_b = zchan_sender_new(b);
    tu_assert_rc(zchan_send_str(s_local, "inproc", 1000), ZCHAN_OK);
    tu_assert_rc(zchan_send_str(s_a, "ipc", 1000), ZCHAN_OK);
    tu_assert_rc(zchan_send_str(s_b, "tcp", 1000), ZCHAN_OK);

    //  Every message and at least two ticks, whichever order they come in.
    bool got_local = false, got_ipc = false, got_tcp = false;
    int ticks = 0;
    while (!(got_local && got_ipc && got_tcp && ticks >= 2)) {
        void *ready = zchan_select_wait(sel, 5000);
        assert_non_null(ready);
        char *str = NULL;
        if (ready == timer) {
            int64_t drift;
            tu_assert_rc(zchan_timer_wait(timer, &drift, 0), ZCHAN_OK);
            ticks++;
        } else if (ready == r_local) {
            tu_assert_rc(zchan_recv_str(r_local, &str, 0), ZCHAN_OK);
            assert_string_equal(str, "inproc");
            got_local = true;
        } else {
            assert_ptr_equal(ready, merged);
            tu_assert_rc(zchan_recv_str(merged, &str, 0), ZCHAN_OK);
            if (strcmp(str, "ipc") == 0)
                got_ipc = true;
            else if (strcmp(str, "tcp") == 0)
                got_tcp = true;
            else
                fail_msg("unexpected message %s", str);
        }
        free(str);
    }

    //  Closing every channel stops each receiver once: the merge when both of
    //  its sources have stopped. Then the stopped timer, then ECLOSED.
    zchan_sender_destroy(&s_local);
    zchan_sender_destroy(&s_a);
    zchan_sender_destroy(&s_b);
    tu_assert_rc(zchan_close(local), ZCHAN_OK);
    tu_assert_rc(zchan_close(a), ZCHAN_OK);
    tu_assert_rc(zchan_close(b), ZCHAN_OK);
    zchan_timer_stop(timer);
    int stopped_local = 0, stopped_merged = 0, stopped_timer = 0;
    while (true) {
        void *ready = zchan_select_wait(sel, 5000);
        if (!ready) {
            tu_assert_rc(zchan_errno(), ZCHAN_ECLOSED);
            break;
        }
        zchan_msg_t *msg = NULL;
        if (ready == timer) {
            tu_assert_rc(zchan_timer_wait(timer, NULL, 0), ZCHAN_ECLOSED);
            stopped_timer++;
        } else if (ready == r_local) {
            tu_assert_rc(zchan_recv(r_local, &msg, 0), ZCHAN_ECLOSED);
            stopped_local++;
        } else {
            assert_ptr_equal(ready, merged);
            tu_assert_rc(zchan_recv(merged, &msg, 0), ZCHAN_ECLOSED);
            stopped_merged++;
        }
    }
    assert_int_equal(stopped_local, 1);
    assert_int_equal(stopped_merged, 1);
    assert_int_equal(stopped_timer, 1);

    zchan_select_destroy(&sel);
    zchan_timer_destroy(&timer);
    zchan_receiver_destroy(&merged);
    zchan_receiver_destroy(&r_local);
    zchan_destroy(&b);
    zchan_destroy(&a);
    zchan_destroy(&local);
    zchan_ctx_destroy(&ctx);
}

int main(void)
{
    tu_ipc_dir(); // before the fork: both processes use the same runtime directory
    s_start_host();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_and_merge_across_transports),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (s_stop_host() != 0) {
        fprintf(stderr, "the host process failed\n");
        failed++;
    }
    tu_cleanup_dir();
    return failed;
}

/*  test_misuse.c: misuse aborts in every build type, as include/zchan.h
    promises ("passing a NULL object where an object is required is a
    programming error and aborts"), the default build (which defines NDEBUG)
    included. Each case runs in a forked child (made before any ZeroMQ
    context exists), which must die of SIGABRT after saying what was misused.
*/
#include "testutil.h"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*misuse_fn)(void);

static void s_send_null(void)
{
    zchan_msg_t *msg = zchan_msg_new();
    zchan_send((zchan_sender_t *) NULL, &msg, 0);
}

static void s_recv_null(void)
{
    zchan_msg_t *msg = NULL;
    zchan_recv((zchan_receiver_t *) NULL, &msg, 0);
}

static void s_bind_null(void)
{
    zchan_ctx_bind(NULL, "tcp://127.0.0.1:0");
}

static void s_sender_new_null(void)
{
    zchan_sender_new(NULL);
}

static void s_kind_null(void)
{
    zchan_kind(NULL);
}

//  Runs fn in a child and checks that it aborts, saying "misuse" on stderr.
static void s_expect_abort(misuse_fn fn, const char *what)
{
    char log[] = "/tmp/zchan-test-misuse-XXXXXX";
    int fd = mkstemp(log);
    assert_true(fd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(fd, 2) < 0)
            _exit(4);
        alarm(30);
        fn();
        _exit(0); // not aborted: the test fails below
    }
    close(fd);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    FILE *f = fopen(log, "r");
    char text[1024] = "";
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
    }
    unlink(log);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        fail_msg("%s: the child %s %d instead of aborting; it said: %s", what,
                 WIFSIGNALED(status) ? "died of signal" : "exited", WIFSIGNALED(status) ? WTERMSIG(status)
                                                                                   : WEXITSTATUS(status),
                 text);
    if (!strstr(text, "misuse"))
        fail_msg("%s: aborted without saying so: %s", what, text);
}

static void test_null_objects_abort(void **state)
{
    (void) state;
    s_expect_abort(s_send_null, "zchan_send(NULL)");
    s_expect_abort(s_recv_null, "zchan_recv(NULL)");
    s_expect_abort(s_bind_null, "zchan_ctx_bind(NULL)");
    s_expect_abort(s_sender_new_null, "zchan_sender_new(NULL)");
    s_expect_abort(s_kind_null, "zchan_kind(NULL)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_objects_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*  test_lifecycle.c: what a program that does not destroy everything gets,
    and calls that must not stall or leave zchan_errno wrong.

    - A program that forgets a destroy still exits, and leaves nothing in the
      runtime directory: each case runs in a child forked before this process
      has any ZeroMQ context, with a private $ZCHAN_IPC_DIR, and must exit
      (within a generous 20 s; it is killed otherwise) with its own status.
    - The handles left over when their context is destroyed are inert: their
      calls fail with ZCHAN_ECLOSED at once, and their destroys free them.
    - zchan_close does not hold the context's lock across its round trip to
      the hub, which needs that lock to answer another thread's create.
    - A successful call leaves zchan_errno as it was (include/zchan.h).

    The forking tests come first: the later ones make contexts in this process.
*/
#include "testutil.h"
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHILD_DEADLINE_MS 20000

//  LeakSanitizer's switch, in the sanitizer build only: the children leak
//  what they forget on purpose.
extern void __lsan_disable(void) __attribute__((weak));

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// ---------------------------------------------------------------------------
// Children that forget to destroy things. Each returns the status to exit
// with; the harness exits with it through exit(), as a return from main does.

static zchan_ctx_t *s_child_ctx(void)
{
    zchan_ctx_t *ctx = zchan_ctx_new();
    if (!ctx)
        exit(90);
    return ctx;
}

//  Everything forgotten: the context, channels (one of them host-wide, with
//  a lock file and a socket file of its own), a sender and a receiver.
static int s_forget_all(void)
{
    zchan_ctx_t *ctx = s_child_ctx();
    zchan_t *ch = zchan_anycast_new(ctx, NULL, 10);
    zchan_t *named = zchan_broadcast_new(ctx, "ipc://lifecycle-named", false);
    if (!ch || !named)
        return 91;
    zchan_sender_t *tx = zchan_sender_new(ch);
    zchan_receiver_t *rx = zchan_receiver_new(ch, 0);
    zchan_receiver_t *nrx = zchan_receiver_new(named, 0);
    if (!tx || !rx || !nrx || zchan_send_int(tx, 1, 1000) != 0)
        return 92;
    return 0;
}

//  The context destroyed, one sender not.
static int s_forget_sender(void)
{
    zchan_ctx_t *ctx = s_child_ctx();
    zchan_t *ch = zchan_anycast_new(ctx, NULL, 10);
    zchan_sender_t *tx = ch ? zchan_sender_new(ch) : NULL;
    if (!tx || zchan_send_int(tx, 1, 1000) != 0)
        return 91;
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  The context destroyed, one receiver not.
static int s_forget_receiver(void)
{
    zchan_ctx_t *ctx = s_child_ctx();
    zchan_t *ch = zchan_anycast_new(ctx, NULL, 10);
    zchan_receiver_t *rx = ch ? zchan_receiver_new(ch, 0) : NULL;
    if (!rx)
        return 91;
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  The context destroyed, one channel handle not.
static int s_forget_channel(void)
{
    zchan_ctx_t *ctx = s_child_ctx();
    zchan_t *ch = zchan_anycast_new(ctx, "ipc://lifecycle-chan", 10);
    if (!ch)
        return 91;
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  An error path: exit(1) right after zchan_ctx_new.
static int s_exit_early(void)
{
    s_child_ctx();
    exit(1);
}

//  A thread waits in zchan_recv(-1) when main returns: its receiver is not
//  closed under it; czmq's zmq_ctx_term wakes it, and it lets go.
typedef struct {
    zchan_receiver_t *rx;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} s_waiter_t;

static void *s_waiter_run(void *arg)
{
    s_waiter_t *w = (s_waiter_t *) arg;
    pthread_mutex_lock(&w->lock);
    w->started = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    zchan_msg_t *msg = NULL;
    zchan_recv(w->rx, &msg, -1);
    zchan_msg_destroy(&msg);
    return NULL;
}

static int s_exit_while_receiving(void)
{
    zchan_ctx_t *ctx = s_child_ctx();
    zchan_t *ch = zchan_anycast_new(ctx, NULL, 10);
    static s_waiter_t w = {NULL, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
    w.rx = ch ? zchan_receiver_new(ch, 0) : NULL;
    pthread_t thread;
    if (!w.rx || pthread_create(&thread, NULL, s_waiter_run, &w) != 0)
        return 91;
    pthread_mutex_lock(&w.lock);
    while (!w.started)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    return 0;
}

//  A pipe forgotten: its thread waits on its receiver when main returns.
static int s_forget_pipe(void)
{
    zchan_ctx_t *ctx = s_child_ctx();
    zchan_t *in = zchan_anycast_new(ctx, NULL, 10);
    zchan_t *out = zchan_anycast_new(ctx, NULL, 10);
    if (!in || !out)
        return 91;
    zchan_receiver_t *src = zchan_receiver_new(in, 0);
    zchan_sender_t *dst = zchan_sender_new(out);
    zchan_sender_t *tx = zchan_sender_new(in);
    zchan_receiver_t *rx = zchan_receiver_new(out, 0);
    zchan_pipe_t *pipe = src && dst ? zchan_pipe_new(src, dst) : NULL;
    int64_t v = 0;
    //  One message through it: its thread is running, then waits again.
    if (!pipe || !tx || !rx || zchan_send_int(tx, 5, 1000) != 0 || zchan_recv_int(rx, &v, 5000) != 0 || v != 5)
        return 92;
    return 0;
}

//  Counts the entries of dir other than . and .., listing them on stderr.
static int s_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            fprintf(stderr, "left in the runtime directory: %s\n", e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

//  Runs scenario in a forked child with a private runtime directory, its
//  output to a log file; asserts that it exits with status want within
//  CHILD_DEADLINE_MS, that the runtime directory is empty afterwards, and
//  that the log mentions expect (NULL: no check).
static void s_run_child(int (*scenario)(void), int want, const char *expect)
{
    char base[] = "/tmp/zchan-life-XXXXXX";
    assert_non_null(mkdtemp(base));
    char ipc[64], log[64];
    snprintf(ipc, sizeof ipc, "%s/ipc", base);
    snprintf(log, sizeof log, "%s/log", base);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (__lsan_disable)
            __lsan_disable();
        setenv("ZCHAN_IPC_DIR", ipc, 1);
        FILE *f = freopen(log, "w", stderr);
        if (!f || dup2(fileno(stderr), 1) < 0)
            _exit(89);
        exit(scenario());
    }
    int status = 0;
    pid_t got = 0;
    int64_t deadline = s_now_ms() + CHILD_DEADLINE_MS * tu_slow();
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && s_now_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    char text[8192] = "";
    FILE *f = fopen(log, "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
    }
    int left = s_dir_entries(ipc);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
    if (got == 0)
        fail_msg("the child did not exit within %d ms; its log:\n%s", CHILD_DEADLINE_MS, text);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != want)
        fail_msg("the child ended with status 0x%x, expected exit(%d); its log:\n%s", status, want, text);
    assert_int_equal(left, 0);
    if (expect && !strstr(text, expect))
        fail_msg("the child's log does not mention \"%s\":\n%s", expect, text);
}

static void test_exit_forgetting_everything(void **state)
{
    (void) state;
    s_run_child(s_forget_all, 0, "dangling context");
}

static void test_exit_after_ctx_destroy_sender_left(void **state)
{
    (void) state;
    s_run_child(s_forget_sender, 0, "dangling sender");
}

static void test_exit_after_ctx_destroy_receiver_left(void **state)
{
    (void) state;
    s_run_child(s_forget_receiver, 0, "dangling receiver");
}

static void test_exit_after_ctx_destroy_channel_left(void **state)
{
    (void) state;
    s_run_child(s_forget_channel, 0, "dangling channel");
}

static void test_exit_1_after_ctx_new(void **state)
{
    (void) state;
    s_run_child(s_exit_early, 1, "dangling context");
}

static void test_exit_while_a_thread_receives(void **state)
{
    (void) state;
    s_run_child(s_exit_while_receiving, 0, "dangling receiver");
}

static void test_exit_with_a_pipe_running(void **state)
{
    (void) state;
    s_run_child(s_forget_pipe, 0, "dangling receiver");
}

// ---------------------------------------------------------------------------
// Leftover handles are inert

static void test_leftover_handles_are_inert(void **state)
{
    (void) state;
    tu_ipc_dir();
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    zchan_t *ch = zchan_anycast_new(ctx, NULL, 10);
    assert_non_null(ch);
    zchan_sender_t *tx = zchan_sender_new(ch);
    zchan_receiver_t *rx = zchan_receiver_new(ch, 0);
    assert_non_null(tx);
    assert_non_null(rx);
    tu_assert_rc(zchan_send_int(tx, 7, 1000), ZCHAN_OK);
    zchan_select_t *sel = zchan_select_new();
    assert_non_null(sel);
    tu_assert_rc(zchan_select_add_receiver(sel, rx), ZCHAN_OK);

    zchan_ctx_destroy(&ctx);
    assert_null(ctx);

    //  Every call fails at once with ECLOSED, even those that would wait
    //  (here for up to 10 s).
    tu_assert_rc(zchan_send_int(tx, 8, 10000), ZCHAN_ECLOSED);
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);
    tu_assert_rc(zchan_sender_flush(tx), ZCHAN_ECLOSED);
    zchan_msg_t *msg = NULL;
    tu_assert_rc(zchan_recv(rx, &msg, 10000), ZCHAN_ECLOSED);
    assert_null(msg);
    assert_ptr_equal(zchan_select_wait(sel, 10000), rx);
    tu_assert_rc(zchan_recv(rx, &msg, 0), ZCHAN_ECLOSED);
    tu_assert_rc(zchan_close(ch), ZCHAN_ECLOSED);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_ECLOSED);
    assert_null(zchan_sender_new(ch));
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);
    assert_null(zchan_receiver_new(ch, 0));
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);
    //  What the handle knows by itself stays readable.
    assert_int_equal(zchan_kind(ch), ZCHAN_ANYCAST);
    assert_non_null(zchan_uri(ch));

    //  Destroys free them (the sanitizer and valgrind builds check it); the
    //  last one frees the context's memory.
    zchan_select_destroy(&sel);
    zchan_sender_destroy(&tx);
    zchan_receiver_destroy(&rx);
    zchan_destroy(&ch);
    assert_null(tx);
    assert_null(rx);
    assert_null(ch);
}

// ---------------------------------------------------------------------------
// zchan_close while another thread creates channels on the same context

typedef struct {
    zchan_ctx_t *ctx;
    atomic_bool stop;
    int failures;
    int made;
} s_maker_t;

static void *s_maker_run(void *arg)
{
    s_maker_t *m = (s_maker_t *) arg;
    int i = 0;
    while (!atomic_load(&m->stop)) {
        char uri[64];
        snprintf(uri, sizeof uri, "inproc://lifecycle-maker-%d", i++ % 8);
        zchan_t *ch = zchan_anycast_new(m->ctx, NULL, 4);
        zchan_t *named = zchan_anycast_new(m->ctx, uri, 4);
        zchan_t *opened = named ? zchan_open(m->ctx, uri) : NULL;
        if (!ch || !named || !opened)
            m->failures++;
        else
            m->made++;
        zchan_destroy(&opened);
        zchan_destroy(&named);
        zchan_destroy(&ch);
    }
    return NULL;
}

static void test_close_while_another_thread_creates(void **state)
{
    (void) state;
    tu_ipc_dir();
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    s_maker_t m = {ctx, false, 0, 0};
    pthread_t maker;
    assert_int_equal(pthread_create(&maker, NULL, s_maker_run, &m), 0);
    int64_t start = s_now_ms();
    int failed = 0, lost = 0;
    //  No assertion inside the loop: a failure must not leave the maker
    //  thread running on the context.
    for (int round = 0; round < 20; round++) {
        zchan_t *ch = zchan_anycast_new(ctx, NULL, 100);
        zchan_sender_t *tx = ch ? zchan_sender_new(ch) : NULL;
        zchan_receiver_t *rx = ch ? zchan_receiver_new(ch, 0) : NULL;
        if (!tx || !rx) {
            failed++;
            zchan_receiver_destroy(&rx);
            zchan_sender_destroy(&tx);
            zchan_destroy(&ch);
            continue;
        }
        for (int i = 0; i < 10; i++)
            if (zchan_send_int(tx, round * 100 + i, 5000) != ZCHAN_OK)
                failed++;
        int rc = zchan_close(ch);
        if (rc != ZCHAN_OK) {
            fprintf(stderr, "round %d: zchan_close: %s\n", round, zchan_strerror(rc));
            failed++;
        }
        //  Everything sent before the close arrives, in order, then ECLOSED.
        for (int i = 0; i < 10; i++) {
            int64_t v = -1;
            if (zchan_recv_int(rx, &v, 5000) != ZCHAN_OK || v != round * 100 + i)
                lost++;
        }
        zchan_msg_t *msg = NULL;
        if (rc == ZCHAN_OK && zchan_recv(rx, &msg, 5000) != ZCHAN_ECLOSED)
            failed++;
        zchan_msg_destroy(&msg);
        zchan_receiver_destroy(&rx);
        zchan_sender_destroy(&tx);
        zchan_destroy(&ch);
    }
    int64_t elapsed = s_now_ms() - start;
    atomic_store(&m.stop, true);
    pthread_join(maker, NULL);
    zchan_ctx_destroy(&ctx);
    assert_int_equal(failed, 0);
    assert_int_equal(lost, 0);
    assert_int_equal(m.failures, 0);
    assert_true(m.made > 0);
    //  A close stalled behind the lock takes the request timeout (5 s): the
    //  20 rounds must finish well inside 20 such stalls.
    if (elapsed > 40000 * tu_slow())
        fail_msg("20 closes took %lld ms", (long long) elapsed);
}

// ---------------------------------------------------------------------------
// zchan_errno after successful calls

//  Runs in a thread of its own, whose zchan_errno starts at ZCHAN_OK.
//  cmocka's assertions jump back to the test, in the test's own thread only:
//  this thread reports its first failed check by line instead.
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            snprintf(s_errno_fail, sizeof s_errno_fail, "line %d: %s (zchan_errno %d)", \
                     __LINE__, #cond, zchan_errno());                                \
            goto done;                                                               \
        }                                                                            \
    } while (0)

static char s_errno_fail[256];

static void *s_errno_run(void *arg)
{
    (void) arg;
    zchan_t *ch = NULL;
    zchan_sender_t *tx = NULL;
    zchan_receiver_t *rx = NULL;
    zchan_select_t *sel = NULL;
    int64_t v = -1;
    zchan_ctx_t *ctx = zchan_ctx_new();
    CHECK(ctx);
    ch = zchan_anycast_new(ctx, NULL, 100);
    CHECK(ch);
    tx = zchan_sender_new(ch);
    rx = zchan_receiver_new(ch, 0);
    CHECK(tx);
    CHECK(rx);
    CHECK(zchan_errno() == ZCHAN_OK);

    //  Sends read the hub's messages without waiting now and then (every 32
    //  sends): finding none is no error of theirs.
    for (int i = 0; i < 40; i++)
        CHECK(zchan_send_int(tx, i, 1000) == ZCHAN_OK);
    CHECK(zchan_errno() == ZCHAN_OK);

    //  Receives, select and close, which also look without waiting first.
    for (int i = 0; i < 40; i++) {
        int64_t v = -1;
        CHECK(zchan_recv_int(rx, &v, 1000) == ZCHAN_OK);
        CHECK(v == i);
    }
    CHECK(zchan_errno() == ZCHAN_OK);
    sel = zchan_select_new();
    CHECK(sel);
    CHECK(zchan_select_add_receiver(sel, rx) == ZCHAN_OK);
    CHECK(zchan_send_int(tx, 40, 1000) == ZCHAN_OK);
    CHECK(zchan_select_wait(sel, 5000) == (void *) rx);
    CHECK(zchan_recv_int(rx, &v, 0) == ZCHAN_OK);
    CHECK(v == 40);
    CHECK(zchan_errno() == ZCHAN_OK);
    CHECK(zchan_send_int(tx, 41, 1000) == ZCHAN_OK);
    CHECK(zchan_close(ch) == ZCHAN_OK);
    CHECK(zchan_errno() == ZCHAN_OK);

    //  A successful call leaves an earlier failure's code as it was.
    CHECK(zchan_send(tx, NULL, 0) == ZCHAN_EINVAL);
    CHECK(zchan_recv_int(rx, &v, 1000) == ZCHAN_OK);
    CHECK(v == 41);
    CHECK(zchan_errno() == ZCHAN_EINVAL);

done:
    zchan_select_destroy(&sel);
    zchan_receiver_destroy(&rx);
    zchan_sender_destroy(&tx);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return NULL;
}

static void test_errno_untouched_by_success(void **state)
{
    (void) state;
    tu_ipc_dir();
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_errno_run, NULL), 0);
    pthread_join(thread, NULL);
    if (s_errno_fail[0])
        fail_msg("%s", s_errno_fail);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_forgetting_everything),
        cmocka_unit_test(test_exit_after_ctx_destroy_sender_left),
        cmocka_unit_test(test_exit_after_ctx_destroy_receiver_left),
        cmocka_unit_test(test_exit_after_ctx_destroy_channel_left),
        cmocka_unit_test(test_exit_1_after_ctx_new),
        cmocka_unit_test(test_exit_while_a_thread_receives),
        cmocka_unit_test(test_exit_with_a_pipe_running),
        cmocka_unit_test(test_leftover_handles_are_inert),
        cmocka_unit_test(test_close_while_another_thread_creates),
        cmocka_unit_test(test_errno_untouched_by_success),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup_dir();
    return rc;
}

/*  test_transport.c: the transport ops table, driven directly, without a
    context or a hub (transports/transport.h), but for the one case that
    checks the core's view of an unnamed channel's key.

    - Every transport of the table: a scheme, ops the core relies on, and
      exactly one in-process transport, which names unnamed channels.
    - What a transport decides is asked of it: whether an endpoint stays in
      this process, what a hub advertises (pure, the host passed in), which
      locators are reachable from here.
    - ipc owns its per-context state: the runtime directory (refused when it
      is open to others: then no URI, bind or hub address), the lock files of
      host-wide and named-hub names (a second claimant finds them held), the
      takeover of a dead holder's socket file, the 0600 socket files, and
      their removal, with the lock files, at ctx_fini.

    Two views of one transport stand for two contexts: flock(2) locks belong
    to an open file, so a second view's claim conflicts with the first's as a
    second process's would.
*/
#include "testutil.h"
#include "core.h" // zchan__key_unnamed
#include "transport.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const zchan__transport_t *s_get(const char *scheme)
{
    char uri[32];
    snprintf(uri, sizeof uri, "%s://x", scheme);
    const zchan__transport_t *t = zchan__transport_for(uri);
    assert_non_null(t);
    assert_string_equal(t->scheme, scheme);
    return t;
}

static bool s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

//  Leaves a Unix socket file at path with nobody listening: what a process
//  that died leaves behind.
static void s_stale_socket(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
    close(fd);
    assert_true(s_exists(path));
}

// ---------------------------------------------------------------------------
// The table

static void test_table(void **state)
{
    (void) state;
    size_t n = 0, local = 0;
    for (; zchan__transports[n]; n++) {
        const zchan__transport_t *t = zchan__transports[n];
        assert_non_null(t->scheme);
        assert_non_null(t->parse_uri);
        assert_non_null(t->bind_endpoint);
        assert_non_null(t->advertise);
        assert_non_null(t->reachable);
        assert_int_equal(zchan__transport_index(t), n);
        if (n > 0)
            assert_true(zchan__transports[n - 1]->rank < t->rank);
        local += t->in_process;
        //  A transport's state is its own, made and freed by its ops.
        zchan__tview_t v = {0};
        if (t->ctx_init)
            assert_int_equal(t->ctx_init(&v), 0);
        if (t->ctx_fini)
            t->ctx_fini(&v);
        assert_null(v.state);
    }
    assert_true(n >= 3 && n <= ZCHAN__TRANSPORT_MAX);
    assert_int_equal(local, 1);
    assert_ptr_equal(zchan__transport_local(), s_get("inproc"));
    assert_null(zchan__transport_for("udp://h:1/x"));
    assert_null(zchan__transport_for("ipc:/x"));
    assert_null(zchan__transport_for(NULL));
}

static void test_in_process(void **state)
{
    (void) state;
    assert_true(zchan__endpoint_in_process("inproc://zchan-hub-1"));
    assert_false(zchan__endpoint_in_process("ipc:///tmp/x.sock"));
    assert_false(zchan__endpoint_in_process("tcp://127.0.0.1:5555"));
    assert_false(zchan__endpoint_in_process("bogus"));
    assert_false(zchan__endpoint_in_process(NULL));
}

static void test_inproc(void **state)
{
    (void) state;
    const zchan__transport_t *t = s_get("inproc");
    zchan__tview_t v = {0};
    zchan__target_t tg;
    char out[ZCHAN__EP_MAX];
    assert_int_equal(t->parse_uri(&v, "jobs", &tg), 0);
    assert_int_equal(tg.where, ZCHAN__AT_PROCESS);
    assert_string_equal(tg.name, "jobs");
    assert_string_equal(tg.key, "inproc://jobs");
    assert_int_equal(t->parse_uri(&v, "a/b", &tg), ZCHAN_EINVAL);
    assert_int_equal(t->parse_uri(&v, "..", &tg), ZCHAN_EINVAL);
    assert_int_equal(t->bind_endpoint(&v, "x", out, sizeof out), ZCHAN_EINVAL);
    assert_int_equal(t->hub_address(&v, 7, out, sizeof out), 0);
    assert_string_equal(out, "inproc://zchan-hub-7");
    assert_true(t->reachable(out, zchan__host_id(), zchan__proc_id()));
    assert_false(t->reachable(out, zchan__host_id(), "another/1/0"));
}

static void test_tcp(void **state)
{
    (void) state;
    const zchan__transport_t *t = s_get("tcp");
    zchan__tview_t v = {0};
    zchan__target_t tg;
    char out[ZCHAN__EP_MAX];
    assert_true(t->curve);
    assert_null(t->claim);
    assert_int_equal(t->parse_uri(&v, "127.0.0.1:5555/jobs", &tg), 0);
    assert_int_equal(tg.where, ZCHAN__AT_HUB);
    assert_string_equal(tg.hub, "tcp://127.0.0.1:5555");
    assert_string_equal(tg.key, "jobs");
    assert_int_equal(t->parse_uri(&v, "127.0.0.1/jobs", &tg), ZCHAN_EINVAL);
    assert_int_equal(t->bind_endpoint(&v, "127.0.0.1:0", out, sizeof out), 0);
    assert_string_equal(out, "tcp://127.0.0.1:*");
    //  The advertise host is an argument: the op reads no context.
    assert_int_equal(t->advertise("", "tcp://127.0.0.1:4000", out, sizeof out), 0);
    assert_string_equal(out, "tcp://127.0.0.1:4000");
    assert_int_equal(t->advertise("relay.example", "tcp://0.0.0.0:4000", out, sizeof out), 0);
    assert_string_equal(out, "tcp://relay.example:4000");
    assert_true(t->reachable("tcp://h:1", "elsewhere", "p"));
}

//  The key of an unnamed channel is what the in-process transport makes of
//  its name; the core recognises it without naming a scheme.
static void test_unnamed_key(void **state)
{
    (void) state;
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    zchan_t *ch = zchan_anycast_new(ctx, NULL, 1);
    assert_non_null(ch);
    const zchan__transport_t *t = zchan__transport_for(zchan_uri(ch));
    assert_ptr_equal(t, zchan__transport_local());
    zchan__target_t tg;
    zchan__tview_t v = {0};
    const char *uri = zchan_uri(ch);
    assert_int_equal(t->parse_uri(&v, uri + strlen(t->scheme) + 3, &tg), 0);
    assert_true(zchan__key_unnamed(tg.key));
    assert_string_equal(tg.name, zchan_name(ch));
    assert_false(zchan__key_unnamed("inproc://jobs"));
    assert_false(zchan__key_unnamed("ipc://zc-00"));
    assert_false(zchan__key_unnamed("zc-00")); // "tcp://h:1/zc-00" names a channel on a hub
    assert_true(zchan__key_unnamed("inproc://zc-00"));
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
}

// ---------------------------------------------------------------------------
// ipc and its files

static char s_dir[128];

static int s_setup_dir(void **state)
{
    (void) state;
    snprintf(s_dir, sizeof s_dir, "%s/rt-%d", tu_ipc_dir(), (int) getpid());
    if (mkdir(s_dir, 0700) != 0 && errno != EEXIST)
        return -1;
    setenv("ZCHAN_IPC_DIR", s_dir, 1);
    return 0;
}

static int s_teardown_dir(void **state)
{
    (void) state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_ipc_runtime_dir_refused(void **state)
{
    (void) state;
    const zchan__transport_t *t = s_get("ipc");
    assert_int_equal(chmod(s_dir, 0755), 0);
    zchan__tview_t v = {0};
    assert_int_equal(t->ctx_init(&v), 0); // not a failure: the context has no ipc
    assert_false(t->usable(&v));
    zchan__target_t tg;
    char out[ZCHAN__EP_MAX];
    assert_int_equal(t->parse_uri(&v, "jobs", &tg), ZCHAN_EINVAL);
    assert_int_equal(t->parse_uri(&v, "hub/jobs", &tg), ZCHAN_EINVAL);
    assert_int_equal(t->bind_endpoint(&v, "hub", out, sizeof out), ZCHAN_EINVAL);
    assert_int_equal(t->hub_address(&v, 1, out, sizeof out), ZCHAN_ENOTFOUND);
    t->ctx_fini(&v);
    assert_int_equal(chmod(s_dir, 0700), 0);
    assert_int_equal(t->ctx_init(&v), 0);
    assert_true(t->usable(&v));
    t->ctx_fini(&v);
}

static void test_ipc_host_name(void **state)
{
    (void) state;
    const zchan__transport_t *t = s_get("ipc");
    zchan__tview_t a = {0}, b = {0};
    assert_int_equal(t->ctx_init(&a), 0);
    assert_int_equal(t->ctx_init(&b), 0);
    char sock[200], lock[200], ep[ZCHAN__EP_MAX];
    snprintf(sock, sizeof sock, "%s/jobs.sock", s_dir);
    snprintf(lock, sizeof lock, "%s/jobs.lock", s_dir);
    snprintf(ep, sizeof ep, "ipc://%s", sock);

    zchan__target_t tg;
    assert_int_equal(t->parse_uri(&a, "jobs", &tg), 0);
    assert_int_equal(tg.where, ZCHAN__AT_HOST);
    assert_string_equal(tg.key, "ipc://jobs");
    assert_string_equal(tg.hub, ep);

    //  A dead holder left its socket file: whoever wins the lock takes over.
    s_stale_socket(sock);
    assert_int_equal(t->claim(&a, &tg, false), 0); // only a test: nothing taken over
    assert_true(s_exists(sock));
    assert_int_equal(t->claim(&a, &tg, true), 0);
    assert_false(s_exists(sock));
    assert_true(s_exists(lock));
    //  Held: another claimant connects instead.
    assert_int_equal(t->claim(&b, &tg, false), ZCHAN_ECLOSED);
    assert_int_equal(t->claim(&b, &tg, true), ZCHAN_ECLOSED);

    //  The hub binds it (here: a socket file with the umask's mode); the
    //  transport makes it 0600 and its own.
    s_stale_socket(sock);
    assert_int_equal(chmod(sock, 0755), 0);
    assert_int_equal(t->bound(&a, ep), 0);
    struct stat st;
    assert_int_equal(lstat(sock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    //  Shutdown removes both, and frees the name.
    t->ctx_fini(&a);
    assert_false(s_exists(sock));
    assert_false(s_exists(lock));
    assert_int_equal(t->claim(&b, &tg, true), 0);
    t->ctx_fini(&b);
    assert_false(s_exists(lock));
}

static void test_ipc_named_hub(void **state)
{
    (void) state;
    const zchan__transport_t *t = s_get("ipc");
    zchan__tview_t a = {0}, b = {0};
    assert_int_equal(t->ctx_init(&a), 0);
    assert_int_equal(t->ctx_init(&b), 0);
    char sock[200], lock[200], want[ZCHAN__EP_MAX], out[ZCHAN__EP_MAX];
    snprintf(sock, sizeof sock, "%s/hub1.hub", s_dir);
    snprintf(lock, sizeof lock, "%s/hub1.hub.lock", s_dir);
    snprintf(want, sizeof want, "ipc://%s", sock);

    zchan__target_t tg;
    assert_int_equal(t->parse_uri(&a, "hub1/jobs", &tg), 0);
    assert_int_equal(tg.where, ZCHAN__AT_HUB);
    assert_string_equal(tg.key, "jobs");
    assert_string_equal(tg.hub, want);
    assert_int_equal(t->claim(&a, &tg, false), ZCHAN_EINVAL); // not a host-wide name

    s_stale_socket(sock);
    assert_int_equal(t->bind_endpoint(&a, "hub1", out, sizeof out), 0);
    assert_string_equal(out, want);
    assert_false(s_exists(sock)); // taken over
    assert_int_equal(t->bind_endpoint(&b, "hub1", out, sizeof out), ZCHAN_ESYS); // held by a live one
    assert_int_equal(t->bind_endpoint(&a, "a/b", out, sizeof out), ZCHAN_EINVAL);

    //  Its own hub address, bound the same way.
    assert_int_equal(t->hub_address(&a, 3, out, sizeof out), 0);
    char own[64];
    snprintf(own, sizeof own, "ipc://hub-%d-3", (int) getpid());
    assert_string_equal(out, own);

    //  Reachable from this host while the socket file exists.
    s_stale_socket(sock);
    assert_int_equal(t->bound(&a, want), 0);
    assert_true(t->reachable(want, zchan__host_id(), "p"));
    assert_false(t->reachable(want, "another-host", "p"));
    t->ctx_fini(&a);
    assert_false(s_exists(sock));
    assert_false(s_exists(lock));
    assert_false(t->reachable(want, zchan__host_id(), "p"));
    t->ctx_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_in_process),
        cmocka_unit_test(test_inproc),
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_unnamed_key),
        cmocka_unit_test_setup_teardown(test_ipc_runtime_dir_refused, s_setup_dir, s_teardown_dir),
        cmocka_unit_test_setup_teardown(test_ipc_host_name, s_setup_dir, s_teardown_dir),
        cmocka_unit_test_setup_teardown(test_ipc_named_hub, s_setup_dir, s_teardown_dir),
    };
    tu_ipc_dir(); // ZCHAN_IPC_DIR: no ctx_init here makes a runtime directory elsewhere
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup_dir();
    return failed;
}

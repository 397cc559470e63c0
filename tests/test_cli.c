/*  test_cli.c: the zchan CLI's output, exit codes, URI checks and value
    round-trips, and the library calls behind them (log stream, sender flush,
    hub lost, tcp URI parsing).

    Processes are started with posix_spawn (exec), each with its own
    environment, and recorded: the teardown kills and reaps whatever is left.
    Files live in the test's temporary ZCHAN_IPC_DIR, removed at the end.
    That harness is tests/relayutil.{c,h}, shared with test_relay.
*/
#include "relayutil.h"
#include "core.h" // zchan__transport_for, parse_uri
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define s_cli(in, ...) ru_cli(NULL, in, __VA_ARGS__)

// ---------------------------------------------------------------------------
// Logs go to stderr

//  A bad $ZCHAN_HEARTBEAT_MS makes zchan_ctx_new log a warning, every time.
static char *s_bad_hb_env[] = {"ZCHAN_HEARTBEAT_MS=-5", NULL};

//  A program of the library's (the README's hello) prints its output on
//  stdout and the library's warning on stderr, not in the output.
static void test_library_logs_to_stderr(void **state)
{
    (void) state;
    char exe[2 * PATH_MAX], opath[PATH_MAX], epath[PATH_MAX];
    snprintf(exe, sizeof exe, "%s/hello", ru_bin);
    if (access(exe, X_OK) != 0)
        fail_msg("%s is not built", exe);
    ru_path(opath, sizeof opath, "out");
    ru_path(epath, sizeof epath, "err");
    char *argv[] = {exe, NULL};
    assert_int_equal(ru_wait(ru_spawn(argv, s_bad_hb_env, NULL, opath, epath), 20000), 0);
    char *out = ru_slurp(opath), *err = ru_slurp(epath);
    assert_string_equal(out, "Hello, World!\n");
    assert_non_null(strstr(err, "ZCHAN_HEARTBEAT_MS"));
    free(out);
    free(err);
}

//  zchan recv's stdout holds the values and nothing else, with the library
//  logging meanwhile; so does zchan send's (nothing).
static void test_cli_logs_to_stderr(void **state)
{
    (void) state;
    ru_relay_t relay;
    ru_relay_start(&relay, NULL, false, NULL);
    char uri[200], opath[PATH_MAX], epath[PATH_MAX];
    snprintf(uri, sizeof uri, "%s/logs", relay.tcp);
    ru_path(opath, sizeof opath, "out");
    ru_path(epath, sizeof epath, "err");
    char exe[2 * PATH_MAX];
    ru_tool(exe, sizeof exe, "zchan");
    char *argv[] = {exe, "recv", "--anycast", "-n", "2", uri, NULL};
    pid_t recv = ru_spawn(argv, s_bad_hb_env, NULL, opath, epath);
    zchan_ctx_t *ctx = ru_ctx();
    ru_wait_receivers(ctx, uri, 1);
    ru_run_t r = ru_cli(s_bad_hb_env, NULL, "send", uri, "\"a\"", "[1,{\"b\":null}]", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "ZCHAN_HEARTBEAT_MS"));
    ru_run_free(&r);
    assert_int_equal(ru_wait(recv, 20000), 0);
    char *out = ru_slurp(opath), *err = ru_slurp(epath);
    assert_string_equal(out, "\"a\"\n[1,{\"b\":null}]\n");
    assert_non_null(strstr(err, "ZCHAN_HEARTBEAT_MS"));
    free(out);
    free(err);
    zchan_ctx_destroy(&ctx);
}

// ---------------------------------------------------------------------------
// Exit codes

//  A relay killed under zchan recv: exit 9 and a line on stderr, not the 0
//  of a clean close (which a relay stopped by SIGTERM gives).
static void test_recv_hub_lost(void **state)
{
    (void) state;
    char *fast_hb[] = {"ZCHAN_HEARTBEAT_MS=100", "ZCHAN_HEARTBEAT_TIMEOUT_MS=500", NULL};
    char exe[2 * PATH_MAX], uri[200], epath[PATH_MAX];
    ru_tool(exe, sizeof exe, "zchan");
    zchan_ctx_t *ctx = ru_ctx();
    for (int kill_it = 1; kill_it >= 0; kill_it--) {
        ru_relay_t relay;
        ru_relay_start(&relay, NULL, false, NULL);
        snprintf(uri, sizeof uri, "%s/lost", relay.tcp);
        ru_path(epath, sizeof epath, "err");
        char *argv[] = {exe, "recv", "--anycast", uri, NULL};
        pid_t recv = ru_spawn(argv, fast_hb, NULL, NULL, epath);
        ru_wait_receivers(ctx, uri, 1);
        kill(relay.pid, kill_it ? SIGKILL : SIGTERM);
        assert_int_equal(ru_wait(relay.pid, 10000), kill_it ? 128 + SIGKILL : 0);
        int rc = ru_wait(recv, 20000);
        char *err = ru_slurp(epath);
        if (kill_it) {
            if (rc != 9)
                fail_msg("zchan recv exit %d after its relay was killed; stderr:\n%s", rc, err);
            assert_non_null(strstr(err, "zchan: "));
            assert_non_null(strstr(err, "hub was lost"));
        } else
            assert_int_equal(rc, 0);
        free(err);
    }
    zchan_ctx_destroy(&ctx);
}

//  A message over the relay's --max-msg-size: zchan send exits 10 with a
//  line on stderr; a message under it on the same relay is sent (exit 0).
static void test_send_over_max_size(void **state)
{
    (void) state;
    ru_relay_t relay;
    ru_relay_start(&relay, NULL, false, "--max-msg-size", "1k", NULL);
    char uri[200];
    snprintf(uri, sizeof uri, "%s/big", relay.tcp);
    char big[4100];
    memset(big, 'x', sizeof big);
    big[0] = '"';
    big[sizeof big - 2] = '"';
    big[sizeof big - 1] = 0;
    ru_run_t r = s_cli(NULL, "send", "--anycast", uri, big, NULL);
    if (r.rc != 10)
        fail_msg("zchan send of a message over the hub's limit: exit %d", r.rc);
    assert_non_null(strstr(r.err, "not every message reached the channel"));
    ru_run_free(&r);
    //  Several messages, the big one among them.
    r = s_cli(NULL, "send", uri, "1", big, "2", NULL);
    assert_int_equal(r.rc, 10);
    ru_run_free(&r);
    r = s_cli(NULL, "send", uri, "\"small\"", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    ru_run_free(&r);
    r = s_cli(NULL, "recv", "-n", "1", "-t", "5000", uri, NULL);
    assert_int_equal(r.rc, 0);
    ru_run_free(&r);
    //  The senders whose connection the relay dropped are not left counted:
    //  the hub drops an attachment whose connection is gone (within about
    //  5 s; the deadline is generous).
    zchan_ctx_t *ctx = ru_ctx();
    zchan_t *ch = zchan_open(ctx, uri);
    assert_non_null(ch);
    zchan_stat_t st;
    int64_t deadline = zchan__now_ms() + 30000;
    do {
        tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
        if (st.senders == 0 && st.receivers == 0)
            break;
        usleep(100 * 1000); // polling the hub's counters: there is no event to wait on
    } while (zchan__now_ms() < deadline);
    if (st.senders != 0 || st.receivers != 0)
        fail_msg("the relay still counts %" PRIu64 " senders and %" PRIu64 " receivers", (uint64_t) st.senders,
                 (uint64_t) st.receivers);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
}

//  zchan_sender_flush in the library: OK when the hub has it all, ENOTFOUND
//  once the hub dropped the connection for a message over its limit; the
//  sender then attaches again and goes on.
static void test_sender_flush(void **state)
{
    (void) state;
    zchan_ctx_t *host = ru_ctx(), *client = ru_ctx();
    tu_assert_rc(zchan_ctx_set_max_msg_size(host, 1024), ZCHAN_OK);
    tu_assert_rc(zchan_ctx_bind(host, "tcp://127.0.0.1:0"), ZCHAN_OK);
    char uri[200];
    snprintf(uri, sizeof uri, "%s/flush", zchan_ctx_endpoint(host, "tcp"));
    zchan_t *ch = zchan_anycast_new(client, uri, 100);
    assert_non_null(ch);
    zchan_sender_t *s = zchan_sender_new(ch);
    assert_non_null(s);
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_OK); // nothing sent
    tu_assert_rc(zchan_send_str(s, "small", 1000), ZCHAN_OK);
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_OK);
    char big[4096];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    tu_assert_rc(zchan_send_str(s, big, 1000), ZCHAN_OK);
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_ENOTFOUND);
    assert_false(zchan_sender_hub_lost(s));
    //  Reported once; the sender attaches again at its next send.
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_OK);
    tu_assert_rc(zchan_send_str(s, "after", 1000), ZCHAN_OK);
    tu_assert_rc(zchan_sender_flush(s), ZCHAN_OK);
    assert_int_equal(zchan_sender_reattached(s), 1);
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    assert_non_null(r);
    char *text = NULL;
    tu_assert_rc(zchan_recv_str(r, &text, 5000), ZCHAN_OK);
    assert_string_equal(text, "small");
    free(text);
    tu_assert_rc(zchan_recv_str(r, &text, 5000), ZCHAN_OK);
    assert_string_equal(text, "after");
    free(text);
    assert_false(zchan_receiver_hub_lost(r));
    zchan_receiver_destroy(&r);
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&client);
    zchan_ctx_destroy(&host);
}

// ---------------------------------------------------------------------------
// URIs

//  The tcp transport's URI parser: what only a bind may take, and a host
//  with a colon that is not bracketed IPv6, are bad URIs.
static void test_tcp_uri_parse(void **state)
{
    (void) state;
    zchan_ctx_t *ctx = ru_ctx();
    const zchan__transport_t *t = zchan__transport_for("tcp://x");
    assert_non_null(t);
    const char *good[] = {"127.0.0.1:7878/a", "host.example:1/a.b-c_d", "[::1]:65535/x", "h:00080/x"};
    const char *bad[] = {"*:7878/a",   "127.0.0.1:0/x", "h:1:2/x",    "h:*/x",      "h:65536/x", "h:/x",
                         ":5/x",       "h:5",           "h:5/",       "h:5/a/b",    "[::1:5/x",  "::1]:5/x",
                         "h\x1b:5/x",  "h 1:5/x",       "h:5/a\x01", "h:0000/x"};
    zchan__target_t target;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (t->parse_uri(ctx, good[i], &target) != 0)
            fail_msg("tcp://%s refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (t->parse_uri(ctx, bad[i], &target) != ZCHAN_EINVAL)
            fail_msg("tcp://%s accepted", bad[i]);
    //  The library says EINVAL at once, without a request.
    assert_null(zchan_anycast_new(ctx, "tcp://*:7878/a", 1));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    assert_null(zchan_open(ctx, "tcp://127.0.0.1:0/a"));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    //  A bind still takes port 0.
    tu_assert_rc(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    zchan_ctx_destroy(&ctx);
}

//  The CLI: bad URIs exit 3 at once with one line that escapes control
//  characters; inproc is refused; ipc without a runtime directory is
//  "unavailable", not a bad URI.
static void test_cli_uris(void **state)
{
    (void) state;
    ru_relay_t relay;
    ru_relay_start(&relay, NULL, false, NULL);
    const char *port = strrchr(relay.tcp, ':') + 1;
    char star[200];
    snprintf(star, sizeof star, "tcp://*:%s/x", port);
    const char *bad[] = {star, "tcp://127.0.0.1:0/x", "tcp://h:1:2/x", "tcp://127.0.0.1/x", "udp://h:1/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t0 = ru_now_ms();
        ru_run_t r = s_cli(NULL, "send", "--anycast", bad[i], "1", NULL);
        if (r.rc != 3)
            fail_msg("zchan send %s: exit %d, want 3 (bad URI)", bad[i], r.rc);
        assert_non_null(strstr(r.err, "bad URI"));
        assert_true(ru_now_ms() - t0 < 3000 * tu_slow()); // no request's timeout
        ru_run_free(&r);
    }
    //  inproc: the message would die with the CLI's process.
    ru_run_t r = s_cli(NULL, "send", "--anycast", "inproc://x", "1", NULL);
    assert_int_equal(r.rc, 3);
    assert_non_null(strstr(r.err, "inproc"));
    ru_run_free(&r);
    r = s_cli(NULL, "recv", "--anycast", "-t", "100", "inproc://x", NULL);
    assert_int_equal(r.rc, 3);
    ru_run_free(&r);
    //  Control characters are escaped in the one-line error.
    r = s_cli(NULL, "stat", "tcp://h\x1b[2J\n:1/x", NULL);
    assert_int_equal(r.rc, 3);
    assert_null(strchr(r.err, '\x1b'));
    assert_non_null(strstr(r.err, "\\x1b[2J\\x0a"));
    assert_non_null(strchr(r.err, '\n'));
    assert_int_equal(strchr(r.err, '\n')[1], 0); // one line
    ru_run_free(&r);
    //  No usable runtime directory: ipc is unavailable (exit 8), and a
    //  malformed ipc URI is still a bad URI.
    char file[PATH_MAX], env[PATH_MAX + 32];
    ru_path(file, sizeof file, "plainfile");
    ru_write_file(file, "x");
    snprintf(env, sizeof env, "ZCHAN_IPC_DIR=%s/sub", file);
    char *noipc[] = {env, NULL};
    r = ru_cli(noipc, NULL, "send", "--anycast", "ipc://relay/x", "1", NULL);
    assert_int_equal(r.rc, 8);
    assert_non_null(strstr(r.err, "ipc is unavailable"));
    assert_null(strstr(r.err, "bad URI"));
    ru_run_free(&r);
    r = ru_cli(noipc, NULL, "stat", "ipc://x", NULL);
    assert_int_equal(r.rc, 8);
    ru_run_free(&r);
    r = ru_cli(noipc, NULL, "stat", "ipc://a/b/c", NULL);
    assert_int_equal(r.rc, 3);
    ru_run_free(&r);
    //  A good URI still works.
    char uri[200];
    snprintf(uri, sizeof uri, "%s/ok", relay.tcp);
    r = s_cli(NULL, "send", "--anycast", uri, "1", NULL);
    assert_int_equal(r.rc, 0);
    ru_run_free(&r);
}

// ---------------------------------------------------------------------------
// Values: zchan recv | zchan send copies them exactly

//  Packs the body of a reference [version, kind, key, name, uri, hubinfo]
//  with the given fields; nloc locators; curve "" for none.
static void s_pack_ref(msgpack_packer *pk, uint64_t version, uint64_t kind, const char *key, const char *uri,
                       int nloc, const char *curve)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer bp;
    msgpack_packer_init(&bp, &body, msgpack_sbuffer_write);
    msgpack_pack_array(&bp, 6);
    msgpack_pack_uint64(&bp, version);
    msgpack_pack_uint64(&bp, kind);
    const char *strs[] = {key, "name", uri};
    for (int i = 0; i < 3; i++) {
        msgpack_pack_str(&bp, strlen(strs[i]));
        msgpack_pack_str_body(&bp, strs[i], strlen(strs[i]));
    }
    msgpack_pack_map(&bp, curve[0] ? 5 : 4);
    const char *kv[] = {"host", "h1", "proc", "p1", "hub", "b1"};
    for (int i = 0; i < 6; i++) {
        msgpack_pack_str(&bp, strlen(kv[i]));
        msgpack_pack_str_body(&bp, kv[i], strlen(kv[i]));
    }
    msgpack_pack_str(&bp, 3);
    msgpack_pack_str_body(&bp, "loc", 3);
    msgpack_pack_array(&bp, (size_t) nloc);
    for (int i = 0; i < nloc; i++) {
        msgpack_pack_str(&bp, 22);
        msgpack_pack_str_body(&bp, "tcp://127.0.0.1:1/name", 22);
    }
    if (curve[0]) {
        msgpack_pack_str(&bp, 5);
        msgpack_pack_str_body(&bp, "curve", 5);
        msgpack_pack_str(&bp, strlen(curve));
        msgpack_pack_str_body(&bp, curve, strlen(curve));
    }
    msgpack_pack_ext(pk, body.size, ZCHAN_EXT_REF);
    msgpack_pack_ext_body(pk, body.data, body.size);
    msgpack_sbuffer_destroy(&body);
}

#define NVALUES 10

//  Value i of the round trip (all but the first are references that are
//  not well-formed, and float 32s), packed into msg.
static void s_pack_value(zchan_msg_t *msg, int i, const char *uri)
{
    msgpack_packer *pk = zchan_msg_packer(msg);
    const char *z85 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    switch (i) {
    case 0: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "k", uri, 1, z85); break; // well-formed
    case 1: s_pack_ref(pk, 2, ZCHAN_ANYCAST, "k", uri, 1, ""); break;                     // version 2
    case 2: s_pack_ref(pk, ZCHAN_PROTO_VERSION, 3, "k", uri, 1, ""); break;               // kind 3
    case 3: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "", uri, 1, ""); break;    // empty key
    case 4: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "k", uri, 0, ""); break;   // no locators
    case 5: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "k", uri, 1, "short"); break; // bad curve key
    case 6: s_pack_ref(pk, ZCHAN_PROTO_VERSION, ZCHAN_ANYCAST, "k", "", 1, ""); break;    // empty uri
    case 7: msgpack_pack_float(pk, 0.1f); break;
    case 8:
        msgpack_pack_array(pk, 3);
        msgpack_pack_float(pk, -3.25e38f);
        msgpack_pack_float(pk, INFINITY);
        msgpack_pack_double(pk, 0.1);
        break;
    default: msgpack_pack_float(pk, 16777217.0f); break;
    }
}

//  A message's value packed again by msgpack-c: its canonical bytes.
static void s_canonical(zchan_msg_t *msg, msgpack_sbuffer *sb)
{
    const msgpack_object *o = zchan_msg_object(msg);
    assert_non_null(o);
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *o);
}

static void test_values_round_trip(void **state)
{
    (void) state;
    zchan_ctx_t *ctx = ru_ctx();
    tu_assert_rc(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    char in_uri[200], out_uri[200];
    snprintf(in_uri, sizeof in_uri, "%s/in", zchan_ctx_endpoint(ctx, "tcp"));
    snprintf(out_uri, sizeof out_uri, "%s/out", zchan_ctx_endpoint(ctx, "tcp"));
    zchan_t *in = zchan_anycast_new(ctx, in_uri, 100), *out = zchan_anycast_new(ctx, out_uri, 100);
    assert_non_null(in);
    assert_non_null(out);
    zchan_sender_t *tx = zchan_sender_new(in);
    assert_non_null(tx);
    for (int i = 0; i < NVALUES; i++) {
        zchan_msg_t *msg = zchan_msg_new();
        s_pack_value(msg, i, in_uri);
        tu_assert_rc(zchan_send(tx, &msg, 1000), ZCHAN_OK);
    }
    zchan_sender_destroy(&tx);

    char count[16], lines[PATH_MAX];
    snprintf(count, sizeof count, "%d", NVALUES);
    ru_run_t r = s_cli(NULL, "recv", "-n", count, "-t", "5000", in_uri, NULL);
    assert_int_equal(r.rc, 0);
    //  The well-formed reference prints as $chan, the malformed ones as
    //  $ext, float 32s as $float32.
    char *line = r.out;
    for (int i = 0; i < NVALUES; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        if (i == 0)
            assert_true(strncmp(line, "{\"$chan\":", 9) == 0);
        else if (i < 7)
            assert_true(strncmp(line, "{\"$ext\":[90,", 12) == 0);
        else if (i == 7)
            assert_string_equal(line, "{\"$float32\":0.1}");
        else if (i == 8)
            assert_string_equal(line, "[{\"$float32\":-3.25e+38},{\"$float32\":\"inf\"},0.1]");
        *nl = '\n';
        line = nl + 1;
    }
    ru_path(lines, sizeof lines, "lines");
    ru_write_file(lines, r.out);
    ru_run_free(&r);

    r = s_cli(lines, "send", out_uri, NULL);
    assert_int_equal(r.rc, 0);
    ru_run_free(&r);
    zchan_receiver_t *rx = zchan_receiver_new(out, 0);
    assert_non_null(rx);
    for (int i = 0; i < NVALUES; i++) {
        zchan_msg_t *got = NULL, *want = zchan_msg_new();
        tu_assert_rc(zchan_recv(rx, &got, 5000), ZCHAN_OK);
        s_pack_value(want, i, in_uri);
        msgpack_sbuffer a, b;
        s_canonical(want, &a);
        s_canonical(got, &b);
        if (i > 0 && (a.size != b.size || memcmp(a.data, b.data, a.size) != 0))
            fail_msg("value %d changed on its way through zchan recv | zchan send", i);
        if (i == 0) // a reference to in_uri, made afresh by zchan send
            assert_int_equal(zchan_msg_object(got)->type, MSGPACK_OBJECT_EXT);
        msgpack_sbuffer_destroy(&a);
        msgpack_sbuffer_destroy(&b);
        zchan_msg_destroy(&got);
        zchan_msg_destroy(&want);
    }
    zchan_receiver_destroy(&rx);
    zchan_destroy(&in);
    zchan_destroy(&out);
    zchan_ctx_destroy(&ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_library_logs_to_stderr, ru_teardown),
        cmocka_unit_test_teardown(test_cli_logs_to_stderr, ru_teardown),
        cmocka_unit_test_teardown(test_recv_hub_lost, ru_teardown),
        cmocka_unit_test_teardown(test_send_over_max_size, ru_teardown),
        cmocka_unit_test_teardown(test_sender_flush, ru_teardown),
        cmocka_unit_test_teardown(test_tcp_uri_parse, ru_teardown),
        cmocka_unit_test_teardown(test_cli_uris, ru_teardown),
        cmocka_unit_test_teardown(test_values_round_trip, ru_teardown),
    };
    return cmocka_run_group_tests(tests, ru_setup, ru_group_teardown);
}

/*  test_relay.c: zchan-relay and the zchan CLI, as real processes.

    Each test starts its own relay on 127.0.0.1 port 0 (and an ipc name),
    learns its endpoints from --endpoint-file, and drives it with CLI
    processes and with this process as a library client. Every process a
    test starts is recorded, and the teardown kills and reaps whatever is
    left, so a failed assertion leaves nothing behind. Files live in the
    test's temporary ZCHAN_IPC_DIR, removed at the end. That harness is
    tests/relayutil.{c,h}, shared with test_cli.
*/
#include "relayutil.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

//  Runs the CLI with args (NULL-terminated) and stdin from in (may be NULL);
//  returns its exit code, and its output in *out (free it) if out is given.
static int s_cli(const char *in, char **out, ...)
{
    va_list ap;
    va_start(ap, out);
    ru_run_t r = ru_cli_v(NULL, in, ap);
    va_end(ap);
    if (out) {
        *out = r.out;
        r.out = NULL;
    }
    ru_run_free(&r);
    return r.rc;
}

//  Starts the CLI in the background (recv), writing its output to out.
static pid_t s_cli_bg(const char *out, const char *a1, const char *a2, const char *a3, const char *a4,
                      const char *a5)
{
    char exe[2 * PATH_MAX];
    ru_tool(exe, sizeof exe, "zchan");
    char *argv[] = {exe, (char *) a1, (char *) a2, (char *) a3, (char *) a4, (char *) a5, NULL};
    return ru_spawn(argv, NULL, NULL, out, NULL);
}

//  SIGTERM; the relay must exit 0 within a few seconds.
static void s_relay_stop(ru_relay_t *r)
{
    kill(r->pid, SIGTERM);
    int rc = ru_wait(r->pid, 8000);
    if (rc != 0) {
        char *log = ru_slurp(r->log);
        fail_msg("relay exit %d after SIGTERM; log:\n%s", rc, log);
    }
}

static void s_uri(char *out, size_t n, const char *base, const char *name)
{
    snprintf(out, n, "%s/%s", base, name);
}

// ---------------------------------------------------------------------------
// The tests

//  The acceptance session: a CLI receiver and a CLI sender on an
//  anycast channel of the relay see the three JSON values.
static void test_cli_anycast(void **state)
{
    (void) state;
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, NULL);
    char uri[256], out[PATH_MAX];
    s_uri(uri, sizeof uri, r.tcp, "jobs");
    ru_path(out, sizeof out, "recv");
    pid_t rx = s_cli_bg(out, "recv", "--anycast", uri, "-n", "3");
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", uri, "1", "\"two\"", "[3,{\"a\":null}]", NULL), 0);
    assert_int_equal(ru_wait(rx, 10000), 0);
    char *got = ru_slurp(out);
    assert_string_equal(got, "1\n\"two\"\n[3,{\"a\":null}]\n");
    free(got);
    s_relay_stop(&r);
}

//  Broadcast to three CLI receivers; `zchan close` ends them after they
//  drained.
static void test_cli_broadcast_close(void **state)
{
    (void) state;
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, NULL);
    zchan_ctx_t *ctx = ru_ctx();
    char uri[256], out[3][PATH_MAX];
    s_uri(uri, sizeof uri, r.tcp, "news");
    assert_int_equal(s_cli(NULL, NULL, "send", "--broadcast", uri, NULL), 0); // creates it, sends nothing
    pid_t rx[3];
    for (int i = 0; i < 3; i++) {
        ru_path(out[i], sizeof out[i], "recv");
        rx[i] = s_cli_bg(out[i], "recv", uri, NULL, NULL, NULL);
    }
    ru_wait_receivers(ctx, uri, 3);
    assert_int_equal(s_cli(NULL, NULL, "send", uri, "\"a\"", "{\"b\":[true,false,1.5,-7]}", NULL), 0);
    assert_int_equal(s_cli(NULL, NULL, "close", uri, NULL), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ru_wait(rx[i], 10000), 0);
        char *got = ru_slurp(out[i]);
        assert_string_equal(got, "\"a\"\n{\"b\":[true,false,1.5,-7]}\n");
        free(got);
    }
    //  After the close, sends fail with their own exit code.
    assert_int_equal(s_cli(NULL, NULL, "send", uri, "1", NULL), 6);
    zchan_ctx_destroy(&ctx);
    s_relay_stop(&r);
}

//  Without JSON arguments, each line of stdin is one message; values of
//  every JSON type and the tagged forms go through unchanged.
static void test_cli_stdin(void **state)
{
    (void) state;
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, NULL);
    char uri[256], in[PATH_MAX];
    s_uri(uri, sizeof uri, r.tcp, "lines");
    const char *lines =
        "1\n"
        "\n"
        "{\"a\":[true,null,false]}\n"
        "\"x y \\u00e9\\n\\u0000\"\n"
        "   \n"
        "18446744073709551615\n"
        "-9223372036854775808\n"
        "[0.5,-0.0,1e+300,{\"$float\":\"nan\"},{\"$float\":\"-inf\"}]\n"
        "{\"$bin\":\"AAEC/w==\"}\n"
        "{\"$ext\":[-3,\"AQ==\"]}\n"
        "{\"$map\":[[1,\"one\"],[\"$k\",null]]}\n"
        "{\"$strb64\":\"/w==\"}\n"
        "{\"$map\":[[\"k\\u0000z\",1]]}\n";
    const char *expect =
        "1\n"
        "{\"a\":[true,null,false]}\n"
        "\"x y \xc3\xa9\\n\\u0000\"\n"
        "18446744073709551615\n"
        "-9223372036854775808\n"
        "[0.5,-0.0,1e+300,{\"$float\":\"nan\"},{\"$float\":\"-inf\"}]\n"
        "{\"$bin\":\"AAEC/w==\"}\n"
        "{\"$ext\":[-3,\"AQ==\"]}\n"
        "{\"$map\":[[1,\"one\"],[\"$k\",null]]}\n"
        "{\"$strb64\":\"/w==\"}\n"
        "{\"$map\":[[\"k\\u0000z\",1]]}\n"; // jansson reads no NUL in an object key
    ru_path(in, sizeof in, "in");
    ru_write_file(in, lines);
    assert_int_equal(s_cli(in, NULL, "send", "--anycast", "--capacity", "100", uri, NULL), 0);
    char *got = NULL;
    assert_int_equal(s_cli(NULL, &got, "recv", uri, "-n", "11", "-t", "5000", NULL), 0);
    assert_string_equal(got, expect);
    free(got);
    //  A bad line stops the send with exit 2; the lines before it were sent.
    ru_write_file(in, "7\n{bad\n8\n");
    assert_int_equal(s_cli(in, NULL, "send", uri, NULL), 2);
    assert_int_equal(s_cli(NULL, &got, "recv", uri, "-n", "1", "-t", "5000", NULL), 0);
    assert_string_equal(got, "7\n");
    free(got);
    s_relay_stop(&r);
}

//  `zchan stat` prints the counters as one JSON object; zchan_stat gives the
//  same through the library.
static void test_cli_stat(void **state)
{
    (void) state;
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, NULL);
    char uri[256];
    s_uri(uri, sizeof uri, r.tcp, "counted");
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", "--capacity", "5", uri, "1", "2", "3", NULL), 0);
    char *got = NULL;
    assert_int_equal(s_cli(NULL, &got, "stat", uri, NULL), 0);
    char expect[512];
    snprintf(expect, sizeof expect,
             "{\"uri\":\"%s\",\"kind\":\"anycast\",\"capacity\":5,\"depth\":3,\"senders\":0,\"receivers\":0,"
             "\"sent\":3,\"delivered\":0,\"dropped\":0,\"lost\":0,\"closed\":false}\n",
             uri);
    assert_string_equal(got, expect);
    free(got);

    zchan_ctx_t *ctx = ru_ctx();
    zchan_t *ch = zchan_open(ctx, uri);
    assert_non_null(ch);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.kind, ZCHAN_ANYCAST);
    assert_int_equal(st.capacity, 5);
    assert_int_equal(st.depth, 3);
    assert_int_equal(st.sent, 3);
    assert_false(st.closed);
    tu_assert_rc(zchan_close(ch), ZCHAN_OK);
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_true(st.closed);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    s_relay_stop(&r);
}

//  Each kind of error has its one-line message and its own exit code.
static void test_cli_errors(void **state)
{
    (void) state;
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, NULL);
    char uri[256], other[256], dead[64];
    s_uri(uri, sizeof uri, r.tcp, "errs");
    s_uri(other, sizeof other, r.tcp, "never-made");
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d/x", tu_free_port());
    assert_int_equal(s_cli(NULL, NULL, "frobnicate", uri, NULL), 1);              // usage
    assert_int_equal(s_cli(NULL, NULL, "recv", "-n", "zero", uri, NULL), 1);      // usage
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", uri, "{\"a\":", NULL), 2); // bad JSON
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", uri, "[1,", NULL), 2);
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", uri, "{\"$nope\":1}", NULL), 2);
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", uri, "18446744073709551616", NULL), 2);
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", "tcp://127.0.0.1/x", "1", NULL), 3); // bad URI
    assert_int_equal(s_cli(NULL, NULL, "recv", "bogus://x", NULL), 3);
    assert_int_equal(s_cli(NULL, NULL, "send", other, "1", NULL), 4);              // no such channel
    assert_int_equal(s_cli(NULL, NULL, "stat", other, NULL), 4);
    assert_int_equal(s_cli(NULL, NULL, "recv", "--anycast", uri, "-t", "200", NULL), 5); // timeout
    assert_int_equal(s_cli(NULL, NULL, "stat", "-t", "300", dead, NULL), 5);       // nobody listening
    assert_int_equal(s_cli(NULL, NULL, "recv", "--broadcast", uri, "-t", "200", NULL), 7); // other kind
    //  Arguments are all checked before any is sent.
    assert_int_equal(s_cli(NULL, NULL, "send", uri, "1", "oops", NULL), 2);
    char *got = NULL;
    assert_int_equal(s_cli(NULL, &got, "stat", uri, NULL), 0);
    assert_non_null(strstr(got, "\"sent\":0"));
    free(got);
    s_relay_stop(&r);
}

//  A C program and the CLI on the same relay channel: values and channel
//  references cross in both directions.
static void test_library_and_cli(void **state)
{
    (void) state;
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, NULL);
    zchan_ctx_t *ctx = ru_ctx();
    char uri[256];
    s_uri(uri, sizeof uri, r.tcp, "mixed");
    zchan_t *ch = zchan_anycast_new(ctx, uri, 10);
    assert_non_null(ch);
    zchan_receiver_t *rx = zchan_receiver_new(ch, 0);
    assert_non_null(rx);

    //  CLI -> C.
    char ref[300];
    snprintf(ref, sizeof ref, "{\"reply_to\":{\"$chan\":\"%s\"}}", uri);
    assert_int_equal(s_cli(NULL, NULL, "send", uri, "42", "\"hi\"", ref, NULL), 0);
    int64_t v = 0;
    tu_assert_rc(zchan_recv_int(rx, &v, 5000), ZCHAN_OK);
    assert_int_equal(v, 42);
    char *s = NULL;
    tu_assert_rc(zchan_recv_str(rx, &s, 5000), ZCHAN_OK);
    assert_string_equal(s, "hi");
    free(s);
    zchan_msg_t *msg = NULL;
    tu_assert_rc(zchan_recv(rx, &msg, 5000), ZCHAN_OK);
    const msgpack_object *o = zchan_msg_object(msg);
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 1);
    zchan_t *back = zchan_msg_chan(ctx, &o->via.map.ptr[0].val);
    assert_non_null(back);
    assert_string_equal(zchan_uri(back), uri);
    zchan_destroy(&back);
    zchan_msg_destroy(&msg);
    zchan_receiver_destroy(&rx);

    //  C -> CLI: what JSON cannot show comes out tagged.
    zchan_sender_t *tx = zchan_sender_new(ch);
    assert_non_null(tx);
    msg = zchan_msg_new();
    msgpack_packer *pk = zchan_msg_packer(msg);
    msgpack_pack_array(pk, 5);
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "\x01\x02\x03", 3);
    msgpack_pack_double(pk, 0.0 / 0.0);
    tu_assert_rc(zchan_msg_pack_chan(msg, ch), ZCHAN_OK);
    msgpack_pack_map(pk, 1);
    msgpack_pack_int(pk, 1);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "x", 1);
    msgpack_pack_float(pk, 0.1f);
    tu_assert_rc(zchan_send(tx, &msg, 5000), ZCHAN_OK);
    zchan_sender_destroy(&tx);
    char *got = NULL;
    assert_int_equal(s_cli(NULL, &got, "recv", uri, "-n", "1", "-t", "5000", NULL), 0);
    char expect[512];
    snprintf(expect, sizeof expect,
             "[{\"$bin\":\"AQID\"},{\"$float\":\"nan\"},{\"$chan\":\"%s\"},{\"$map\":[[1,\"x\"]]},"
             "{\"$float32\":0.1}]\n",
             uri);
    assert_string_equal(got, expect);
    free(got);

    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.sent, 4);
    assert_int_equal(st.delivered, 4);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    s_relay_stop(&r);
}

//  A channel made over tcp is the same channel through the relay's ipc
//  endpoint (ipc://RELAYNAME/NAME). The relay also reads a config file, and
//  on SIGHUP reopens its log file and goes on serving.
static void test_config_ipc_sighup(void **state)
{
    (void) state;
    ru_relay_t r;
    memset(&r, 0, sizeof r);
    char conf[PATH_MAX];
    ru_path(conf, sizeof conf, "relay.conf");
    ru_path(r.log, sizeof r.log, "relay.log");
    ru_path(r.epfile, sizeof r.epfile, "relay.ep");
    snprintf(r.ipc, sizeof r.ipc, "ipc://relayconf%d", ru_seq());
    char text[3 * PATH_MAX];
    snprintf(text, sizeof text,
             "#   zchan-relay test config\n"
             "relay\n"
             "    bind = tcp://127.0.0.1:0\n"
             "    bind = %s\n"
             "    endpoint-file = \"%s\"\n"
             "    log-file = \"%s\"\n"
             "    max-msg-size = 1M\n"
             "    drain-timeout = 2000\n",
             r.ipc, r.epfile, r.log);
    ru_write_file(conf, text);
    char exe[2 * PATH_MAX];
    ru_tool(exe, sizeof exe, "zchan-relay");
    char *argv[] = {exe, "--config", conf, NULL};
    r.pid = ru_spawn(argv, NULL, NULL, NULL, NULL);
    ru_relay_wait_ready(&r, 2);

    char via_tcp[256], via_ipc[256];
    s_uri(via_tcp, sizeof via_tcp, r.tcp, "shared");
    s_uri(via_ipc, sizeof via_ipc, r.ipc, "shared");
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", via_tcp, "\"over tcp\"", NULL), 0);
    assert_int_equal(s_cli(NULL, NULL, "send", via_ipc, "\"over ipc\"", NULL), 0);
    char *got = NULL;
    assert_int_equal(s_cli(NULL, &got, "recv", via_ipc, "-n", "2", "-t", "5000", NULL), 0);
    assert_string_equal(got, "\"over tcp\"\n\"over ipc\"\n");
    free(got);

    //  logrotate: move the log away, SIGHUP, and a new one appears.
    char rotated[PATH_MAX + 4];
    snprintf(rotated, sizeof rotated, "%s.1", r.log);
    assert_int_equal(rename(r.log, rotated), 0);
    kill(r.pid, SIGHUP);
    int64_t deadline = ru_now_ms() + 10000;
    char *log = NULL;
    while (true) {
        log = ru_slurp(r.log);
        if (strstr(log, "log reopened") || ru_now_ms() > deadline)
            break;
        free(log);
        ru_sleep_ms(10);
    }
    assert_non_null(strstr(log, "log reopened"));
    free(log);
    assert_int_equal(s_cli(NULL, NULL, "send", via_tcp, "3", NULL), 0);
    assert_int_equal(s_cli(NULL, &got, "recv", via_ipc, "-n", "1", "-t", "5000", NULL), 0);
    assert_string_equal(got, "3\n");
    free(got);
    s_relay_stop(&r);
    log = ru_slurp(r.log);
    assert_non_null(strstr(log, "stopped"));
    free(log);
    //  The endpoint file goes with the relay.
    assert_int_not_equal(access(r.epfile, F_OK), 0);

    //  Bad settings exit 2 at once; --help documents every option.
    char bad[PATH_MAX];
    ru_path(bad, sizeof bad, "bad.conf");
    ru_write_file(bad, "relay\n    frobnicate = 1\n");
    char *argv2[] = {exe, "--config", bad, NULL};
    assert_int_equal(ru_wait(ru_spawn(argv2, NULL, NULL, NULL, NULL), 10000), 2);
    char *argv3[] = {exe, NULL};
    assert_int_equal(ru_wait(ru_spawn(argv3, NULL, NULL, NULL, NULL), 10000), 2);
    char help[PATH_MAX];
    ru_path(help, sizeof help, "help");
    char *argv4[] = {exe, "--help", NULL};
    assert_int_equal(ru_wait(ru_spawn(argv4, NULL, NULL, help, NULL), 10000), 0);
    char *h = ru_slurp(help);
    const char *opts[] = {"--bind", "--config", "--advertise", "--max-msg-size", "--drain-timeout",
                          "--endpoint-file", "--log-file", "--verbose", "SIGHUP", "SIGTERM"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strstr(h, opts[i]))
            fail_msg("zchan-relay --help does not mention %s", opts[i]);
    free(h);
}

//  Resource limits from the config file and the command line (which wins)
//  reach the relay's hub: refusals are ELIMIT to the client, and logged.
static void test_limits(void **state)
{
    (void) state;
    char conf[PATH_MAX];
    ru_path(conf, sizeof conf, "limits.conf");
    ru_write_file(conf, "relay\n"
                       "    max-channels = 2\n"
                       "    max-channel-bytes = 4k\n"
                       "    max-broadcast-limit = 100\n");
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, "--config", conf, "--max-channels", "3", "--max-capacity", "50", NULL);
    zchan_ctx_t *ctx = ru_ctx();
    char uri[256];
    //  --max-capacity 50
    s_uri(uri, sizeof uri, r.tcp, "a");
    assert_null(zchan_anycast_new(ctx, uri, 51));
    assert_int_equal(zchan_errno(), ZCHAN_ELIMIT);
    zchan_t *a = zchan_anycast_new(ctx, uri, 50);
    assert_non_null(a);
    //  max-broadcast-limit = 100 (config)
    s_uri(uri, sizeof uri, r.tcp, "b");
    zchan_t *b = zchan_broadcast_new(ctx, uri, false);
    assert_non_null(b);
    assert_null(zchan_receiver_new(b, 101));
    assert_int_equal(zchan_errno(), ZCHAN_ELIMIT);
    zchan_receiver_t *br = zchan_receiver_new(b, 100);
    assert_non_null(br);
    //  --max-channels 3 wins over the config's 2.
    s_uri(uri, sizeof uri, r.tcp, "c");
    zchan_t *c = zchan_anycast_new(ctx, uri, 1);
    assert_non_null(c);
    s_uri(uri, sizeof uri, r.tcp, "d");
    assert_null(zchan_anycast_new(ctx, uri, 1));
    assert_int_equal(zchan_errno(), ZCHAN_ELIMIT);
    //  max-channel-bytes = 4k (config): a sender with no receiver runs into it.
    zchan_sender_t *s = zchan_sender_new(a);
    assert_non_null(s);
    int rc = ZCHAN_OK;
    char text[201];
    memset(text, 'x', 200);
    text[200] = 0;
    //  The refusal is read at the latest when the sender's credit runs out.
    for (int i = 0; i < (int) zchan_sender_window(50) + 200 && rc == ZCHAN_OK; i++)
        rc = zchan_send_str(s, text, 5000);
    tu_assert_rc(rc, ZCHAN_ELIMIT);
    zchan_sender_destroy(&s);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(a, &st), ZCHAN_OK);
    assert_true(st.lost >= 1);
    assert_true(st.sent >= 1 && st.sent <= 4096 / 200);
    //  SIGHUP reloads the limits from the config file.
    ru_write_file(conf, "relay\n"
                       "    max-channels = 2\n"
                       "    max-channel-bytes = 4k\n"
                       "    max-broadcast-limit = 200\n");
    kill(r.pid, SIGHUP);
    int64_t deadline = ru_now_ms() + 10000;
    char *log = NULL;
    while (true) {
        log = ru_slurp(r.log);
        if (strstr(log, "max-broadcast-limit 200") || ru_now_ms() > deadline)
            break;
        free(log);
        ru_sleep_ms(10);
    }
    assert_non_null(strstr(log, "max-broadcast-limit 200"));
    free(log);
    zchan_receiver_t *br2 = zchan_receiver_new(b, 200);
    assert_non_null(br2);
    zchan_receiver_destroy(&br2);
    assert_null(zchan_receiver_new(b, 201));
    assert_int_equal(zchan_errno(), ZCHAN_ELIMIT);
    zchan_receiver_destroy(&br);
    zchan_destroy(&a);
    zchan_destroy(&b);
    zchan_destroy(&c);
    zchan_ctx_destroy(&ctx);
    s_relay_stop(&r);
    log = ru_slurp(r.log);
    if (!strstr(log, "limits: max-channels 3, max-attachments 100000, max-capacity 50, max-broadcast-limit 100, "
                     "max-channel-bytes 4096, max-queued-bytes 1073741824"))
        fail_msg("the relay did not log its limits:\n%s", log);
    if (!strstr(log, "refused") || !strstr(log, "max-channel-bytes 4096"))
        fail_msg("the relay did not log a refusal:\n%s", log);
    free(log);

    //  --help lists them; a bad value is a usage error.
    char exe[2 * PATH_MAX], help[PATH_MAX];
    ru_tool(exe, sizeof exe, "zchan-relay");
    ru_path(help, sizeof help, "help");
    char *argv[] = {exe, "--help", NULL};
    assert_int_equal(ru_wait(ru_spawn(argv, NULL, NULL, help, NULL), 10000), 0);
    char *h = ru_slurp(help);
    const char *opts[] = {"--max-channels", "--max-attachments", "--max-capacity", "--max-broadcast-limit",
                          "--max-channel-bytes", "--max-queued-bytes", "max-queued-bytes = 1G"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strstr(h, opts[i]))
            fail_msg("zchan-relay --help does not mention %s", opts[i]);
    free(h);
    char *argv2[] = {exe, "--bind", "tcp://127.0.0.1:0", "--max-channels", "0", NULL};
    assert_int_equal(ru_wait(ru_spawn(argv2, NULL, NULL, NULL, NULL), 10000), 2);
    ru_write_file(conf, "relay\n    bind = tcp://127.0.0.1:0\n    max-capacity = lots\n");
    char *argv3[] = {exe, "--config", conf, NULL};
    assert_int_equal(ru_wait(ru_spawn(argv3, NULL, NULL, NULL, NULL), 10000), 2);
}

// ---------------------------------------------------------------------------
// Garbage

static uint32_t s_rand(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

static void s_random_bytes(uint32_t *seed, char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char) s_rand(seed);
}

//  Connects a raw socket (tcp "127.0.0.1:PORT" or a unix socket path), sends
//  n bytes and closes.
static void s_raw_send(const char *tcp_uri, const char *unix_path, const char *bytes, size_t n)
{
    int fd;
    if (unix_path) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", unix_path);
        if (connect(fd, (struct sockaddr *) &a, sizeof a) != 0)
            fail_msg("cannot connect to %s: %s", unix_path, strerror(errno));
    } else {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t) atoi(strrchr(tcp_uri, ':') + 1));
        if (connect(fd, (struct sockaddr *) &a, sizeof a) != 0)
            fail_msg("cannot connect to %s: %s", tcp_uri, strerror(errno));
    }
    if (n && send(fd, bytes, n, MSG_NOSIGNAL) < 0 && errno != ECONNRESET && errno != EPIPE)
        fail_msg("send: %s", strerror(errno));
    close(fd);
}

//  Sends a multipart message of n frames on a raw ZeroMQ socket.
static void s_zmq_send(void *sock, const char *const *frames, const size_t *sizes, int n)
{
    for (int i = 0; i < n; i++)
        zmq_send(sock, frames[i], sizes[i], (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
}

//  A send and a receive through the relay still work.
static void s_relay_serves(zchan_ctx_t *ctx, const char *base, const char *name)
{
    char uri[256];
    s_uri(uri, sizeof uri, base, name);
    zchan_t *ch = zchan_anycast_new(ctx, uri, 10);
    if (!ch)
        fail_msg("%s: %s", uri, zchan_strerror(zchan_errno()));
    zchan_sender_t *tx = zchan_sender_new(ch);
    zchan_receiver_t *rx = zchan_receiver_new(ch, 0);
    assert_non_null(tx);
    assert_non_null(rx);
    tu_assert_rc(zchan_send_int(tx, 77, 5000), ZCHAN_OK);
    int64_t v = 0;
    tu_assert_rc(zchan_recv_int(rx, &v, 5000), ZCHAN_OK);
    assert_int_equal(v, 77);
    zchan_receiver_destroy(&rx);
    zchan_sender_destroy(&tx);
    zchan_destroy(&ch);
}

//  Garbage at every socket of the relay: random bytes on raw tcp and unix
//  connections, a flood of connections, and malformed or oversized zchan
//  messages through a real ZeroMQ DEALER. The relay logs and counts them,
//  and goes on serving.
static void test_garbage(void **state)
{
    (void) state;
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, "--max-msg-size", "64k", "-v", NULL);
    zchan_ctx_t *ctx = ru_ctx();
    s_relay_serves(ctx, r.tcp, "before");

    //  Every socket file of the relay: its --bind ipc name and its own hub.
    char paths[4][PATH_MAX];
    int npaths = 0;
    if (snprintf(paths[npaths++], PATH_MAX, "%s/%s.hub", ru_dir, r.ipc + 6) >= PATH_MAX)
        fail_msg("path too long");
    char pattern[64];
    snprintf(pattern, sizeof pattern, "hub-%d-", (int) r.pid);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "ls '%s'", ru_dir);
    FILE *ls = popen(cmd, "r");
    char line[256];
    while (ls && fgets(line, sizeof line, ls) && npaths < 4) {
        line[strcspn(line, "\n")] = 0;
        size_t len = strlen(line);
        if (strncmp(line, pattern, strlen(pattern)) == 0 && len > 4 && strcmp(line + len - 4, ".hub") == 0)
            if (snprintf(paths[npaths++], PATH_MAX, "%s/%s", ru_dir, line) >= PATH_MAX)
                fail_msg("path too long");
    }
    if (ls)
        pclose(ls);
    assert_int_equal(npaths, 2);

    //  Random bytes, and a valid ZMTP 3.0 greeting followed by junk.
    uint32_t seed = 12345;
    char junk[8192];
    for (int i = 0; i < 30; i++) {
        size_t n = 1 + s_rand(&seed) % sizeof junk;
        s_random_bytes(&seed, junk, n);
        s_raw_send(r.tcp, NULL, junk, n);
        s_raw_send(NULL, paths[i % npaths], junk, n);
    }
    char greeting[64 + 512];
    memset(greeting, 0, sizeof greeting);
    greeting[0] = (char) 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    memcpy(greeting + 12, "NULL", 4);
    s_random_bytes(&seed, greeting + 64, 512);
    s_raw_send(r.tcp, NULL, greeting, sizeof greeting);
    s_raw_send(NULL, paths[0], greeting, sizeof greeting);

    //  A flood: many connections at once, then all gone.
    int fds[200];
    for (int i = 0; i < 200; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t) atoi(strrchr(r.tcp, ':') + 1));
        assert_int_equal(connect(fds[i], (struct sockaddr *) &a, sizeof a), 0);
    }
    for (int i = 0; i < 200; i++)
        close(fds[i]);

    //  Malformed zchan messages through a real ZeroMQ DEALER.
    void *zctx = zmq_ctx_new();
    void *dealer = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(dealer, r.tcp), 0);
    static const char long_key[] = "\x97\x01\x07\xda\x01\x2c"; // CREATE with a 300-byte key follows
    char create_long[400];
    memcpy(create_long, long_key, 6);
    memset(create_long + 6, 'k', 300);
    memcpy(create_long + 306, "\x01\x0a\xc2\x01", 4);
    const struct {
        int n;
        const char *f[5];
        size_t s[5];
    } cases[] = {
        {1, {""}, {0}},                                       // one empty frame
        {1, {"\xc1"}, {1}},                                   // a byte msgpack never uses
        {1, {"\x93\x01"}, {2}},                               // a truncated array
        {1, {"\x05"}, {1}},                                   // not an array
        {1, {"\x92\x63\x01"}, {3}},                           // unknown type 99
        {1, {"\x91\xa1x"}, {3}},                              // type is a string
        {2, {"\x92\x06\xcd\x30\x39", "\x01"}, {5, 1}},        // DATA from a stranger
        {1, {"\x92\x06\xcd\x30\x39"}, {5}},                   // DATA without payload
        {2, {"\x91\x06", "\x01"}, {2, 1}},                    // DATA without handle
        {1, {"\x94\x08\x01\x02\x03"}, {5}},                   // CREDIT from a stranger
        {1, {"\x94\x08\xa1x\x02\x03"}, {5}},                  // CREDIT with a string handle
        {1, {"\x97\x01\x07\xa1k\x01\x0a\xc2\xcd\x03\xe7"}, {11}}, // CREATE, wrong version
        {1, {"\x97\x01\x07\xa1k\x03\x0a\xc2\x01"}, {9}},      // CREATE, kind 3
        {1, {"\x97\x01\x07\xa1k\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc2\x01"}, {17}}, // huge capacity
        {1, {create_long}, {310}},                            // CREATE, 300-byte key
        {1, {"\x94\x09\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x00"}, {13}}, // DETACH a stranger
        {1, {"\x93\x0b\x01\x7b"}, {4}},                       // STAT with an integer key
        {1, {"\x93\x0a\x01\x00"}, {4}},                       // CANCEL a stranger
        {1, {"\x93\x07\x01\x00"}, {4}},                       // FLUSH a stranger
        {1, {"\x95\x05\x01\xa1k\xce\xff\xff\xff\xff\x01"}, {11}}, // ATTACH_R to nothing
        {5, {"\x91\x0c", "a", "b", "c", "d"}, {2, 1, 1, 1, 1}}, // five frames
        {3, {"\x92\x0c\x01", "a", "b"}, {3, 1, 1}},           // PING with extra frames
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_zmq_send(dealer, cases[i].f, cases[i].s, cases[i].n);
    for (int i = 0; i < 200; i++) {
        size_t n = 1 + s_rand(&seed) % 300;
        s_random_bytes(&seed, junk, n);
        const char *f[2] = {junk, junk + n / 2};
        size_t s[2] = {n / 2, n - n / 2};
        s_zmq_send(dealer, f, s, 1 + (int) (s_rand(&seed) % 2));
    }
    //  Over the 64k cap: ZeroMQ drops this connection; the relay goes on.
    size_t big = 100 * 1024;
    char *huge = calloc(1, big);
    huge[0] = (char) 0x92;
    huge[1] = 0x06;
    const char *hf[2] = {huge, huge + 2};
    size_t hs[2] = {2, big - 2};
    s_zmq_send(dealer, hf, hs, 2);
    free(huge);
    //  The same through the ipc endpoint.
    void *dealer2 = zmq_socket(zctx, ZMQ_DEALER);
    zmq_setsockopt(dealer2, ZMQ_LINGER, &zero, sizeof zero);
    char ipc_ep[PATH_MAX + 8];
    snprintf(ipc_ep, sizeof ipc_ep, "ipc://%s", paths[0]);
    assert_int_equal(zmq_connect(dealer2, ipc_ep), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_zmq_send(dealer2, cases[i].f, cases[i].s, cases[i].n);

    //  A library sender's oversized message: its connection is dropped and
    //  the sender finds itself detached; nothing else is hurt.
    char uri[256];
    s_uri(uri, sizeof uri, r.tcp, "big");
    zchan_t *ch = zchan_anycast_new(ctx, uri, 10);
    assert_non_null(ch);
    zchan_sender_t *tx = zchan_sender_new(ch);
    assert_non_null(tx);
    zchan_msg_t *msg = zchan_msg_new();
    char *blob = calloc(1, big);
    msgpack_pack_bin(zchan_msg_packer(msg), big);
    msgpack_pack_bin_body(zchan_msg_packer(msg), blob, big);
    free(blob);
    int rc = zchan_send(tx, &msg, 2000);
    assert_true(rc == ZCHAN_OK || rc == ZCHAN_ECLOSED);
    zchan_msg_destroy(&msg);
    zchan_ctx_set_timeout(ctx, 1000); // its detach may be lost with the connection
    zchan_sender_destroy(&tx);
    zchan_ctx_set_timeout(ctx, 3000);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.sent, 0);
    zchan_destroy(&ch);

    //  Still alive, and serving over tcp and ipc, through the CLI too.
    assert_true(ru_alive(r.pid));
    s_relay_serves(ctx, r.tcp, "after-tcp");
    s_relay_serves(ctx, r.ipc, "after-ipc");
    char cli_uri[256];
    s_uri(cli_uri, sizeof cli_uri, r.tcp, "after-cli");
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", cli_uri, "1", NULL), 0);
    assert_int_equal(s_cli(NULL, NULL, "stat", cli_uri, NULL), 0);
    //  The DEALER whose connection was dropped for the oversized frame
    //  reconnects, and a PING on it is answered: [REPLY, 42, 0].
    const char *ping[1] = {"\x92\x0c\x2a"};
    size_t ping_size[1] = {3};
    zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
    bool pong = false;
    int64_t deadline = ru_now_ms() + 5000;
    while (!pong && ru_now_ms() < deadline) {
        s_zmq_send(dealer, ping, ping_size, 1);
        zmq_poll(&item, 1, 100);
        char buf[64];
        int n;
        while ((n = zmq_recv(dealer, buf, sizeof buf, ZMQ_DONTWAIT)) >= 0)
            pong = pong || (n == 4 && memcmp(buf, "\x93\x40\x2a\x00", 4) == 0);
    }
    assert_true(pong);
    zmq_close(dealer);
    zmq_close(dealer2);
    zmq_ctx_term(zctx);
    zchan_ctx_destroy(&ctx);
    s_relay_stop(&r);
    //  Bad input was counted and logged, at a limited rate.
    char *log = ru_slurp(r.log);
    assert_non_null(strstr(log, "bad message"));
    assert_non_null(strstr(log, "handshake"));
    free(log);
}

// ---------------------------------------------------------------------------
// Stopping and restarting

//  SIGTERM: every channel is closed, receivers drain and then stop (the CLI
//  exits 0), and the relay exits 0 within a few seconds, also when a
//  receiver never reads.
static void test_sigterm(void **state)
{
    (void) state;
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, "--drain-timeout", "2000", NULL);
    zchan_ctx_t *ctx = ru_ctx();
    char any[256], bcast[256], stuck[256], out[3][PATH_MAX];
    s_uri(any, sizeof any, r.tcp, "work");
    s_uri(bcast, sizeof bcast, r.tcp, "news");
    s_uri(stuck, sizeof stuck, r.tcp, "stuck");
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", any, "1", "2", "3", NULL), 0);
    assert_int_equal(s_cli(NULL, NULL, "send", "--broadcast", bcast, NULL), 0);
    pid_t rx[3];
    ru_path(out[0], sizeof out[0], "recv");
    rx[0] = s_cli_bg(out[0], "recv", any, NULL, NULL, NULL);
    for (int i = 1; i < 3; i++) {
        ru_path(out[i], sizeof out[i], "recv");
        rx[i] = s_cli_bg(out[i], "recv", bcast, NULL, NULL, NULL);
    }
    ru_wait_receivers(ctx, bcast, 2);
    ru_wait_receivers(ctx, any, 1);
    assert_int_equal(s_cli(NULL, NULL, "send", bcast, "\"x\"", "\"y\"", NULL), 0);
    //  A receiver that never reads, with messages queued for it.
    zchan_t *ch = zchan_anycast_new(ctx, stuck, 100);
    assert_non_null(ch);
    zchan_receiver_t *lazy = zchan_receiver_new(ch, 0);
    assert_non_null(lazy);
    assert_int_equal(s_cli(NULL, NULL, "send", stuck, "1", "2", "3", "4", "5", NULL), 0);

    int64_t t0 = ru_now_ms();
    kill(r.pid, SIGTERM);
    //  While it drains (the lazy receiver holds it up), it creates nothing
    //  new, and what exists answers, closed.
    char *log = NULL;
    while (true) {
        log = ru_slurp(r.log);
        if (strstr(log, "every channel closed") || ru_now_ms() - t0 > 5000)
            break;
        free(log);
        ru_sleep_ms(10);
    }
    assert_non_null(strstr(log, "every channel closed"));
    free(log);
    char fresh[256];
    s_uri(fresh, sizeof fresh, r.tcp, "too-late");
    assert_int_equal(s_cli(NULL, NULL, "send", "--anycast", fresh, "1", NULL), 6);
    char *got = NULL;
    assert_int_equal(s_cli(NULL, &got, "stat", stuck, NULL), 0);
    assert_non_null(strstr(got, "\"depth\":5"));
    assert_non_null(strstr(got, "\"closed\":true"));
    free(got);
    //  It exits 0 at the end of its drain timeout (no second signal).
    assert_int_equal(ru_wait(r.pid, 8000), 0);
    assert_true(ru_now_ms() - t0 < 6000);
    const char *expect[3] = {"1\n2\n3\n", "\"x\"\n\"y\"\n", "\"x\"\n\"y\"\n"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ru_wait(rx[i], 10000), 0);
        char *got = ru_slurp(out[i]);
        assert_string_equal(got, expect[i]);
        free(got);
    }
    log = ru_slurp(r.log);
    assert_non_null(strstr(log, "SIGTERM"));
    assert_non_null(strstr(log, "still pending at exit")); // the lazy receiver's
    assert_non_null(strstr(log, "stopped"));
    free(log);
    zchan_ctx_set_timeout(ctx, 200); // nobody answers its detach now
    zchan_receiver_destroy(&lazy);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
}

typedef struct {
    zchan_receiver_t *rx;
    int timeout_ms;
    int rc;
    int64_t elapsed;
    int64_t ended;       // ru_now_ms() when the receive returned
    atomic_int tid;      // the thread's id, set right before it calls zchan_recv
} blocked_t;

static void *s_blocked_recv(void *arg)
{
    blocked_t *b = (blocked_t *) arg;
    int64_t t0 = ru_now_ms();
    zchan_msg_t *msg = NULL;
    atomic_store(&b->tid, (int) syscall(SYS_gettid));
    b->rc = zchan_recv(b->rx, &msg, b->timeout_ms);
    b->ended = ru_now_ms();
    b->elapsed = b->ended - t0;
    zchan_msg_destroy(&msg);
    return NULL;
}

//  Returns once b's thread is blocked inside zchan_recv. There is no
//  handshake from inside the call, so: the thread publishes its id right
//  before the call, and once it has, the first time it is seen asleep ('S')
//  it is inside the call's blocking receive. Nothing else between the
//  publication and the receive sleeps: the receiver's credit goes out with
//  ZMQ_DONTWAIT, and the wait for the hub is the only blocking step. A
//  thread merely preempted on its way there shows 'R', not 'S'.
static void s_wait_blocked(blocked_t *b)
{
    int64_t t0 = ru_now_ms();
    int tid;
    while ((tid = atomic_load(&b->tid)) == 0 || tu_thread_state(tid) != 'S') {
        if (ru_now_ms() - t0 > 10000)
            fail_msg("the receiving thread did not block in zchan_recv within 10 s");
        ru_sleep_ms(1);
    }
}

//  The relay dies (SIGKILL) and restarts on the same port while clients
//  wait. Blocked calls end cleanly at their timeout, nothing crashes or
//  hangs, the old sender and receiver attach again by themselves (the
//  sender recreates the channel), and new channels, senders and receivers
//  work at once. tests/test_relay_restart.c does the same under load.
static void test_restart(void **state)
{
    (void) state;
    ru_relay_t r;
    ru_relay_start(&r, NULL, true, NULL);
    char tcp_bind[128];
    snprintf(tcp_bind, sizeof tcp_bind, "%s", r.tcp);
    zchan_ctx_t *ctx = ru_ctx();
    char uri[256], out[PATH_MAX];
    s_uri(uri, sizeof uri, r.tcp, "jobs");
    zchan_t *ch = zchan_anycast_new(ctx, uri, 10);
    assert_non_null(ch);
    zchan_sender_t *tx = zchan_sender_new(ch);
    zchan_receiver_t *rx = zchan_receiver_new(ch, 0);
    assert_non_null(tx);
    assert_non_null(rx);
    tu_assert_rc(zchan_send_int(tx, 1, 5000), ZCHAN_OK);
    int64_t v = 0;
    tu_assert_rc(zchan_recv_int(rx, &v, 5000), ZCHAN_OK);
    //  A CLI receiver and a library receiver wait across the restart.
    ru_path(out, sizeof out, "recv");
    pid_t cli = s_cli_bg(out, "recv", uri, "-t", "3000", NULL);
    ru_wait_receivers(ctx, uri, 2);
    blocked_t b = {.rx = rx, .timeout_ms = 3000};
    atomic_init(&b.tid, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_blocked_recv, &b), 0);
    s_wait_blocked(&b); // blocked in its receive when the relay dies

    int64_t killed = ru_now_ms();
    kill(r.pid, SIGKILL);
    assert_int_equal(ru_wait(r.pid, 5000), 128 + SIGKILL);
    unlink(r.epfile);
    ru_relay_t r2;
    ru_relay_start(&r2, tcp_bind, true, NULL);
    assert_string_equal(r2.tcp, tcp_bind);

    pthread_join(th, NULL);
    assert_true(b.rc == ZCHAN_ETIMEDOUT || b.rc == ZCHAN_ECLOSED);
    assert_true(b.ended >= killed); // it was still blocked when the relay died
    assert_true(b.elapsed < 3000 + 1500);
    int crc = ru_wait(cli, 8000);
    assert_true(crc == 5 || crc == 0);
    //  The old handles carry on at the new relay, by name. The channel is
    //  unknown there until one of them comes back and recreates it.
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_ENOTFOUND);
    int64_t t0 = ru_now_ms();
    //  Sends on the lost attachment are refused (lost: at most the sender's
    //  window of ZCHAN_SENDER_SLACK); the refusal makes the sender attach
    //  again, and the send that noticed it goes through.
    int sends = 0;
    while (zchan_sender_reattached(tx) == 0) {
        assert_true(sends <= ZCHAN_SENDER_SLACK + 1);
        tu_assert_rc(zchan_send_int(tx, 100 + sends, 5000), ZCHAN_OK);
        sends++;
    }
    int64_t last = 100 + sends - 1;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK); // recreated, open
    assert_false(st.closed);
    assert_int_equal(st.capacity, 10);
    //  The receiver notices at its probe (a heartbeat timeout of silence) and
    //  reads on: it gets the send that came after the sender attached again,
    //  and nothing twice.
    int64_t prev = 0;
    do {
        tu_assert_rc(zchan_recv_int(rx, &v, 15000), ZCHAN_OK);
        assert_true(v > prev && v <= last);
        prev = v;
    } while (v != last);
    assert_int_equal(zchan_receiver_reattached(rx), 1);
    zchan_sender_destroy(&tx);
    zchan_receiver_destroy(&rx);
    assert_true(ru_now_ms() - t0 < 15000);
    print_message("restart: %d sends refused before the sender attached again; the receiver rejoined in %lld ms\n",
                  sends - 1, (long long) (ru_now_ms() - t0));
    zchan_destroy(&ch);
    //  New handles on the new relay work.
    s_relay_serves(ctx, r2.tcp, "jobs");
    zchan_ctx_destroy(&ctx);
    s_relay_stop(&r2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_cli_anycast, ru_teardown),
        cmocka_unit_test_teardown(test_cli_broadcast_close, ru_teardown),
        cmocka_unit_test_teardown(test_cli_stdin, ru_teardown),
        cmocka_unit_test_teardown(test_cli_stat, ru_teardown),
        cmocka_unit_test_teardown(test_cli_errors, ru_teardown),
        cmocka_unit_test_teardown(test_library_and_cli, ru_teardown),
        cmocka_unit_test_teardown(test_config_ipc_sighup, ru_teardown),
        cmocka_unit_test_teardown(test_limits, ru_teardown),
        cmocka_unit_test_teardown(test_garbage, ru_teardown),
        cmocka_unit_test_teardown(test_sigterm, ru_teardown),
        cmocka_unit_test_teardown(test_restart, ru_teardown),
    };
    return cmocka_run_group_tests(tests, ru_setup, ru_group_teardown);
}

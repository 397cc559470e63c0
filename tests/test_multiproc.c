/*  test_multiproc.c: channels between real processes, over ipc and over tcp.

    The harness is tests/mproc.c: the parent process only conducts and never
    makes a zchan or ZeroMQ context, so it may fork at any moment. Every role
    (a channel's host, a sender, a receiver) runs in a child of its own, which
    makes its own context, and talks to the parent over pipes, one line per
    message: handshakes ("READY", "GO", "CLOSE") and results ("RESULT ...",
    with a bitmap of the messages it got).

    ZCHAN_IPC_DIR is one fresh directory for the whole program, removed at the
    end. tcp hubs bind 127.0.0.1 port 0 and report the port they got.
*/
#include "mproc.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


//  A channel name no other test (or run) uses.
static void s_name(char *out, size_t n, const char *what)
{
    static int seq;
    snprintf(out, n, "mp%d-%d-%s-%s", (int) getpid(), ++seq, mp_tcp ? "tcp" : "ipc", what);
}

static int s_teardown(void **state)
{
    (void) state;
    p_kill_all();
    return 0;
}

// ---------------------------------------------------------------------------
// 1. Anycast: 3 sender and 3 receiver processes on a channel a fourth hosts.

#define ANY_SENDERS 3
#define ANY_RECEIVERS 3
#define ANY_COUNT 2000

static void test_anycast(void **state)
{
    (void) state;
    job_t hj = {0}, j;
    s_name(hj.name, sizeof hj.name, "any");
    hj.capacity = ZCHAN_ANYCAST_CAPACITY;
    kid_t *host = p_spawn_host("anycast host", &hj, &j);
    j.nsenders = ANY_SENDERS;
    j.count = ANY_COUNT;
    kid_t *recv[ANY_RECEIVERS], *send[ANY_SENDERS];
    for (int i = 0; i < ANY_RECEIVERS; i++)
        recv[i] = p_spawn("anycast receiver", role_receiver, &j);
    //  All receivers attached before the first send, so the load can spread.
    for (int i = 0; i < ANY_RECEIVERS; i++)
        p_expect(recv[i], "READY");
    for (int i = 0; i < ANY_SENDERS; i++) {
        j.id = i + 1;
        send[i] = p_spawn("anycast sender", role_sender, &j);
    }
    for (int i = 0; i < ANY_SENDERS; i++)
        p_expect(send[i], "READY");
    int64_t t0 = mp_now_ms();
    for (int i = 0; i < ANY_SENDERS; i++)
        p_say(send[i], "GO");
    //  A sender exits only after zchan_sender_destroy returned: all it sent
    //  has reached the channel, so the close loses nothing.
    for (int i = 0; i < ANY_SENDERS; i++)
        p_exit0(send[i]);
    p_say(host, "CLOSE");
    p_expect(host, "CLOSED");
    size_t nbits = (size_t) ANY_SENDERS * ANY_COUNT;
    result_t res[ANY_RECEIVERS];
    for (int i = 0; i < ANY_RECEIVERS; i++) {
        p_result(recv[i], &res[i], nbits);
        p_exit0(recv[i]); // drained, saw ECLOSED, and exited cleanly
    }
    int64_t t1 = mp_now_ms();
    p_say(host, "EXIT");
    p_exit0(host);
    long total = 0;
    for (int i = 0; i < ANY_RECEIVERS; i++) {
        assert_int_equal(res[i].bad, 0);
        assert_int_equal(res[i].dups, 0);
        assert_int_equal(res[i].order, 0); // each sender's messages in order here
        assert_true(res[i].got > 0);       // the load is spread
        total += res[i].got;
    }
    //  Exactly once: every message at exactly one receiver.
    for (size_t b = 0; b < nbits; b++) {
        int at = 0;
        for (int i = 0; i < ANY_RECEIVERS; i++)
            at += mp_bit(&res[i], b);
        if (at != 1)
            fail_msg("message (%zu, %zu) arrived %d times", b / ANY_COUNT + 1, b % ANY_COUNT, at);
    }
    assert_int_equal(total, (long) nbits);
    print_message("anycast over %s: %ld messages in %lld ms, spread %ld/%ld/%ld\n", mp_tcp ? "tcp" : "ipc", total,
                  (long long) (t1 - t0), res[0].got, res[1].got, res[2].got);
}

// ---------------------------------------------------------------------------
// 2. Broadcast: every receiver process gets every message, once, in order.

#define BC_SENDERS 2
#define BC_RECEIVERS 3
#define BC_COUNT 2000

static void test_broadcast(void **state)
{
    (void) state;
    job_t hj = {0}, j;
    s_name(hj.name, sizeof hj.name, "bc");
    hj.broadcast = true;
    kid_t *host = p_spawn_host("broadcast host", &hj, &j);
    j.nsenders = BC_SENDERS;
    j.count = BC_COUNT;
    j.gapless = true;
    j.limit = (size_t) BC_SENDERS * BC_COUNT; // room for all: nothing may be dropped
    kid_t *recv[BC_RECEIVERS], *send[BC_SENDERS];
    for (int i = 0; i < BC_RECEIVERS; i++)
        recv[i] = p_spawn("broadcast receiver", role_receiver, &j);
    //  No slow joiner: a receiver is live once zchan_receiver_new returned,
    //  which it says before any sender starts.
    for (int i = 0; i < BC_RECEIVERS; i++)
        p_expect(recv[i], "READY");
    for (int i = 0; i < BC_SENDERS; i++) {
        j.id = i + 1;
        send[i] = p_spawn("broadcast sender", role_sender, &j);
    }
    for (int i = 0; i < BC_SENDERS; i++)
        p_expect(send[i], "READY");
    for (int i = 0; i < BC_SENDERS; i++)
        p_say(send[i], "GO");
    for (int i = 0; i < BC_SENDERS; i++)
        p_exit0(send[i]);
    p_say(host, "CLOSE");
    p_expect(host, "CLOSED");
    size_t nbits = (size_t) BC_SENDERS * BC_COUNT;
    result_t res[BC_RECEIVERS];
    for (int i = 0; i < BC_RECEIVERS; i++) {
        p_result(recv[i], &res[i], nbits);
        p_exit0(recv[i]);
    }
    p_say(host, "EXIT");
    p_exit0(host);
    for (int i = 0; i < BC_RECEIVERS; i++) {
        assert_int_equal(res[i].bad, 0);
        assert_int_equal(res[i].dups, 0);
        assert_int_equal(res[i].order, 0); // every seq of every sender, in order
        assert_int_equal(res[i].dropped, 0);
        assert_int_equal(res[i].got, (long) nbits);
    }
}

// ---------------------------------------------------------------------------
// 3. References across processes: an unnamed channel of A reaches B inside
//    an array; B answers on it, then sends a channel of its own inside a map.

//  B: hosts the named channel, answers A's reference.
static int child_ref_b(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    char uri[256];
    c_host_uri(ctx, mp_tcp, job->name, uri, sizeof uri);
    zchan_t *named, *theirs, *mine;
    C_NEW(named, zchan_anycast_new(ctx, uri, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *r, *rmine;
    C_NEW(r, zchan_receiver_new(named, 0));
    c_say("URI %s", uri);
    //  ["ping", ref]
    zchan_msg_t *m = NULL;
    C_RC(zchan_recv(r, &m, mp_recv_ms), ZCHAN_OK);
    const msgpack_object *o = zchan_msg_object(m);
    C_CHECK(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2);
    C_CHECK(o->via.array.ptr[0].type == MSGPACK_OBJECT_STR && o->via.array.ptr[0].via.str.size == 4
            && memcmp(o->via.array.ptr[0].via.str.ptr, "ping", 4) == 0);
    //  Not a reference: EINVAL.
    C_CHECK(zchan_msg_chan(ctx, &o->via.array.ptr[0]) == NULL && zchan_errno() == ZCHAN_EINVAL);
    C_NEW(theirs, zchan_msg_chan(ctx, &o->via.array.ptr[1]));
    zchan_msg_destroy(&m);
    C_CHECK(zchan_kind(theirs) == ZCHAN_ANYCAST);
    C_CHECK(strncmp(zchan_name(theirs), "zc-", 3) == 0);
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(theirs));
    C_RC(zchan_send_str(s, "pong", mp_recv_ms), ZCHAN_OK);
    //  {"reply_to": ref, "n": 7} on A's channel.
    C_NEW(mine, zchan_anycast_new(ctx, NULL, ZCHAN_ANYCAST_CAPACITY));
    C_NEW(rmine, zchan_receiver_new(mine, 0));
    C_NEW(m, zchan_msg_new());
    msgpack_packer *pk = zchan_msg_packer(m);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "n", 1);
    msgpack_pack_int(pk, 7);
    msgpack_pack_str(pk, 8);
    msgpack_pack_str_body(pk, "reply_to", 8);
    C_RC(zchan_msg_pack_chan(m, mine), ZCHAN_OK);
    C_RC(zchan_send(s, &m, mp_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    int64_t v = 0;
    C_RC(zchan_recv_int(rmine, &v, mp_recv_ms), ZCHAN_OK);
    C_CHECK(v == 4242);
    c_say("GOT %lld", (long long) v);
    c_expect("EXIT");
    zchan_receiver_destroy(&rmine);
    zchan_receiver_destroy(&r);
    zchan_destroy(&mine);
    zchan_destroy(&theirs);
    zchan_destroy(&named);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  A: makes an unnamed channel, sends a reference to it to B, gets B's
//  answer on it, then uses B's own channel from the map.
static int child_ref_a(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    c_bind_tcp(ctx, mp_tcp); // in tcp mode, A's own references must carry tcp
    zchan_t *reply, *named, *back;
    C_NEW(reply, zchan_anycast_new(ctx, NULL, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *r;
    C_NEW(r, zchan_receiver_new(reply, 0));
    C_NEW(named, zchan_open(ctx, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(named));
    zchan_msg_t *m;
    C_NEW(m, zchan_msg_new());
    msgpack_packer *pk = zchan_msg_packer(m);
    msgpack_pack_array(pk, 2);
    msgpack_pack_str(pk, 4);
    msgpack_pack_str_body(pk, "ping", 4);
    C_RC(zchan_msg_pack_chan(m, reply), ZCHAN_OK);
    C_RC(zchan_send(s, &m, mp_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    char *str = NULL;
    C_RC(zchan_recv_str(r, &str, mp_recv_ms), ZCHAN_OK);
    C_CHECK(strcmp(str, "pong") == 0);
    free(str);
    C_RC(zchan_recv(r, &m, mp_recv_ms), ZCHAN_OK);
    const msgpack_object *o = zchan_msg_object(m);
    C_CHECK(o && o->type == MSGPACK_OBJECT_MAP);
    const msgpack_object *ref = NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 8 && memcmp(k->via.str.ptr, "reply_to", 8) == 0)
            ref = &o->via.map.ptr[i].val;
    }
    C_CHECK(ref);
    C_NEW(back, zchan_msg_chan(ctx, ref));
    zchan_msg_destroy(&m);
    C_NEW(s, zchan_sender_new(back));
    C_RC(zchan_send_int(s, 4242, mp_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    c_say("DONE");
    zchan_receiver_destroy(&r);
    zchan_destroy(&back);
    zchan_destroy(&named);
    zchan_destroy(&reply);
    zchan_ctx_destroy(&ctx);
    return 0;
}

static void test_references(void **state)
{
    (void) state;
    job_t jb = {0}, ja = {0};
    s_name(jb.name, sizeof jb.name, "refs");
    if (mp_tcp) {
        //  Other "hosts": their ipc and inproc locators are out of reach, so
        //  each reference is opened over tcp.
        snprintf(jb.host_id, sizeof jb.host_id, "mp-host-b");
        snprintf(ja.host_id, sizeof ja.host_id, "mp-host-a");
    }
    kid_t *b = p_spawn("refs B", child_ref_b, &jb);
    snprintf(ja.uri, sizeof ja.uri, "%s", p_expect(b, "URI"));
    kid_t *a = p_spawn("refs A", child_ref_a, &ja);
    p_expect(a, "DONE");
    p_exit0(a);
    p_expect(b, "GOT");
    p_say(b, "EXIT");
    p_exit0(b);
}

// ---------------------------------------------------------------------------
// 4. A receiver process dies mid-stream, holding messages the hub handed it.
//
//    What it consumed (returned from zchan_recv) is gone with it. What the
//    hub had handed it and it had not reported consumed is counted lost, at
//    most its credit window: nothing reaches two receivers. Everything else
//    must reach the surviving receivers, exactly once among them, and the
//    senders must complete. (tests/test_faults.c checks the lost count.)

#define DEAD_SENDERS 2
#define DEAD_SURVIVORS 2
#define DEAD_COUNT 1500
#define DEAD_AFTER 100

static void test_dead_receiver(void **state)
{
    (void) state;
    job_t hj = {0}, j;
    s_name(hj.name, sizeof hj.name, "dead");
    hj.capacity = ZCHAN_ANYCAST_CAPACITY;
    kid_t *host = p_spawn_host("dead-peer host", &hj, &j);
    j.nsenders = DEAD_SENDERS;
    j.count = DEAD_COUNT;
    kid_t *surv[DEAD_SURVIVORS], *send[DEAD_SENDERS];
    for (int i = 0; i < DEAD_SURVIVORS; i++)
        surv[i] = p_spawn("surviving receiver", role_receiver, &j);
    job_t dj = j;
    dj.die_after = DEAD_AFTER;
    //  ipc: SIGKILL; tcp: _exit without any clean-up. Under valgrind, which
    //  would report the threads _exit abandons, SIGKILL for both.
    dj.self_exit = mp_tcp && mp_slow == 1;
    kid_t *dead = p_spawn("dying receiver", role_receiver, &dj);
    for (int i = 0; i < DEAD_SURVIVORS; i++)
        p_expect(surv[i], "READY");
    p_expect(dead, "READY");
    for (int i = 0; i < DEAD_SENDERS; i++) {
        j.id = i + 1;
        send[i] = p_spawn("sender", role_sender, &j);
    }
    for (int i = 0; i < DEAD_SENDERS; i++)
        p_expect(send[i], "READY");
    for (int i = 0; i < DEAD_SENDERS; i++)
        p_say(send[i], "GO");
    size_t nbits = (size_t) DEAD_SENDERS * DEAD_COUNT;
    result_t dres, res[DEAD_SURVIVORS];
    p_result(dead, &dres, nbits);
    p_expect(dead, "HOLDING");
    if (dj.self_exit)
        p_exit0(dead);
    else
        p_kill(dead);
    //  The senders complete: the dead receiver's share is not stuck.
    for (int i = 0; i < DEAD_SENDERS; i++)
        p_exit0(send[i]);
    p_say(host, "CLOSE");
    p_expect(host, "CLOSED");
    for (int i = 0; i < DEAD_SURVIVORS; i++) {
        p_result(surv[i], &res[i], nbits);
        p_exit0(surv[i]);
    }
    p_say(host, "EXIT");
    p_exit0(host);
    assert_int_equal(dres.got, DEAD_AFTER);
    assert_int_equal(dres.bad + dres.dups, 0);
    long again = 0, missing = 0;
    for (size_t b = 0; b < nbits; b++) {
        int at = 0;
        for (int i = 0; i < DEAD_SURVIVORS; i++)
            at += mp_bit(&res[i], b);
        if (at > 1)
            fail_msg("message (%zu, %zu) reached %d survivors", b / DEAD_COUNT + 1, b % DEAD_COUNT, at);
        if (at == 0 && !mp_bit(&dres, b))
            missing++;
        if (at == 1 && mp_bit(&dres, b))
            again++;
    }
    for (int i = 0; i < DEAD_SURVIVORS; i++) {
        assert_int_equal(res[i].bad + res[i].dups, 0);
        assert_true(res[i].got > 0);
    }
    //  Nothing twice; lost at most what it held: its credit window, which
    //  starts at min(capacity, 16) and grows by at most what it consumed,
    //  up to ZCHAN_WINDOW_MAX.
    assert_int_equal(again, 0);
    long window = ZCHAN_ANYCAST_CAPACITY + dres.got;
    assert_true(missing <= (window < ZCHAN_WINDOW_MAX ? window : ZCHAN_WINDOW_MAX));
    print_message("dead receiver over %s: it consumed %ld, survivors got %ld + %ld, %ld lost\n",
                  mp_tcp ? "tcp" : "ipc", dres.got, res[0].got, res[1].got, missing);
}

// ---------------------------------------------------------------------------
// 4b. A slow worker does not hoard work a fast one could do (issue #14).
//
//    Two receiver processes on a channel of a large capacity, one consuming
//    100 times slower than the other (it sleeps 5 ms after each message, the
//    fast one 50 us). A receiver's credit window starts small (min(capacity,
//    16)) and grows only when it runs dry, so the slow one holds little
//    beyond what it consumes and the fast one does most of the work. With a
//    window of the capacity for each, the slow one would be handed about half
//    of the first 2 x capacity messages.

#define FAIR_COUNT 3000
#define FAIR_CAPACITY 1000

static void test_slow_worker(void **state)
{
    (void) state;
    job_t hj = {0}, j;
    s_name(hj.name, sizeof hj.name, "fair");
    hj.capacity = FAIR_CAPACITY;
    kid_t *host = p_spawn_host("fair host", &hj, &j);
    j.nsenders = 1;
    j.count = FAIR_COUNT;
    j.gapless = false;
    job_t fj = j, sj = j;
    fj.pause_us = 50;
    sj.pause_us = 5000;
    kid_t *fast = p_spawn("fast receiver", role_receiver, &fj);
    kid_t *slow = p_spawn("slow receiver", role_receiver, &sj);
    p_expect(fast, "READY");
    p_expect(slow, "READY");
    j.id = 1;
    kid_t *send = p_spawn("sender", role_sender, &j);
    p_go(&send, 1);
    p_exit0(send);
    p_say(host, "CLOSE");
    p_expect(host, "CLOSED");
    result_t fres, sres;
    p_result(fast, &fres, FAIR_COUNT);
    p_exit0(fast);
    p_result(slow, &sres, FAIR_COUNT);
    p_exit0(slow);
    p_say(host, "EXIT");
    p_exit0(host);
    assert_int_equal(fres.bad + fres.dups + fres.order, 0);
    assert_int_equal(sres.bad + sres.dups + sres.order, 0);
    for (size_t b = 0; b < FAIR_COUNT; b++)
        if (mp_bit(&fres, b) + mp_bit(&sres, b) != 1)
            fail_msg("message %zu arrived %d times", b, mp_bit(&fres, b) + mp_bit(&sres, b));
    print_message("slow worker over %s: fast %ld, slow %ld of %d\n", mp_tcp ? "tcp" : "ipc", fres.got, sres.got,
                  FAIR_COUNT);
    assert_true(fres.got * 100 >= 80L * FAIR_COUNT);
}

// ---------------------------------------------------------------------------
// 5. Host-wide ipc://NAME: the first creator hosts it, a later creator joins.
//    A stale socket file left by a killed host is never trusted: opening the
//    name finds nothing, and the next creator takes it over.

//  Obeys commands on one ipc name, one at a time, each answered by a line.
static int child_ipc_party(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_t *ch = NULL;
    zchan_sender_t *s = NULL;
    zchan_receiver_t *r = NULL;
    int64_t v;
    while (true) {
        char line[64];
        c_hear(line, sizeof line);
        if (strcmp(line, "NEW") == 0) { // create or join
            C_NEW(ch, zchan_anycast_new(ctx, job->uri, ZCHAN_ANYCAST_CAPACITY));
            c_say("OK");
        } else if (strcmp(line, "OPEN") == 0) { // join only
            C_NEW(ch, zchan_open(ctx, job->uri));
            c_say("OK");
        } else if (strcmp(line, "OPEN-GONE") == 0) {
            int64_t t0 = mp_now_ms();
            zchan_t *none = zchan_open(ctx, job->uri);
            C_CHECK(none == NULL);
            c_say("ERR %d %lld", zchan_errno(), (long long) (mp_now_ms() - t0));
        } else if (strcmp(line, "RECEIVER") == 0) {
            C_NEW(r, zchan_receiver_new(ch, 0));
            c_say("OK");
        } else if (strncmp(line, "SEND ", 5) == 0) {
            if (!s)
                C_NEW(s, zchan_sender_new(ch));
            C_RC(zchan_send_int(s, atoll(line + 5), mp_recv_ms), ZCHAN_OK);
            c_say("OK");
        } else if (strcmp(line, "RECV") == 0) {
            C_RC(zchan_recv_int(r, &v, mp_recv_ms), ZCHAN_OK);
            c_say("GOT %lld", (long long) v);
        } else if (strcmp(line, "DROP") == 0) { // let go of everything
            zchan_sender_destroy(&s);
            zchan_receiver_destroy(&r);
            zchan_destroy(&ch);
            c_say("OK");
        } else if (strcmp(line, "EXIT") == 0)
            break;
        else
            C_CHECK(!"a known command");
    }
    zchan_sender_destroy(&s);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return 0;
}

static void s_ask(kid_t *k, const char *cmd, const char *answer)
{
    p_say(k, cmd);
    p_expect(k, answer);
}

static void test_ipc_host_wide(void **state)
{
    (void) state;
    job_t j = {0};
    char name[128];
    s_name(name, sizeof name, "hw");
    snprintf(j.uri, sizeof j.uri, "ipc://%s", name);
    kid_t *p1 = p_spawn("ipc first creator", child_ipc_party, &j);
    kid_t *p2 = p_spawn("ipc joiner", child_ipc_party, &j);
    s_ask(p1, "NEW", "OK"); // creates: p1 hosts it
    s_ask(p1, "RECEIVER", "OK");
    s_ask(p2, "NEW", "OK"); // the same call joins
    s_ask(p2, "SEND 1", "OK");
    s_ask(p1, "RECV", "GOT");
    //  Now the other way.
    s_ask(p2, "RECEIVER", "OK");
    p_say(p1, "DROP"); // p1's receiver goes: p2's is the only one
    p_expect(p1, "OK");
    s_ask(p1, "NEW", "OK"); // joins its own channel again
    s_ask(p1, "SEND 2", "OK");
    p_say(p2, "RECV");
    assert_string_equal(p_expect(p2, "GOT"), "2");
    s_ask(p2, "DROP", "OK");
    //  The host dies without cleaning up: its socket file stays behind.
    p_kill(p1);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.sock", tu_ipc_dir(), name);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    //  Joining finds nobody behind it, at once rather than after a timeout.
    p_say(p2, "OPEN-GONE");
    const char *err = p_expect(p2, "ERR");
    int code = -1;
    long long ms = -1;
    assert_int_equal(sscanf(err, "%d %lld", &code, &ms), 2);
    if (code != ZCHAN_ENOTFOUND)
        fail_msg("zchan_open on a dead host's name: %s", zchan_strerror(code));
    assert_true(ms < 1000 * mp_slow);
    p_say(p2, "EXIT");
    p_exit0(p2);
    //  The next creator takes the name over, and a later process reaches it.
    kid_t *p3 = p_spawn("ipc second creator", child_ipc_party, &j);
    kid_t *p4 = p_spawn("ipc late joiner", child_ipc_party, &j);
    s_ask(p3, "NEW", "OK");
    s_ask(p3, "RECEIVER", "OK");
    s_ask(p4, "OPEN", "OK");
    s_ask(p4, "SEND 3", "OK");
    p_say(p3, "RECV");
    assert_string_equal(p_expect(p3, "GOT"), "3");
    s_ask(p4, "DROP", "OK");
    p_say(p4, "EXIT");
    p_exit0(p4);
    p_say(p3, "EXIT");
    p_exit0(p3);
    //  A host that exits cleanly removes the name's socket and lock files.
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof path, "%s/%s.lock", tu_ipc_dir(), name);
    assert_int_equal(stat(path, &st), -1);
}

// ---------------------------------------------------------------------------
// 6. Port 0 and the advertised host: a hub bound to tcp://0.0.0.0:0 reports
//    its real port, and its references, advertising 127.0.0.1 (set by call,
//    or by $ZCHAN_ADVERTISE), work from a process of another "host" (another
//    ZCHAN_HOST_ID: ipc and inproc are out of its reach).

//  The far side: hosts an inbox over tcp, opens the references it gets.
static int child_adv_far(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    char uri[256];
    c_host_uri(ctx, mp_tcp, job->name, uri, sizeof uri);
    zchan_t *inbox;
    C_NEW(inbox, zchan_anycast_new(ctx, uri, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *r;
    C_NEW(r, zchan_receiver_new(inbox, 0));
    c_say("URI %s", uri);
    zchan_msg_t *m = NULL;
    C_RC(zchan_recv(r, &m, mp_recv_ms), ZCHAN_OK);
    const msgpack_object *o = zchan_msg_object(m);
    C_CHECK(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2);
    const char *labels[] = {"by-call", "by-env"};
    for (int i = 0; i < 2; i++) {
        zchan_t *ch;
        C_NEW(ch, zchan_msg_chan(ctx, &o->via.array.ptr[i]));
        zchan_sender_t *s;
        C_NEW(s, zchan_sender_new(ch));
        C_RC(zchan_send_str(s, labels[i], mp_recv_ms), ZCHAN_OK);
        zchan_sender_destroy(&s);
        zchan_destroy(&ch);
    }
    zchan_msg_destroy(&m);
    c_say("DONE");
    zchan_receiver_destroy(&r);
    zchan_destroy(&inbox);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  Binds tcp://0.0.0.0:0; checks the reported port.
static void c_bind_any(zchan_ctx_t *ctx)
{
    C_RC(zchan_ctx_bind(ctx, "tcp://0.0.0.0:0"), ZCHAN_OK);
    const char *ep;
    C_NEW(ep, zchan_ctx_endpoint(ctx, "tcp"));
    C_CHECK(strncmp(ep, "tcp://0.0.0.0:", 14) == 0);
    int port = atoi(ep + 14);
    C_CHECK(port > 0 && port < 65536);
}

static int child_adv_near(const job_t *job)
{
    zchan_ctx_t *a = c_ctx_new();
    c_bind_any(a);
    C_RC(zchan_ctx_set_advertise(a, ""), ZCHAN_EINVAL);
    C_RC(zchan_ctx_set_advertise(a, "127.0.0.1"), ZCHAN_OK);
    setenv("ZCHAN_ADVERTISE", "127.0.0.1", 1);
    zchan_ctx_t *b = c_ctx_new();
    c_bind_any(b);
    zchan_t *cha, *chb, *inbox;
    C_NEW(cha, zchan_anycast_new(a, NULL, ZCHAN_ANYCAST_CAPACITY));
    C_NEW(chb, zchan_anycast_new(b, NULL, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *ra, *rb;
    C_NEW(ra, zchan_receiver_new(cha, 0));
    C_NEW(rb, zchan_receiver_new(chb, 0));
    C_NEW(inbox, zchan_open(a, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(inbox));
    zchan_msg_t *m;
    C_NEW(m, zchan_msg_new());
    msgpack_pack_array(zchan_msg_packer(m), 2);
    C_RC(zchan_msg_pack_chan(m, cha), ZCHAN_OK);
    C_RC(zchan_msg_pack_chan(m, chb), ZCHAN_OK);
    C_RC(zchan_send(s, &m, mp_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    char *str = NULL;
    C_RC(zchan_recv_str(ra, &str, mp_recv_ms), ZCHAN_OK);
    C_CHECK(strcmp(str, "by-call") == 0);
    free(str);
    C_RC(zchan_recv_str(rb, &str, mp_recv_ms), ZCHAN_OK);
    C_CHECK(strcmp(str, "by-env") == 0);
    free(str);
    c_say("DONE");
    zchan_receiver_destroy(&ra);
    zchan_receiver_destroy(&rb);
    zchan_destroy(&inbox);
    zchan_destroy(&cha);
    zchan_destroy(&chb);
    zchan_ctx_destroy(&b);
    zchan_ctx_destroy(&a);
    return 0;
}

static void test_advertise(void **state)
{
    (void) state;
    job_t jf = {0}, jn = {0};
    s_name(jf.name, sizeof jf.name, "adv");
    snprintf(jf.host_id, sizeof jf.host_id, "mp-far-host");
    snprintf(jn.host_id, sizeof jn.host_id, "mp-near-host");
    kid_t *far = p_spawn("advertise far side", child_adv_far, &jf);
    snprintf(jn.uri, sizeof jn.uri, "%s", p_expect(far, "URI"));
    kid_t *near = p_spawn("advertise near side", child_adv_near, &jn);
    p_expect(far, "DONE");
    p_expect(near, "DONE");
    p_exit0(far);
    p_exit0(near);
}

// ---------------------------------------------------------------------------
// 7. The host of a channel is gone: using a reference to it, a URI of it, or
//    a receiver made before fails with ENOTFOUND or ETIMEDOUT within the
//    context's timeout, and never hangs.

#define GONE_TIMEOUT_MS 400

//  The host: makes an unnamed and a named channel, sends a reference to the
//  unnamed one to the client's inbox, reports the named one's URI.
static int child_gone_host(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    char uri[256];
    c_host_uri(ctx, mp_tcp, job->name, uri, sizeof uri);
    zchan_t *named, *unnamed, *inbox;
    C_NEW(named, zchan_anycast_new(ctx, uri, ZCHAN_ANYCAST_CAPACITY));
    C_NEW(unnamed, zchan_anycast_new(ctx, NULL, ZCHAN_ANYCAST_CAPACITY));
    C_NEW(inbox, zchan_open(ctx, job->uri));
    zchan_sender_t *s;
    C_NEW(s, zchan_sender_new(inbox));
    zchan_msg_t *m;
    C_NEW(m, zchan_msg_new());
    C_RC(zchan_msg_pack_chan(m, unnamed), ZCHAN_OK);
    C_RC(zchan_send(s, &m, mp_recv_ms), ZCHAN_OK);
    zchan_sender_destroy(&s);
    zchan_destroy(&inbox);
    c_say("URI %s", uri);
    c_expect("EXIT");
    zchan_destroy(&named);
    zchan_destroy(&unnamed);
    zchan_ctx_destroy(&ctx);
    return 0;
}

//  The client: gets the reference and attaches a receiver while the host
//  lives; after "GO" (the host is gone), every use must fail in time.
static int child_gone_client(const job_t *job)
{
    zchan_ctx_t *ctx = c_ctx_new();
    zchan_ctx_set_timeout(ctx, GONE_TIMEOUT_MS);
    const int bound = GONE_TIMEOUT_MS + 1500 * mp_slow; // the timeout and scheduling slack
    char uri[256], line[300];
    c_host_uri(ctx, mp_tcp, job->name, uri, sizeof uri);
    zchan_t *inbox, *ch, *named;
    C_NEW(inbox, zchan_anycast_new(ctx, uri, ZCHAN_ANYCAST_CAPACITY));
    zchan_receiver_t *rin, *early;
    C_NEW(rin, zchan_receiver_new(inbox, 0));
    c_say("URI %s", uri);
    zchan_msg_t *ref = NULL;
    C_RC(zchan_recv(rin, &ref, mp_recv_ms), ZCHAN_OK);
    C_NEW(ch, zchan_msg_chan(ctx, zchan_msg_object(ref)));
    C_NEW(early, zchan_receiver_new(ch, 0));
    c_hear(line, sizeof line);
    C_CHECK(strncmp(line, "URI ", 4) == 0);
    c_say("ATTACHED");
    c_expect("GO");
    //  A receiver made while the host lived times out, and goes in time.
    int64_t t0 = mp_now_ms();
    zchan_msg_t *m = NULL;
    C_RC(zchan_recv(early, &m, GONE_TIMEOUT_MS), ZCHAN_ETIMEDOUT);
    zchan_receiver_destroy(&early);
    C_CHECK(mp_now_ms() - t0 < GONE_TIMEOUT_MS + bound);
    //  New senders and receivers, a close, and an open by URI all fail.
    t0 = mp_now_ms();
    C_CHECK(zchan_sender_new(ch) == NULL);
    C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND || zchan_errno() == ZCHAN_ETIMEDOUT);
    C_CHECK(mp_now_ms() - t0 < bound);
    t0 = mp_now_ms();
    C_CHECK(zchan_receiver_new(ch, 0) == NULL);
    C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND || zchan_errno() == ZCHAN_ETIMEDOUT);
    C_CHECK(mp_now_ms() - t0 < bound);
    t0 = mp_now_ms();
    int rc = zchan_close(ch);
    C_CHECK(rc == ZCHAN_ENOTFOUND || rc == ZCHAN_ETIMEDOUT);
    C_CHECK(mp_now_ms() - t0 < bound);
    zchan_destroy(&ch);
    //  Opening the reference again: refused at once (no socket file left), or
    //  a handle whose use fails as above.
    t0 = mp_now_ms();
    zchan_t *again = zchan_msg_chan(ctx, zchan_msg_object(ref));
    if (again) {
        C_CHECK(zchan_sender_new(again) == NULL);
        C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND || zchan_errno() == ZCHAN_ETIMEDOUT);
        zchan_destroy(&again);
    } else
        C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND);
    C_CHECK(mp_now_ms() - t0 < bound);
    zchan_msg_destroy(&ref);
    t0 = mp_now_ms();
    named = zchan_open(ctx, line + 4);
    C_CHECK(named == NULL);
    C_CHECK(zchan_errno() == ZCHAN_ENOTFOUND || zchan_errno() == ZCHAN_ETIMEDOUT);
    C_CHECK(mp_now_ms() - t0 < bound);
    c_say("DONE");
    zchan_receiver_destroy(&rin);
    zchan_destroy(&inbox);
    zchan_ctx_destroy(&ctx);
    return 0;
}

static void test_gone_host(void **state)
{
    (void) state;
    job_t jc = {0}, jh = {0};
    s_name(jc.name, sizeof jc.name, "gone-inbox");
    s_name(jh.name, sizeof jh.name, "gone-named");
    if (mp_tcp) {
        snprintf(jc.host_id, sizeof jc.host_id, "mp-gone-client");
        snprintf(jh.host_id, sizeof jh.host_id, "mp-gone-host");
    }
    kid_t *client = p_spawn("gone-host client", child_gone_client, &jc);
    snprintf(jh.uri, sizeof jh.uri, "%s", p_expect(client, "URI"));
    kid_t *host = p_spawn("gone host", child_gone_host, &jh);
    char line[300];
    snprintf(line, sizeof line, "URI %s", p_expect(host, "URI"));
    p_say(client, line);
    p_expect(client, "ATTACHED");
    //  ipc: killed, its socket files left behind; tcp: a clean exit.
    if (mp_tcp) {
        p_say(host, "EXIT");
        p_exit0(host);
    } else
        p_kill(host);
    p_say(client, "GO");
    p_expect(client, "DONE");
    p_exit0(client);
}

// ---------------------------------------------------------------------------

#define T(name) cmocka_unit_test_teardown(name, s_teardown)

int main(void)
{
    mp_init();
    tu_ipc_dir();
    const struct CMUnitTest ipc_tests[] = {
        T(test_anycast), T(test_broadcast), T(test_references), T(test_dead_receiver), T(test_slow_worker),
        T(test_ipc_host_wide), T(test_gone_host),
    };
    const struct CMUnitTest tcp_tests[] = {
        T(test_anycast), T(test_broadcast), T(test_references), T(test_dead_receiver), T(test_slow_worker),
        T(test_advertise), T(test_gone_host),
    };
    int failed = 0;
    mp_tcp = false;
    failed += cmocka_run_group_tests_name("multi-process over ipc", ipc_tests, NULL, NULL);
    mp_tcp = true;
    failed += cmocka_run_group_tests_name("multi-process over tcp", tcp_tests, NULL, NULL);
    p_kill_all();
    tu_cleanup_dir();
    return failed ? 1 : 0;
}

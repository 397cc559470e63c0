/*  test_local.c: the in-process fast path (src/local.h). Senders and
    receivers made through the context that hosts their channel ("local")
    work on the channel's state directly; those of another context reach it
    over sockets ("remote", here over inproc). Every test mixes them on one
    channel, or checks what only the fast path promises: an exact rendezvous,
    select woken through an eventfd, hand-back of what a select asked for,
    and waiters woken by the context's shutdown.
*/
#include "testutil.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 2000       // messages per sender
#define TAG 1000000  // a value is sender * TAG + sequence

typedef struct {
    zchan_ctx_t *host;   // hosts the channels: its parties are local
    zchan_ctx_t *remote; // its parties reach the host over sockets
} fx_t;

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->host = zchan_ctx_new();
    fx->remote = zchan_ctx_new();
    assert_non_null(fx->host);
    assert_non_null(fx->remote);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_ctx_destroy(&fx->remote);
    zchan_ctx_destroy(&fx->host);
    free(fx);
    return 0;
}

//  The same channel through another context (a remote party's handle).
static zchan_t *s_remote_handle(fx_t *fx, const char *uri)
{
    zchan_t *ch = zchan_open(fx->remote, uri);
    assert_non_null(ch);
    return ch;
}

typedef struct {
    zchan_sender_t *s;
    int id;
} sender_arg_t;

static void *s_sender_main(void *arg)
{
    sender_arg_t *a = arg;
    for (int i = 0; i < N; i++)
        if (zchan_send_int(a->s, (int64_t) a->id * TAG + i, 10000) != ZCHAN_OK)
            return (void *) 1;
    return NULL;
}

typedef struct {
    zchan_receiver_t *r;
    int64_t next[3]; // per sender id (1, 2): the next sequence number it may see
    int got;
    int disorder;
    int end; // the error that ended it
} receiver_arg_t;

static void *s_receiver_main(void *arg)
{
    receiver_arg_t *a = arg;
    int64_t v;
    while ((a->end = zchan_recv_int(a->r, &v, 10000)) == ZCHAN_OK) {
        int id = (int) (v / TAG);
        int64_t seq = v % TAG;
        if (id < 1 || id > 2 || seq < a->next[id])
            a->disorder++;
        else
            a->next[id] = seq + 1;
        a->got++;
    }
    return NULL;
}

//  Anycast: a local and a remote sender, a local and a remote receiver, at
//  the default capacity. Every message arrives once, in each sender's order;
//  after the close both receivers drain and stop.
static void test_local_anycast_mixed(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->host, "inproc://lmix", ZCHAN_ANYCAST_CAPACITY);
    assert_non_null(ch);
    zchan_t *rch = s_remote_handle(fx, "inproc://lmix");
    receiver_arg_t ra[2] = {{.r = zchan_receiver_new(ch, 0)}, {.r = zchan_receiver_new(rch, 0)}};
    sender_arg_t sa[2] = {{.s = zchan_sender_new(ch), .id = 1}, {.s = zchan_sender_new(rch), .id = 2}};
    pthread_t rt[2], wt[2];
    for (int i = 0; i < 2; i++) {
        assert_non_null(ra[i].r);
        assert_non_null(sa[i].s);
        pthread_create(&rt[i], NULL, s_receiver_main, &ra[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_create(&wt[i], NULL, s_sender_main, &sa[i]);
    for (int i = 0; i < 2; i++) {
        void *rv;
        pthread_join(wt[i], &rv);
        assert_null(rv);
        assert_int_equal(zchan_sender_flush(sa[i].s), ZCHAN_OK);
    }
    zchan_stat_t st_before;
    tu_assert_rc(zchan_stat(ch, &st_before), ZCHAN_OK);
    assert_int_equal(st_before.senders, 2);
    assert_int_equal(st_before.receivers, 2);
    tu_assert_rc(zchan_close(ch), ZCHAN_OK);
    for (int i = 0; i < 2; i++) {
        pthread_join(rt[i], NULL);
        assert_int_equal(ra[i].end, ZCHAN_ECLOSED);
        assert_int_equal(ra[i].disorder, 0);
        zchan_receiver_destroy(&ra[i].r);
        zchan_sender_destroy(&sa[i].s);
    }
    assert_int_equal(ra[0].got + ra[1].got, 2 * N);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.sent, 2 * N);
    assert_int_equal(st.delivered, 2 * N);
    assert_int_equal(st.lost, 0);
    zchan_destroy(&rch);
    zchan_destroy(&ch);
}

//  Broadcast from a local sender to a local and a remote receiver (the
//  remote one through the hub's outbox): each gets every message, in order.
static void test_local_broadcast_mixed(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_broadcast_new(fx->host, "inproc://lbmix", false);
    assert_non_null(ch);
    zchan_t *rch = s_remote_handle(fx, "inproc://lbmix");
    receiver_arg_t ra[2] = {{.r = zchan_receiver_new(ch, N)}, {.r = zchan_receiver_new(rch, N)}};
    assert_non_null(ra[0].r);
    assert_non_null(ra[1].r);
    pthread_t rt[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&rt[i], NULL, s_receiver_main, &ra[i]);
    zchan_sender_t *s = zchan_sender_new(ch);
    assert_non_null(s);
    for (int i = 0; i < N; i++)
        tu_assert_rc(zchan_send_int(s, TAG + i, 5000), ZCHAN_OK);
    zchan_sender_destroy(&s);
    tu_assert_rc(zchan_close(ch), ZCHAN_OK);
    for (int i = 0; i < 2; i++) {
        pthread_join(rt[i], NULL);
        assert_int_equal(ra[i].end, ZCHAN_ECLOSED);
        assert_int_equal(ra[i].disorder, 0);
        assert_int_equal(ra[i].got, N);
        assert_int_equal(zchan_receiver_dropped(ra[i].r), 0);
        zchan_receiver_destroy(&ra[i].r);
    }
    zchan_destroy(&rch);
    zchan_destroy(&ch);
}

typedef struct {
    zchan_receiver_t *r;
    int64_t v;
    int rc;
} recv_one_t;

static void *s_recv_one(void *arg)
{
    recv_one_t *a = arg;
    a->rc = zchan_recv_int(a->r, &a->v, 10000);
    return NULL;
}

//  Whether thread tid has gone to sleep (in a futex wait, as /proc shows it).
static bool s_thread_sleeps(pid_t tid)
{
    return tu_thread_state((int) tid) == 'S';
}

//  Capacity 0 between local parties is an exact rendezvous: a send
//  completes only while a receiver waits, and a receive that timed out does
//  not leave a send to complete without one.
static void test_local_rendezvous_exact(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->host, NULL, 0);
    zchan_sender_t *s = zchan_sender_new(ch);
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    assert_non_null(s);
    assert_non_null(r);
    zchan_msg_t *m = zchan_msg_new();
    msgpack_pack_int(zchan_msg_packer(m), 7);
    tu_assert_rc(zchan_send(s, &m, 50), ZCHAN_ETIMEDOUT); // nobody waits
    assert_non_null(m);                                  // the caller keeps it
    int64_t v;
    tu_assert_rc(zchan_recv_int(r, &v, 50), ZCHAN_ETIMEDOUT); // nobody sends
    tu_assert_rc(zchan_send(s, &m, 50), ZCHAN_ETIMEDOUT);      // still nobody waits
    assert_non_null(m);
    //  Now a receiver waits: the same message goes through.
    recv_one_t a = {.r = r};
    pthread_t t;
    pthread_create(&t, NULL, s_recv_one, &a);
    tu_assert_rc(zchan_send(s, &m, 10000), ZCHAN_OK);
    assert_null(m);
    pthread_join(t, NULL);
    tu_assert_rc(a.rc, ZCHAN_OK);
    assert_int_equal(a.v, 7);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.delivered, 1); // (sent counts the two cancelled too)
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.lost, 0);
    zchan_receiver_destroy(&r);
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
}

typedef struct {
    zchan_select_t *sel;
    void *got;
    pid_t tid;
    volatile int started;
} select_arg_t;

static void *s_select_main(void *arg)
{
    select_arg_t *a = arg;
    a->tid = (pid_t) gettid();
    a->started = 1;
    a->got = zchan_select_wait(a->sel, 10000);
    return NULL;
}

//  A select asleep on a local receiver (and a timer that never fires) wakes
//  when a message comes, from a remote sender or a local one: through the
//  receiver's eventfd, not by polling.
static void test_local_select_wakes(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->host, "inproc://lsel", 10);
    zchan_t *rch = s_remote_handle(fx, "inproc://lsel");
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    zchan_timer_t *timer = zchan_timer_new((int64_t) 3600 * 1000000, ZCHAN_SKIP_MISSED_AND_RESYNC);
    zchan_select_t *sel = zchan_select_new();
    assert_non_null(r);
    assert_non_null(timer);
    tu_assert_rc(zchan_select_add_receiver(sel, r), ZCHAN_OK);
    tu_assert_rc(zchan_select_add_timer(sel, timer), ZCHAN_OK);
    zchan_sender_t *senders[2] = {zchan_sender_new(rch), zchan_sender_new(ch)};
    for (int k = 0; k < 2; k++) {
        select_arg_t a = {.sel = sel};
        pthread_t t;
        pthread_create(&t, NULL, s_select_main, &a);
        while (!a.started || !s_thread_sleeps(a.tid))
            usleep(1000); // the handshake: the select is asleep
        tu_assert_rc(zchan_send_int(senders[k], 40 + k, 5000), ZCHAN_OK);
        pthread_join(t, NULL);
        assert_ptr_equal(a.got, r);
        int64_t v;
        tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_OK);
        assert_int_equal(v, 40 + k);
    }
    for (int k = 0; k < 2; k++)
        zchan_sender_destroy(&senders[k]);
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&timer);
    zchan_receiver_destroy(&r);
    zchan_destroy(&rch);
    zchan_destroy(&ch);
}

//  A select asks a local receiver for a message while it sleeps; a receiver
//  destroyed with that message unread hands it back to the channel, where
//  another receiver gets it. Nothing is lost.
static void test_local_handback(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->host, NULL, 10);
    zchan_receiver_t *r1 = zchan_receiver_new(ch, 0);
    zchan_sender_t *s = zchan_sender_new(ch);
    zchan_select_t *sel = zchan_select_new();
    tu_assert_rc(zchan_select_add_receiver(sel, r1), ZCHAN_OK);
    assert_null(zchan_select_wait(sel, 30)); // asked, nothing came
    tu_assert_rc(zchan_errno(), ZCHAN_ETIMEDOUT);
    tu_assert_rc(zchan_send_int(s, 5, 1000), ZCHAN_OK); // handed to r1's box
    zchan_select_destroy(&sel);
    zchan_receiver_destroy(&r1);
    zchan_receiver_t *r2 = zchan_receiver_new(ch, 0);
    int64_t v;
    tu_assert_rc(zchan_recv_int(r2, &v, 1000), ZCHAN_OK);
    assert_int_equal(v, 5);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.receivers, 1);
    zchan_receiver_destroy(&r2);
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
}

typedef struct {
    zchan_sender_t *s;
    zchan_receiver_t *r;
    int rc;
    pid_t tid;
    volatile int started;
} blocked_t;

static void *s_blocked_recv(void *arg)
{
    blocked_t *b = arg;
    b->tid = (pid_t) gettid();
    b->started = 1;
    int64_t v;
    b->rc = zchan_recv_int(b->r, &v, -1);
    return NULL;
}

static void *s_blocked_send(void *arg)
{
    blocked_t *b = arg;
    b->tid = (pid_t) gettid();
    b->started = 1;
    b->rc = zchan_send_int(b->s, 2, -1); // a rendezvous, nobody receives: waits
    return NULL;
}

//  The context's shutdown wakes a local receive and a local send that wait
//  forever: both fail with ECLOSED, and their destroy after it only frees.
static void test_local_shutdown_wakes(void **state)
{
    (void) state;
    zchan_ctx_t *ctx = zchan_ctx_new();
    zchan_t *ch = zchan_anycast_new(ctx, NULL, 1);
    zchan_t *full = zchan_anycast_new(ctx, NULL, 0);
    blocked_t br = {.r = zchan_receiver_new(ch, 0)};
    blocked_t bs = {.s = zchan_sender_new(full)};
    assert_non_null(br.r);
    assert_non_null(bs.s);
    pthread_t tr, ts;
    pthread_create(&tr, NULL, s_blocked_recv, &br);
    pthread_create(&ts, NULL, s_blocked_send, &bs);
    while (!br.started || !bs.started || !s_thread_sleeps(br.tid) || !s_thread_sleeps(bs.tid))
        usleep(1000);
    zchan_ctx_destroy(&ctx);
    pthread_join(tr, NULL);
    pthread_join(ts, NULL);
    tu_assert_rc(br.rc, ZCHAN_ECLOSED);
    tu_assert_rc(bs.rc, ZCHAN_ECLOSED);
    zchan_receiver_destroy(&br.r);
    zchan_sender_destroy(&bs.s);
    zchan_destroy(&ch);
    zchan_destroy(&full);
}

//  $ZCHAN_LOCAL=0 turns the fast path off: the context's own parties use
//  the hub's sockets, and everything still works.
static void test_local_off(void **state)
{
    (void) state;
    setenv("ZCHAN_LOCAL", "0", 1);
    zchan_ctx_t *ctx = zchan_ctx_new();
    unsetenv("ZCHAN_LOCAL");
    zchan_t *ch = zchan_broadcast_new(ctx, NULL, false);
    zchan_receiver_t *r = zchan_receiver_new(ch, 400);
    zchan_sender_t *s = zchan_sender_new(ch);
    int64_t v;
    tu_assert_rc(zchan_send_int(s, 0, 0), ZCHAN_OK);
    tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK);
    for (int i = 1; i <= 1000; i++)
        tu_assert_rc(zchan_send_int(s, i, 5000), ZCHAN_OK);
    zchan_sender_destroy(&s);
    //  The socket path's receiver took a window (100) ahead of its reads on
    //  top of the limit; a local one would hold the limit alone.
    int got = 0;
    while (zchan_recv_int(r, &v, 300) == ZCHAN_OK)
        got++;
    assert_int_equal(got, 400 / 4 - 1 + 400);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_anycast_mixed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_local_broadcast_mixed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_local_rendezvous_exact, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_local_select_wakes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_local_handback, s_setup, s_teardown),
        cmocka_unit_test(test_local_shutdown_wakes),
        cmocka_unit_test(test_local_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

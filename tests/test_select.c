/*  test_select.c: select over receivers and timers, zchan__receiver_wait, and
    merge.

    These tests do not need channels: they use a receiver kind of their own,
    a ZeroMQ PAIR socket over inproc (in a private zmq context) read through
    the receiver ops. The string "STOP" stops it, as a channel's close would.
    Tests over real channels live with the channel tests.
*/
#include "internal.h"
#include "testutil.h"
#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MS 1000 // microseconds per millisecond

// ---------------------------------------------------------------------------
// The test receiver kind: a PAIR socket, one message of look-ahead.

typedef struct {
    zchan_receiver_t head;
    void *sock;     // reading end
    char *look;     // read by ready(), not yet returned
    int prepared;   // how many times prepare ran
} t_recv_t;

static bool t_ready(zchan_receiver_t *r)
{
    t_recv_t *tr = (t_recv_t *) r;
    while (!tr->look && !r->stopped) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, tr->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            break;
        }
        size_t n = zmq_msg_size(&frame);
        if (n == 4 && memcmp(zmq_msg_data(&frame), "STOP", 4) == 0)
            r->stopped = true;
        else
            tr->look = strndup(zmq_msg_data(&frame), n);
        zmq_msg_close(&frame);
    }
    return tr->look || r->stopped;
}

static int t_prepare(zchan_receiver_t *r)
{
    ((t_recv_t *) r)->prepared++;
    return 0;
}

static size_t t_pollitems(zchan_receiver_t *r, zmq_pollitem_t *items, size_t max)
{
    if (max >= 1)
        items[0] = (zmq_pollitem_t) { .socket = ((t_recv_t *) r)->sock, .events = ZMQ_POLLIN };
    return 1;
}

static int t_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms)
{
    t_recv_t *tr = (t_recv_t *) r;
    if (!t_ready(r)) {
        int rc = zchan__receiver_wait(r, zchan__deadline(timeout_ms));
        if (rc != 0)
            return zchan__fail(rc);
    }
    if (!tr->look)
        return zchan__fail(ZCHAN_ECLOSED);
    zchan_msg_t *msg = zchan_msg_new();
    assert_non_null(msg);
    size_t n = strlen(tr->look);
    msgpack_pack_str(zchan_msg_packer(msg), n);
    msgpack_pack_str_body(zchan_msg_packer(msg), tr->look, n);
    free(tr->look);
    tr->look = NULL;
    *msg_p = msg;
    return 0;
}

static void t_destroy(zchan_receiver_t *r)
{
    t_recv_t *tr = (t_recv_t *) r;
    free(tr->look);
    zmq_close(tr->sock);
}

static const zchan__recv_ops_t t_ops = {
    .prepare = t_prepare,
    .pollitems = t_pollitems,
    .ready = t_ready,
    .recv = t_recv,
    .destroy = t_destroy,
};

//  The test's zmq context and how many pairs it has made.
static void *s_zctx;
static int s_pairs;

//  A receiver and the writing end of its PAIR.
typedef struct {
    zchan_receiver_t *r;
    void *writer;
} t_pair_t;

static t_pair_t t_pair_new(void)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://test-select-%d", s_pairs++);
    t_recv_t *tr = calloc(1, sizeof *tr);
    assert_non_null(tr);
    tr->head.ops = &t_ops;
    tr->sock = zmq_socket(s_zctx, ZMQ_PAIR);
    assert_non_null(tr->sock);
    assert_int_equal(zmq_bind(tr->sock, ep), 0);
    t_pair_t p = { .r = &tr->head, .writer = zmq_socket(s_zctx, ZMQ_PAIR) };
    assert_non_null(p.writer);
    int linger = 0;
    zmq_setsockopt(p.writer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(tr->sock, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(p.writer, ep), 0);
    return p;
}

static void t_send(t_pair_t *p, const char *s)
{
    assert_int_equal(zmq_send(p->writer, s, strlen(s), 0), (int) strlen(s));
}

//  Frees the writer and (unless it was merged away, NULL) the receiver.
static void t_pair_destroy(t_pair_t *p)
{
    zchan_receiver_destroy(&p->r);
    zmq_close(p->writer);
    p->writer = NULL;
}

//  Reads one message from r with timeout_ms and returns it as a new string;
//  NULL (and the error in *rc_p) if there was none.
static char *t_read(zchan_receiver_t *r, int timeout_ms, int *rc_p)
{
    zchan_msg_t *msg = NULL;
    int rc = zchan_recv(r, &msg, timeout_ms);
    if (rc_p)
        *rc_p = rc;
    if (rc != 0)
        return NULL;
    const msgpack_object *o = zchan_msg_object(msg);
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    char *s = strndup(o->via.str.ptr, o->via.str.size);
    zchan_msg_destroy(&msg);
    return s;
}

//  Reads one message from r with timeout 0 and asserts it is expected.
static void t_expect(zchan_receiver_t *r, const char *expected)
{
    int rc;
    char *s = t_read(r, 0, &rc);
    if (!s)
        fail_msg("expected \"%s\", got %s", expected, zchan_strerror(rc));
    assert_string_equal(s, expected);
    free(s);
}

static int64_t s_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int s_setup(void **state)
{
    (void) state;
    s_zctx = zmq_ctx_new();
    return s_zctx ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void) state;
    zmq_ctx_term(s_zctx);
    s_zctx = NULL;
    return 0;
}

// ---------------------------------------------------------------------------
// zchan__receiver_wait

//  Waiting on one receiver: ready at once, timeout, woken by a message.
static void test_receiver_wait(void **state)
{
    (void) state;
    t_pair_t p = t_pair_new();
    int64_t t0 = zchan__now_us();
    tu_assert_rc(zchan__receiver_wait(p.r, zchan__deadline(0)), ZCHAN_ETIMEDOUT);
    tu_assert_rc(zchan__receiver_wait(p.r, zchan__deadline(40)), ZCHAN_ETIMEDOUT);
    //  (Deadlines in ms are whole clock milliseconds: up to 1 ms short.)
    assert_between(zchan__now_us() - t0, 39 * MS, 200 * MS);
    assert_true(((t_recv_t *) p.r)->prepared >= 1);

    t_send(&p, "a");
    tu_assert_rc(zchan__receiver_wait(p.r, zchan__deadline(1000)), 0);
    t_expect(p.r, "a");
    t_send(&p, "STOP");
    tu_assert_rc(zchan__receiver_wait(p.r, -1), 0);
    int rc;
    assert_null(t_read(p.r, 0, &rc));
    tu_assert_rc(rc, ZCHAN_ECLOSED);
    t_pair_destroy(&p);
}

// ---------------------------------------------------------------------------
// Select over receivers

//  An empty select has nothing left to wait for: ECLOSED. Items are added
//  once only.
static void test_select_empty_and_duplicates(void **state)
{
    (void) state;
    zchan_select_t *sel = zchan_select_new();
    assert_non_null(sel);
    assert_null(zchan_select_wait(sel, -1));
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);

    t_pair_t p = t_pair_new();
    zchan_timer_t *t = zchan_timer_new(1000 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    tu_assert_rc(zchan_select_add_receiver(sel, p.r), 0);
    tu_assert_rc(zchan_select_add_receiver(sel, p.r), ZCHAN_EINVAL);
    tu_assert_rc(zchan_select_add_timer(sel, t), 0);
    tu_assert_rc(zchan_select_add_timer(sel, t), ZCHAN_EINVAL);
    zchan_select_destroy(&sel);
    assert_null(sel);
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&t);
    t_pair_destroy(&p);
}

//  Select returns the receiver that has a message, and times out (NULL,
//  ETIMEDOUT) when none has.
static void test_select_ready_and_timeout(void **state)
{
    (void) state;
    t_pair_t p[3] = { t_pair_new(), t_pair_new(), t_pair_new() };
    zchan_select_t *sel = zchan_select_new();
    for (int i = 0; i < 3; i++)
        tu_assert_rc(zchan_select_add_receiver(sel, p[i].r), 0);

    t_send(&p[1], "one");
    assert_ptr_equal(zchan_select_wait(sel, 1000), p[1].r);
    t_expect(p[1].r, "one");

    int64_t t0 = zchan__now_us();
    assert_null(zchan_select_wait(sel, 0));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    assert_between(zchan__now_us() - t0, 0, 20 * MS);

    t0 = zchan__now_us();
    assert_null(zchan_select_wait(sel, 60));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    assert_between(zchan__now_us() - t0, 60 * MS, 300 * MS);

    t_send(&p[2], "two");
    assert_ptr_equal(zchan_select_wait(sel, -1), p[2].r);
    t_expect(p[2].r, "two");
    //  A message that arrived before a timeout-0 select is found.
    t_send(&p[0], "zero");
    usleep(10 * 1000);
    assert_ptr_equal(zchan_select_wait(sel, 0), p[0].r);
    t_expect(p[0].r, "zero");

    zchan_select_destroy(&sel);
    for (int i = 0; i < 3; i++)
        t_pair_destroy(&p[i]);
}

//  The sending side of test_select_wakes: sends "late" after 50 ms.
static void *s_late_sender(void *arg)
{
    usleep(50 * 1000);
    t_send(arg, "late");
    return NULL;
}

//  A select blocked with timeout -1 wakes when another thread sends.
static void test_select_wakes(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new(), b = t_pair_new();
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_receiver(sel, a.r);
    zchan_select_add_receiver(sel, b.r);
    pthread_t th;
    int64_t t0 = zchan__now_us();
    assert_int_equal(pthread_create(&th, NULL, s_late_sender, &b), 0);
    assert_ptr_equal(zchan_select_wait(sel, -1), b.r);
    assert_between(zchan__now_us() - t0, 45 * MS, 1000 * MS);
    pthread_join(th, NULL);
    t_expect(b.r, "late");
    zchan_select_destroy(&sel);
    t_pair_destroy(&a);
    t_pair_destroy(&b);
}

//  Two receivers that always have messages are both served: no ready item
//  starves another.
static void test_select_fair(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new(), b = t_pair_new();
    for (int i = 0; i < 150; i++) {
        t_send(&a, "a");
        t_send(&b, "b");
    }
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_receiver(sel, a.r);
    zchan_select_add_receiver(sel, b.r);
    int na = 0, nb = 0;
    for (int i = 0; i < 100; i++) {
        zchan_receiver_t *r = zchan_select_wait(sel, 1000);
        assert_non_null(r);
        t_expect(r, r == a.r ? "a" : "b");
        if (r == a.r)
            na++;
        else
            nb++;
    }
    assert_true(na >= 40);
    assert_true(nb >= 40);
    zchan_select_destroy(&sel);
    t_pair_destroy(&a);
    t_pair_destroy(&b);
}

//  A stopped receiver is returned once (its read gives ECLOSED) and then left
//  out; when every item has stopped the select gives ECLOSED at once.
static void test_select_stopped(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new(), b = t_pair_new();
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_receiver(sel, a.r);
    zchan_select_add_receiver(sel, b.r);

    t_send(&a, "last");
    t_send(&a, "STOP");
    assert_ptr_equal(zchan_select_wait(sel, 1000), a.r);
    t_expect(a.r, "last");
    assert_ptr_equal(zchan_select_wait(sel, 1000), a.r);
    int rc;
    assert_null(t_read(a.r, 0, &rc));
    tu_assert_rc(rc, ZCHAN_ECLOSED);
    //  Left out from now on.
    assert_null(zchan_select_wait(sel, 30));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);

    t_send(&b, "b");
    assert_ptr_equal(zchan_select_wait(sel, 1000), b.r);
    t_expect(b.r, "b");
    t_send(&b, "STOP");
    assert_ptr_equal(zchan_select_wait(sel, 1000), b.r);
    assert_null(t_read(b.r, 0, &rc));
    tu_assert_rc(rc, ZCHAN_ECLOSED);

    int64_t t0 = zchan__now_us();
    assert_null(zchan_select_wait(sel, -1));
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);
    assert_null(zchan_select_wait(sel, -1));
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);
    assert_between(zchan__now_us() - t0, 0, 20 * MS);
    zchan_select_destroy(&sel);
    t_pair_destroy(&a);
    t_pair_destroy(&b);
}

//  Runs one select wait with czmq's log going to a temporary file, and
//  returns whether it logged the unread-item warning.
static bool t_wait_warns(zchan_select_t *sel, void *expected)
{
    FILE *log = tmpfile();
    assert_non_null(log);
    zsys_set_logstream(log);
    assert_ptr_equal(zchan_select_wait(sel, 1000), expected);
    zsys_set_logstream(stdout);
    fflush(log);
    rewind(log);
    char line[512];
    bool warned = false;
    while (fgets(line, sizeof line, log))
        warned |= strstr(line, "was not read") != NULL;
    fclose(log);
    return warned;
}

//  An item returned but not read is returned again, and debug builds warn
//  about it (frequenz-channels' unhandled-selected check); an item that was
//  read draws no warning. Nothing is lost either way.
static void test_select_unread(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new();
    zchan_timer_t *t = zchan_timer_new(1 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_receiver(sel, a.r);
    t_send(&a, "x");
    t_send(&a, "y");
    assert_ptr_equal(zchan_select_wait(sel, 1000), a.r);
    assert_true(a.r->selected_unread);
#ifdef NDEBUG
    const bool debug = false;
#else
    const bool debug = true;
#endif
    assert_true(t_wait_warns(sel, a.r) == debug);
    t_expect(a.r, "x");
    assert_false(a.r->selected_unread);
    assert_false(t_wait_warns(sel, a.r));
    t_expect(a.r, "y");

    //  The same for a timer, which its wait marks as read.
    zchan_select_t *tsel = zchan_select_new();
    zchan_select_add_timer(tsel, t);
    assert_ptr_equal(zchan_select_wait(tsel, 1000), t);
    assert_true(t_wait_warns(tsel, t) == debug);
    tu_assert_rc(zchan_timer_wait(t, NULL, 0), 0);
    assert_false(t_wait_warns(tsel, t));
    tu_assert_rc(zchan_timer_wait(t, NULL, 0), 0);

    zchan_select_destroy(&tsel);
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&t);
    t_pair_destroy(&a);
}

//  An idle select waits without using CPU.
static void test_select_no_spin(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new(), b = t_pair_new();
    zchan_timer_t *t = zchan_timer_new(10000 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_receiver(sel, a.r);
    zchan_select_add_receiver(sel, b.r);
    zchan_select_add_timer(sel, t);
    int64_t cpu0 = s_cpu_us(), t0 = zchan__now_us();
    assert_null(zchan_select_wait(sel, 200));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    int64_t cpu = s_cpu_us() - cpu0;
    assert_between(zchan__now_us() - t0, 200 * MS, 600 * MS);
    assert_between(cpu, 0, 50 * MS);
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&t);
    t_pair_destroy(&a);
    t_pair_destroy(&b);
}

// ---------------------------------------------------------------------------
// Select over timers

//  A 30 ms timer fires while the receivers are idle; a message is still
//  served between ticks; a stopped timer is reported once, then left out,
//  and comes back when reset.
static void test_select_timer_and_receivers(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new(), b = t_pair_new();
    zchan_timer_t *t = zchan_timer_new(30 * MS, ZCHAN_SKIP_MISSED_AND_DRIFT);
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_receiver(sel, a.r);
    zchan_select_add_timer(sel, t);
    zchan_select_add_receiver(sel, b.r);

    int64_t due = zchan__timer_next_us(t);
    assert_ptr_equal(zchan_select_wait(sel, 1000), t);
    int64_t woke = zchan__now_us();
    assert_between(woke - due, 0, 10 * MS);
    int64_t drift = -1;
    tu_assert_rc(zchan_timer_wait(t, &drift, 0), 0);
    assert_between(drift, 0, 10 * MS);

    t_send(&b, "between");
    assert_ptr_equal(zchan_select_wait(sel, 1000), b.r);
    t_expect(b.r, "between");

    due = zchan__timer_next_us(t);
    assert_ptr_equal(zchan_select_wait(sel, 1000), t);
    assert_true(zchan__now_us() >= due);
    tu_assert_rc(zchan_timer_wait(t, NULL, 0), 0);

    zchan_timer_stop(t);
    assert_ptr_equal(zchan_select_wait(sel, 1000), t);
    tu_assert_rc(zchan_timer_wait(t, NULL, 0), ZCHAN_ECLOSED);
    assert_null(zchan_select_wait(sel, 60));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);

    zchan_timer_reset(t, 20 * MS);
    assert_ptr_equal(zchan_select_wait(sel, 1000), t);
    tu_assert_rc(zchan_timer_wait(t, NULL, 0), 0);

    zchan_select_destroy(&sel);
    zchan_timer_destroy(&t);
    t_pair_destroy(&a);
    t_pair_destroy(&b);
}

//  A select of timers only sleeps until the nearest tick; with every timer
//  stopped and reported it gives ECLOSED.
static void test_select_timers_only(void **state)
{
    (void) state;
    zchan_timer_t *fast = zchan_timer_new(20 * MS, ZCHAN_SKIP_MISSED_AND_RESYNC);
    zchan_timer_t *slow = zchan_timer_new(50 * MS, ZCHAN_SKIP_MISSED_AND_RESYNC);
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_timer(sel, fast);
    zchan_select_add_timer(sel, slow);
    int nfast = 0, nslow = 0;
    int64_t t0 = zchan__now_us(), cpu0 = s_cpu_us();
    while (zchan__now_us() - t0 < 210 * MS) {
        zchan_timer_t *t = zchan_select_wait(sel, 1000);
        assert_non_null(t);
        tu_assert_rc(zchan_timer_wait(t, NULL, 0), 0);
        if (t == fast)
            nfast++;
        else
            nslow++;
    }
    assert_between(nfast, 8, 12);
    assert_between(nslow, 3, 5);
    assert_between(s_cpu_us() - cpu0, 0, 50 * MS);

    zchan_timer_stop(fast);
    zchan_timer_stop(slow);
    void *first = zchan_select_wait(sel, 0);
    assert_non_null(first);
    tu_assert_rc(zchan_timer_wait(first, NULL, 0), ZCHAN_ECLOSED);
    void *second = zchan_select_wait(sel, 0);
    assert_non_null(second);
    tu_assert_rc(zchan_timer_wait(second, NULL, 0), ZCHAN_ECLOSED);
    assert_true((first == fast && second == slow) || (first == slow && second == fast));
    assert_null(zchan_select_wait(sel, -1));
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&fast);
    zchan_timer_destroy(&slow);
}

//  A timer with a backlog of due ticks and a receiver with a backlog of
//  messages share the select: neither starves the other.
static void test_select_timer_fairness(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new();
    for (int i = 0; i < 100; i++)
        t_send(&a, "a");
    zchan_timer_t *t = zchan_timer_new(1 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    usleep(150 * 1000); // about 150 ticks due
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_timer(sel, t);
    zchan_select_add_receiver(sel, a.r);
    int nt = 0, na = 0;
    for (int i = 0; i < 100; i++) {
        void *item = zchan_select_wait(sel, 1000);
        assert_non_null(item);
        if (item == t) {
            tu_assert_rc(zchan_timer_wait(t, NULL, 0), 0);
            nt++;
        } else {
            t_expect(a.r, "a");
            na++;
        }
    }
    assert_true(nt >= 40);
    assert_true(na >= 40);
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&t);
    t_pair_destroy(&a);
}

//  A stopped receiver and a stopped timer together: each reported once, then
//  ECLOSED.
static void test_select_all_stopped_mixed(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new();
    zchan_timer_t *t = zchan_timer_new(1000 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_receiver(sel, a.r);
    zchan_select_add_timer(sel, t);
    t_send(&a, "STOP");
    zchan_timer_stop(t);
    bool seen_r = false, seen_t = false;
    for (int i = 0; i < 2; i++) {
        void *item = zchan_select_wait(sel, 1000);
        if (item == a.r) {
            assert_false(seen_r);
            seen_r = true;
            int rc;
            assert_null(t_read(a.r, 0, &rc));
            tu_assert_rc(rc, ZCHAN_ECLOSED);
        } else {
            assert_ptr_equal(item, t);
            assert_false(seen_t);
            seen_t = true;
            tu_assert_rc(zchan_timer_wait(t, NULL, 0), ZCHAN_ECLOSED);
        }
    }
    assert_null(zchan_select_wait(sel, 1000));
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);
    zchan_select_destroy(&sel);
    zchan_timer_destroy(&t);
    t_pair_destroy(&a);
}

// ---------------------------------------------------------------------------
// Merge

//  zchan_merge refuses n == 0 and a NULL in the array (EINVAL) and still takes
//  and destroys the receivers it was given.
static void test_merge_invalid(void **state)
{
    (void) state;
    zchan_receiver_t *none[1] = { NULL };
    assert_null(zchan_merge(none, 0));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    assert_null(zchan_merge(NULL, 2));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);

    t_pair_t a = t_pair_new(), b = t_pair_new();
    zchan_receiver_t *rs[3] = { a.r, NULL, b.r };
    a.r = b.r = NULL;
    assert_null(zchan_merge(rs, 3));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    assert_null(rs[0]);
    assert_null(rs[2]);
    t_pair_destroy(&a);
    t_pair_destroy(&b);
}

//  A merge yields the messages of all its sources, in order per source, and
//  stops only when every source has stopped.
static void test_merge(void **state)
{
    (void) state;
    t_pair_t p[3] = { t_pair_new(), t_pair_new(), t_pair_new() };
    zchan_receiver_t *rs[3] = { p[0].r, p[1].r, p[2].r };
    zchan_receiver_t *m = zchan_merge(rs, 3);
    assert_non_null(m);
    for (int i = 0; i < 3; i++) {
        assert_null(rs[i]);
        p[i].r = NULL; // the merge owns them
    }
    t_send(&p[0], "a1");
    t_send(&p[1], "b1");
    t_send(&p[2], "c1");
    t_send(&p[0], "a2");
    int seen[3] = { 0 };
    for (int i = 0; i < 4; i++) {
        char *s = t_read(m, 1000, NULL);
        assert_non_null(s);
        int src = s[0] - 'a';
        assert_in_range(src, 0, 2);
        seen[src]++;
        char want[3] = { s[0], (char) ('0' + seen[src]), 0 };
        assert_string_equal(s, want);
        free(s);
    }
    assert_int_equal(seen[0], 2);
    assert_int_equal(seen[1], 1);
    assert_int_equal(seen[2], 1);
    int rc;
    assert_null(t_read(m, 30, &rc));
    tu_assert_rc(rc, ZCHAN_ETIMEDOUT);

    //  Two sources stop: dropped silently.
    t_send(&p[0], "STOP");
    t_send(&p[1], "STOP");
    assert_null(t_read(m, 50, &rc));
    tu_assert_rc(rc, ZCHAN_ETIMEDOUT);
    assert_false(m->stopped);
    t_send(&p[2], "c2");
    char *s = t_read(m, 1000, NULL);
    assert_string_equal(s, "c2");
    free(s);
    //  The last one stops: the merge stops.
    t_send(&p[2], "STOP");
    assert_null(t_read(m, 1000, &rc));
    tu_assert_rc(rc, ZCHAN_ECLOSED);
    assert_true(m->stopped);
    assert_null(t_read(m, -1, &rc));
    tu_assert_rc(rc, ZCHAN_ECLOSED);

    zchan_receiver_destroy(&m);
    assert_null(m);
    for (int i = 0; i < 3; i++)
        t_pair_destroy(&p[i]);
}

//  Reading a merge serves its busy sources in turn.
static void test_merge_fair(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new(), b = t_pair_new();
    for (int i = 0; i < 100; i++) {
        t_send(&a, "a");
        t_send(&b, "b");
    }
    zchan_receiver_t *rs[2] = { a.r, b.r };
    a.r = b.r = NULL;
    zchan_receiver_t *m = zchan_merge(rs, 2);
    assert_non_null(m);
    int na = 0, nb = 0;
    for (int i = 0; i < 100; i++) {
        char *s = t_read(m, 1000, NULL);
        assert_non_null(s);
        if (s[0] == 'a')
            na++;
        else
            nb++;
        free(s);
    }
    assert_true(na >= 40);
    assert_true(nb >= 40);
    zchan_receiver_destroy(&m);
    t_pair_destroy(&a);
    t_pair_destroy(&b);
}

//  A merge of merges yields from all four leaves and stops when all four
//  have stopped.
static void test_merge_of_merges(void **state)
{
    (void) state;
    t_pair_t p[4] = { t_pair_new(), t_pair_new(), t_pair_new(), t_pair_new() };
    zchan_receiver_t *left[2] = { p[0].r, p[1].r };
    zchan_receiver_t *right[2] = { p[2].r, p[3].r };
    for (int i = 0; i < 4; i++)
        p[i].r = NULL;
    zchan_receiver_t *top[2] = { zchan_merge(left, 2), zchan_merge(right, 2) };
    assert_non_null(top[0]);
    assert_non_null(top[1]);
    zchan_receiver_t *m = zchan_merge(top, 2);
    assert_non_null(m);

    const char *words[4] = { "w", "x", "y", "z" };
    for (int i = 0; i < 4; i++)
        t_send(&p[i], words[i]);
    int mask = 0;
    for (int i = 0; i < 4; i++) {
        char *s = t_read(m, 1000, NULL);
        assert_non_null(s);
        mask |= 1 << (s[0] - 'w');
        free(s);
    }
    assert_int_equal(mask, 0xf);

    int rc;
    for (int i = 0; i < 3; i++) {
        t_send(&p[i], "STOP");
        assert_null(t_read(m, 30, &rc));
        tu_assert_rc(rc, ZCHAN_ETIMEDOUT);
    }
    t_send(&p[3], "STOP");
    assert_null(t_read(m, 1000, &rc));
    tu_assert_rc(rc, ZCHAN_ECLOSED);
    zchan_receiver_destroy(&m);
    for (int i = 0; i < 4; i++)
        t_pair_destroy(&p[i]);
}

//  A merge is selectable like any receiver, with others and a timer, and is
//  reported once when it stops.
static void test_merge_in_select(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new(), b = t_pair_new(), c = t_pair_new();
    zchan_receiver_t *rs[2] = { a.r, b.r };
    a.r = b.r = NULL;
    zchan_receiver_t *m = zchan_merge(rs, 2);
    zchan_timer_t *t = zchan_timer_new(10000 * MS, ZCHAN_TRIGGER_ALL_MISSED);
    zchan_select_t *sel = zchan_select_new();
    zchan_select_add_receiver(sel, c.r);
    zchan_select_add_receiver(sel, m);
    zchan_select_add_timer(sel, t);

    assert_null(zchan_select_wait(sel, 20));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    t_send(&b, "from-b");
    assert_ptr_equal(zchan_select_wait(sel, 1000), m);
    t_expect(m, "from-b");
    t_send(&c, "from-c");
    assert_ptr_equal(zchan_select_wait(sel, 1000), c.r);
    t_expect(c.r, "from-c");

    t_send(&a, "STOP");
    assert_null(zchan_select_wait(sel, 30));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    t_send(&b, "STOP");
    assert_ptr_equal(zchan_select_wait(sel, 1000), m);
    int rc;
    assert_null(t_read(m, 0, &rc));
    tu_assert_rc(rc, ZCHAN_ECLOSED);
    assert_null(zchan_select_wait(sel, 30));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);

    zchan_select_destroy(&sel);
    zchan_timer_destroy(&t);
    zchan_receiver_destroy(&m);
    t_pair_destroy(&a);
    t_pair_destroy(&b);
    t_pair_destroy(&c);
}

//  An idle merge read waits without using CPU.
static void test_merge_no_spin(void **state)
{
    (void) state;
    t_pair_t a = t_pair_new(), b = t_pair_new();
    zchan_receiver_t *rs[2] = { a.r, b.r };
    a.r = b.r = NULL;
    zchan_receiver_t *m = zchan_merge(rs, 2);
    int64_t cpu0 = s_cpu_us(), t0 = zchan__now_us();
    int rc;
    assert_null(t_read(m, 200, &rc));
    tu_assert_rc(rc, ZCHAN_ETIMEDOUT);
    assert_between(zchan__now_us() - t0, 199 * MS, 600 * MS);
    assert_between(s_cpu_us() - cpu0, 0, 50 * MS);
    zchan_receiver_destroy(&m);
    t_pair_destroy(&a);
    t_pair_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receiver_wait),
        cmocka_unit_test(test_select_empty_and_duplicates),
        cmocka_unit_test(test_select_ready_and_timeout),
        cmocka_unit_test(test_select_wakes),
        cmocka_unit_test(test_select_fair),
        cmocka_unit_test(test_select_stopped),
        cmocka_unit_test(test_select_unread),
        cmocka_unit_test(test_select_no_spin),
        cmocka_unit_test(test_select_timer_and_receivers),
        cmocka_unit_test(test_select_timers_only),
        cmocka_unit_test(test_select_timer_fairness),
        cmocka_unit_test(test_select_all_stopped_mixed),
        cmocka_unit_test(test_merge_invalid),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_merge_fair),
        cmocka_unit_test(test_merge_of_merges),
        cmocka_unit_test(test_merge_in_select),
        cmocka_unit_test(test_merge_no_spin),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}

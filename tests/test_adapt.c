/*  test_adapt.c: receiver adaptors and utilities (docs/ADAPTORS.md): message
    copies, map, filter, events, oneshots, the latest-value cache and pipes.

    Each test gets its own context; channels are unnamed (inproc). Threads
    are synchronised by handshakes (condition variables, the library's own
    waits), never by sleeping; the few timings asserted have wide margins.
*/
#include "internal.h"
#include "testutil.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    zchan_ctx_t *ctx;
    bool passed; // set by s_pass at the end of the test
} fx_t;

static int s_setup(void **state)
{
    tu_ipc_dir();
    fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->ctx = zchan_ctx_new();
    assert_non_null(fx->ctx);
    *state = fx;
    return 0;
}

//  A test that failed half-way leaves sockets open, and destroying the
//  context would then wait for them forever: leave it, so the failure is
//  reported instead of hanging.
static int s_teardown(void **state)
{
    fx_t *fx = (fx_t *) *state;
    if (fx->passed)
        zchan_ctx_destroy(&fx->ctx);
    free(fx);
    return 0;
}

//  Marks the test as finished with everything it made destroyed.
static void s_pass(void **state)
{
    ((fx_t *) *state)->passed = true;
}

static int64_t s_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

//  A new message holding the integer v.
static zchan_msg_t *s_int_msg(int64_t v)
{
    zchan_msg_t *msg = zchan_msg_new();
    assert_non_null(msg);
    msgpack_pack_int64(zchan_msg_packer(msg), v);
    return msg;
}

//  The integer a message holds (asserting that it holds one).
static int64_t s_msg_int(zchan_msg_t *msg)
{
    const msgpack_object *o = zchan_msg_object(msg);
    assert_non_null(o);
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t) o->via.u64;
    assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return o->via.i64;
}

//  Receives an integer from r and asserts it is expected.
static void s_expect_int(zchan_receiver_t *r, int64_t expected, int timeout_ms)
{
    int64_t v = -1;
    tu_assert_rc(zchan_recv_int(r, &v, timeout_ms), ZCHAN_OK);
    assert_int_equal(v, expected);
}

//  An unnamed anycast channel with a sender and a receiver.
typedef struct {
    zchan_t *ch;
    zchan_sender_t *s;
    zchan_receiver_t *r;
} s_chan_t;

static s_chan_t s_chan_new(fx_t *fx, size_t capacity)
{
    s_chan_t c;
    c.ch = zchan_anycast_new(fx->ctx, NULL, capacity);
    assert_non_null(c.ch);
    c.s = zchan_sender_new(c.ch);
    assert_non_null(c.s);
    c.r = zchan_receiver_new(c.ch, 0);
    assert_non_null(c.r);
    return c;
}

static void s_chan_destroy(s_chan_t *c)
{
    zchan_receiver_destroy(&c->r);
    zchan_sender_destroy(&c->s);
    zchan_destroy(&c->ch);
}

//  Sends the integers from..to (inclusive) on s.
static void s_send_range(zchan_sender_t *s, int from, int to)
{
    for (int i = from; i <= to; i++)
        tu_assert_rc(zchan_send_int(s, i, 2000), ZCHAN_OK);
}

// ---------------------------------------------------------------------------
// zchan_msg_dup

//  A copy holds the same value, outlives its original, and can be sent; a
//  message that holds no value cannot be copied.
static void test_msg_dup(void **state)
{
    fx_t *fx = (fx_t *) *state;
    //  A built message: [7, "seven", <reference>].
    s_chan_t c = s_chan_new(fx, 10);
    zchan_msg_t *msg = zchan_msg_new();
    msgpack_packer *pk = zchan_msg_packer(msg);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, 7);
    msgpack_pack_str(pk, 5);
    msgpack_pack_str_body(pk, "seven", 5);
    tu_assert_rc(zchan_msg_pack_chan(msg, c.ch), ZCHAN_OK);
    zchan_msg_t *copy = zchan_msg_dup(msg);
    assert_non_null(copy);
    zchan_msg_destroy(&msg);
    const msgpack_object *o = zchan_msg_object(copy);
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.size, 3);
    assert_int_equal(o->via.array.ptr[0].via.u64, 7);
    assert_memory_equal(o->via.array.ptr[1].via.str.ptr, "seven", 5);
    zchan_t *ref = zchan_msg_chan(fx->ctx, &o->via.array.ptr[2]);
    assert_non_null(ref);
    assert_string_equal(zchan_name(ref), zchan_name(c.ch));
    zchan_destroy(&ref);

    //  The copy is sent; a received message is copied and outlived.
    tu_assert_rc(zchan_send(c.s, &copy, 1000), ZCHAN_OK);
    assert_null(copy);
    zchan_msg_t *got = NULL;
    tu_assert_rc(zchan_recv(c.r, &got, 2000), ZCHAN_OK);
    copy = zchan_msg_dup(got);
    assert_non_null(copy);
    zchan_msg_destroy(&got);
    o = zchan_msg_object(copy);
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.ptr[0].via.u64, 7);
    zchan_msg_destroy(&copy);

    //  Nothing packed: EINVAL.
    msg = zchan_msg_new();
    assert_null(zchan_msg_dup(msg));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    zchan_msg_destroy(&msg);
    s_chan_destroy(&c);
    s_pass(state);
}

// ---------------------------------------------------------------------------
// Map

//  Replaces an integer message by a new message holding twice the value.
static int m_double(zchan_msg_t **msg_p, void *user)
{
    (*(int *) user)++;
    int64_t v = s_msg_int(*msg_p);
    zchan_msg_destroy(msg_p);
    *msg_p = s_int_msg(2 * v);
    return ZCHAN_OK;
}

//  Map transforms every message, in order, and stops with its source.
static void test_map(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t c = s_chan_new(fx, 10);
    s_send_range(c.s, 1, 5);
    tu_assert_rc(zchan_close(c.ch), ZCHAN_OK);
    int calls = 0;
    zchan_receiver_t *m = zchan_map(c.r, m_double, &calls);
    c.r = NULL;
    assert_non_null(m);
    for (int i = 1; i <= 5; i++)
        s_expect_int(m, 2 * i, 2000);
    int64_t v;
    tu_assert_rc(zchan_recv_int(m, &v, 2000), ZCHAN_ECLOSED);
    tu_assert_rc(zchan_recv_int(m, &v, 0), ZCHAN_ECLOSED);
    assert_int_equal(calls, 5);
    zchan_receiver_destroy(&m);
    s_chan_destroy(&c);
    s_pass(state);
}

typedef struct {
    zchan_msg_t *kept;
} m_fail_t;

//  Fails in a different way for each value 1..5 and passes the others.
static int m_fail(zchan_msg_t **msg_p, void *user)
{
    m_fail_t *mf = (m_fail_t *) user;
    switch (s_msg_int(*msg_p)) {
    case 1: return ZCHAN_ETYPE;   // the adaptor destroys the message
    case 2:                       // keeps the message for itself
        mf->kept = *msg_p;
        *msg_p = NULL;
        return ZCHAN_EPROTO;
    case 3: return ZCHAN_ECLOSED; // would lie about the map: EINVAL
    case 4:                       // OK without a message: EINVAL
        zchan_msg_destroy(msg_p);
        return ZCHAN_OK;
    case 5: return 1000;          // not a zchan error: EINVAL
    default: return ZCHAN_OK;
    }
}

//  A failing callback's error reaches the reader, the message is consumed
//  (or kept by the callback), and the next read goes on.
static void test_map_errors(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t c = s_chan_new(fx, 10);
    s_send_range(c.s, 1, 6);
    m_fail_t mf = { NULL };
    zchan_receiver_t *m = zchan_map(c.r, m_fail, &mf);
    c.r = NULL;
    int64_t v;
    tu_assert_rc(zchan_recv_int(m, &v, 2000), ZCHAN_ETYPE);
    tu_assert_rc(zchan_recv_int(m, &v, 2000), ZCHAN_EPROTO);
    assert_int_equal(zchan_errno(), ZCHAN_EPROTO);
    assert_non_null(mf.kept);
    assert_int_equal(s_msg_int(mf.kept), 2);
    zchan_msg_destroy(&mf.kept);
    tu_assert_rc(zchan_recv_int(m, &v, 2000), ZCHAN_EINVAL);
    tu_assert_rc(zchan_recv_int(m, &v, 2000), ZCHAN_EINVAL);
    tu_assert_rc(zchan_recv_int(m, &v, 2000), ZCHAN_EINVAL);
    s_expect_int(m, 6, 2000);
    tu_assert_rc(zchan_recv_int(m, &v, 0), ZCHAN_ETIMEDOUT);
    zchan_receiver_destroy(&m);
    s_chan_destroy(&c);
    s_pass(state);
}

//  Map and filter take their source also when they fail.
static void test_adaptor_invalid(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t c = s_chan_new(fx, 10);
    assert_null(zchan_map(c.r, NULL, NULL));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    c.r = zchan_receiver_new(c.ch, 0);
    assert_null(zchan_filter(c.r, NULL, NULL));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    c.r = NULL;
    assert_null(zchan_map(NULL, m_double, NULL));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    s_chan_destroy(&c); // a leak checker finds the sources if they were kept
    s_pass(state);
}

//  A map is selected when its source has a message (the read then gives
//  the mapped message) and once when its source stops.
static void test_map_select(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t c = s_chan_new(fx, 10);
    int calls = 0;
    zchan_receiver_t *m = zchan_map(c.r, m_double, &calls);
    c.r = NULL;
    zchan_select_t *sel = zchan_select_new();
    tu_assert_rc(zchan_select_add_receiver(sel, m), ZCHAN_OK);
    assert_null(zchan_select_wait(sel, 50));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    tu_assert_rc(zchan_send_int(c.s, 21, 1000), ZCHAN_OK);
    assert_ptr_equal(zchan_select_wait(sel, 5000), m);
    s_expect_int(m, 42, 0);
    tu_assert_rc(zchan_close(c.ch), ZCHAN_OK);
    assert_ptr_equal(zchan_select_wait(sel, 5000), m);
    int64_t v;
    tu_assert_rc(zchan_recv_int(m, &v, 0), ZCHAN_ECLOSED);
    assert_null(zchan_select_wait(sel, 1000));
    assert_int_equal(zchan_errno(), ZCHAN_ECLOSED);
    zchan_select_destroy(&sel);
    zchan_receiver_destroy(&m);
    s_chan_destroy(&c);
    s_pass(state);
}

// ---------------------------------------------------------------------------
// Filter

//  Keeps even integers; counts its calls.
static bool f_even(zchan_msg_t *msg, void *user)
{
    if (user)
        (*(int *) user)++;
    return s_msg_int(msg) % 2 == 0;
}

//  A filter yields the kept messages in order and stops with its source.
static void test_filter(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t c = s_chan_new(fx, 10);
    s_send_range(c.s, 1, 10);
    tu_assert_rc(zchan_close(c.ch), ZCHAN_OK);
    int calls = 0;
    zchan_receiver_t *f = zchan_filter(c.r, f_even, &calls);
    c.r = NULL;
    assert_non_null(f);
    for (int i = 2; i <= 10; i += 2)
        s_expect_int(f, i, 2000);
    int64_t v;
    tu_assert_rc(zchan_recv_int(f, &v, 2000), ZCHAN_ECLOSED);
    assert_int_equal(calls, 10);
    zchan_receiver_destroy(&f);
    s_chan_destroy(&c);
    s_pass(state);
}

//  Select does not report a filter whose source holds only rejected
//  messages; it reports it for a kept one, which a read with timeout 0 gets.
static void test_filter_select(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t c = s_chan_new(fx, 10);
    s_send_range(c.s, 1, 1);
    tu_assert_rc(zchan_send_int(c.s, 3, 1000), ZCHAN_OK);
    tu_assert_rc(zchan_send_int(c.s, 5, 1000), ZCHAN_OK);
    int calls = 0;
    zchan_receiver_t *f = zchan_filter(c.r, f_even, &calls);
    c.r = NULL;
    zchan_select_t *sel = zchan_select_new();
    tu_assert_rc(zchan_select_add_receiver(sel, f), ZCHAN_OK);
    assert_null(zchan_select_wait(sel, 300));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    assert_int_equal(calls, 3); // all three were seen and dropped
    tu_assert_rc(zchan_send_int(c.s, 7, 1000), ZCHAN_OK);
    tu_assert_rc(zchan_send_int(c.s, 8, 1000), ZCHAN_OK);
    assert_ptr_equal(zchan_select_wait(sel, 5000), f);
    s_expect_int(f, 8, 0);
    tu_assert_rc(zchan_close(c.ch), ZCHAN_OK);
    assert_ptr_equal(zchan_select_wait(sel, 5000), f);
    int64_t v;
    tu_assert_rc(zchan_recv_int(f, &v, 0), ZCHAN_ECLOSED);
    zchan_select_destroy(&sel);
    zchan_receiver_destroy(&f);
    s_chan_destroy(&c);
    s_pass(state);
}

typedef struct {
    zchan_sender_t *s;
    atomic_bool stop;
    int sent;
} f_feeder_t;

//  Sends odd integers every 10 ms until told to stop (or 5 s have passed).
static void *f_feed(void *arg)
{
    f_feeder_t *fd = (f_feeder_t *) arg;
    for (int i = 0; i < 500 && !atomic_load(&fd->stop); i++) {
        if (zchan_send_int(fd->s, 2 * i + 1, 1000) == ZCHAN_OK)
            fd->sent++;
        struct timespec ts = { 0, 10 * 1000000 };
        nanosleep(&ts, NULL); // pacing, not synchronisation
    }
    return NULL;
}

//  Rejected messages that keep coming do not stretch a read's timeout.
static void test_filter_deadline(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_broadcast_new(fx->ctx, NULL, false);
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    f_feeder_t fd = { .s = zchan_sender_new(ch) };
    assert_non_null(fd.s);
    atomic_init(&fd.stop, false);
    int calls = 0;
    zchan_receiver_t *f = zchan_filter(r, f_even, &calls);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, f_feed, &fd), 0);
    int64_t t0 = zchan__now_ms();
    int64_t v;
    tu_assert_rc(zchan_recv_int(f, &v, 300), ZCHAN_ETIMEDOUT);
    int64_t took = zchan__now_ms() - t0;
    atomic_store(&fd.stop, true);
    pthread_join(th, NULL);
    assert_between(took, 299, 2500); // the feeder would run 5 s
    assert_true(calls > 0);
    zchan_receiver_destroy(&f);
    zchan_sender_destroy(&fd.s);
    zchan_destroy(&ch);
    s_pass(state);
}

//  A filter passes on its source's errors (here a map's) and goes on.
static void test_filter_errors(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t c = s_chan_new(fx, 10);
    m_fail_t mf = { NULL };
    zchan_receiver_t *f = zchan_filter(zchan_map(c.r, m_fail, &mf), f_even, NULL);
    c.r = NULL;
    tu_assert_rc(zchan_send_int(c.s, 1, 1000), ZCHAN_OK); // map: ETYPE
    tu_assert_rc(zchan_send_int(c.s, 7, 1000), ZCHAN_OK); // filter: dropped
    tu_assert_rc(zchan_send_int(c.s, 8, 1000), ZCHAN_OK);
    int64_t v;
    tu_assert_rc(zchan_recv_int(f, &v, 2000), ZCHAN_ETYPE);
    s_expect_int(f, 8, 2000);
    zchan_receiver_destroy(&f);
    s_chan_destroy(&c);
    s_pass(state);
}

// ---------------------------------------------------------------------------
// Event

//  An event starts unset; once set it stays set; its receivers wait for it
//  and then give ECLOSED; they outlive the event handle.
static void test_event(void **state)
{
    zchan_event_t *ev = zchan_event_new();
    assert_non_null(ev);
    assert_false(zchan_event_is_set(ev));
    tu_assert_rc(zchan_event_wait(ev, 0), ZCHAN_ETIMEDOUT);
    int64_t t0 = zchan__now_ms();
    tu_assert_rc(zchan_event_wait(ev, 50), ZCHAN_ETIMEDOUT);
    assert_between(zchan__now_ms() - t0, 49, 2000);
    zchan_receiver_t *r = zchan_event_receiver(ev);
    assert_non_null(r);
    zchan_msg_t *msg = NULL;
    tu_assert_rc(zchan_recv(r, &msg, 0), ZCHAN_ETIMEDOUT);
    t0 = zchan__now_ms();
    tu_assert_rc(zchan_recv(r, &msg, 50), ZCHAN_ETIMEDOUT);
    assert_between(zchan__now_ms() - t0, 49, 2000);

    tu_assert_rc(zchan_event_set(ev), ZCHAN_OK);
    tu_assert_rc(zchan_event_set(ev), ZCHAN_OK);
    assert_true(zchan_event_is_set(ev));
    tu_assert_rc(zchan_event_wait(ev, -1), ZCHAN_OK);
    tu_assert_rc(zchan_recv(r, &msg, -1), ZCHAN_ECLOSED);
    tu_assert_rc(zchan_recv(r, &msg, 0), ZCHAN_ECLOSED);
    assert_null(msg);
    zchan_receiver_t *late = zchan_event_receiver(ev);
    zchan_event_destroy(&ev);
    assert_null(ev);
    zchan_event_destroy(&ev);
    tu_assert_rc(zchan_recv(late, &msg, 0), ZCHAN_ECLOSED);
    zchan_receiver_destroy(&late);
    zchan_receiver_destroy(&r);
    s_pass(state);
}

//  A probe receiver: never ready, no poll items; its prepare, which select
//  calls right before it sleeps in zmq_poll, tells the test the select is
//  about to sleep.
typedef struct {
    zchan_receiver_t head;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int prepared;
} p_probe_t;

static int p_prepare(zchan_receiver_t *r)
{
    p_probe_t *p = (p_probe_t *) r;
    pthread_mutex_lock(&p->lock);
    p->prepared++;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static size_t p_pollitems(zchan_receiver_t *r, zmq_pollitem_t *items, size_t max)
{
    (void) r;
    (void) items;
    (void) max;
    return 0;
}

static bool p_ready(zchan_receiver_t *r)
{
    (void) r;
    return false;
}

static int p_recv(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms)
{
    (void) r;
    (void) msg_p;
    (void) timeout_ms;
    return zchan__fail(ZCHAN_ETIMEDOUT);
}

static void p_destroy(zchan_receiver_t *r)
{
    p_probe_t *p = (p_probe_t *) r;
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
}

static const zchan__recv_ops_t p_ops = {
    .prepare = p_prepare, .pollitems = p_pollitems, .ready = p_ready, .recv = p_recv, .destroy = p_destroy,
};

typedef struct {
    p_probe_t *probe;
    zchan_event_t *ev;
} e_setter_t;

//  Sets the event once the probe says the select is going to sleep.
static void *e_set_when_asleep(void *arg)
{
    e_setter_t *es = (e_setter_t *) arg;
    pthread_mutex_lock(&es->probe->lock);
    while (es->probe->prepared == 0)
        pthread_cond_wait(&es->probe->cond, &es->probe->lock);
    pthread_mutex_unlock(&es->probe->lock);
    zchan_event_set(es->ev);
    return NULL;
}

//  Setting an event in another thread wakes a select sleeping on one of its
//  receivers, which it returns once; the select's wait used no CPU.
static void test_event_wakes_select(void **state)
{
    zchan_event_t *ev = zchan_event_new();
    zchan_receiver_t *r = zchan_event_receiver(ev);
    p_probe_t *probe = calloc(1, sizeof *probe);
    assert_non_null(probe);
    probe->head.ops = &p_ops;
    pthread_mutex_init(&probe->lock, NULL);
    pthread_cond_init(&probe->cond, NULL);
    zchan_receiver_t *pr = &probe->head;
    zchan_select_t *sel = zchan_select_new();
    tu_assert_rc(zchan_select_add_receiver(sel, pr), ZCHAN_OK);
    tu_assert_rc(zchan_select_add_receiver(sel, r), ZCHAN_OK);
    e_setter_t es = { probe, ev };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, e_set_when_asleep, &es), 0);
    int64_t t0 = zchan__now_ms();
    assert_ptr_equal(zchan_select_wait(sel, 10000), r);
    assert_between(zchan__now_ms() - t0, 0, 5000);
    pthread_join(th, NULL);
    zchan_msg_t *msg = NULL;
    tu_assert_rc(zchan_recv(r, &msg, 0), ZCHAN_ECLOSED);
    //  Returned once: now only the probe is left, never ready.
    assert_null(zchan_select_wait(sel, 50));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);

    //  A thread blocked in zchan_event_wait is woken too; and an unset
    //  event costs a waiting select no CPU.
    zchan_event_t *ev2 = zchan_event_new();
    zchan_receiver_t *r2 = zchan_event_receiver(ev2);
    tu_assert_rc(zchan_select_add_receiver(sel, r2), ZCHAN_OK);
    //  It sleeps: the wait lasts its whole timeout (a wait that returns at
    //  once fails here) and the process uses little CPU meanwhile (one that
    //  spins for 200 ms uses about that much, or on a loaded machine at the
    //  very least its share of it, more than the bound).
    int64_t cpu0 = s_cpu_us();
    int64_t w0 = zchan__now_us();
    assert_null(zchan_select_wait(sel, 200));
    int64_t waited = zchan__now_us() - w0, cpu = s_cpu_us() - cpu0;
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    assert_between(waited, 200 * 1000 - 1000, 2000 * 1000);
    assert_between(cpu, 0, 20 * 1000);
    zchan_select_destroy(&sel);
    zchan_receiver_destroy(&r2);
    zchan_event_destroy(&ev2);
    zchan_receiver_destroy(&pr);
    zchan_receiver_destroy(&r);
    zchan_event_destroy(&ev);
    s_pass(state);
}

typedef struct {
    zchan_event_t *ev;
    zchan_event_t *started;
    int rc;
} e_waiter_t;

static void *e_wait(void *arg)
{
    e_waiter_t *ew = (e_waiter_t *) arg;
    zchan_event_set(ew->started);
    ew->rc = zchan_event_wait(ew->ev, 10000);
    return NULL;
}

//  zchan_event_wait in one thread is woken by a set in another.
static void test_event_wait_thread(void **state)
{
    e_waiter_t ew = { zchan_event_new(), zchan_event_new(), -1 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, e_wait, &ew), 0);
    tu_assert_rc(zchan_event_wait(ew.started, 10000), ZCHAN_OK);
    int64_t t0 = zchan__now_ms();
    tu_assert_rc(zchan_event_set(ew.ev), ZCHAN_OK);
    pthread_join(th, NULL);
    tu_assert_rc(ew.rc, ZCHAN_OK);
    assert_between(zchan__now_ms() - t0, 0, 5000);
    zchan_event_destroy(&ew.ev);
    zchan_event_destroy(&ew.started);
    s_pass(state);
}

// ---------------------------------------------------------------------------
// Oneshot

//  One message goes through, then ECLOSED; a second send is refused and
//  leaves its message with the caller.
static void test_oneshot(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_receiver_t *r = NULL;
    zchan_oneshot_t *os = zchan_oneshot_new(fx->ctx, &r);
    assert_non_null(os);
    assert_non_null(r);
    zchan_msg_t *msg = NULL;
    tu_assert_rc(zchan_oneshot_send(os, &msg, 1000), ZCHAN_EINVAL);
    msg = s_int_msg(42);
    tu_assert_rc(zchan_oneshot_send(os, &msg, 1000), ZCHAN_OK);
    assert_null(msg);
    msg = s_int_msg(43);
    tu_assert_rc(zchan_oneshot_send(os, &msg, 1000), ZCHAN_ECLOSED);
    assert_non_null(msg);
    zchan_msg_destroy(&msg);
    s_expect_int(r, 42, 2000);
    int64_t v;
    tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_ECLOSED);
    zchan_oneshot_destroy(&os);
    assert_null(os);
    zchan_oneshot_destroy(&os);
    zchan_receiver_destroy(&r);

    assert_null(zchan_oneshot_new(fx->ctx, NULL));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    s_pass(state);
}

//  A oneshot destroyed unsent stops its receiver.
static void test_oneshot_unsent(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_receiver_t *r = NULL;
    zchan_oneshot_t *os = zchan_oneshot_new(fx->ctx, &r);
    assert_non_null(os);
    int64_t v;
    tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_ETIMEDOUT);
    zchan_oneshot_destroy(&os);
    tu_assert_rc(zchan_recv_int(r, &v, 5000), ZCHAN_ECLOSED);
    zchan_receiver_destroy(&r);
    s_pass(state);
}

static void *o_reply(void *arg)
{
    zchan_oneshot_t *os = (zchan_oneshot_t *) arg;
    zchan_msg_t *msg = s_int_msg(7);
    int rc = zchan_oneshot_send(os, &msg, 5000);
    zchan_msg_destroy(&msg);
    zchan_oneshot_destroy(&os);
    return (void *) (intptr_t) rc;
}

//  The sending side moves to another thread (a reply); the receiver is
//  selected like any channel receiver.
static void test_oneshot_thread(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_receiver_t *r = NULL;
    zchan_oneshot_t *os = zchan_oneshot_new(fx->ctx, &r);
    assert_non_null(os);
    zchan_select_t *sel = zchan_select_new();
    tu_assert_rc(zchan_select_add_receiver(sel, r), ZCHAN_OK);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, o_reply, os), 0);
    assert_ptr_equal(zchan_select_wait(sel, 10000), r);
    s_expect_int(r, 7, 0);
    assert_ptr_equal(zchan_select_wait(sel, 10000), r);
    int64_t v;
    tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_ECLOSED);
    void *ret;
    pthread_join(th, &ret);
    assert_int_equal((int) (intptr_t) ret, ZCHAN_OK);
    zchan_select_destroy(&sel);
    zchan_receiver_destroy(&r);
    s_pass(state);
}

// ---------------------------------------------------------------------------
// Latest-value cache

//  The cache has no value at first; it keeps reading so an anycast source's
//  sender never waits; get returns copies of the last value, which stays
//  after the source closes.
static void test_latest(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t c = s_chan_new(fx, 2);
    zchan_latest_t *l = zchan_latest_new(c.r);
    c.r = NULL;
    assert_non_null(l);
    zchan_msg_t *msg = NULL;
    tu_assert_rc(zchan_latest_get(l, &msg), ZCHAN_ETIMEDOUT);
    assert_null(msg);
    tu_assert_rc(zchan_latest_wait(l, 0, 0), ZCHAN_ETIMEDOUT);
    assert_int_equal(zchan_latest_count(l), 0);
    //  More than capacity 2 plus the sender's slack of 16: only a reader
    //  lets these sends through.
    s_send_range(c.s, 1, 40);
    tu_assert_rc(zchan_latest_wait(l, 39, 10000), ZCHAN_OK);
    assert_int_equal(zchan_latest_count(l), 40);
    tu_assert_rc(zchan_latest_get(l, &msg), ZCHAN_OK);
    assert_int_equal(s_msg_int(msg), 40);
    zchan_msg_destroy(&msg);
    tu_assert_rc(zchan_latest_get(l, &msg), ZCHAN_OK); // a copy: still there
    assert_int_equal(s_msg_int(msg), 40);
    zchan_msg_destroy(&msg);
    tu_assert_rc(zchan_latest_wait(l, 40, 50), ZCHAN_ETIMEDOUT);
    tu_assert_rc(zchan_send_int(c.s, 41, 1000), ZCHAN_OK);
    tu_assert_rc(zchan_latest_wait(l, 40, 10000), ZCHAN_OK);
    tu_assert_rc(zchan_latest_get(l, &msg), ZCHAN_OK);
    assert_int_equal(s_msg_int(msg), 41);
    zchan_msg_destroy(&msg);
    tu_assert_rc(zchan_close(c.ch), ZCHAN_OK);
    tu_assert_rc(zchan_latest_wait(l, 41, 10000), ZCHAN_ECLOSED);
    tu_assert_rc(zchan_latest_get(l, &msg), ZCHAN_OK);
    assert_int_equal(s_msg_int(msg), 41);
    zchan_msg_destroy(&msg);
    tu_assert_rc(zchan_latest_get(l, NULL), ZCHAN_EINVAL);
    zchan_latest_destroy(&l);
    assert_null(l);
    zchan_latest_destroy(&l);
    s_chan_destroy(&c);
    s_pass(state);
}

//  A source that stops before any value: ECLOSED; a message the source
//  reports as an error does not replace the value.
static void test_latest_stopped(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t c = s_chan_new(fx, 10);
    zchan_latest_t *l = zchan_latest_new(c.r);
    c.r = NULL;
    tu_assert_rc(zchan_close(c.ch), ZCHAN_OK);
    tu_assert_rc(zchan_latest_wait(l, 0, 10000), ZCHAN_ECLOSED);
    zchan_msg_t *msg = NULL;
    tu_assert_rc(zchan_latest_get(l, &msg), ZCHAN_ECLOSED);
    zchan_latest_destroy(&l);
    s_chan_destroy(&c);

    c = s_chan_new(fx, 10);
    m_fail_t mf = { NULL };
    l = zchan_latest_new(zchan_map(c.r, m_fail, &mf));
    c.r = NULL;
    tu_assert_rc(zchan_send_int(c.s, 6, 1000), ZCHAN_OK);
    tu_assert_rc(zchan_send_int(c.s, 1, 1000), ZCHAN_OK); // the map fails
    tu_assert_rc(zchan_close(c.ch), ZCHAN_OK);
    tu_assert_rc(zchan_latest_wait(l, 1, 10000), ZCHAN_ECLOSED);
    assert_int_equal(zchan_latest_count(l), 1);
    tu_assert_rc(zchan_latest_get(l, &msg), ZCHAN_OK);
    assert_int_equal(s_msg_int(msg), 6);
    zchan_msg_destroy(&msg);
    zchan_latest_destroy(&l);
    s_chan_destroy(&c);

    assert_null(zchan_latest_new(NULL));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    s_pass(state);
}

#define L_LAST 300

//  Reads the cache until it shows L_LAST; the values it sees never go back.
static void *l_reader(void *arg)
{
    zchan_latest_t *l = (zchan_latest_t *) arg;
    int64_t last = 0;
    while (last < L_LAST) {
        uint64_t seen = zchan_latest_count(l);
        zchan_msg_t *msg = NULL;
        int rc = zchan_latest_get(l, &msg);
        if (rc == ZCHAN_OK) {
            int64_t v = s_msg_int(msg);
            zchan_msg_destroy(&msg);
            if (v < last)
                return (void *) (intptr_t) 1;
            last = v;
        } else if (rc != ZCHAN_ETIMEDOUT)
            return (void *) (intptr_t) 2;
        if (last < L_LAST && zchan_latest_wait(l, seen, 10000) != ZCHAN_OK)
            return (void *) (intptr_t) 3;
    }
    return NULL;
}

//  Several threads read the cache while it is updated.
static void test_latest_threads(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_broadcast_new(fx->ctx, NULL, false);
    zchan_sender_t *s = zchan_sender_new(ch);
    zchan_latest_t *l = zchan_latest_new(zchan_receiver_new(ch, 0));
    assert_non_null(l);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, l_reader, l), 0);
    s_send_range(s, 1, L_LAST);
    for (int i = 0; i < 3; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_int_equal((int) (intptr_t) ret, 0);
    }
    zchan_latest_destroy(&l);
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
    s_pass(state);
}

// ---------------------------------------------------------------------------
// Pipe

//  Everything sent into the source comes out of the destination, in order;
//  the pipe ends with OK when the source closes.
static void test_pipe(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t a = s_chan_new(fx, 10), b = s_chan_new(fx, 100);
    zchan_pipe_t *p = zchan_pipe_new(a.r, b.s);
    a.r = NULL;
    b.s = NULL;
    assert_non_null(p);
    tu_assert_rc(zchan_pipe_wait(p, 0), ZCHAN_ETIMEDOUT);
    s_send_range(a.s, 1, 60); // beyond a's capacity: the pipe makes room
    tu_assert_rc(zchan_close(a.ch), ZCHAN_OK);
    tu_assert_rc(zchan_pipe_wait(p, 10000), ZCHAN_OK);
    assert_int_equal(zchan_pipe_forwarded(p), 60);
    assert_int_equal(zchan_pipe_skipped(p), 0);
    for (int i = 1; i <= 60; i++)
        s_expect_int(b.r, i, 2000);
    zchan_msg_t *left = NULL;
    tu_assert_rc(zchan_pipe_stop(p, &left), ZCHAN_OK);
    assert_null(left);
    zchan_pipe_destroy(&p);
    assert_null(p);
    zchan_pipe_destroy(&p);
    s_chan_destroy(&a);
    s_chan_destroy(&b);
    s_pass(state);
}

//  When the destination closes, the pipe stops with ECLOSED and hands back
//  the message it could not deliver.
static void test_pipe_dst_closed(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t a = s_chan_new(fx, 10), b = s_chan_new(fx, 10);
    tu_assert_rc(zchan_close(b.ch), ZCHAN_OK);
    zchan_pipe_t *p = zchan_pipe_new(a.r, b.s);
    a.r = NULL;
    b.s = NULL;
    tu_assert_rc(zchan_send_int(a.s, 7, 1000), ZCHAN_OK);
    tu_assert_rc(zchan_pipe_wait(p, 10000), ZCHAN_ECLOSED);
    zchan_msg_t *left = NULL;
    tu_assert_rc(zchan_pipe_stop(p, &left), ZCHAN_ECLOSED);
    assert_non_null(left);
    assert_int_equal(s_msg_int(left), 7);
    zchan_msg_destroy(&left);
    tu_assert_rc(zchan_pipe_stop(p, &left), ZCHAN_ECLOSED);
    assert_null(left);
    assert_int_equal(zchan_pipe_forwarded(p), 0);
    zchan_pipe_destroy(&p);
    s_chan_destroy(&a);
    s_chan_destroy(&b);
    s_pass(state);
}

//  A map callback that counts the messages the pipe takes from its source
//  and signals each one.
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int taken;
} t_taken_t;

static int t_count(zchan_msg_t **msg_p, void *user)
{
    (void) msg_p;
    t_taken_t *t = (t_taken_t *) user;
    pthread_mutex_lock(&t->lock);
    t->taken++;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return ZCHAN_OK;
}

//  Stopping a pipe blocked on a full destination: the message in flight is
//  handed back, the ones not taken go back to the source channel, and
//  nothing is lost or duplicated.
static void test_pipe_stop_in_flight(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t a = s_chan_new(fx, 10);
    s_chan_t b = s_chan_new(fx, 0); // rendezvous: delivered only to a reader
    t_taken_t t = { .taken = 0 };
    pthread_mutex_init(&t.lock, NULL);
    pthread_cond_init(&t.cond, NULL);
    zchan_pipe_t *p = zchan_pipe_new(zchan_map(a.r, t_count, &t), b.s);
    a.r = NULL;
    b.s = NULL;
    s_send_range(a.s, 1, 3);
    s_expect_int(b.r, 1, 5000);
    //  The pipe takes 2 and cannot deliver it: b's receiver reads no more.
    pthread_mutex_lock(&t.lock);
    while (t.taken < 2)
        pthread_cond_wait(&t.cond, &t.lock);
    pthread_mutex_unlock(&t.lock);
    int64_t t0 = zchan__now_ms();
    zchan_msg_t *left = NULL;
    tu_assert_rc(zchan_pipe_stop(p, &left), ZCHAN_ECLOSED);
    assert_between(zchan__now_ms() - t0, 0, 3000);
    assert_non_null(left);
    assert_int_equal(s_msg_int(left), 2);
    zchan_msg_destroy(&left);
    assert_int_equal(zchan_pipe_forwarded(p), 1);
    zchan_pipe_destroy(&p);
    //  3 is back in a's channel; b got nothing more.
    zchan_receiver_t *r = zchan_receiver_new(a.ch, 0);
    s_expect_int(r, 3, 5000);
    int64_t v;
    tu_assert_rc(zchan_recv_int(r, &v, 100), ZCHAN_ETIMEDOUT);
    tu_assert_rc(zchan_recv_int(b.r, &v, 100), ZCHAN_ETIMEDOUT);
    zchan_receiver_destroy(&r);
    pthread_cond_destroy(&t.cond);
    pthread_mutex_destroy(&t.lock);
    s_chan_destroy(&a);
    s_chan_destroy(&b);
    s_pass(state);
}

//  A pipe skips and counts what its source gives as errors; an idle pipe
//  and an idle cache cost no CPU and stop promptly.
static void test_pipe_skips_and_idles(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t a = s_chan_new(fx, 10), b = s_chan_new(fx, 10);
    m_fail_t mf = { NULL };
    zchan_pipe_t *p = zchan_pipe_new(zchan_map(a.r, m_fail, &mf), b.s);
    a.r = NULL;
    b.s = NULL;
    tu_assert_rc(zchan_send_int(a.s, 1, 1000), ZCHAN_OK); // the map fails
    tu_assert_rc(zchan_send_int(a.s, 8, 1000), ZCHAN_OK);
    s_expect_int(b.r, 8, 5000);
    assert_int_equal(zchan_pipe_skipped(p), 1);

    s_chan_t c = s_chan_new(fx, 10);
    zchan_latest_t *l = zchan_latest_new(c.r);
    c.r = NULL;
    //  The wait lasts its whole timeout (a wait that returns at once fails
    //  here), and meanwhile the idle pipe's and cache's threads, and the
    //  waiting one, use little CPU (spinning for 300 ms uses far more).
    int64_t cpu0 = s_cpu_us();
    int64_t w0 = zchan__now_us();
    tu_assert_rc(zchan_pipe_wait(p, 300), ZCHAN_ETIMEDOUT);
    int64_t waited = zchan__now_us() - w0, cpu = s_cpu_us() - cpu0;
    assert_between(waited, 300 * 1000 - 1000, 3000 * 1000);
    assert_between(cpu, 0, 30 * 1000);
    int64_t t0 = zchan__now_ms();
    zchan_pipe_destroy(&p);
    zchan_latest_destroy(&l);
    assert_between(zchan__now_ms() - t0, 0, 3000);
    s_chan_destroy(&a);
    s_chan_destroy(&b);
    s_chan_destroy(&c);
    s_pass(state);
}

//  A pipe takes its ends also when it fails.
static void test_pipe_invalid(void **state)
{
    fx_t *fx = (fx_t *) *state;
    s_chan_t a = s_chan_new(fx, 10);
    assert_null(zchan_pipe_new(NULL, a.s));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    assert_null(zchan_pipe_new(a.r, NULL));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    a.s = NULL;
    a.r = NULL;
    s_chan_destroy(&a); // a leak checker finds the ends if they were kept
    s_pass(state);
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_msg_dup),
        T(test_map),
        T(test_map_errors),
        T(test_adaptor_invalid),
        T(test_map_select),
        T(test_filter),
        T(test_filter_select),
        T(test_filter_deadline),
        T(test_filter_errors),
        T(test_event),
        T(test_event_wakes_select),
        T(test_event_wait_thread),
        T(test_oneshot),
        T(test_oneshot_unsent),
        T(test_oneshot_thread),
        T(test_latest),
        T(test_latest_stopped),
        T(test_latest_threads),
        T(test_pipe),
        T(test_pipe_dst_closed),
        T(test_pipe_stop_in_flight),
        T(test_pipe_skips_and_idles),
        T(test_pipe_invalid),
    };
    //  ZCHAN_TEST_FILTER="test_pipe*" runs only the matching tests.
    const char *filter = getenv("ZCHAN_TEST_FILTER");
    if (filter)
        cmocka_set_test_filter(filter);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup_dir();
    return failed;
}

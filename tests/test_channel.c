/*  test_channel.c: the channel conformance suite. Every test runs once per
    transport (main sets the global s_scheme before each run of the group):
    a "host" context hosts the channels and a separate "client" context uses
    them, so over ipc and tcp every byte really crosses that transport.
*/
#include <malloc.h>
#include "testutil.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *scheme;
    zchan_ctx_t *host;
    zchan_ctx_t *ctx;
    char base[160];
    int seq;
} fx_t;

static const char *s_scheme = "inproc";

static int s_setup(void **state)
{
    const char *scheme = s_scheme;
    tu_ipc_dir();
    fx_t *fx = calloc(1, sizeof *fx);
    fx->scheme = scheme;
    fx->host = zchan_ctx_new();
    fx->ctx = zchan_ctx_new();
    assert_non_null(fx->host);
    assert_non_null(fx->ctx);
    static int n;
    n++;
    if (strcmp(scheme, "inproc") == 0)
        snprintf(fx->base, sizeof fx->base, "inproc://t%d-", n);
    else if (strcmp(scheme, "ipc") == 0) {
        char ep[64];
        snprintf(ep, sizeof ep, "ipc://hub%d-%d", (int) getpid(), n);
        tu_assert_rc(zchan_ctx_bind(fx->host, ep), ZCHAN_OK);
        snprintf(fx->base, sizeof fx->base, "%s/c-", ep);
    } else {
        tu_assert_rc(zchan_ctx_bind(fx->host, "tcp://127.0.0.1:0"), ZCHAN_OK);
        const char *ep = zchan_ctx_endpoint(fx->host, "tcp");
        assert_non_null(ep);
        snprintf(fx->base, sizeof fx->base, "%s/c-", ep);
    }
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_ctx_destroy(&fx->ctx);
    zchan_ctx_destroy(&fx->host);
    assert_null(fx->ctx);
    free(fx);
    return 0;
}

//  A fresh channel URI on the fixture's transport.
static const char *s_uri(fx_t *fx, const char *name)
{
    static char uri[256];
    snprintf(uri, sizeof uri, "%s%s%d", fx->base, name, ++fx->seq);
    return uri;
}

//  The window of a sender made through fx->ctx on a channel of capacity
//  cap that fx->ctx hosts: zchan_sender_window(cap), but at most 16 for a
//  local sender (the inproc fixture: its context hosts the channel).
static size_t s_sender_window(fx_t *fx, size_t cap)
{
    size_t w = zchan_sender_window(cap);
    return strcmp(fx->scheme, "inproc") == 0 && w > 16 ? 16 : w;
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// ---------------------------------------------------------------------------

static void test_anycast_basic(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->ctx, s_uri(fx, "basic"), ZCHAN_ANYCAST_CAPACITY);
    assert_non_null(ch);
    assert_int_equal(zchan_kind(ch), ZCHAN_ANYCAST);
    zchan_sender_t *s = zchan_sender_new(ch);
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    assert_non_null(s);
    assert_non_null(r);
    tu_assert_rc(zchan_send_int(s, 42, 1000), ZCHAN_OK);
    tu_assert_rc(zchan_send_str(s, "hello", 1000), ZCHAN_OK);
    int64_t v = 0;
    tu_assert_rc(zchan_recv_int(r, &v, 1000), ZCHAN_OK);
    assert_int_equal(v, 42);
    char *str = NULL;
    tu_assert_rc(zchan_recv_str(r, &str, 1000), ZCHAN_OK);
    assert_string_equal(str, "hello");
    free(str);
    //  A value of another type is consumed with ETYPE.
    tu_assert_rc(zchan_send_str(s, "not a number", 1000), ZCHAN_OK);
    tu_assert_rc(zchan_recv_int(r, &v, 1000), ZCHAN_ETYPE);
    tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_ETIMEDOUT);
    //  A whole structured value.
    zchan_msg_t *m = zchan_msg_new();
    msgpack_packer *pk = zchan_msg_packer(m);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, -7);
    msgpack_pack_nil(pk);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "k", 1);
    msgpack_pack_double(pk, 2.5);
    tu_assert_rc(zchan_send(s, &m, 1000), ZCHAN_OK);
    assert_null(m);
    tu_assert_rc(zchan_recv(r, &m, 1000), ZCHAN_OK);
    const msgpack_object *o = zchan_msg_object(m);
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.size, 3);
    assert_int_equal(o->via.array.ptr[0].via.i64, -7);
    assert_int_equal(o->via.array.ptr[1].type, MSGPACK_OBJECT_NIL);
    assert_true(o->via.array.ptr[2].via.map.ptr[0].val.via.f64 == 2.5);
    zchan_msg_destroy(&m);
    //  A message that does not hold exactly one value is refused and kept.
    m = zchan_msg_new();
    tu_assert_rc(zchan_send(s, &m, 0), ZCHAN_EINVAL);
    assert_non_null(m);
    msgpack_pack_int(zchan_msg_packer(m), 1);
    msgpack_pack_int(zchan_msg_packer(m), 2);
    tu_assert_rc(zchan_send(s, &m, 0), ZCHAN_EINVAL);
    assert_non_null(m);
    zchan_msg_destroy(&m);
    zchan_receiver_destroy(&r);
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
    assert_null(ch);
}

//  N senders and M receivers on their own threads.
#define NM_SENDERS 3
#define NM_RECEIVERS 3
#define NM_COUNT 3000

typedef struct {
    zchan_t *ch;
    int id;
    int got;
    int64_t *values; // received, in order
    int rc;
} nm_arg_t;

static void *s_nm_sender(void *arg)
{
    nm_arg_t *a = (nm_arg_t *) arg;
    zchan_sender_t *s = zchan_sender_new(a->ch);
    if (!s) {
        a->rc = zchan_errno();
        return NULL;
    }
    for (int i = 0; i < NM_COUNT && a->rc == 0; i++)
        a->rc = zchan_send_int(s, (int64_t) a->id * 1000000 + i, 10000);
    zchan_sender_destroy(&s);
    return NULL;
}

static void *s_nm_receiver(void *arg)
{
    nm_arg_t *a = (nm_arg_t *) arg;
    zchan_receiver_t *r = zchan_receiver_new(a->ch, 0);
    if (!r) {
        a->rc = zchan_errno();
        return NULL;
    }
    a->values = malloc(sizeof(int64_t) * NM_SENDERS * NM_COUNT);
    while (true) {
        int64_t v;
        int rc = zchan_recv_int(r, &v, 20000);
        if (rc == ZCHAN_ECLOSED)
            break;
        if (rc != 0) {
            a->rc = rc;
            break;
        }
        a->values[a->got++] = v;
    }
    zchan_receiver_destroy(&r);
    return NULL;
}

static void test_anycast_n_to_m(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->ctx, s_uri(fx, "nm"), 100);
    assert_non_null(ch);
    pthread_t st[NM_SENDERS], rt[NM_RECEIVERS];
    nm_arg_t sa[NM_SENDERS], ra[NM_RECEIVERS];
    memset(sa, 0, sizeof sa);
    memset(ra, 0, sizeof ra);
    for (int i = 0; i < NM_RECEIVERS; i++) {
        ra[i].ch = ch;
        pthread_create(&rt[i], NULL, s_nm_receiver, &ra[i]);
    }
    for (int i = 0; i < NM_SENDERS; i++) {
        sa[i].ch = ch;
        sa[i].id = i + 1;
        pthread_create(&st[i], NULL, s_nm_sender, &sa[i]);
    }
    for (int i = 0; i < NM_SENDERS; i++) {
        pthread_join(st[i], NULL);
        tu_assert_rc(sa[i].rc, ZCHAN_OK);
    }
    //  Senders are destroyed (so flushed): closing now loses nothing.
    tu_assert_rc(zchan_close(ch), ZCHAN_OK);
    static char seen[NM_SENDERS + 1][NM_COUNT];
    memset(seen, 0, sizeof seen);
    int total = 0;
    for (int i = 0; i < NM_RECEIVERS; i++) {
        pthread_join(rt[i], NULL);
        tu_assert_rc(ra[i].rc, ZCHAN_OK);
        int64_t last[NM_SENDERS + 1];
        for (int k = 0; k <= NM_SENDERS; k++)
            last[k] = -1;
        for (int j = 0; j < ra[i].got; j++) {
            int64_t v = ra[i].values[j];
            int sid = (int) (v / 1000000), seq = (int) (v % 1000000);
            assert_true(sid >= 1 && sid <= NM_SENDERS && seq < NM_COUNT);
            assert_int_equal(seen[sid][seq], 0); // exactly once
            seen[sid][seq] = 1;
            assert_true(seq > last[sid]); // each sender's messages in order
            last[sid] = seq;
        }
        total += ra[i].got;
        free(ra[i].values);
    }
    assert_int_equal(total, NM_SENDERS * NM_COUNT);
    zchan_destroy(&ch);
}

//  An anycast channel of capacity cap made through fx->ctx (which hosts it
//  in the inproc fixture, fx->host over ipc and tcp) with a sender made
//  through fx->ctx, and a receiver made through the context that does not
//  host the channel, so that it reaches the channel over a socket on every
//  transport. s_far_close destroys all four.
typedef struct {
    zchan_t *ch, *rch; // the channel, and the receiver's handle on it
    zchan_sender_t *s;
    zchan_receiver_t *r;
} s_far_t;

static void s_far_open(fx_t *fx, s_far_t *f, const char *name, size_t cap)
{
    zchan_ctx_t *far = strcmp(fx->scheme, "inproc") == 0 ? fx->host : fx->ctx;
    f->ch = zchan_anycast_new(fx->ctx, s_uri(fx, name), cap);
    assert_non_null(f->ch);
    f->rch = zchan_open(far, zchan_uri(f->ch));
    assert_non_null(f->rch);
    f->s = zchan_sender_new(f->ch);
    f->r = zchan_receiver_new(f->rch, 0);
    assert_non_null(f->r);
}

static void s_far_close(s_far_t *f)
{
    zchan_receiver_destroy(&f->r);
    zchan_sender_destroy(&f->s);
    zchan_destroy(&f->rch);
    zchan_destroy(&f->ch);
}

//  A larger capacity gives each sender a larger window, up to
//  ZCHAN_WINDOW_MAX: the bound C + S * zchan_sender_window(C) on what waits
//  at the channel is exact. A receiver holds its window beyond it: one that
//  read once and then sits on its messages was handed exactly its first
//  window, min(C, 16), and the channel still takes C + the sender's window.
//  (The receiver is made through the context that does not host the
//  channel, so it reaches the channel over a socket on every transport; the
//  sender, in the inproc fixture, is local: its window is at most 16.)
static void test_anycast_window(void **state)
{
    fx_t *fx = (fx_t *) *state;
    assert_int_equal(zchan_sender_window(0), 1);
    assert_int_equal(zchan_sender_window(1), ZCHAN_SENDER_SLACK);
    assert_int_equal(zchan_sender_window(ZCHAN_SENDER_SLACK), ZCHAN_SENDER_SLACK);
    assert_int_equal(zchan_sender_window(ZCHAN_SENDER_SLACK + 100), ZCHAN_SENDER_SLACK + 100);
    assert_int_equal(zchan_sender_window(ZCHAN_WINDOW_MAX * 3), ZCHAN_WINDOW_MAX);
    const size_t caps[] = {10, ZCHAN_SENDER_SLACK + 100, ZCHAN_WINDOW_MAX + 500};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        char name[32];
        snprintf(name, sizeof name, "window%zu", c);
        s_far_t f;
        s_far_open(fx, &f, name, caps[c]);
        zchan_sender_t *s = f.s;
        zchan_receiver_t *r = f.r;
        int64_t v = -1;
        tu_assert_rc(zchan_send_int(s, 0, 2000), ZCHAN_OK);
        tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK); // its first window is granted
        assert_int_equal(v, 0);
        size_t first = caps[c] < 16 ? caps[c] : 16;
        size_t bound = first + caps[c] + s_sender_window(fx, caps[c]), sent = 1;
        //  (The receiver's grant may reach the hub after the sends: a send
        //  waits for it, so the wait is generous, and longer under valgrind.)
        while (sent < bound + 10 && zchan_send_int(s, (int64_t) sent, 200 * tu_slow()) == ZCHAN_OK)
            sent++;
        assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
        assert_int_equal(sent, bound);
        //  All of it arrives, in order, and the channel has room again.
        for (size_t i = 1; i < bound; i++) {
            tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK);
            assert_int_equal(v, (int64_t) i);
        }
        tu_assert_rc(zchan_send_int(s, 7, 2000), ZCHAN_OK);
        tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK);
        assert_int_equal(v, 7);
        s_far_close(&f);
    }
}

//  A receiver that keeps up earns a larger window: it starts at
//  min(capacity, 16) and doubles each time it runs dry (a read finds nothing
//  waiting) having consumed a whole window since it last changed. After
//  three such rounds (16 consumed, 32, 64) it holds 128 messages when it
//  stops reading: the channel then takes 128 + C + the sender's window.
static void test_anycast_window_grows(void **state)
{
    fx_t *fx = (fx_t *) *state;
    const size_t cap = 20;
    s_far_t f;
    s_far_open(fx, &f, "grow", cap);
    zchan_sender_t *s = f.s;
    zchan_receiver_t *r = f.r;
    int64_t v = -1, next = 0;
    //  Runs dry first: nothing consumed yet, so the window stays 16.
    tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_ETIMEDOUT);
    for (size_t w = 16; w <= 64; w *= 2) {
        for (size_t i = 0; i < w; i++)
            tu_assert_rc(zchan_send_int(s, next + (int64_t) i, 2000), ZCHAN_OK);
        for (size_t i = 0; i < w; i++) {
            tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK);
            assert_int_equal(v, next++);
        }
        tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_ETIMEDOUT); // dry: the window doubles
    }
    size_t bound = 128 + cap + s_sender_window(fx, cap), sent = 0;
    while (sent < bound + 10 && zchan_send_int(s, next + (int64_t) sent, 500 * tu_slow()) == ZCHAN_OK)
        sent++;
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    assert_int_equal(sent, bound);
    for (size_t i = 0; i < bound; i++) {
        tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK);
        assert_int_equal(v, next++);
    }
    s_far_close(&f);
}

static void test_anycast_capacity(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->ctx, s_uri(fx, "cap"), ZCHAN_ANYCAST_CAPACITY);
    assert_non_null(ch);
    zchan_sender_t *s = zchan_sender_new(ch);
    const int slack = (int) s_sender_window(fx, ZCHAN_ANYCAST_CAPACITY); // ZCHAN_SENDER_SLACK, or 16 locally
    //  With nobody receiving, exactly capacity + the sender's slack fit.
    int sent = 0;
    while (sent < ZCHAN_ANYCAST_CAPACITY + slack + 10 && zchan_send_int(s, sent, 200) == ZCHAN_OK)
        sent++;
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    assert_int_equal(sent, ZCHAN_ANYCAST_CAPACITY + slack);
    //  A second sender has its own slack, and no more.
    zchan_sender_t *s2 = zchan_sender_new(ch);
    int sent2 = 0;
    while (sent2 < slack + 10 && zchan_send_int(s2, 1000 + sent2, 200) == ZCHAN_OK)
        sent2++;
    assert_int_equal(sent2, slack);
    //  Timeout 0 never waits.
    int64_t t0 = s_now_ms();
    tu_assert_rc(zchan_send_int(s, 999, 0), ZCHAN_ETIMEDOUT);
    assert_true(s_now_ms() - t0 < 100);
    //  Everything that was accepted arrives, each sender's in order.
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    int got = 0, next1 = 0, next2 = 1000;
    int64_t v;
    while (zchan_recv_int(r, &v, 500) == ZCHAN_OK) {
        if (v >= 1000)
            assert_int_equal(v, next2++);
        else
            assert_int_equal(v, next1++);
        got++;
    }
    assert_int_equal(got, sent + sent2);
    //  Once drained, sends flow again.
    tu_assert_rc(zchan_send_int(s, 5, 1000), ZCHAN_OK);
    tu_assert_rc(zchan_recv_int(r, &v, 1000), ZCHAN_OK);
    assert_int_equal(v, 5);
    zchan_receiver_destroy(&r);
    zchan_sender_destroy(&s);
    zchan_sender_destroy(&s2);
    zchan_destroy(&ch);
}

typedef struct {
    zchan_t *ch;
    int delay_ms;
    int64_t value;
    int rc;
} one_arg_t;

static void *s_recv_one(void *arg)
{
    one_arg_t *a = (one_arg_t *) arg;
    zchan_receiver_t *r = zchan_receiver_new(a->ch, 0);
    if (a->delay_ms)
        usleep((useconds_t) a->delay_ms * 1000);
    a->rc = zchan_recv_int(r, &a->value, 5000);
    zchan_receiver_destroy(&r);
    return NULL;
}

static void test_anycast_rendezvous(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->ctx, s_uri(fx, "rdv"), 0);
    assert_non_null(ch);
    zchan_sender_t *s = zchan_sender_new(ch);
    //  Nobody receives: the send times out and the caller keeps the message.
    zchan_msg_t *m = zchan_msg_new();
    msgpack_pack_int(zchan_msg_packer(m), 1);
    tu_assert_rc(zchan_send(s, &m, 150), ZCHAN_ETIMEDOUT);
    assert_non_null(m);
    zchan_msg_destroy(&m);
    //  The cancelled message never reaches a receiver that comes later.
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    int64_t v;
    tu_assert_rc(zchan_recv_int(r, &v, 150), ZCHAN_ETIMEDOUT);
    zchan_receiver_destroy(&r);
    //  With a receiver waiting, the send completes when it takes the message.
    one_arg_t a = {ch, 100, 0, -1};
    pthread_t t;
    pthread_create(&t, NULL, s_recv_one, &a);
    tu_assert_rc(zchan_send_int(s, 2, 5000), ZCHAN_OK);
    pthread_join(t, NULL);
    tu_assert_rc(a.rc, ZCHAN_OK);
    assert_int_equal(a.value, 2);
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
}

static void *s_send_later(void *arg)
{
    usleep(150000);
    zchan_send_int((zchan_sender_t *) arg, 77, -1);
    return NULL;
}

static void test_timeouts(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->ctx, s_uri(fx, "tmo"), 5);
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    int64_t v;
    int64_t t0 = s_now_ms();
    tu_assert_rc(zchan_recv_int(r, &v, 0), ZCHAN_ETIMEDOUT);
    assert_true(s_now_ms() - t0 < 100);
    t0 = s_now_ms();
    tu_assert_rc(zchan_recv_int(r, &v, 120), ZCHAN_ETIMEDOUT);
    int64_t el = s_now_ms() - t0;
    assert_true(el >= 110 && el < 3000);
    //  -1 waits until a message comes (sent 150 ms later by another thread).
    zchan_sender_t *s = zchan_sender_new(ch);
    pthread_t t;
    pthread_create(&t, NULL, s_send_later, s);
    t0 = s_now_ms();
    tu_assert_rc(zchan_recv_int(r, &v, -1), ZCHAN_OK);
    assert_int_equal(v, 77);
    assert_true(s_now_ms() - t0 >= 100);
    pthread_join(t, NULL);
    zchan_sender_destroy(&s);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
}

static void test_close(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->ctx, s_uri(fx, "close"), 20);
    zchan_t *other = zchan_open(fx->host, zchan_uri(ch)); // another party's handle
    assert_non_null(other);
    zchan_receiver_t *r1 = zchan_receiver_new(ch, 0);
    zchan_receiver_t *r2 = zchan_receiver_new(other, 0);
    zchan_sender_t *s = zchan_sender_new(ch);
    for (int i = 0; i < 5; i++)
        tu_assert_rc(zchan_send_int(s, i, 1000), ZCHAN_OK);
    //  Sends made by this thread before the close are delivered first.
    tu_assert_rc(zchan_close(ch), ZCHAN_OK);
    tu_assert_rc(zchan_close(other), ZCHAN_OK); // closing twice is fine
    tu_assert_rc(zchan_send_int(s, 99, 1000), ZCHAN_ECLOSED);
    int got = 0;
    int64_t v;
    int rc;
    while ((rc = zchan_recv_int(r1, &v, 2000)) == ZCHAN_OK)
        got++;
    tu_assert_rc(rc, ZCHAN_ECLOSED);
    while ((rc = zchan_recv_int(r2, &v, 2000)) == ZCHAN_OK)
        got++;
    tu_assert_rc(rc, ZCHAN_ECLOSED);
    assert_int_equal(got, 5);
    //  And keep getting it.
    tu_assert_rc(zchan_recv_int(r1, &v, 0), ZCHAN_ECLOSED);
    tu_assert_rc(zchan_recv_int(r2, &v, 100), ZCHAN_ECLOSED);
    //  A receiver created after the close is stopped at once; a new sender fails.
    zchan_receiver_t *r3 = zchan_receiver_new(other, 0);
    assert_non_null(r3);
    tu_assert_rc(zchan_recv_int(r3, &v, 0), ZCHAN_ECLOSED);
    zchan_sender_t *s2 = zchan_sender_new(other);
    assert_non_null(s2);
    tu_assert_rc(zchan_send_int(s2, 1, 0), ZCHAN_ECLOSED);
    zchan_sender_destroy(&s2);
    zchan_receiver_destroy(&r3);
    zchan_receiver_destroy(&r1);
    zchan_receiver_destroy(&r2);
    zchan_sender_destroy(&s);
    //  Receivers that stopped on the close still detach: the hub knows at
    //  once that they are gone and that all five were consumed, none lost.
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(other, &st), ZCHAN_OK);
    assert_true(st.closed);
    assert_int_equal(st.receivers, 0);
    assert_int_equal(st.senders, 0);
    assert_int_equal(st.sent, 5);
    assert_int_equal(st.delivered, 5);
    assert_int_equal(st.lost, 0);
    zchan_destroy(&other);
    zchan_destroy(&ch);
}

//  Go's idiom: send, destroy the sender, close. Nothing is lost.
static void test_sender_destroy_then_close(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->ctx, s_uri(fx, "sdc"), 2000);
    zchan_t *hch = zchan_open(fx->host, zchan_uri(ch));
    zchan_receiver_t *r = zchan_receiver_new(hch, 0);
    zchan_sender_t *s = zchan_sender_new(ch);
    for (int i = 0; i < 1000; i++)
        tu_assert_rc(zchan_send_int(s, i, 5000), ZCHAN_OK);
    zchan_sender_destroy(&s);
    assert_null(s);
    //  The close goes over another context's connection: only the flush at
    //  destroy orders it after the data.
    tu_assert_rc(zchan_close(hch), ZCHAN_OK);
    int64_t v;
    int rc, got = 0;
    while ((rc = zchan_recv_int(r, &v, 5000)) == ZCHAN_OK)
        assert_int_equal(v, got++);
    tu_assert_rc(rc, ZCHAN_ECLOSED);
    assert_int_equal(got, 1000);
    zchan_receiver_destroy(&r);
    zchan_destroy(&hch);
    zchan_destroy(&ch);
}

static void test_broadcast_delivery(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_broadcast_new(fx->ctx, s_uri(fx, "bc"), false);
    assert_non_null(ch);
    assert_int_equal(zchan_kind(ch), ZCHAN_BROADCAST);
    zchan_receiver_t *r[3];
    for (int i = 0; i < 3; i++)
        r[i] = zchan_receiver_new(ch, 1000);
    zchan_sender_t *s = zchan_sender_new(ch);
    //  No slow joiner: the very first message reaches every receiver.
    for (int i = 0; i < 500; i++)
        tu_assert_rc(zchan_send_int(s, i, 0), ZCHAN_OK);
    tu_assert_rc(zchan_close(ch), ZCHAN_OK);
    for (int k = 0; k < 3; k++) {
        int64_t v;
        int rc, got = 0;
        while ((rc = zchan_recv_int(r[k], &v, 5000)) == ZCHAN_OK)
            assert_int_equal(v, got++);
        tu_assert_rc(rc, ZCHAN_ECLOSED);
        assert_int_equal(got, 500);
        assert_int_equal(zchan_receiver_dropped(r[k]), 0);
        zchan_receiver_destroy(&r[k]);
    }
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
}

static void test_broadcast_late_receiver(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_broadcast_new(fx->ctx, s_uri(fx, "late"), false);
    zchan_sender_t *s = zchan_sender_new(ch);
    tu_assert_rc(zchan_send_int(s, 1, 0), ZCHAN_OK);
    //  A broadcast send is not acknowledged: over tcp, 1 could still be on
    //  its way when the receiver attaches through another socket. Destroying
    //  the sender flushes it, so the hub has 1 before the receiver exists.
    zchan_sender_destroy(&s);
    s = zchan_sender_new(ch);
    //  A receiver gets what is sent after its creation returned, not before.
    zchan_t *hch = zchan_open(fx->host, zchan_uri(ch));
    zchan_receiver_t *r = zchan_receiver_new(hch, 0);
    tu_assert_rc(zchan_send_int(s, 2, 0), ZCHAN_OK);
    int64_t v;
    tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK);
    assert_int_equal(v, 2);
    tu_assert_rc(zchan_recv_int(r, &v, 100), ZCHAN_ETIMEDOUT);
    zchan_receiver_destroy(&r);
    zchan_sender_destroy(&s);
    zchan_destroy(&hch);
    zchan_destroy(&ch);
}

static void test_broadcast_overflow(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_broadcast_new(fx->ctx, s_uri(fx, "ovf"), false);
    zchan_receiver_t *slow = zchan_receiver_new(ch, 0); // default limit
    zchan_receiver_t *small = zchan_receiver_new(ch, 5);
    zchan_sender_t *s = zchan_sender_new(ch);
    //  The sender never blocks, however far behind the receivers are.
    for (int i = 0; i < 200; i++)
        tu_assert_rc(zchan_send_int(s, i, 0), ZCHAN_OK);
    zchan_sender_destroy(&s); // flushed: the hub has handled all 200
    int64_t v;
    //  The newest ZCHAN_BROADCAST_LIMIT are kept, the oldest dropped and counted.
    for (int i = 200 - ZCHAN_BROADCAST_LIMIT; i < 200; i++) {
        tu_assert_rc(zchan_recv_int(slow, &v, 2000), ZCHAN_OK);
        assert_int_equal(v, i);
    }
    tu_assert_rc(zchan_recv_int(slow, &v, 100), ZCHAN_ETIMEDOUT);
    assert_int_equal(zchan_receiver_dropped(slow), 200 - ZCHAN_BROADCAST_LIMIT);
    for (int i = 195; i < 200; i++) {
        tu_assert_rc(zchan_recv_int(small, &v, 2000), ZCHAN_OK);
        assert_int_equal(v, i);
    }
    assert_int_equal(zchan_receiver_dropped(small), 195);
    zchan_receiver_destroy(&slow);
    zchan_receiver_destroy(&small);
    zchan_destroy(&ch);
}

//  A receiver that has started reading takes a window of messages ahead of
//  its reads, a quarter of its limit (at least 16, at most 1024), on top of
//  the limit the hub keeps for it: a slow receiver holds at most that. A
//  receiver in the process of the channel's hub (the inproc fixture: its
//  context hosts the channel) asks for a message only while it waits in a
//  read: it holds nothing beyond the limit.
static void test_broadcast_window(void **state)
{
    fx_t *fx = (fx_t *) *state;
    const int limit = 400, more = 1000;
    //  Messages held beyond the ring once message 0 was read from the window.
    const int ahead = strcmp(fx->scheme, "inproc") == 0 ? 0 : limit / 4 - 1;
    zchan_t *ch = zchan_broadcast_new(fx->ctx, s_uri(fx, "bwin"), false);
    zchan_receiver_t *r = zchan_receiver_new(ch, limit);
    zchan_sender_t *s = zchan_sender_new(ch);
    int64_t v;
    tu_assert_rc(zchan_send_int(s, 0, 0), ZCHAN_OK);
    tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK); // the window is granted
    assert_int_equal(v, 0);
    for (int i = 1; i <= more; i++)
        tu_assert_rc(zchan_send_int(s, i, 5000), ZCHAN_OK); // may wait on the socket's queue
    zchan_sender_destroy(&s); // flushed: the hub has handled them all
    //  The rest of the window went out at once; the ring kept the newest limit.
    int got = 0;
    int64_t last = 0;
    while (zchan_recv_int(r, &v, 300) == ZCHAN_OK) {
        assert_true(v > last);
        last = v;
        got++;
    }
    assert_int_equal(last, more);
    assert_int_equal(got, ahead + limit);
    assert_int_equal(zchan_receiver_dropped(r), more - (ahead + limit));
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
}

//  A receiver's ring at the hub grows as it fills: asking for the largest
//  limit (2^24 messages) costs nothing up front (it once cost 1 GiB).
static void test_broadcast_ring_on_demand(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_broadcast_new(fx->ctx, s_uri(fx, "ring"), false);
    struct mallinfo2 before = mallinfo2();
    zchan_receiver_t *r = zchan_receiver_new(ch, (size_t) 1 << 24);
    assert_non_null(r);
    struct mallinfo2 after = mallinfo2();
    //  Heap and mmapped chunks both: glibc maps a large block on its own.
    assert_true(after.uordblks + after.hblkhd < before.uordblks + before.hblkhd + (1u << 20));
    //  And it holds what it is sent, in order, beyond its first size.
    zchan_sender_t *s = zchan_sender_new(ch);
    for (int i = 0; i < 300; i++)
        tu_assert_rc(zchan_send_int(s, i, 5000), ZCHAN_OK);
    zchan_sender_destroy(&s);
    for (int i = 0; i < 300; i++) {
        int64_t v = -1;
        tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK);
        assert_int_equal(v, i);
    }
    assert_int_equal(zchan_receiver_dropped(r), 0);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
}

static void test_broadcast_resend_latest(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_broadcast_new(fx->ctx, s_uri(fx, "latest"), true);
    zchan_sender_t *s = zchan_sender_new(ch);
    for (int i = 1; i <= 3; i++)
        tu_assert_rc(zchan_send_int(s, i, 0), ZCHAN_OK);
    zchan_sender_destroy(&s);
    zchan_receiver_t *r = zchan_receiver_new(ch, 0);
    int64_t v;
    tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK);
    assert_int_equal(v, 3);
    s = zchan_sender_new(ch);
    tu_assert_rc(zchan_send_int(s, 4, 0), ZCHAN_OK);
    tu_assert_rc(zchan_recv_int(r, &v, 2000), ZCHAN_OK);
    assert_int_equal(v, 4);
    zchan_sender_destroy(&s);
    zchan_receiver_destroy(&r);
    zchan_destroy(&ch);
}

static void test_names(void **state)
{
    fx_t *fx = (fx_t *) *state;
    const char *uri = s_uri(fx, "named");
    char saved[256];
    snprintf(saved, sizeof saved, "%s", uri);
    zchan_t *a = zchan_anycast_new(fx->ctx, saved, 3);
    assert_non_null(a);
    assert_string_equal(zchan_uri(a), saved);
    assert_string_equal(zchan_name(a), strrchr(saved, '/') + 1);
    //  Opened by name from the other context, and joined by creating again.
    zchan_t *b = zchan_open(fx->host, saved);
    assert_non_null(b);
    assert_int_equal(zchan_kind(b), ZCHAN_ANYCAST);
    zchan_t *c = zchan_anycast_new(fx->host, saved, 99);
    assert_non_null(c);
    zchan_sender_t *s = zchan_sender_new(b);
    zchan_receiver_t *r = zchan_receiver_new(c, 0);
    tu_assert_rc(zchan_send_int(s, 5, 1000), ZCHAN_OK);
    int64_t v;
    tu_assert_rc(zchan_recv_int(r, &v, 1000), ZCHAN_OK);
    assert_int_equal(v, 5);
    //  The other kind on the same name is refused.
    assert_null(zchan_broadcast_new(fx->ctx, saved, false));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    //  A missing name.
    assert_null(zchan_open(fx->ctx, s_uri(fx, "missing")));
    assert_int_equal(zchan_errno(), ZCHAN_ENOTFOUND);
    zchan_sender_destroy(&s);
    zchan_receiver_destroy(&r);
    zchan_destroy(&a);
    zchan_destroy(&b);
    zchan_destroy(&c);
}

static void test_bad_uris(void **state)
{
    fx_t *fx = (fx_t *) *state;
    (void) fx;
    const char *bad[] = {"", "foo://x", "inproc://", "inproc://a b", "inproc://a/b", "tcp://127.0.0.1/x",
                         "tcp://127.0.0.1:99999/x", "tcp://127.0.0.1:80", "tcp://:80/x", "ipc://", "ipc://a/",
                         "ipc://../x", "inproc://..", "tcp://127.0.0.1:*/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        zchan_t *ch = zchan_anycast_new(fx->ctx, bad[i], 1);
        if (ch)
            fail_msg("accepted bad URI '%s'", bad[i]);
        assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
        assert_null(zchan_open(fx->ctx, bad[i]));
    }
    assert_null(zchan_open(fx->ctx, NULL));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_bind(fx->ctx, "bogus://1"), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_bind(fx->ctx, "tcp://127.0.0.1"), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_bind(fx->ctx, NULL), ZCHAN_EINVAL);
    assert_string_equal(zchan_strerror(ZCHAN_ECLOSED), "channel closed");
    assert_non_null(zchan_strerror(12345));
}

static void test_unnamed(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *a = zchan_anycast_new(fx->ctx, NULL, 1);
    zchan_t *b = zchan_broadcast_new(fx->ctx, NULL, false);
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(zchan_name(a), "zc-", 3);
    assert_int_equal(strlen(zchan_name(a)), 35); // "zc-" and 128 random bits in hex
    assert_string_not_equal(zchan_name(a), zchan_name(b));
    zchan_t *a2 = zchan_open(fx->host, zchan_uri(a));
    assert_non_null(a2);
    zchan_destroy(&a2);
    zchan_destroy(&a);
    zchan_destroy(&b);
}

//  ChannelPy's reply_to: a request carries a reference to the reply channel,
//  inside an array; the reply carries one back inside a map.
static void test_references(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *jobs = zchan_anycast_new(fx->ctx, s_uri(fx, "jobs"), 10);
    zchan_t *reply = zchan_anycast_new(fx->ctx, NULL, 1);
    zchan_sender_t *js = zchan_sender_new(jobs);
    zchan_msg_t *m = zchan_msg_new();
    msgpack_packer *pk = zchan_msg_packer(m);
    msgpack_pack_array(pk, 2);
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "sum", 3);
    tu_assert_rc(zchan_msg_pack_chan(m, reply), ZCHAN_OK);
    tu_assert_rc(zchan_send(js, &m, 1000), ZCHAN_OK);

    //  The worker, in the other context.
    zchan_t *wjobs = zchan_open(fx->host, zchan_uri(jobs));
    zchan_receiver_t *wr = zchan_receiver_new(wjobs, 0);
    tu_assert_rc(zchan_recv(wr, &m, 2000), ZCHAN_OK);
    const msgpack_object *o = zchan_msg_object(m);
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.ptr[1].type, MSGPACK_OBJECT_EXT);
    assert_int_equal(o->via.array.ptr[1].via.ext.type, ZCHAN_EXT_REF);
    zchan_t *to = zchan_msg_chan(fx->host, &o->via.array.ptr[1]);
    assert_non_null(to);
    assert_string_equal(zchan_name(to), zchan_name(reply));
    assert_int_equal(zchan_kind(to), ZCHAN_ANYCAST);
    //  Not a reference.
    assert_null(zchan_msg_chan(fx->host, &o->via.array.ptr[0]));
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    zchan_msg_destroy(&m);
    //  Reply with a map holding a reference to a channel of the worker's own.
    zchan_t *mine = zchan_broadcast_new(fx->host, NULL, true);
    zchan_sender_t *rs = zchan_sender_new(to);
    m = zchan_msg_new();
    pk = zchan_msg_packer(m);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str(pk, 6);
    msgpack_pack_str_body(pk, "result", 6);
    msgpack_pack_int(pk, 42);
    msgpack_pack_str(pk, 4);
    msgpack_pack_str_body(pk, "more", 4);
    tu_assert_rc(zchan_msg_pack_chan(m, mine), ZCHAN_OK);
    tu_assert_rc(zchan_send(rs, &m, 1000), ZCHAN_OK);
    zchan_sender_t *ms = zchan_sender_new(mine);
    tu_assert_rc(zchan_send_str(ms, "latest", 0), ZCHAN_OK);

    zchan_receiver_t *rr = zchan_receiver_new(reply, 0);
    tu_assert_rc(zchan_recv(rr, &m, 2000), ZCHAN_OK);
    o = zchan_msg_object(m);
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.ptr[0].val.via.i64, 42);
    zchan_t *theirs = zchan_msg_chan(fx->ctx, &o->via.map.ptr[1].val);
    assert_non_null(theirs);
    assert_int_equal(zchan_kind(theirs), ZCHAN_BROADCAST);
    zchan_msg_destroy(&m);
    zchan_receiver_t *tr = zchan_receiver_new(theirs, 0);
    char *str = NULL;
    tu_assert_rc(zchan_recv_str(tr, &str, 2000), ZCHAN_OK); // resend_latest
    assert_string_equal(str, "latest");
    free(str);

    zchan_receiver_destroy(&tr);
    zchan_receiver_destroy(&rr);
    zchan_receiver_destroy(&wr);
    zchan_sender_destroy(&ms);
    zchan_sender_destroy(&rs);
    zchan_sender_destroy(&js);
    zchan_destroy(&theirs);
    zchan_destroy(&mine);
    zchan_destroy(&to);
    zchan_destroy(&wjobs);
    zchan_destroy(&reply);
    zchan_destroy(&jobs);
}

//  A receiver that goes away gracefully gives back what it held.
static void test_graceful_receiver(void **state)
{
    fx_t *fx = (fx_t *) *state;
    zchan_t *ch = zchan_anycast_new(fx->ctx, s_uri(fx, "grace"), 100);
    zchan_sender_t *s = zchan_sender_new(ch);
    for (int i = 0; i < 40; i++)
        tu_assert_rc(zchan_send_int(s, i, 1000), ZCHAN_OK);
    zchan_receiver_t *a = zchan_receiver_new(ch, 0);
    int64_t v;
    tu_assert_rc(zchan_recv_int(a, &v, 1000), ZCHAN_OK);
    assert_int_equal(v, 0);
    //  a now holds up to its window of messages in flight; give them back.
    zchan_receiver_destroy(&a);
    zchan_receiver_t *b = zchan_receiver_new(ch, 0);
    int got = 0;
    while (zchan_recv_int(b, &v, 300) == ZCHAN_OK)
        assert_int_equal(v, ++got);
    assert_int_equal(got, 39);
    zchan_receiver_destroy(&b);
    zchan_sender_destroy(&s);
    zchan_destroy(&ch);
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_anycast_basic),      T(test_anycast_n_to_m),    T(test_anycast_capacity), T(test_anycast_window),
        T(test_anycast_window_grows),
        T(test_anycast_rendezvous), T(test_timeouts),          T(test_close),
        T(test_sender_destroy_then_close), T(test_broadcast_delivery), T(test_broadcast_late_receiver),
        T(test_broadcast_overflow), T(test_broadcast_window), T(test_broadcast_ring_on_demand), T(test_broadcast_resend_latest), T(test_names),
        T(test_bad_uris),           T(test_unnamed),           T(test_references),
        T(test_graceful_receiver),
    };
    //  One conformance run per transport; ZCHAN_TEST_TRANSPORT picks one.
    const char *schemes[] = {"inproc", "ipc", "tcp"};
    const char *only = getenv("ZCHAN_TEST_TRANSPORT");
    int failed = 0;
    for (size_t i = 0; i < 3; i++) {
        if (only && strcmp(only, schemes[i]) != 0)
            continue;
        s_scheme = schemes[i];
        char name[64];
        snprintf(name, sizeof name, "channel conformance over %s", schemes[i]);
        failed += _cmocka_run_group_tests(name, tests, sizeof tests / sizeof tests[0], NULL, NULL);
    }
    tu_cleanup_dir();
    return failed ? 1 : 0;
}

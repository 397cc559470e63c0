/*  b_zchan.c: zchan through a zchan-relay (brokerbench.h).

    The channel is "URL/NAME" on the relay. Receiver 0 creates it
    (zchan_anycast_new with --capacity, or zchan_broadcast_new), the other
    receivers and the sender join it by name. A broadcast receiver's limit is
    the count, so that a slow receiver loses nothing (zchan-perf does the
    same). The sender's flush is zchan_sender_destroy, which returns once all
    it sent has reached the channel; its teardown closes the channel, so the
    relay frees it once everyone has gone.
*/
#define _GNU_SOURCE
#include "brokerbench.h"
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zchan.h>

typedef struct {
    zchan_ctx_t *ctx;
    zchan_t *ch;
    zchan_sender_t *s;
    zchan_receiver_t *r;
    char *payload;
    size_t size;
} s_state_t;

static int s_fail(char *err, size_t errn, const char *what)
{
    snprintf(err, errn, "%s: %s", what, zchan_strerror(zchan_errno()));
    return -1;
}

static int s_channel(s_state_t *st, const bb_params_t *p, bool create, char *err, size_t errn)
{
    char uri[512];
    snprintf(uri, sizeof uri, "%s/%s", p->url, p->name);
    if (!(st->ctx = zchan_ctx_new()))
        return s_fail(err, errn, "zchan_ctx_new");
    if (!create)
        st->ch = zchan_open(st->ctx, uri);
    else if (p->wl == BW_ANYCAST)
        st->ch = zchan_anycast_new(st->ctx, uri, (size_t) p->capacity);
    else
        st->ch = zchan_broadcast_new(st->ctx, uri, false);
    return st->ch ? 0 : s_fail(err, errn, uri);
}

static int s_recv_setup(void *vst, const bb_params_t *p, char *err, size_t errn)
{
    s_state_t *st = vst;
    if (s_channel(st, p, p->id == 0, err, errn) != 0)
        return -1;
    size_t limit = p->wl == BW_BROADCAST ? (size_t) p->count : 0;
    if (!(st->r = zchan_receiver_new(st->ch, limit)))
        return s_fail(err, errn, "zchan_receiver_new");
    return 0;
}

static bb_recv_t s_recv(void *vst, const bb_params_t *p, int timeout_ms, bool *good, char *err, size_t errn)
{
    s_state_t *st = vst;
    zchan_msg_t *m = NULL;
    int e = zchan_recv(st->r, &m, timeout_ms);
    if (e == ZCHAN_OK) {
        const msgpack_object *o = zchan_msg_object(m);
        *good = o && o->type == MSGPACK_OBJECT_BIN && bb_payload_ok(o->via.bin.ptr, o->via.bin.size, p->size);
        zchan_msg_destroy(&m);
        return BR_MSG;
    }
    if (e == ZCHAN_ETIMEDOUT)
        return BR_TIMEOUT;
    if (e == ZCHAN_ECLOSED)
        return BR_CLOSED;
    if (e == ZCHAN_EPROTO) { // a message that is not msgpack: counted as damaged
        *good = false;
        return BR_MSG;
    }
    snprintf(err, errn, "zchan_recv: %s", zchan_strerror(e));
    return BR_ERROR;
}

static uint64_t s_dropped(void *vst)
{
    s_state_t *st = vst;
    return st->r ? zchan_receiver_dropped(st->r) : 0;
}

static int s_send_setup(void *vst, const bb_params_t *p, char *err, size_t errn)
{
    s_state_t *st = vst;
    if (s_channel(st, p, false, err, errn) != 0)
        return -1;
    if (!(st->s = zchan_sender_new(st->ch)))
        return s_fail(err, errn, "zchan_sender_new");
    st->size = p->size;
    if (!(st->payload = malloc(p->size ? p->size : 1))) {
        snprintf(err, errn, "out of memory");
        return -1;
    }
    bb_payload_fill(st->payload, p->size);
    return 0;
}

//  A zchan sender takes a message, not bytes: it packs the payload as
//  zchan-perf does (a msgpack bin), the same bytes as the wire message.
static int s_send(void *vst, const void *msg, size_t n, char *err, size_t errn)
{
    (void) msg;
    (void) n;
    s_state_t *st = vst;
    zchan_msg_t *m = zchan_msg_new();
    if (!m) {
        snprintf(err, errn, "out of memory");
        return -1;
    }
    msgpack_packer *pk = zchan_msg_packer(m);
    int e = msgpack_pack_bin(pk, st->size) == 0 && msgpack_pack_bin_body(pk, st->payload, st->size) == 0
                ? zchan_send(st->s, &m, 10000)
                : ZCHAN_ENOMEM;
    zchan_msg_destroy(&m);
    if (e != ZCHAN_OK) {
        snprintf(err, errn, "zchan_send: %s", zchan_strerror(e));
        return -1;
    }
    return 0;
}

static int s_flush(void *vst, char *err, size_t errn)
{
    (void) err;
    (void) errn;
    s_state_t *st = vst;
    zchan_sender_destroy(&st->s);
    return 0;
}

static void s_teardown(void *vst)
{
    s_state_t *st = vst;
    bool sender = st->payload != NULL;
    zchan_sender_destroy(&st->s);
    zchan_receiver_destroy(&st->r);
    if (sender && st->ch)
        zchan_close(st->ch);
    zchan_destroy(&st->ch);
    zchan_ctx_destroy(&st->ctx);
    free(st->payload);
}

//  A channel made and closed on the relay: it answers requests.
static int s_probe(const char *url, char *err, size_t errn)
{
    s_state_t st;
    memset(&st, 0, sizeof st);
    bb_params_t p;
    memset(&p, 0, sizeof p);
    char name[64];
    snprintf(name, sizeof name, "zbb-probe-%ld", (long) getpid());
    p.url = url;
    p.name = name;
    p.wl = BW_ANYCAST;
    p.capacity = 1;
    int rc = s_channel(&st, &p, true, err, errn);
    if (rc == 0)
        zchan_close(st.ch);
    zchan_destroy(&st.ch);
    zchan_ctx_destroy(&st.ctx);
    return rc;
}

const bb_backend_t bb_zchan = {
    .name = "zchan",
    .state_size = sizeof(s_state_t),
    .recv_setup = s_recv_setup,
    .recv = s_recv,
    .dropped = s_dropped,
    .send_setup = s_send_setup,
    .send = s_send,
    .flush = s_flush,
    .teardown = s_teardown,
    .probe = s_probe,
};

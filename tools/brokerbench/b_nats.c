/*  b_nats.c: NATS through nats-server, with cnats (brokerbench.h).

    Core NATS, at most once: the subject is NAME; an anycast receiver is a
    synchronous queue subscription (queue group "workers"), what NATS offers
    for a work queue without JetStream; a broadcast receiver is a plain
    synchronous subscription. Client settings are cnats's defaults (pending
    limits of 65536 messages and 64 MiB per subscription: beyond them the
    client drops, counted by natsSubscription_GetDropped and reported). A
    receiver is ready once a flush (PING/PONG) has followed its SUB, so the
    server has the subscription. The sender publishes (cnats buffers and
    writes in batches) and flushes: the PONG comes after the server has read
    every message before it.
*/
#define _GNU_SOURCE
#include "brokerbench.h"
#include <nats/nats.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    natsConnection *nc;
    natsSubscription *sub;
    const char *subject;
} s_state_t;

static int s_fail(char *err, size_t errn, const char *what, natsStatus s)
{
    const char *last = nats_GetLastError(NULL);
    snprintf(err, errn, "%s: %s%s%s", what, natsStatus_GetText(s), last && *last ? ": " : "", last ? last : "");
    return -1;
}

static int s_connect(s_state_t *st, const char *url, char *err, size_t errn)
{
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, url);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(opts, false);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, 5000);
    if (s == NATS_OK)
        s = natsConnection_Connect(&st->nc, opts);
    natsOptions_Destroy(opts);
    return s == NATS_OK ? 0 : s_fail(err, errn, url, s);
}

static int s_recv_setup(void *vst, const bb_params_t *p, char *err, size_t errn)
{
    s_state_t *st = vst;
    if (s_connect(st, p->url, err, errn) != 0)
        return -1;
    natsStatus s = p->wl == BW_ANYCAST ? natsConnection_QueueSubscribeSync(&st->sub, st->nc, p->name, "workers")
                                       : natsConnection_SubscribeSync(&st->sub, st->nc, p->name);
    if (s != NATS_OK)
        return s_fail(err, errn, "subscribe", s);
    if ((s = natsConnection_FlushTimeout(st->nc, 10000)) != NATS_OK)
        return s_fail(err, errn, "flush", s);
    return 0;
}

static bb_recv_t s_recv(void *vst, const bb_params_t *p, int timeout_ms, bool *good, char *err, size_t errn)
{
    s_state_t *st = vst;
    natsMsg *m = NULL;
    natsStatus s = natsSubscription_NextMsg(&m, st->sub, timeout_ms);
    if (s == NATS_OK) {
        *good = bb_wire_ok(natsMsg_GetData(m), (size_t) natsMsg_GetDataLength(m), p->size);
        natsMsg_Destroy(m);
        return BR_MSG;
    }
    if (s == NATS_TIMEOUT)
        return BR_TIMEOUT;
    //  A slow consumer: the client dropped messages (counted), and says so once.
    if (s == NATS_SLOW_CONSUMER)
        return BR_TIMEOUT;
    s_fail(err, errn, "natsSubscription_NextMsg", s);
    return BR_ERROR;
}

static uint64_t s_dropped(void *vst)
{
    s_state_t *st = vst;
    int64_t d = 0;
    if (st->sub && natsSubscription_GetDropped(st->sub, &d) != NATS_OK)
        d = 0;
    return d > 0 ? (uint64_t) d : 0;
}

static int s_send_setup(void *vst, const bb_params_t *p, char *err, size_t errn)
{
    s_state_t *st = vst;
    st->subject = p->name;
    return s_connect(st, p->url, err, errn);
}

static int s_send(void *vst, const void *msg, size_t n, char *err, size_t errn)
{
    s_state_t *st = vst;
    natsStatus s = natsConnection_Publish(st->nc, st->subject, msg, (int) n);
    return s == NATS_OK ? 0 : s_fail(err, errn, "natsConnection_Publish", s);
}

static int s_flush(void *vst, char *err, size_t errn)
{
    s_state_t *st = vst;
    natsStatus s = natsConnection_FlushTimeout(st->nc, 30000);
    return s == NATS_OK ? 0 : s_fail(err, errn, "natsConnection_FlushTimeout", s);
}

static void s_teardown(void *vst)
{
    s_state_t *st = vst;
    natsSubscription_Destroy(st->sub);
    st->sub = NULL;
    natsConnection_Destroy(st->nc);
    st->nc = NULL;
    nats_Close();
}

static int s_probe(const char *url, char *err, size_t errn)
{
    s_state_t st;
    memset(&st, 0, sizeof st);
    int rc = s_connect(&st, url, err, errn);
    if (rc == 0) {
        natsStatus s = natsConnection_FlushTimeout(st.nc, 2000);
        if (s != NATS_OK)
            rc = s_fail(err, errn, "flush", s);
    }
    natsConnection_Destroy(st.nc);
    return rc;
}

const bb_backend_t bb_nats = {
    .name = "nats",
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

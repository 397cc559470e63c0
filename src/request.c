/*  request.c: reaching a hub from a context: which of a hub's locators to
    use, sockets made with the context's options, and request/reply
    exchanges (zchan__request, zchan__await_reply) over the context's pool of
    idle request sockets (ctx->req, under ctx->req_lock), which
    zchan__req_pool_close empties at the context's shutdown.
*/
#include "core.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Sockets and requests

void *zchan__socket(zchan_ctx_t *ctx, int type)
{
    void *s = zmq_socket(ctx->zctx, type);
    if (!s) {
        zchan__zmq_error("socket");
        return NULL;
    }
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zchan__socket_heartbeat(ctx, s);
    return s;
}

void zchan__socket_heartbeat(zchan_ctx_t *ctx, void *s)
{
    //  ZeroMQ pings each connection every interval and drops one that stays
    //  silent past the timeout; the ttl asks the peer to do the same.
    int ivl = ctx->hb_ivl_ms, tmo = ctx->hb_timeout_ms;
    if (ivl <= 0)
        return;
    zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &tmo, sizeof tmo);
    zmq_setsockopt(s, ZMQ_HEARTBEAT_TTL, &tmo, sizeof tmo);
}

void zchan__reply_fini(zchan__reply_t *reply)
{
    zchan__hdr_fini(&reply->hdr);
    zmq_msg_close(&reply->frame);
}

int zchan__await_reply(void *sock, uint64_t reqid, int64_t deadline_ms, zchan__reply_t *reply,
                       void (*on_other)(void *arg, zchan__hdr_t *h, zmq_msg_t *payload), void *arg)
{
    zmq_msg_init(&reply->frame);
    zchan__hdr_init(&reply->hdr);
    reply->status = ZCHAN_ETIMEDOUT;
    while (true) {
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, zchan__remaining(deadline_ms));
        if (rc < 0 && zmq_errno() != EINTR)
            return reply->status = zchan__zmq_error("poll");
        if (rc <= 0) {
            if (deadline_ms >= 0 && zchan__now_ms() >= deadline_ms)
                return reply->status = zchan__fail(ZCHAN_ETIMEDOUT);
            continue;
        }
        zmq_msg_t frames[2];
        zmq_msg_init(&frames[0]);
        zmq_msg_init(&frames[1]);
        size_t n = 0;
        if (zchan__recv_frames(sock, frames, 2, &n, ZMQ_DONTWAIT) != 0) {
            zmq_msg_close(&frames[0]);
            zmq_msg_close(&frames[1]);
            continue;
        }
        zmq_msg_close(&reply->frame);
        zmq_msg_init(&reply->frame);
        zmq_msg_move(&reply->frame, &frames[0]);
        zmq_msg_close(&frames[0]);
        int prc = zchan__hdr_parse(&reply->hdr, zmq_msg_data(&reply->frame), zmq_msg_size(&reply->frame));
        zchan__wire_reply_t rep;
        if (prc == 0 && zchan__wire_parse_reply(&reply->hdr, &rep) == 0 && rep.reqid == reqid) {
            zmq_msg_close(&frames[1]);
            reply->status = rep.status;
            return rep.status ? zchan__fail(rep.status) : 0;
        }
        if (prc == 0 && on_other)
            on_other(arg, &reply->hdr, n > 1 ? &frames[1] : NULL);
        zmq_msg_close(&frames[1]);
    }
}

//  Takes an idle request socket connected to endpoint with hub key curve
//  ("" for none) from the pool, or makes one. NULL (with zchan_errno set) on
//  failure.
//  Whether ctx was shut down (party.c).
static bool s_shut(zchan_ctx_t *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    bool shut = ctx->shut;
    pthread_mutex_unlock(&ctx->lock);
    return shut;
}

void *zchan__dealer(zchan_ctx_t *ctx, const char *endpoint, const char *curve, int *err)
{
    void *sock = zchan__socket(ctx, ZMQ_DEALER);
    *err = sock ? zchan__connect(ctx, sock, endpoint, curve) : ZCHAN_ESYS;
    if (sock && *err != 0) {
        zmq_close(sock);
        sock = NULL;
    }
    return sock;
}

static void *s_req_take(zchan_ctx_t *ctx, const char *endpoint, const char *curve)
{
    void *sock = NULL;
    if (s_shut(ctx))
        return zchan__fail_null(ZCHAN_ECLOSED); // no new sockets for exit to wait on
    pthread_mutex_lock(&ctx->req_lock);
    for (int i = ctx->nreq; i-- > 0 && !sock;)
        if (strcmp(ctx->req[i].endpoint, endpoint) == 0 && strcmp(ctx->req[i].curve, curve) == 0) {
            sock = ctx->req[i].sock;
            ctx->req[i] = ctx->req[--ctx->nreq];
        }
    pthread_mutex_unlock(&ctx->req_lock);
    if (sock)
        return sock;
    int rc;
    sock = zchan__dealer(ctx, endpoint, curve, &rc);
    return sock ? sock : zchan__fail_null(rc);
}

//  Gives a request socket back to the pool, or closes it when the pool is
//  full or the endpoint does not fit. A late reply to a request that timed out
//  may still arrive on it; zchan__await_reply skips replies by request id.
static void s_req_give(zchan_ctx_t *ctx, const char *endpoint, const char *curve, void *sock)
{
    bool shut = s_shut(ctx);
    pthread_mutex_lock(&ctx->req_lock);
    if (!shut && ctx->nreq < ZCHAN__REQ_POOL && strlen(endpoint) < ZCHAN__EP_MAX) {
        ctx->req[ctx->nreq].sock = sock;
        snprintf(ctx->req[ctx->nreq].endpoint, ZCHAN__EP_MAX, "%s", endpoint);
        snprintf(ctx->req[ctx->nreq].curve, ZCHAN__KEY_Z85, "%s", curve);
        ctx->nreq++;
        sock = NULL;
    }
    pthread_mutex_unlock(&ctx->req_lock);
    if (sock)
        zmq_close(sock);
}

int zchan__request(zchan_ctx_t *ctx, const char *endpoint, zchan__out_t *o, zchan__reply_t *reply)
{
    return zchan__request_key(ctx, endpoint, NULL, o, reply);
}

int zchan__request_key(zchan_ctx_t *ctx, const char *endpoint, const char *server_key, zchan__out_t *o,
                       zchan__reply_t *reply)
{
    zmq_msg_init(&reply->frame);
    zchan__hdr_init(&reply->hdr);
    reply->status = ZCHAN_ESYS;
    char curve[ZCHAN__KEY_Z85];
    zchan__curve_key_for(ctx, endpoint, server_key, curve);
    void *sock = s_req_take(ctx, endpoint, curve);
    if (!sock)
        return reply->status = zchan_errno();
    uint64_t reqid = 0;
    zchan__hdr_t h;
    zchan__hdr_init(&h);
    if (zchan__hdr_parse(&h, o->sbuf.data, o->sbuf.size) == 0)
        zchan__wire_parse_reqid(&h, &reqid);
    zchan__hdr_fini(&h);
    int64_t deadline = zchan__deadline(ctx->timeout_ms);
    //  A DEALER with no connection to queue on blocks a send. ZeroMQ ends a
    //  connection for good when its handshake fails (a CURVE key refused), so
    //  the send waits for room only until the deadline.
    int rc = zchan__out_send(o, sock, false, ZMQ_DONTWAIT);
    if (rc == ZCHAN_ETIMEDOUT) {
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLOUT, 0};
        if (zmq_poll(&item, 1, zchan__remaining(deadline)) > 0)
            rc = zchan__out_send(o, sock, false, ZMQ_DONTWAIT);
        else
            rc = zchan__fail(ZCHAN_ETIMEDOUT);
    }
    if (rc == 0) {
        zchan__reply_fini(reply);
        rc = zchan__await_reply(sock, reqid, deadline, reply, NULL, NULL);
    }
    if (rc == ZCHAN_ETIMEDOUT) {
        //  Its connection may be gone for good: the next request makes a new one.
        zmq_close(sock);
        return rc;
    }
    s_req_give(ctx, endpoint, curve, sock);
    return rc;
}

// ---------------------------------------------------------------------------
// Hub info (its codec is in wire_ref.c)

int zchan__pick_locator(zchan_ctx_t *ctx, const zchan__hubinfo_t *info, char *out, size_t n)
{
    (void) ctx; // what is reachable depends on this process and host, not on the context
    const zchan__transport_t *best = NULL;
    const char *loc = NULL;
    for (int i = 0; i < info->nloc; i++) {
        const zchan__transport_t *t = zchan__transport_for(info->loc[i]);
        if (!t || (best && best->rank <= t->rank))
            continue;
        if (t->reachable(info->loc[i], info->host, info->proc)) {
            best = t;
            loc = info->loc[i];
        }
    }
    if (!loc)
        return zchan__fail(ZCHAN_ENOTFOUND);
    snprintf(out, n, "%s", loc);
    return 0;
}

void zchan__req_pool_close(zchan_ctx_t *ctx)
{
    pthread_mutex_lock(&ctx->req_lock);
    for (int i = 0; i < ctx->nreq; i++)
        zmq_close(ctx->req[i].sock);
    ctx->nreq = 0;
    pthread_mutex_unlock(&ctx->req_lock);
}

/*  hubctl.c: hub control for zchan-relay (see hubctl.h). Each call is one
    exchange on the hub's pipe, under the context's pipe lock.
*/
#include "hubctl.h"
#include "core.h"
#include <stdio.h>

int zchan__hub_close_all(zchan_ctx_t *ctx, uint64_t *pending)
{
    zchan__assert(ctx);
    int rc = ZCHAN_ESYS;
    uint64_t left = 0;
    pthread_mutex_lock(&ctx->pipe_lock);
    if (zsock_send(ctx->hub, "is", ZCHAN__HUB_CLOSEALL, "") != 0 || zsock_recv(ctx->hub, "i8", &rc, &left) != 0)
        rc = ZCHAN_ESYS;
    pthread_mutex_unlock(&ctx->pipe_lock);
    if (pending)
        *pending = left;
    return rc ? zchan__fail(rc) : 0;
}

int zchan__hub_monitor(zchan_ctx_t *ctx, const char *endpoint)
{
    zchan__assert(ctx);
    if (endpoint && strncmp(endpoint, "inproc://", 9) != 0)
        return zchan__fail(ZCHAN_EINVAL);
    if (!endpoint)
        endpoint = "";
    int rc = ZCHAN_ESYS;
    pthread_mutex_lock(&ctx->pipe_lock);
    if (zsock_send(ctx->hub, "is", ZCHAN__HUB_MONITOR, endpoint) != 0 || zsock_recv(ctx->hub, "i", &rc) != 0)
        rc = ZCHAN_ESYS;
    pthread_mutex_unlock(&ctx->pipe_lock);
    return rc ? zchan__fail(rc) : 0;
}

void *zchan__ctx_zmq(zchan_ctx_t *ctx)
{
    zchan__assert(ctx);
    return ctx->zctx;
}

int zchan__ctx_bound_at(zchan_ctx_t *ctx, int i, char *out, size_t n)
{
    zchan__assert(ctx);
    int rc = ZCHAN_ENOTFOUND;
    pthread_mutex_lock(&ctx->lock);
    if (i >= 0 && i < ctx->nbound) {
        snprintf(out, n, "%s", ctx->bound[i]);
        rc = 0;
    }
    pthread_mutex_unlock(&ctx->lock);
    return rc ? zchan__fail(rc) : 0;
}

/*  party.c: the parties of a context (zchan__party_join, _enter, _exit,
    _leave), the context's reference count and memory, and its shutdown:
    at zchan_ctx_destroy (zchan__ctx_shut) or, for a context the program did
    not destroy, in the exit handler (zchan__ctx_at_exit). The shutdown kills
    the parties, stops the hub, and lets go of what the request pool
    (request.c), CURVE (curve.c), the name registry and the ZeroMQ context
    (process.c) and the transports hold for the context.
*/
#include "local.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
// Parties, and the shutdown of a context: at zchan_ctx_destroy, or at exit
// for a context the program did not destroy

#define PARTY_DEAD (1u << 30)   // its context was shut down
#define PARTY_CLOSED (1u << 31) // its close has run
#define PARTY_CALLS (PARTY_DEAD - 1)
#define S_DANGLING_LOGGED 8     // dangling parties logged one by one per shutdown

static void s_party_close(zchan__party_t *p)
{
    unsigned old = atomic_fetch_or(&p->state, PARTY_CLOSED);
    if (!(old & PARTY_CLOSED) && p->close)
        p->close(p);
}

int zchan__party_join(zchan_ctx_t *ctx, zchan__party_t *p, const char *what, const char *key,
                      void (*close)(zchan__party_t *p))
{
    p->ctx = ctx;
    p->what = what;
    p->key = key;
    p->close = close;
    int rc = ZCHAN_ECLOSED;
    pthread_mutex_lock(&ctx->lock);
    if (!ctx->shut) {
        p->link = zlistx_add_end(ctx->parties, p);
        rc = p->link ? 0 : ZCHAN_ENOMEM;
        if (p->link)
            atomic_fetch_add(&ctx->refs, 1);
    }
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

bool zchan__party_enter(zchan__party_t *p)
{
    unsigned old = atomic_fetch_add(&p->state, 1);
    if (old & PARTY_DEAD) {
        zchan__party_exit(p);
        return false;
    }
    return true;
}

void zchan__party_hold(zchan__party_t *p)
{
    atomic_fetch_add(&p->state, 1);
}

void zchan__party_exit(zchan__party_t *p)
{
    unsigned old = atomic_fetch_sub(&p->state, 1);
    if ((old & PARTY_DEAD) && (old & PARTY_CALLS) == 1)
        s_party_close(p);
}

bool zchan__party_dead(const zchan__party_t *p)
{
    return (atomic_load(&((zchan__party_t *) p)->state) & PARTY_DEAD) != 0;
}

//  Kills p: closes it now, or when the calls in progress on it end.
static void s_party_kill(zchan__party_t *p)
{
    unsigned old = atomic_fetch_or(&p->state, PARTY_DEAD);
    if ((old & PARTY_CALLS) == 0)
        s_party_close(p);
}

static void s_ctx_free(zchan_ctx_t *ctx)
{
    zchan__share_fini(ctx);
    zlistx_destroy(&ctx->parties);
    zlistx_destroy(&ctx->senders);
    pthread_mutex_destroy(&ctx->lock);
    pthread_mutex_destroy(&ctx->pipe_lock);
    pthread_mutex_destroy(&ctx->req_lock);
    pthread_cond_destroy(&ctx->unpinned);
    free(ctx);
}

void zchan__ctx_unref(zchan_ctx_t *ctx)
{
    if (atomic_fetch_sub(&ctx->refs, 1) == 1)
        s_ctx_free(ctx);
}

void zchan__party_leave(zchan__party_t *p)
{
    if (!p->link)
        return;
    zchan_ctx_t *ctx = p->ctx;
    pthread_mutex_lock(&ctx->lock);
    zlistx_delete(ctx->parties, p->link);
    p->link = NULL;
    pthread_mutex_unlock(&ctx->lock);
    zchan__ctx_unref(ctx);
}

//  Shuts ctx down, once: its parties die (each one's socket is closed now,
//  or by the call in progress on it when that call ends), each logged as
//  dangling; its hub stops; its request sockets close; its transports let go
//  of what they hold for it (ipc: the files it made in the runtime directory
//  go). Its memory stays until its last reference goes.
void zchan__ctx_shut(zchan_ctx_t *ctx, bool at_exit)
{
    zchan__process_remove_ctx(ctx);
    pthread_mutex_lock(&ctx->lock);
    bool was_shut = ctx->shut;
    ctx->shut = true;
    size_t n = 0;
    for (zchan__party_t *p = was_shut || !ctx->parties ? NULL : zlistx_first(ctx->parties); p;
         p = zlistx_next(ctx->parties)) {
        if (n++ < S_DANGLING_LOGGED)
            zsys_warning("zchan: %s: dangling %s on %s (not destroyed); it is closed",
                         at_exit ? "at exit" : "context destroyed", p->what, p->key ? p->key : "?");
        s_party_kill(p);
    }
    if (n > S_DANGLING_LOGGED)
        zsys_warning("zchan: ...and %zu more dangling parties closed", n - S_DANGLING_LOGGED);
    pthread_mutex_unlock(&ctx->lock);
    if (was_shut)
        return;
    zchan__local_shutdown(ctx); // local parties let go of the hub, and waiters wake
    pthread_mutex_lock(&ctx->pipe_lock);
    zactor_destroy(&ctx->hub);
    pthread_mutex_unlock(&ctx->pipe_lock);
    zchan__req_pool_close(ctx);
    zchan__curve_ctx_fini(ctx); // after the hub: zauth must outlive its CURVE endpoints
    if (ctx->names) {
        zchan__registry_drop(ctx);
        zlistx_destroy(&ctx->names);
    }
    //  The transports let go of what they hold on the host (ipc: the socket
    //  files the hub bound, then its lock files): nobody can use them now.
    for (size_t i = 0; zchan__transports[i]; i++)
        if (zchan__transports[i]->ctx_fini)
            zchan__transports[i]->ctx_fini(&ctx->tview[i]);
    if (ctx->zctx)
        zchan__zctx_release();
}

//  At exit, before czmq's zsys_shutdown: shuts down every context of this
//  process that the program did not destroy (a forked child leaves its
//  parent's alone). Their memory stays: a later exit handler may still hold
//  them, and finds them inert.
void zchan__ctx_at_exit(void)
{
    pid_t pid = getpid();
    while (true) {
        zchan_ctx_t *ctx = zchan__process_take_ctx(pid);
        if (!ctx)
            break;
        zsys_warning("zchan: at exit: dangling context (not destroyed); it is shut down");
        zchan__ctx_shut(ctx, true); // takes it off the process's list
        zchan__ctx_unref(ctx);
    }
}

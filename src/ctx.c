/*  ctx.c: the context's public API (zchan_ctx_new, _destroy, _bind and its
    settings), and the context's hub as the rest of the core sees it: its
    inproc endpoint, its binds, each transport's view (zchan__ctx_tview, made
    when the context is and freed when it shuts down). Process-wide state is
    in process.c, requests to hubs in request.c, parties and the shutdown in
    party.c.
*/
#include "local.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Checks heartbeat settings: interval 0 (off) or 1 ms to 10 min; a timeout
//  of 0 means 5 intervals; the ttl travels in tenths of a second, below 6553.6 s.
static int s_heartbeat_check(int *ivl, int *tmo)
{
    if (*ivl < 0 || *ivl > 600000 || *tmo < 0)
        return ZCHAN_EINVAL;
    if (*ivl == 0) {
        *tmo = 0;
        return 0;
    }
    if (*tmo == 0)
        *tmo = 5 * *ivl;
    if (*tmo < *ivl || *tmo > 6553500)
        return ZCHAN_EINVAL;
    return 0;
}

// ---------------------------------------------------------------------------
// The context

const char *zchan__ctx_inproc(zchan_ctx_t *ctx)
{
    return ctx->inproc;
}

const zchan__tview_t *zchan__ctx_tview(zchan_ctx_t *ctx, const zchan__transport_t *t)
{
    return &ctx->tview[zchan__transport_index(t)];
}

int zchan__ctx_hub_bind(zchan_ctx_t *ctx, const char *endpoint, bool record, char *bound, size_t n)
{
    //  The pipe is one socket: one request at a time. Not under ctx->lock,
    //  which the hub itself takes while it answers requests.
    pthread_mutex_lock(&ctx->pipe_lock);
    int rc = ZCHAN_ESYS;
    char *got = NULL;
    if (!ctx->hub)
        rc = ZCHAN_ECLOSED; // shut down
    else if (zsock_send(ctx->hub, "is", ZCHAN__HUB_BIND, endpoint) != 0 || zsock_recv(ctx->hub, "is", &rc, &got) != 0)
        rc = ZCHAN_ESYS;
    pthread_mutex_unlock(&ctx->pipe_lock);
    //  The transport makes what the bind left on the host its own.
    const char *made = got && *got ? got : endpoint;
    const zchan__transport_t *t = zchan__transport_for(made);
    if (rc == 0 && t && t->bound)
        rc = t->bound(zchan__ctx_tview(ctx, t), made);
    if (rc == 0) {
        snprintf(bound, n, "%s", got ? got : endpoint);
        pthread_mutex_lock(&ctx->lock);
        if (record && ctx->nbound < ZCHAN__MAX_LOC)
            snprintf(ctx->bound[ctx->nbound++], ZCHAN__EP_MAX, "%s", bound);
        pthread_mutex_unlock(&ctx->lock);
    }
    zstr_free(&got);
    return rc;
}

bool zchan__ctx_is_own(zchan_ctx_t *ctx, const char *endpoint)
{
    pthread_mutex_lock(&ctx->lock);
    bool own = false;
    for (int i = 0; i < ctx->nbound && !own; i++)
        own = streq(ctx->bound[i], endpoint);
    pthread_mutex_unlock(&ctx->lock);
    return own;
}

//  Binds endpoint ("scheme://rest") on the hub and adds its locator.
static int s_bind(zchan_ctx_t *ctx, const char *endpoint)
{
    const zchan__transport_t *t = zchan__transport_for(endpoint);
    if (!t)
        return zchan__fail(ZCHAN_EINVAL);
    const char *rest = endpoint + strlen(t->scheme) + 3;
    char zep[ZCHAN__EP_MAX], bound[ZCHAN__EP_MAX], loc[ZCHAN__EP_MAX], host[sizeof ctx->advertise];
    int rc = t->bind_endpoint(zchan__ctx_tview(ctx, t), rest, zep, sizeof zep);
    if (rc == 0)
        rc = zchan__ctx_hub_bind(ctx, zep, true, bound, sizeof bound);
    pthread_mutex_lock(&ctx->lock);
    snprintf(host, sizeof host, "%s", ctx->advertise);
    pthread_mutex_unlock(&ctx->lock);
    if (rc == 0)
        rc = t->advertise(host, bound, loc, sizeof loc);
    if (rc != 0)
        return zchan__fail(rc);
    pthread_mutex_lock(&ctx->lock);
    if (ctx->info.nloc < ZCHAN__MAX_LOC)
        snprintf(ctx->info.loc[ctx->info.nloc++], ZCHAN__EP_MAX, "%s", loc);
    pthread_mutex_unlock(&ctx->lock);
    return 0;
}

zchan_ctx_t *zchan_ctx_new(void)
{
    zchan__log_to_stderr();
    zchan_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return zchan__fail_null(ZCHAN_ENOMEM);
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_mutex_init(&ctx->pipe_lock, NULL);
    pthread_mutex_init(&ctx->req_lock, NULL);
    pthread_cond_init(&ctx->unpinned, NULL);
    atomic_init(&ctx->refs, 1);
    ctx->pid = getpid();
    ctx->senders = zlistx_new();
    ctx->parties = zlistx_new();
    ctx->names = zlistx_new();
    ctx->zctx = zchan__zctx_acquire(zchan__ctx_at_exit);
    if (!ctx->senders || !ctx->parties || !ctx->names || !ctx->zctx) {
        zchan_ctx_destroy(&ctx);
        return zchan__fail_null(ZCHAN_ENOMEM);
    }
    zlistx_set_destructor(ctx->names, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator(ctx->names, (zlistx_duplicator_fn *) strdup);
    const char *tmo = getenv("ZCHAN_TIMEOUT_MS");
    ctx->timeout_ms = tmo && *tmo ? atoi(tmo) : ZCHAN__DEFAULT_TIMEOUT_MS;
    const char *maxmsg = getenv("ZCHAN_MAX_MSG_SIZE");
    ctx->max_msg_size = maxmsg && *maxmsg ? strtoll(maxmsg, NULL, 10) : ZCHAN_DEFAULT_MAX_MSG_SIZE;
    if (ctx->max_msg_size < -1 || ctx->max_msg_size == 0)
        ctx->max_msg_size = ZCHAN_DEFAULT_MAX_MSG_SIZE;
    const uint64_t limits[ZCHAN__NLIMITS] = {ZCHAN_DEFAULT_MAX_CHANNELS,        ZCHAN_DEFAULT_MAX_ATTACHMENTS,
                                             ZCHAN_DEFAULT_MAX_CAPACITY,        ZCHAN_DEFAULT_MAX_BROADCAST_LIMIT,
                                             ZCHAN_DEFAULT_MAX_CHANNEL_BYTES,   ZCHAN_DEFAULT_MAX_QUEUED_BYTES};
    memcpy(ctx->limits, limits, sizeof limits); // before the hub starts: it copies them
    const char *hb = getenv("ZCHAN_HEARTBEAT_MS"), *hbt = getenv("ZCHAN_HEARTBEAT_TIMEOUT_MS");
    ctx->hb_ivl_ms = hb && *hb ? atoi(hb) : ZCHAN_DEFAULT_HEARTBEAT_MS;
    ctx->hb_timeout_ms = hbt && *hbt ? atoi(hbt) : 0;
    if (s_heartbeat_check(&ctx->hb_ivl_ms, &ctx->hb_timeout_ms) != 0) {
        zsys_warning("zchan: bad $ZCHAN_HEARTBEAT_MS or $ZCHAN_HEARTBEAT_TIMEOUT_MS; using the defaults");
        ctx->hb_ivl_ms = ZCHAN_DEFAULT_HEARTBEAT_MS;
        ctx->hb_timeout_ms = 5 * ZCHAN_DEFAULT_HEARTBEAT_MS;
    }
    const char *adv = getenv("ZCHAN_ADVERTISE");
    if (adv && *adv)
        snprintf(ctx->advertise, sizeof ctx->advertise, "%s", adv);
    uint64_t n = zchan__reqid();
    snprintf(ctx->info.host, sizeof ctx->info.host, "%s", zchan__host_id());
    snprintf(ctx->info.proc, sizeof ctx->info.proc, "%s", zchan__proc_id());
    snprintf(ctx->info.hub, sizeof ctx->info.hub, "%.70s/%" PRIu64, ctx->info.proc, n);
    for (size_t i = 0; zchan__transports[i]; i++)
        if (zchan__transports[i]->ctx_init && zchan__transports[i]->ctx_init(&ctx->tview[i]) != 0) {
            zchan_ctx_destroy(&ctx);
            return zchan__fail_null(ZCHAN_ENOMEM);
        }
    //  The hub binds its in-process endpoint itself, when it starts.
    const zchan__transport_t *local = zchan__transport_local();
    local->hub_address(zchan__ctx_tview(ctx, local), n, ctx->inproc, sizeof ctx->inproc);
    snprintf(ctx->info.loc[ctx->info.nloc++], ZCHAN__EP_MAX, "%s", ctx->inproc);
    snprintf(ctx->bound[ctx->nbound++], ZCHAN__EP_MAX, "%s", ctx->inproc);
    int crc = zchan__curve_ctx_init(ctx);
    if (crc != 0) {
        zchan_ctx_destroy(&ctx);
        return zchan__fail_null(crc);
    }

    if (zchan__share_init(ctx) != 0) {
        zchan_ctx_destroy(&ctx);
        return zchan__fail_null(ZCHAN_ENOMEM);
    }
    ctx->hub = zactor_new(zchan__hub_actor, ctx);
    if (!ctx->hub) {
        zchan_ctx_destroy(&ctx);
        return zchan__fail_null(ZCHAN_ESYS);
    }
    //  From here the exit handler shuts it down if the program does not.
    if (zchan__process_add_ctx(ctx) != 0) {
        zchan_ctx_destroy(&ctx);
        return zchan__fail_null(ZCHAN_ENOMEM);
    }
    //  The hub listens on every other transport that gives it an address
    //  from the start (ipc, when the runtime directory is usable).
    for (size_t i = 0; zchan__transports[i]; i++) {
        const zchan__transport_t *t = zchan__transports[i];
        char ep[ZCHAN__EP_MAX];
        if (t->in_process || !t->hub_address || t->hub_address(&ctx->tview[i], n, ep, sizeof ep) != 0)
            continue;
        if (s_bind(ctx, ep) != 0)
            zsys_warning("zchan: this context is not reachable over %s", t->scheme);
    }
    return ctx;
}

void zchan_ctx_destroy(zchan_ctx_t **ctx_p)
{
    if (!ctx_p || !*ctx_p)
        return;
    zchan_ctx_t *ctx = *ctx_p;
    *ctx_p = NULL;
    zchan__ctx_shut(ctx, false);
    zchan__ctx_unref(ctx);
}

int zchan_ctx_bind(zchan_ctx_t *ctx, const char *endpoint)
{
    zchan__assert(ctx);
    if (!endpoint)
        return zchan__fail(ZCHAN_EINVAL);
    return s_bind(ctx, endpoint);
}

const char *zchan_ctx_endpoint(zchan_ctx_t *ctx, const char *scheme)
{
    zchan__assert(ctx);
    if (!scheme)
        return zchan__fail_null(ZCHAN_EINVAL);
    size_t n = strlen(scheme);
    const char *found = NULL;
    pthread_mutex_lock(&ctx->lock);
    for (int i = 0; i < ctx->nbound && !found; i++)
        if (strncmp(ctx->bound[i], scheme, n) == 0 && strncmp(ctx->bound[i] + n, "://", 3) == 0)
            found = ctx->bound[i];
    pthread_mutex_unlock(&ctx->lock);
    return found ? found : zchan__fail_null(ZCHAN_ENOTFOUND);
}

int zchan_ctx_set_advertise(zchan_ctx_t *ctx, const char *host)
{
    zchan__assert(ctx);
    if (!host || !*host || strlen(host) >= sizeof ctx->advertise)
        return zchan__fail(ZCHAN_EINVAL);
    pthread_mutex_lock(&ctx->lock);
    snprintf(ctx->advertise, sizeof ctx->advertise, "%s", host);
    //  Rewrite the locators already advertised (loc[i] was made from bound[i]).
    for (int i = 0; i < ctx->info.nloc && i < ctx->nbound; i++) {
        const zchan__transport_t *t = zchan__transport_for(ctx->bound[i]);
        if (t)
            t->advertise(ctx->advertise, ctx->bound[i], ctx->info.loc[i], ZCHAN__EP_MAX);
    }
    pthread_mutex_unlock(&ctx->lock);
    return 0;
}

void zchan_ctx_set_timeout(zchan_ctx_t *ctx, int timeout_ms)
{
    zchan__assert(ctx);
    ctx->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
}

int zchan_ctx_set_max_msg_size(zchan_ctx_t *ctx, int64_t bytes)
{
    zchan__assert(ctx);
    if (bytes < -1 || bytes == 0)
        return zchan__fail(ZCHAN_EINVAL);
    //  The hub reads it while it handles a BIND, which is sent under pipe_lock.
    pthread_mutex_lock(&ctx->pipe_lock);
    ctx->max_msg_size = bytes;
    pthread_mutex_unlock(&ctx->pipe_lock);
    return 0;
}

_Static_assert(ZCHAN__NLIMITS == ZCHAN_LIMIT_QUEUED_BYTES + 1, "ZCHAN__NLIMITS counts zchan_limit_t");

int zchan_ctx_set_limit(zchan_ctx_t *ctx, zchan_limit_t which, uint64_t value)
{
    zchan__assert(ctx);
    if ((unsigned) which >= ZCHAN__NLIMITS || value == 0
        || (which == ZCHAN_LIMIT_CAPACITY && value > (uint64_t) 1 << 40)
        || (which == ZCHAN_LIMIT_BROADCAST_LIMIT && value > (uint64_t) 1 << 24))
        return zchan__fail(ZCHAN_EINVAL);
    //  The hub copies the limits while it handles LIMITS, sent under pipe_lock.
    pthread_mutex_lock(&ctx->pipe_lock);
    ctx->limits[which] = value;
    int rc = ZCHAN_ESYS;
    if (zsock_send(ctx->hub, "is", ZCHAN__HUB_LIMITS, "") != 0 || zsock_recv(ctx->hub, "i", &rc) != 0)
        rc = ZCHAN_ESYS;
    pthread_mutex_unlock(&ctx->pipe_lock);
    return rc ? zchan__fail(rc) : 0;
}

uint64_t zchan_ctx_limit(zchan_ctx_t *ctx, zchan_limit_t which)
{
    zchan__assert(ctx);
    if ((unsigned) which >= ZCHAN__NLIMITS)
        return 0;
    pthread_mutex_lock(&ctx->pipe_lock);
    uint64_t v = ctx->limits[which];
    pthread_mutex_unlock(&ctx->pipe_lock);
    return v;
}

int zchan_ctx_set_heartbeat(zchan_ctx_t *ctx, int interval_ms, int timeout_ms)
{
    zchan__assert(ctx);
    if (s_heartbeat_check(&interval_ms, &timeout_ms) != 0)
        return zchan__fail(ZCHAN_EINVAL);
    //  The hub reads them while it handles a BIND, which is sent under pipe_lock.
    pthread_mutex_lock(&ctx->pipe_lock);
    ctx->hb_ivl_ms = interval_ms;
    ctx->hb_timeout_ms = timeout_ms;
    pthread_mutex_unlock(&ctx->pipe_lock);
    return 0;
}

int zchan__ctx_heartbeat_timeout(zchan_ctx_t *ctx)
{
    return ctx->hb_timeout_ms;
}

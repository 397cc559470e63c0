/*  ctx.c: the context. It owns a hub thread, shares the process-wide ZeroMQ
    context, keeps the process-wide registry of named channels, knows this
    host's and process's identities, and runs request/reply exchanges with
    hubs. Each transport gets a view of it (zchan__ctx_tview) for its own
    state, made when the context is and freed when it shuts down.
*/
#include "core.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
// Process-wide state: one ZeroMQ context for every zchan context, so inproc
// reaches across them; the registry of process- and host-wide names.

static pthread_mutex_t s_glock = PTHREAD_MUTEX_INITIALIZER;
static void *s_zctx;
static size_t s_zctx_refs;
static zhashx_t *s_registry; // key -> inproc endpoint of the hosting hub
static atomic_uint_fast64_t s_counter;

static pid_t s_zctx_pid;
static zlistx_t *s_ctxs; // contexts of this process not yet shut down
static bool s_exit_hooked;

static void s_at_exit(void);

//  The ZeroMQ context is czmq's own (zsys_init): ZeroMQ runs one ZAP handler
//  per context, and czmq's zauth, which checks CURVE clients for the hub's
//  ROUTER, makes its handler socket there (src/curve.c). czmq terminates it
//  at exit (zsys_shutdown), and gives a forked child a fresh one.
static void *s_zctx_acquire(void)
{
    pthread_mutex_lock(&s_glock);
    if (s_zctx && s_zctx_pid != getpid()) {
        //  Inherited through fork: the parent's context is not usable here.
        s_zctx = NULL;
        s_zctx_refs = 0;
    }
    if (!s_zctx) {
        s_zctx = zsys_init();
        s_zctx_pid = getpid();
    }
    //  Exit handlers run in the reverse order of their registration: this one,
    //  registered after zsys_init registered czmq's (zsys_shutdown), runs
    //  before it, and closes what zchan left open, which zmq_ctx_term would
    //  otherwise wait for forever.
    if (s_zctx && !s_exit_hooked)
        s_exit_hooked = atexit(s_at_exit) == 0;
    if (s_zctx)
        s_zctx_refs++;
    void *z = s_zctx;
    pthread_mutex_unlock(&s_glock);
    return z;
}

//  czmq's context outlives the last zchan context (czmq may use it still);
//  the next context asks zsys_init again, in case the program shut czmq down.
static void s_zctx_release(void)
{
    pthread_mutex_lock(&s_glock);
    if (s_zctx_refs > 0 && --s_zctx_refs == 0) {
        s_zctx = NULL;
        zhashx_destroy(&s_registry);
    }
    pthread_mutex_unlock(&s_glock);
}

uint64_t zchan__reqid(void)
{
    return atomic_fetch_add(&s_counter, 1) + 1;
}

// ---------------------------------------------------------------------------
// Identities

static void s_read_line(const char *path, char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int) n, f))
        out[strcspn(out, "\r\n")] = 0;
    fclose(f);
}

static char s_host[ZCHAN__ID_MAX];

static void s_init_host(void)
{
    const char *env = getenv("ZCHAN_HOST_ID");
    if (env && *env)
        snprintf(s_host, sizeof s_host, "%s", env);
    else {
        s_read_line("/proc/sys/kernel/random/boot_id", s_host, sizeof s_host);
        if (!s_host[0] && gethostname(s_host, sizeof s_host - 1) != 0)
            snprintf(s_host, sizeof s_host, "unknown-host");
    }
}

const char *zchan__host_id(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, s_init_host);
    return s_host;
}

int zchan__random_bytes(void *buf, size_t n)
{
    uint8_t *p = (uint8_t *) buf;
    while (n > 0) {
        //  Up to 256 bytes never come back short once the pool is ready, but
        //  a signal may interrupt the wait for it at boot.
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            zchan__log_init();
            zsys_error("zchan: cannot read the kernel's random source (getrandom): %s", strerror(errno));
            return ZCHAN_ESYS;
        }
        p += got;
        n -= (size_t) got;
    }
    return 0;
}

const char *zchan__proc_id(void)
{
    static char proc[ZCHAN__ID_MAX];
    static pid_t pid;
    pthread_mutex_lock(&s_glock);
    if (pid != getpid()) {
        pid = getpid();
        //  The random part only tells apart processes that had the same pid
        //  (a proc id is no secret: every reference carries it). Should the
        //  kernel refuse random bytes, the clock does that job.
        uint64_t r;
        if (zchan__random_bytes(&r, sizeof r) != 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            r = (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
        }
        //  At most 40 characters of the host identity (a boot id has 36), so
        //  that the pid and the random part always fit, here and in the hub
        //  identity made from this one (ctx_new).
        snprintf(proc, sizeof proc, "%.40s/%d/%016" PRIx64, zchan__host_id(), (int) pid, r);
    }
    pthread_mutex_unlock(&s_glock);
    return proc;
}

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
static void *s_req_take(zchan_ctx_t *ctx, const char *endpoint, const char *curve)
{
    void *sock = NULL;
    pthread_mutex_lock(&ctx->lock);
    bool shut = ctx->shut;
    pthread_mutex_unlock(&ctx->lock);
    if (shut)
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
    sock = zchan__socket(ctx, ZMQ_DEALER);
    if (!sock)
        return zchan__fail_null(ZCHAN_ESYS);
    int rc = zchan__connect(ctx, sock, endpoint, curve);
    if (rc != 0) {
        zmq_close(sock);
        return zchan__fail_null(rc);
    }
    return sock;
}

//  Gives a request socket back to the pool, or closes it when the pool is
//  full or the endpoint does not fit. A late reply to a request that timed out
//  may still arrive on it; zchan__await_reply skips replies by request id.
static void s_req_give(zchan_ctx_t *ctx, const char *endpoint, const char *curve, void *sock)
{
    pthread_mutex_lock(&ctx->lock);
    bool shut = ctx->shut;
    pthread_mutex_unlock(&ctx->lock);
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

// ---------------------------------------------------------------------------
// The registry of process-wide and host-wide names hosted in this process

bool zchan__registry_find(const char *key, char *endpoint, size_t n)
{
    pthread_mutex_lock(&s_glock);
    const char *ep = s_registry ? (const char *) zhashx_lookup(s_registry, key) : NULL;
    if (ep)
        snprintf(endpoint, n, "%s", ep);
    pthread_mutex_unlock(&s_glock);
    return ep != NULL;
}

int zchan__registry_add(zchan_ctx_t *ctx, const char *key)
{
    int rc = 0;
    pthread_mutex_lock(&s_glock);
    if (!s_registry) {
        s_registry = zhashx_new();
        if (s_registry) {
            zhashx_set_destructor(s_registry, (zhashx_destructor_fn *) zstr_free);
            zhashx_set_duplicator(s_registry, (zhashx_duplicator_fn *) strdup);
        }
    }
    if (!s_registry)
        rc = ZCHAN_ENOMEM;
    else if (zhashx_insert(s_registry, key, ctx->inproc) != 0)
        rc = ZCHAN_EINVAL;
    pthread_mutex_unlock(&s_glock);
    if (rc == 0) {
        pthread_mutex_lock(&ctx->lock);
        zlistx_add_end(ctx->names, (void *) key);
        pthread_mutex_unlock(&ctx->lock);
    }
    return rc;
}

static void s_registry_drop(zchan_ctx_t *ctx)
{
    pthread_mutex_lock(&s_glock);
    for (char *key = (char *) zlistx_first(ctx->names); key; key = (char *) zlistx_next(ctx->names))
        if (s_registry)
            zhashx_delete(s_registry, key);
    pthread_mutex_unlock(&s_glock);
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
    zlistx_destroy(&ctx->parties);
    zlistx_destroy(&ctx->senders);
    pthread_mutex_destroy(&ctx->lock);
    pthread_mutex_destroy(&ctx->pipe_lock);
    pthread_mutex_destroy(&ctx->req_lock);
    pthread_cond_destroy(&ctx->unpinned);
    free(ctx);
}

static void s_ctx_unref(zchan_ctx_t *ctx)
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
    s_ctx_unref(ctx);
}

//  Shuts ctx down, once: its parties die (each one's socket is closed now,
//  or by the call in progress on it when that call ends), each logged as
//  dangling; its hub stops; its request sockets close; its transports let go
//  of what they hold for it (ipc: the files it made in the runtime directory
//  go). Its memory stays until its last reference goes.
static void s_ctx_shut(zchan_ctx_t *ctx, bool at_exit)
{
    pthread_mutex_lock(&s_glock);
    if (ctx->glink) {
        zlistx_delete(s_ctxs, ctx->glink);
        ctx->glink = NULL;
        if (zlistx_size(s_ctxs) == 0)
            zlistx_destroy(&s_ctxs);
    }
    pthread_mutex_unlock(&s_glock);
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
    pthread_mutex_lock(&ctx->pipe_lock);
    zactor_destroy(&ctx->hub);
    pthread_mutex_unlock(&ctx->pipe_lock);
    pthread_mutex_lock(&ctx->req_lock);
    for (int i = 0; i < ctx->nreq; i++)
        zmq_close(ctx->req[i].sock);
    ctx->nreq = 0;
    pthread_mutex_unlock(&ctx->req_lock);
    zchan__curve_ctx_fini(ctx); // after the hub: zauth must outlive its CURVE endpoints
    if (ctx->names) {
        s_registry_drop(ctx);
        zlistx_destroy(&ctx->names);
    }
    //  The transports let go of what they hold on the host (ipc: the socket
    //  files the hub bound, then its lock files): nobody can use them now.
    for (size_t i = 0; zchan__transports[i]; i++)
        if (zchan__transports[i]->ctx_fini)
            zchan__transports[i]->ctx_fini(&ctx->tview[i]);
    if (ctx->zctx)
        s_zctx_release();
}

//  At exit, before czmq's zsys_shutdown: shuts down every context of this
//  process that the program did not destroy (a forked child leaves its
//  parent's alone). Their memory stays: a later exit handler may still hold
//  them, and finds them inert.
static void s_at_exit(void)
{
    pid_t pid = getpid();
    while (true) {
        zchan_ctx_t *ctx = NULL;
        pthread_mutex_lock(&s_glock);
        for (zchan_ctx_t *c = s_ctxs ? zlistx_first(s_ctxs) : NULL; c && !ctx; c = zlistx_next(s_ctxs))
            if (c->pid == pid)
                ctx = c;
        if (ctx)
            atomic_fetch_add(&ctx->refs, 1);
        pthread_mutex_unlock(&s_glock);
        if (!ctx)
            break;
        zsys_warning("zchan: at exit: dangling context (not destroyed); it is shut down");
        s_ctx_shut(ctx, true); // takes it off s_ctxs
        s_ctx_unref(ctx);
    }
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
    ctx->zctx = s_zctx_acquire();
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

    ctx->hub = zactor_new(zchan__hub_actor, ctx);
    if (!ctx->hub) {
        zchan_ctx_destroy(&ctx);
        return zchan__fail_null(ZCHAN_ESYS);
    }
    //  From here the exit handler shuts it down if the program does not.
    pthread_mutex_lock(&s_glock);
    if (!s_ctxs)
        s_ctxs = zlistx_new();
    ctx->glink = s_ctxs ? zlistx_add_end(s_ctxs, ctx) : NULL;
    pthread_mutex_unlock(&s_glock);
    if (!ctx->glink) {
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
    s_ctx_shut(ctx, false);
    s_ctx_unref(ctx);
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

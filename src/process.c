/*  process.c: process-wide state, shared by every context of this process:
    the one ZeroMQ context (czmq's), the list of contexts not yet shut down
    (which the exit handler of src/party.c walks), the request id counter,
    this host's and this process's identities, and the registry of process-
    and host-wide names hosted in this process. One lock (s_glock) guards it
    all. Nothing here knows a context's parties, hub or sockets.
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

//  The ZeroMQ context is czmq's own (zsys_init): ZeroMQ runs one ZAP handler
//  per context, and czmq's zauth, which checks CURVE clients for the hub's
//  ROUTER, makes its handler socket there (src/curve.c). czmq terminates it
//  at exit (zsys_shutdown), and gives a forked child a fresh one.
void *zchan__zctx_acquire(void (*at_exit)(void))
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
        s_exit_hooked = atexit(at_exit) == 0;
    if (s_zctx)
        s_zctx_refs++;
    void *z = s_zctx;
    pthread_mutex_unlock(&s_glock);
    return z;
}

//  czmq's context outlives the last zchan context (czmq may use it still);
//  the next context asks zsys_init again, in case the program shut czmq down.
void zchan__zctx_release(void)
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

int zchan__process_add_ctx(zchan_ctx_t *ctx)
{
    pthread_mutex_lock(&s_glock);
    if (!s_ctxs)
        s_ctxs = zlistx_new();
    ctx->glink = s_ctxs ? zlistx_add_end(s_ctxs, ctx) : NULL;
    pthread_mutex_unlock(&s_glock);
    return ctx->glink ? 0 : ZCHAN_ENOMEM;
}

void zchan__process_remove_ctx(zchan_ctx_t *ctx)
{
    pthread_mutex_lock(&s_glock);
    if (ctx->glink) {
        zlistx_delete(s_ctxs, ctx->glink);
        ctx->glink = NULL;
        if (zlistx_size(s_ctxs) == 0)
            zlistx_destroy(&s_ctxs);
    }
    pthread_mutex_unlock(&s_glock);
}

zchan_ctx_t *zchan__process_take_ctx(pid_t pid)
{
    zchan_ctx_t *ctx = NULL;
    pthread_mutex_lock(&s_glock);
    for (zchan_ctx_t *c = s_ctxs ? zlistx_first(s_ctxs) : NULL; c && !ctx; c = zlistx_next(s_ctxs))
        if (c->pid == pid)
            ctx = c;
    if (ctx)
        atomic_fetch_add(&ctx->refs, 1);
    pthread_mutex_unlock(&s_glock);
    return ctx;
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

void zchan__registry_drop(zchan_ctx_t *ctx)
{
    pthread_mutex_lock(&s_glock);
    for (char *key = (char *) zlistx_first(ctx->names); key; key = (char *) zlistx_next(ctx->names))
        if (s_registry)
            zhashx_delete(s_registry, key);
    pthread_mutex_unlock(&s_glock);
}

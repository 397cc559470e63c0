/*  curve.c: CURVE security on the transports that leave the host (tcp).

    A hub with a server certificate makes ZeroMQ run CURVE on every tcp
    endpoint it binds from then on: traffic is encrypted and authenticated,
    and ZeroMQ asks the context's ZAP handler whether each client's public key
    may connect. That handler is czmq's zauth actor, told to accept the keys of
    the certificates in one directory. ZeroMQ keeps one ZAP handler per ZeroMQ
    context (inproc://zeromq.zap.01), and zauth makes its handler socket in
    czmq's own context, so zchan's contexts use czmq's context (process.c), and
    one zauth serves every hub of the process: one allowed-keys directory per
    process.

    Clients connect to tcp endpoints as CURVE clients when they know the hub's
    public key: from a reference's or a reply's hubinfo ("curve"), or, for a
    URI opened by name, from the context's default server key. ipc and inproc
    never use CURVE: the runtime directory (0700) and socket files (0600)
    already keep other users out.
*/
#include "core.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct zchan__curve zchan__curve_t;

struct zchan__curve {
    pthread_mutex_t lock;             // guards the client part
    bool has_client;                  // client keys are set (a cert, or made)
    uint8_t client_public[32];
    uint8_t client_secret[32];
    char server_key[ZCHAN__KEY_Z85];  // default hub key for tcp URIs, "" if none
    //  The server part is read by the hub thread during BIND; it is written
    //  under ctx->pipe_lock, which the sender of a BIND holds.
    bool server;
    uint8_t server_secret[32];
    char allow[PATH_MAX];             // the allowed-keys directory this context uses
};

// ---------------------------------------------------------------------------
// The process's zauth actor, shared by every context with a server cert

static pthread_mutex_t s_auth_lock = PTHREAD_MUTEX_INITIALIZER;
static zactor_t *s_auth;
static pid_t s_auth_pid;
static size_t s_auth_refs;
static char s_auth_dir[PATH_MAX];

//  Whether some other code of this process already runs a ZAP handler in
//  czmq's context (its own zauth, say): zauth would abort on its bind.
static bool s_zap_taken(void *zctx)
{
    void *probe = zmq_socket(zctx, ZMQ_REP);
    if (!probe)
        return true;
    int zero = 0;
    zmq_setsockopt(probe, ZMQ_LINGER, &zero, sizeof zero);
    bool taken = zmq_bind(probe, "inproc://zeromq.zap.01") != 0;
    if (!taken)
        zmq_unbind(probe, "inproc://zeromq.zap.01"); // inproc unbinds at once
    zmq_close(probe);
    return taken;
}

//  Starts, or shares, the zauth actor that accepts the keys in dir ("*": any
//  key). 0, EINVAL (another directory is in use), ESYS.
static int s_auth_acquire(zchan_ctx_t *ctx, const char *dir)
{
    int rc = 0;
    pthread_mutex_lock(&s_auth_lock);
    if (s_auth && s_auth_pid != getpid()) {
        //  Inherited through fork: its thread is not in this process.
        s_auth = NULL;
        s_auth_refs = 0;
    }
    if (s_auth) {
        if (strcmp(s_auth_dir, dir) != 0) {
            zsys_error("zchan: CURVE: this process already accepts the keys in %s; one allowed-keys directory "
                       "per process (ZeroMQ runs one ZAP handler per context)",
                       s_auth_dir);
            rc = ZCHAN_EINVAL;
        } else
            s_auth_refs++;
    } else if (zsys_init() != ctx->zctx) {
        zsys_error("zchan: CURVE: czmq's context is not this context's (was zsys_shutdown called?)");
        rc = ZCHAN_ESYS;
    } else if (s_zap_taken(ctx->zctx)) {
        zsys_error("zchan: CURVE: a ZAP handler already runs in czmq's context; zchan cannot start zauth");
        rc = ZCHAN_ESYS;
    } else {
        s_auth = zactor_new(zauth, NULL);
        if (!s_auth || zstr_sendx(s_auth, "CURVE", dir, NULL) != 0 || zsock_wait(s_auth) != 0) {
            zactor_destroy(&s_auth);
            zsys_error("zchan: CURVE: cannot start zauth");
            rc = ZCHAN_ESYS;
        } else {
            s_auth_pid = getpid();
            s_auth_refs = 1;
            snprintf(s_auth_dir, sizeof s_auth_dir, "%s", dir);
        }
    }
    pthread_mutex_unlock(&s_auth_lock);
    return rc;
}

static void s_auth_release(void)
{
    pthread_mutex_lock(&s_auth_lock);
    if (s_auth && s_auth_pid == getpid() && s_auth_refs > 0 && --s_auth_refs == 0)
        zactor_destroy(&s_auth);
    pthread_mutex_unlock(&s_auth_lock);
}

// ---------------------------------------------------------------------------
// Certificates and keys

static bool s_all_zero(const uint8_t *k)
{
    for (int i = 0; i < 32; i++)
        if (k[i])
            return false;
    return true;
}

//  Loads a certificate that has its secret key: the file zcert_save wrote
//  (PATH, with PATH_secret beside it) or the secret file itself. 0 or EINVAL.
static int s_load_cert(const char *path, uint8_t *pub, uint8_t *sec)
{
    zcert_t *cert = path && *path ? zcert_load(path) : NULL;
    if (!cert) {
        zsys_error("zchan: CURVE: cannot read certificate %s", path ? path : "(null)");
        return ZCHAN_EINVAL;
    }
    memcpy(pub, zcert_public_key(cert), 32);
    memcpy(sec, zcert_secret_key(cert), 32);
    zcert_destroy(&cert);
    if (s_all_zero(sec)) {
        zsys_error("zchan: CURVE: %s holds no secret key (give the file zcert_save wrote, with its _secret)", path);
        return ZCHAN_EINVAL;
    }
    return 0;
}

//  Checks a Z85 public key: 40 characters that decode to 32 bytes.
static bool s_key_valid(const char *z85)
{
    uint8_t key[32];
    return z85 && strlen(z85) == 40 && zmq_z85_decode(key, z85) != NULL;
}

static int s_set_server(zchan_ctx_t *ctx, const char *cert_file, const char *allow)
{
    uint8_t pub[32], sec[32];
    int rc = s_load_cert(cert_file, pub, sec);
    if (rc != 0)
        return rc;
    char dir[PATH_MAX];
    struct stat st;
    if (!allow || !*allow)
        rc = ZCHAN_EINVAL;
    else if (strcmp(allow, CURVE_ALLOW_ANY) == 0)
        snprintf(dir, sizeof dir, "%s", allow);
    else if (stat(allow, &st) != 0 || !S_ISDIR(st.st_mode) || !realpath(allow, dir))
        rc = ZCHAN_EINVAL;
    if (rc != 0) {
        zsys_error("zchan: CURVE: the allowed-keys directory %s is not a directory", allow ? allow : "(null)");
        return rc;
    }
    //  One exchange on the pipe at a time, and the hub reads these during one.
    pthread_mutex_lock(&ctx->pipe_lock);
    pthread_mutex_lock(&ctx->lock);
    for (int i = 0; i < ctx->nbound && rc == 0; i++) {
        const zchan__transport_t *t = zchan__transport_for(ctx->bound[i]);
        if (t && t->curve)
            rc = ZCHAN_EINVAL;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (rc != 0)
        zsys_error("zchan: CURVE: set the server certificate before binding tcp");
    bool had = ctx->curve->server;
    if (rc == 0)
        rc = s_auth_acquire(ctx, dir);
    if (rc == 0) {
        if (had)
            s_auth_release();
        ctx->curve->server = true;
        memcpy(ctx->curve->server_secret, sec, 32);
        snprintf(ctx->curve->allow, sizeof ctx->curve->allow, "%s", dir);
        pthread_mutex_lock(&ctx->lock);
        zmq_z85_encode(ctx->info.curve, pub, 32);
        pthread_mutex_unlock(&ctx->lock);
    }
    pthread_mutex_unlock(&ctx->pipe_lock);
    return rc;
}

static int s_set_client(zchan_ctx_t *ctx, const char *cert_file, const char *server_key)
{
    uint8_t pub[32], sec[32];
    if (cert_file && s_load_cert(cert_file, pub, sec) != 0)
        return ZCHAN_EINVAL;
    if (server_key && !s_key_valid(server_key)) {
        zsys_error("zchan: CURVE: the server key is not a Z85 public key (40 characters)");
        return ZCHAN_EINVAL;
    }
    zchan__curve_t *c = ctx->curve;
    pthread_mutex_lock(&c->lock);
    if (cert_file) {
        memcpy(c->client_public, pub, 32);
        memcpy(c->client_secret, sec, 32);
        c->has_client = true;
    }
    snprintf(c->server_key, sizeof c->server_key, "%s", server_key ? server_key : "");
    pthread_mutex_unlock(&c->lock);
    return 0;
}

// ---------------------------------------------------------------------------
// Internal interface (core.h)

int zchan__curve_ctx_init(zchan_ctx_t *ctx)
{
    zchan__curve_t *c = calloc(1, sizeof *c);
    if (!c)
        return ZCHAN_ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    ctx->curve = c;
    const char *cert = getenv("ZCHAN_CURVE_CERT"), *allow = getenv("ZCHAN_CURVE_ALLOW");
    const char *key = getenv("ZCHAN_CURVE_SERVER_KEY");
    cert = cert && *cert ? cert : NULL;
    allow = allow && *allow ? allow : NULL;
    key = key && *key ? key : NULL;
    int rc = 0;
    if (allow && !cert) {
        zsys_error("zchan: $ZCHAN_CURVE_ALLOW needs $ZCHAN_CURVE_CERT, the hub's certificate");
        rc = ZCHAN_EINVAL;
    }
    if (rc == 0 && (cert || key))
        rc = s_set_client(ctx, cert, key);
    if (rc == 0 && allow)
        rc = s_set_server(ctx, cert, allow);
    return rc;
}

void zchan__curve_ctx_fini(zchan_ctx_t *ctx)
{
    zchan__curve_t *c = ctx->curve;
    if (!c)
        return;
    if (c->server)
        s_auth_release();
    pthread_mutex_destroy(&c->lock);
    memset(c, 0, sizeof *c); // no secret keys left in freed memory
    free(c);
    ctx->curve = NULL;
}

int zchan__curve_bind_opts(zchan_ctx_t *ctx, void *router, const char *endpoint)
{
    zchan__curve_t *c = ctx->curve;
    if (!c || !c->server)
        return 0; // never touched: the ROUTER stays on ZeroMQ's NULL mechanism
    const zchan__transport_t *t = zchan__transport_for(endpoint);
    int on = t && t->curve ? 1 : 0;
    //  ZeroMQ copies the mechanism into each listener when it binds.
    if (zmq_setsockopt(router, ZMQ_CURVE_SERVER, &on, sizeof on) != 0
        || (on && zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, c->server_secret, 32) != 0)) {
        zsys_error("zchan hub: cannot set CURVE for %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return ZCHAN_ESYS;
    }
    return 0;
}

void zchan__curve_key_for(zchan_ctx_t *ctx, const char *endpoint, const char *server_key, char *out)
{
    out[0] = 0;
    const zchan__transport_t *t = zchan__transport_for(endpoint);
    if (!t || !t->curve)
        return;
    if (server_key) {
        snprintf(out, ZCHAN__KEY_Z85, "%s", server_key);
        return;
    }
    pthread_mutex_lock(&ctx->curve->lock);
    snprintf(out, ZCHAN__KEY_Z85, "%s", ctx->curve->server_key);
    pthread_mutex_unlock(&ctx->curve->lock);
}

int zchan__connect(zchan_ctx_t *ctx, void *sock, const char *endpoint, const char *server_key)
{
    char key[ZCHAN__KEY_Z85];
    zchan__curve_key_for(ctx, endpoint, server_key, key);
    if (key[0]) {
        zchan__curve_t *c = ctx->curve;
        uint8_t srv[32], pub[32], sec[32];
        if (!zmq_z85_decode(srv, key))
            return zchan__fail(ZCHAN_EINVAL);
        pthread_mutex_lock(&c->lock);
        int rc = 0;
        if (!c->has_client) {
            //  No certificate: a key pair of its own, which only a hub that
            //  accepts any key (allowed keys "*") lets in.
            char zpub[ZCHAN__KEY_Z85], zsec[ZCHAN__KEY_Z85];
            rc = zmq_curve_keypair(zpub, zsec);
            if (rc == 0 && zmq_z85_decode(c->client_public, zpub) && zmq_z85_decode(c->client_secret, zsec))
                c->has_client = true;
            memset(zsec, 0, sizeof zsec);
        }
        memcpy(pub, c->client_public, 32);
        memcpy(sec, c->client_secret, 32);
        bool ok = c->has_client;
        pthread_mutex_unlock(&c->lock);
        ok = ok && zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, srv, 32) == 0
             && zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 32) == 0
             && zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 32) == 0;
        memset(sec, 0, sizeof sec);
        if (!ok) {
            zsys_error("zchan: cannot make a CURVE client for %s: %s", endpoint, zmq_strerror(zmq_errno()));
            return zchan__fail(ZCHAN_ESYS);
        }
    }
    if (zmq_connect(sock, endpoint) != 0)
        return zchan__fail(ZCHAN_EINVAL);
    return 0;
}

// ---------------------------------------------------------------------------
// Public API (zchan.h)

int zchan_ctx_set_curve_server(zchan_ctx_t *ctx, const char *cert_file, const char *allowed_keys_dir)
{
    zchan__assert(ctx);
    int rc = s_set_server(ctx, cert_file, allowed_keys_dir);
    return rc ? zchan__fail(rc) : 0;
}

int zchan_ctx_set_curve_client(zchan_ctx_t *ctx, const char *cert_file, const char *server_public_key)
{
    zchan__assert(ctx);
    int rc = s_set_client(ctx, cert_file, server_public_key);
    return rc ? zchan__fail(rc) : 0;
}

const char *zchan_ctx_curve_public_key(zchan_ctx_t *ctx)
{
    zchan__assert(ctx);
    pthread_mutex_lock(&ctx->lock);
    const char *key = ctx->info.curve[0] ? ctx->info.curve : NULL;
    pthread_mutex_unlock(&ctx->lock);
    return key ? key : zchan__fail_null(ZCHAN_ENOTFOUND);
}

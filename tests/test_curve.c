/*  test_curve.c: CURVE security on tcp (zchan_ctx_set_curve_server and
    zchan_ctx_set_curve_client).

    The setup makes certificates with czmq's zcert in the test's temporary
    directory: the hub's, an allowed client's (its public file copied into
    the allowed-keys directory) and a rogue client's that is not allowed.
    Every hub is a context bound at tcp://127.0.0.1:0 after it got its server
    certificate; the clients are other contexts of this process, with a short
    timeout. What the tests assert:

    - An allowed client, told the hub's key, creates, sends and receives.
    - A client with no keys, one with a certificate that is not allowed, and
      an allowed one told the wrong hub key all fail with ETIMEDOUT, and
      nothing they tried reaches the hub (zchan_stat on the hub's side).
    - A reference carries the hub's key, so an allowed client reaches the hub
      through it without being told the key; a client without an allowed
      certificate still cannot; an old reference without the key decodes.
    - On the wire: a TCP proxy in this process, between the client and the
      hub, records every byte. With CURVE the payload's plaintext is not in
      them; without CURVE it is (which shows the check can see it).
    - ipc is unaffected: a client with no keys uses the same hub over ipc.
    - Allowed keys "*": a client with no certificate of its own gets in.
    - Misuse gives EINVAL; the environment variables configure both sides.
    - zchan-relay with --curve-cert and --curve-allow serves the zchan CLI
      with --curve-cert and --server-key, and refuses a rogue certificate;
      zchan keygen writes a certificate whose secret file is private.
*/
#include "testutil.h"
#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define CLIENT_TIMEOUT_MS 800
#define MARKER "PLAINTEXT-MARKER-7f3a9c"
#define WIRE_NAME "wire-channel-name-5d21"

static char s_certs[512];       // the certificate directory
static char s_allowed[600];     // the allowed-keys directory
static char s_server_cert[600]; // the hub's certificate (with _secret)
static char s_client_cert[600]; // an allowed client's
static char s_rogue_cert[600];  // a client's that is not allowed
static char s_server_key[41];   // the hub's public key, Z85

// ---------------------------------------------------------------------------
// Helpers

//  Makes a certificate at path (path and path_secret); with public_copy,
//  also saves its public part there. Writes its public key into key.
static void s_make_cert(const char *path, const char *public_copy, char *key)
{
    zcert_t *cert = zcert_new();
    assert_non_null(cert);
    assert_int_equal(zcert_save(cert, path), 0);
    if (public_copy)
        assert_int_equal(zcert_save_public(cert, public_copy), 0);
    if (key)
        snprintf(key, 41, "%s", zcert_public_txt(cert));
    zcert_destroy(&cert);
}

static int s_setup(void **state)
{
    (void) state;
    const char *dir = tu_ipc_dir();
    snprintf(s_certs, sizeof s_certs, "%s/certs", dir);
    snprintf(s_allowed, sizeof s_allowed, "%s/allowed", s_certs);
    if (mkdir(s_certs, 0700) != 0 || mkdir(s_allowed, 0700) != 0)
        return -1;
    snprintf(s_server_cert, sizeof s_server_cert, "%s/server.cert", s_certs);
    snprintf(s_client_cert, sizeof s_client_cert, "%s/client.cert", s_certs);
    snprintf(s_rogue_cert, sizeof s_rogue_cert, "%s/rogue.cert", s_certs);
    char copy[700];
    snprintf(copy, sizeof copy, "%s/client.cert", s_allowed);
    s_make_cert(s_server_cert, NULL, s_server_key);
    s_make_cert(s_client_cert, copy, NULL);
    s_make_cert(s_rogue_cert, NULL, NULL);
    return 0;
}

static int s_teardown(void **state)
{
    (void) state;
    tu_cleanup_dir();
    return 0;
}

//  A CURVE hub on 127.0.0.1, with allowed keys allow. Writes its port.
static zchan_ctx_t *s_curve_hub(const char *allow, int *port)
{
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    tu_assert_rc(zchan_ctx_set_curve_server(ctx, s_server_cert, allow), ZCHAN_OK);
    assert_string_equal(zchan_ctx_curve_public_key(ctx), s_server_key);
    tu_assert_rc(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    const char *ep = zchan_ctx_endpoint(ctx, "tcp");
    assert_non_null(ep);
    *port = atoi(strrchr(ep, ':') + 1);
    return ctx;
}

//  A client context with a short timeout and, if cert or key, CURVE settings.
static zchan_ctx_t *s_client(const char *cert, const char *key)
{
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    zchan_ctx_set_timeout(ctx, CLIENT_TIMEOUT_MS);
    if (cert || key)
        tu_assert_rc(zchan_ctx_set_curve_client(ctx, cert, key), ZCHAN_OK);
    return ctx;
}

static void s_uri(char *out, size_t n, int port, const char *name)
{
    snprintf(out, n, "tcp://127.0.0.1:%d/%s", port, name);
}

//  Sends then receives text over ch: a full round trip through its hub.
static void s_round_trip(zchan_t *ch, const char *text)
{
    zchan_sender_t *tx = zchan_sender_new(ch);
    assert_non_null(tx);
    zchan_receiver_t *rx = zchan_receiver_new(ch, 0);
    assert_non_null(rx);
    tu_assert_rc(zchan_send_str(tx, text, 2000), ZCHAN_OK);
    char *got = NULL;
    tu_assert_rc(zchan_recv_str(rx, &got, 2000), ZCHAN_OK);
    assert_string_equal(got, text);
    free(got);
    zchan_receiver_destroy(&rx);
    zchan_sender_destroy(&tx);
}

//  Everything a client that cannot get in tries fails with ETIMEDOUT.
static void s_locked_out(zchan_ctx_t *client, int port)
{
    char uri[128];
    s_uri(uri, sizeof uri, port, "jobs");
    assert_null(zchan_open(client, uri));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    assert_null(zchan_anycast_new(client, uri, 5));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    s_uri(uri, sizeof uri, port, "intruder");
    assert_null(zchan_anycast_new(client, uri, 5));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
}

//  The hub's view of its channel "jobs": nobody attached, nothing sent, and
//  no channel "intruder".
static void s_assert_untouched(zchan_ctx_t *hub, int port)
{
    char uri[128];
    s_uri(uri, sizeof uri, port, "jobs");
    zchan_t *own = zchan_open(hub, uri);
    assert_non_null(own);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(own, &st), ZCHAN_OK);
    assert_int_equal(st.senders, 0);
    assert_int_equal(st.receivers, 0);
    assert_int_equal(st.sent, 0);
    assert_int_equal(st.delivered, 0);
    zchan_destroy(&own);
    s_uri(uri, sizeof uri, port, "intruder");
    assert_null(zchan_open(hub, uri));
    assert_int_equal(zchan_errno(), ZCHAN_ENOTFOUND);
}

//  Packs, as a foreign program could, a reference to anycast channel "jobs"
//  on the hub at port, from a hub on another host (so only its tcp locator
//  is reachable), with the hub's CURVE key when key is not NULL. Unpacks it
//  into *obj (in zone).
static void s_reference(int port, const char *key, msgpack_zone *zone, msgpack_object *obj, msgpack_sbuffer *out)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    char uri[128], loc[128];
    s_uri(uri, sizeof uri, port, "jobs");
    snprintf(loc, sizeof loc, "tcp://127.0.0.1:%d", port);
    const char *strs[] = {"jobs", "jobs", uri};
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, ZCHAN_ANYCAST);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_str(&pk, strlen(strs[i]));
        msgpack_pack_str_body(&pk, strs[i], strlen(strs[i]));
    }
    const char *kv[] = {"host", "elsewhere", "proc", "elsewhere/1/0", "hub", "elsewhere/1/0/1"};
    msgpack_pack_map(&pk, key ? 5 : 4);
    for (int i = 0; i < 6; i++) {
        msgpack_pack_str(&pk, strlen(kv[i]));
        msgpack_pack_str_body(&pk, kv[i], strlen(kv[i]));
    }
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "loc", 3);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str(&pk, strlen(loc));
    msgpack_pack_str_body(&pk, loc, strlen(loc));
    if (key) {
        msgpack_pack_str(&pk, 5);
        msgpack_pack_str_body(&pk, "curve", 5);
        msgpack_pack_str(&pk, strlen(key));
        msgpack_pack_str_body(&pk, key, strlen(key));
    }
    msgpack_sbuffer_init(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_ext(&pk, body.size, ZCHAN_EXT_REF);
    msgpack_pack_ext_body(&pk, body.data, body.size);
    msgpack_sbuffer_destroy(&body);
    size_t off = 0;
    assert_int_equal(msgpack_unpack(out->data, out->size, &off, zone, obj), MSGPACK_UNPACK_SUCCESS);
}

// ---------------------------------------------------------------------------
// A TCP proxy that records what passes: the client connects to it, it
// connects to the hub.

#define PROXY_PAIRS 16

typedef struct {
    int lfd, port, target;
    int wake[2];
    int fds[PROXY_PAIRS][2]; // client side, hub side; -1 when free
    pthread_t thread;
    pthread_mutex_t lock;
    char *buf;
    size_t len, cap;
} proxy_t;

static void s_proxy_record(proxy_t *p, const char *data, size_t n)
{
    pthread_mutex_lock(&p->lock);
    if (p->len + n > p->cap) {
        size_t cap = (p->len + n) * 2;
        char *nb = realloc(p->buf, cap);
        if (nb) {
            p->buf = nb;
            p->cap = cap;
        }
    }
    if (p->len + n <= p->cap) {
        memcpy(p->buf + p->len, data, n);
        p->len += n;
    }
    pthread_mutex_unlock(&p->lock);
}

static void s_proxy_accept(proxy_t *p)
{
    int c = accept(p->lfd, NULL, NULL);
    if (c < 0)
        return;
    int h = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t) p->target)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int slot = -1;
    for (int i = 0; i < PROXY_PAIRS && slot < 0; i++)
        if (p->fds[i][0] < 0)
            slot = i;
    if (h < 0 || slot < 0 || connect(h, (struct sockaddr *) &a, sizeof a) != 0) {
        close(c);
        if (h >= 0)
            close(h);
        return;
    }
    p->fds[slot][0] = c;
    p->fds[slot][1] = h;
}

//  Moves what is readable on fds[i][side] to the other side; closes the pair
//  at the end of either.
static void s_proxy_move(proxy_t *p, int i, int side)
{
    char data[65536];
    ssize_t n = read(p->fds[i][side], data, sizeof data);
    bool ok = n > 0;
    if (ok) {
        s_proxy_record(p, data, (size_t) n);
        for (ssize_t off = 0; ok && off < n;) {
            ssize_t w = write(p->fds[i][!side], data + off, (size_t) (n - off));
            ok = w > 0;
            off += w > 0 ? w : 0;
        }
    }
    if (!ok) {
        close(p->fds[i][0]);
        close(p->fds[i][1]);
        p->fds[i][0] = p->fds[i][1] = -1;
    }
}

static void *s_proxy_run(void *arg)
{
    proxy_t *p = arg;
    while (true) {
        struct pollfd pfd[2 + 2 * PROXY_PAIRS];
        int where[2 + 2 * PROXY_PAIRS][2];
        int n = 0;
        pfd[n++] = (struct pollfd) {p->wake[0], POLLIN, 0};
        pfd[n++] = (struct pollfd) {p->lfd, POLLIN, 0};
        for (int i = 0; i < PROXY_PAIRS; i++)
            for (int side = 0; side < 2 && p->fds[i][0] >= 0; side++) {
                where[n][0] = i, where[n][1] = side;
                pfd[n++] = (struct pollfd) {p->fds[i][side], POLLIN, 0};
            }
        if (poll(pfd, (nfds_t) n, -1) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break;
        if (pfd[1].revents & POLLIN)
            s_proxy_accept(p);
        for (int k = 2; k < n; k++)
            if ((pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) && p->fds[where[k][0]][0] >= 0)
                s_proxy_move(p, where[k][0], where[k][1]);
    }
    return NULL;
}

static void s_proxy_start(proxy_t *p, int target)
{
    memset(p, 0, sizeof *p);
    p->target = target;
    for (int i = 0; i < PROXY_PAIRS; i++)
        p->fds[i][0] = p->fds[i][1] = -1;
    pthread_mutex_init(&p->lock, NULL);
    assert_int_equal(pipe(p->wake), 0);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(p->lfd, (struct sockaddr *) &a, sizeof a), 0);
    assert_int_equal(listen(p->lfd, 16), 0);
    socklen_t len = sizeof a;
    getsockname(p->lfd, (struct sockaddr *) &a, &len);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, s_proxy_run, p), 0);
}

static void s_proxy_stop(proxy_t *p)
{
    if (write(p->wake[1], "x", 1) != 1)
        fail_msg("cannot stop the proxy");
    pthread_join(p->thread, NULL);
    for (int i = 0; i < PROXY_PAIRS; i++)
        if (p->fds[i][0] >= 0) {
            close(p->fds[i][0]);
            close(p->fds[i][1]);
        }
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->lock);
}

static bool s_proxy_saw(proxy_t *p, const char *text)
{
    pthread_mutex_lock(&p->lock);
    bool seen = p->buf && memmem(p->buf, p->len, text, strlen(text)) != NULL;
    pthread_mutex_unlock(&p->lock);
    return seen;
}

// ---------------------------------------------------------------------------
// Tests

static void test_allowed_client(void **state)
{
    (void) state;
    int port;
    zchan_ctx_t *hub = s_curve_hub(s_allowed, &port);
    char uri[128];
    s_uri(uri, sizeof uri, port, "jobs");
    zchan_ctx_t *client = s_client(s_client_cert, s_server_key);
    zchan_t *ch = zchan_anycast_new(client, uri, 10);
    assert_non_null(ch);
    s_round_trip(ch, "hello over CURVE");
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.delivered, 1);
    tu_assert_rc(zchan_close(ch), ZCHAN_OK);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&client);
    zchan_ctx_destroy(&hub);
}

static void test_locked_out(void **state)
{
    (void) state;
    int port;
    zchan_ctx_t *hub = s_curve_hub(s_allowed, &port);
    char uri[128];
    s_uri(uri, sizeof uri, port, "jobs");
    zchan_t *own = zchan_anycast_new(hub, uri, 10);
    assert_non_null(own);
    char rogue_key[41];
    zcert_t *rogue = zcert_load(s_rogue_cert);
    assert_non_null(rogue);
    snprintf(rogue_key, sizeof rogue_key, "%s", zcert_public_txt(rogue));
    zcert_destroy(&rogue);

    zchan_ctx_t *nokeys = s_client(NULL, NULL);
    s_locked_out(nokeys, port);
    zchan_ctx_t *notallowed = s_client(s_rogue_cert, s_server_key);
    s_locked_out(notallowed, port);
    zchan_ctx_t *wrongserver = s_client(s_client_cert, rogue_key);
    s_locked_out(wrongserver, port);
    s_assert_untouched(hub, port);

    zchan_ctx_destroy(&wrongserver);
    zchan_ctx_destroy(&notallowed);
    zchan_ctx_destroy(&nokeys);
    zchan_destroy(&own);
    zchan_ctx_destroy(&hub);
}

static void test_reference_carries_key(void **state)
{
    (void) state;
    int port;
    zchan_ctx_t *hub = s_curve_hub(s_allowed, &port);
    char uri[128];
    s_uri(uri, sizeof uri, port, "jobs");
    zchan_t *own = zchan_anycast_new(hub, uri, 10);
    assert_non_null(own);

    //  The hub's own references carry its key in hubinfo.
    zchan_msg_t *msg = zchan_msg_new();
    tu_assert_rc(zchan_msg_pack_chan(msg, own), ZCHAN_OK);
    const msgpack_object *ref = zchan_msg_object(msg);
    assert_non_null(ref);
    assert_int_equal(ref->type, MSGPACK_OBJECT_EXT);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object body;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(ref->via.ext.ptr, ref->via.ext.size, &off, &zone, &body),
                     MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *info = &body.via.array.ptr[5];
    bool found = false;
    for (uint32_t i = 0; i < info->via.map.size; i++) {
        const msgpack_object_kv *kv = &info->via.map.ptr[i];
        if (kv->key.via.str.size == 5 && memcmp(kv->key.via.str.ptr, "curve", 5) == 0) {
            assert_int_equal(kv->val.via.str.size, 40);
            assert_memory_equal(kv->val.via.str.ptr, s_server_key, 40);
            found = true;
        }
    }
    assert_true(found);
    zchan_msg_destroy(&msg);

    //  An allowed client, not told the hub's key, reaches it through a
    //  reference from elsewhere (only its tcp locator is reachable).
    msgpack_object obj;
    msgpack_sbuffer sb;
    s_reference(port, s_server_key, &zone, &obj, &sb);
    zchan_ctx_t *client = s_client(s_client_cert, NULL);
    zchan_t *ch = zchan_msg_chan(client, &obj);
    assert_non_null(ch);
    s_round_trip(ch, "through a reference");
    zchan_destroy(&ch);
    //  The same reference is no key to a client without an allowed
    //  certificate.
    zchan_ctx_t *nokeys = s_client(NULL, NULL);
    ch = zchan_msg_chan(nokeys, &obj);
    assert_non_null(ch);
    assert_null(zchan_sender_new(ch));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    assert_null(zchan_receiver_new(ch, 0));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    zchan_destroy(&ch);
    msgpack_sbuffer_destroy(&sb);
    //  A reference without the key (as before CURVE) still decodes; over it,
    //  the client connects without CURVE, which this hub refuses.
    s_reference(port, NULL, &zone, &obj, &sb);
    ch = zchan_msg_chan(client, &obj);
    assert_non_null(ch);
    assert_null(zchan_sender_new(ch));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    zchan_destroy(&ch);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&zone);

    zchan_stat_t st;
    tu_assert_rc(zchan_stat(own, &st), ZCHAN_OK);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.senders, 0);
    assert_int_equal(st.receivers, 0);
    zchan_ctx_destroy(&nokeys);
    zchan_ctx_destroy(&client);
    zchan_destroy(&own);
    zchan_ctx_destroy(&hub);
}

//  Sends MARKER through a proxy to a hub at port; returns whether the proxy
//  saw the plaintext.
static bool s_marker_seen(int port, const char *cert, const char *key)
{
    proxy_t proxy;
    s_proxy_start(&proxy, port);
    char uri[128];
    s_uri(uri, sizeof uri, proxy.port, WIRE_NAME);
    zchan_ctx_t *client = s_client(cert, key);
    zchan_t *ch = zchan_anycast_new(client, uri, 10);
    assert_non_null(ch);
    for (int i = 0; i < 3; i++)
        s_round_trip(ch, MARKER);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&client);
    s_proxy_stop(&proxy);
    assert_true(proxy.len > 0);
    bool seen = s_proxy_saw(&proxy, MARKER) || s_proxy_saw(&proxy, WIRE_NAME);
    free(proxy.buf);
    return seen;
}

static void test_encrypted_on_the_wire(void **state)
{
    (void) state;
    //  Without CURVE the recorder sees the payload: the check works.
    zchan_ctx_t *plain = zchan_ctx_new();
    assert_non_null(plain);
    tu_assert_rc(zchan_ctx_bind(plain, "tcp://127.0.0.1:0"), ZCHAN_OK);
    int port = atoi(strrchr(zchan_ctx_endpoint(plain, "tcp"), ':') + 1);
    assert_true(s_marker_seen(port, NULL, NULL));
    zchan_ctx_destroy(&plain);
    //  With CURVE it sees neither the payload nor the channel's name.
    zchan_ctx_t *hub = s_curve_hub(s_allowed, &port);
    assert_false(s_marker_seen(port, s_client_cert, s_server_key));
    zchan_ctx_destroy(&hub);
}

static void test_ipc_unaffected(void **state)
{
    (void) state;
    int port;
    zchan_ctx_t *hub = s_curve_hub(s_allowed, &port);
    char name[64], uri[128];
    snprintf(name, sizeof name, "ipc://curvehub-%d", (int) getpid());
    tu_assert_rc(zchan_ctx_bind(hub, name), ZCHAN_OK);
    snprintf(uri, sizeof uri, "%s/jobs", name);
    zchan_ctx_t *nokeys = s_client(NULL, NULL);
    zchan_t *ch = zchan_anycast_new(nokeys, uri, 10);
    assert_non_null(ch);
    s_round_trip(ch, "over ipc, no keys");
    zchan_destroy(&ch);
    //  ...while its tcp endpoint, bound before, still wants CURVE.
    s_locked_out(nokeys, port);
    zchan_ctx_destroy(&nokeys);
    zchan_ctx_destroy(&hub);
}

static void test_allow_any(void **state)
{
    (void) state;
    int port;
    zchan_ctx_t *hub = s_curve_hub("*", &port);
    char uri[128];
    s_uri(uri, sizeof uri, port, "open");
    //  No certificate: the client makes a key pair of its own.
    zchan_ctx_t *client = s_client(NULL, s_server_key);
    zchan_t *ch = zchan_anycast_new(client, uri, 10);
    assert_non_null(ch);
    s_round_trip(ch, "any key");
    zchan_destroy(&ch);
    //  Without the hub's key it is still plain tcp, which the hub refuses.
    zchan_ctx_t *nokeys = s_client(NULL, NULL);
    assert_null(zchan_open(nokeys, uri));
    assert_int_equal(zchan_errno(), ZCHAN_ETIMEDOUT);
    zchan_ctx_destroy(&nokeys);
    zchan_ctx_destroy(&client);
    zchan_ctx_destroy(&hub);
}

static void test_misuse(void **state)
{
    (void) state;
    zchan_ctx_t *ctx = zchan_ctx_new();
    assert_non_null(ctx);
    assert_null(zchan_ctx_curve_public_key(ctx));
    assert_int_equal(zchan_errno(), ZCHAN_ENOTFOUND);
    char missing[700], public_only[700];
    snprintf(missing, sizeof missing, "%s/none.cert", s_certs);
    snprintf(public_only, sizeof public_only, "%s/client.cert", s_allowed);
    tu_assert_rc(zchan_ctx_set_curve_server(ctx, missing, s_allowed), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_curve_server(ctx, public_only, s_allowed), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_curve_server(ctx, s_server_cert, missing), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_curve_server(ctx, s_server_cert, NULL), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_curve_client(ctx, missing, NULL), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_curve_client(ctx, NULL, "not-a-key"), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_curve_client(ctx, public_only, s_server_key), ZCHAN_EINVAL);
    //  The secret file itself is a certificate too.
    char secret[700];
    snprintf(secret, sizeof secret, "%s_secret", s_client_cert);
    tu_assert_rc(zchan_ctx_set_curve_client(ctx, secret, s_server_key), ZCHAN_OK);
    //  One allowed-keys directory per process.
    tu_assert_rc(zchan_ctx_set_curve_server(ctx, s_server_cert, s_allowed), ZCHAN_OK);
    zchan_ctx_t *other = zchan_ctx_new();
    assert_non_null(other);
    tu_assert_rc(zchan_ctx_set_curve_server(other, s_server_cert, s_certs), ZCHAN_EINVAL);
    tu_assert_rc(zchan_ctx_set_curve_server(other, s_server_cert, s_allowed), ZCHAN_OK);
    zchan_ctx_destroy(&other);
    //  Not after a tcp bind.
    tu_assert_rc(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    tu_assert_rc(zchan_ctx_set_curve_server(ctx, s_server_cert, s_allowed), ZCHAN_EINVAL);
    zchan_ctx_destroy(&ctx);
    //  A plain context that bound tcp first cannot become a CURVE hub.
    ctx = zchan_ctx_new();
    tu_assert_rc(zchan_ctx_bind(ctx, "tcp://127.0.0.1:0"), ZCHAN_OK);
    tu_assert_rc(zchan_ctx_set_curve_server(ctx, s_server_cert, s_allowed), ZCHAN_EINVAL);
    zchan_ctx_destroy(&ctx);
}

static void test_environment(void **state)
{
    (void) state;
    setenv("ZCHAN_CURVE_ALLOW", s_allowed, 1);
    assert_null(zchan_ctx_new()); // no certificate for the hub
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    setenv("ZCHAN_CURVE_CERT", s_server_cert, 1);
    zchan_ctx_t *hub = zchan_ctx_new();
    assert_non_null(hub);
    unsetenv("ZCHAN_CURVE_ALLOW");
    assert_string_equal(zchan_ctx_curve_public_key(hub), s_server_key);
    tu_assert_rc(zchan_ctx_bind(hub, "tcp://127.0.0.1:0"), ZCHAN_OK);
    int port = atoi(strrchr(zchan_ctx_endpoint(hub, "tcp"), ':') + 1);
    char uri[128];
    s_uri(uri, sizeof uri, port, "env");

    setenv("ZCHAN_CURVE_CERT", s_client_cert, 1);
    setenv("ZCHAN_CURVE_SERVER_KEY", s_server_key, 1);
    zchan_ctx_t *client = zchan_ctx_new();
    assert_non_null(client);
    zchan_ctx_set_timeout(client, CLIENT_TIMEOUT_MS);
    zchan_t *ch = zchan_broadcast_new(client, uri, false);
    assert_non_null(ch);
    s_round_trip(ch, "configured by the environment");
    zchan_destroy(&ch);
    zchan_ctx_destroy(&client);
    setenv("ZCHAN_CURVE_SERVER_KEY", "bad", 1);
    assert_null(zchan_ctx_new());
    assert_int_equal(zchan_errno(), ZCHAN_EINVAL);
    unsetenv("ZCHAN_CURVE_SERVER_KEY");
    unsetenv("ZCHAN_CURVE_CERT");
    zchan_ctx_destroy(&hub);
}

// ---------------------------------------------------------------------------
// The tools

//  Starts argv with stdout to out and stderr to err (NULL: /dev/null).
static pid_t s_spawn(char *const argv[], const char *out, const char *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err ? err : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("cannot start %s: %s", argv[0], strerror(rc));
    return pid;
}

//  Runs argv to its end; returns its exit code (-1 if it did not exit).
static int s_run(char *const argv[], const char *out)
{
    pid_t pid = s_spawn(argv, out, NULL);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

//  Reads the first line of path into out; false if there is none.
static bool s_first_line(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    bool ok = f && fgets(out, (int) n, f);
    if (f)
        fclose(f);
    if (ok)
        out[strcspn(out, "\n")] = 0;
    return ok && out[0];
}

static void test_relay_and_cli(void **state)
{
    (void) state;
    const char *bindir = getenv("ZCHAN_TEST_BIN_DIR");
    if (!bindir)
        skip();
    char relay[600], cli[600], epfile[600], out[600], log[600], ep[256], line[256];
    snprintf(relay, sizeof relay, "%s/tools/zchan-relay", bindir);
    snprintf(cli, sizeof cli, "%s/tools/zchan", bindir);
    snprintf(epfile, sizeof epfile, "%s/relay.ep", s_certs);
    snprintf(out, sizeof out, "%s/cli.out", s_certs);
    snprintf(log, sizeof log, "%s/relay.log", s_certs);
    char *rargv[] = {relay, "--bind", "tcp://127.0.0.1:0", "--curve-cert", s_server_cert, "--curve-allow",
                     s_allowed, "--endpoint-file", epfile, NULL};
    pid_t rpid = s_spawn(rargv, NULL, log);
    for (int i = 0; i < 100 && !s_first_line(epfile, ep, sizeof ep); i++)
        usleep(50 * 1000);
    assert_true(s_first_line(epfile, ep, sizeof ep));
    char uri[300];
    snprintf(uri, sizeof uri, "%s/jobs", ep);

    char *send[] = {cli, "send", "--anycast", "--curve-cert", s_client_cert, "--server-key", s_server_key, uri,
                    "\"hi\"", NULL};
    assert_int_equal(s_run(send, NULL), 0);
    char *recv[] = {cli, "recv", "--curve-cert", s_client_cert, "--server-key", s_server_key, "-n", "1", uri, NULL};
    assert_int_equal(s_run(recv, out), 0);
    assert_true(s_first_line(out, line, sizeof line));
    assert_string_equal(line, "\"hi\"");
    setenv("ZCHAN_TIMEOUT_MS", "500", 1);
    char *rogue[] = {cli, "send", "--curve-cert", s_rogue_cert, "--server-key", s_server_key, uri, "1", NULL};
    assert_int_equal(s_run(rogue, NULL), 5); // timed out
    char *nokeys[] = {cli, "stat", "-t", "500", uri, NULL};
    assert_int_equal(s_run(nokeys, NULL), 5);
    unsetenv("ZCHAN_TIMEOUT_MS");
    //  The relay's channel saw the one message only.
    zchan_ctx_t *client = s_client(s_client_cert, s_server_key);
    zchan_t *ch = zchan_open(client, uri);
    assert_non_null(ch);
    zchan_stat_t st;
    tu_assert_rc(zchan_stat(ch, &st), ZCHAN_OK);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.senders, 0);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&client);
    kill(rpid, SIGTERM);
    int status;
    assert_int_equal(waitpid(rpid, &status, 0), rpid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    //  keygen: PATH (public) and PATH_secret (0600), and the key printed.
    char path[600], secret[700];
    snprintf(path, sizeof path, "%s/made.cert", s_certs);
    snprintf(secret, sizeof secret, "%s_secret", path);
    char *keygen[] = {cli, "keygen", path, NULL};
    assert_int_equal(s_run(keygen, out), 0);
    assert_true(s_first_line(out, line, sizeof line));
    assert_int_equal(strlen(line), 40);
    struct stat sst;
    assert_int_equal(stat(secret, &sst), 0);
    assert_int_equal(sst.st_mode & 0777, 0600);
    zcert_t *made = zcert_load(path);
    assert_non_null(made);
    assert_string_equal(zcert_public_txt(made), line);
    zcert_destroy(&made);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_client),   cmocka_unit_test(test_locked_out),
        cmocka_unit_test(test_reference_carries_key), cmocka_unit_test(test_encrypted_on_the_wire),
        cmocka_unit_test(test_ipc_unaffected),   cmocka_unit_test(test_allow_any),
        cmocka_unit_test(test_misuse),           cmocka_unit_test(test_environment),
        cmocka_unit_test(test_relay_and_cli),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}

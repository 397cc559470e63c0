/*  chan.c: channel handles. A handle names a channel (its key on its hub) and
    the endpoint at which this context reaches that hub. Creating, joining,
    opening and closing are requests to the hosting hub.
*/
#include "core.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

zchan_t *zchan__chan_make(zchan_ctx_t *ctx, zchan_kind_t kind, const char *key, const char *name,
                          const char *uri, const char *endpoint, const zchan__hubinfo_t *info)
{
    zchan_t *ch = calloc(1, sizeof *ch);
    if (!ch)
        return zchan__fail_null(ZCHAN_ENOMEM);
    ch->ctx = ctx;
    ch->kind = kind;
    ch->key = strdup(key);
    ch->name = strdup(name);
    ch->uri = strdup(uri);
    snprintf(ch->endpoint, sizeof ch->endpoint, "%s", endpoint);
    ch->info = *info;
    if (!ch->key || !ch->name || !ch->uri) {
        zchan_destroy(&ch);
        return zchan__fail_null(ZCHAN_ENOMEM);
    }
    int rc = zchan__party_join(ctx, &ch->party, "channel", ch->key, NULL);
    if (rc != 0) {
        zchan_destroy(&ch);
        return zchan__fail_null(rc);
    }
    return ch;
}

void zchan__chan_loc(const zchan_t *ch, zchan__chanloc_t *w)
{
    memset(w, 0, sizeof *w);
    w->kind = ch->kind;
    w->known = ch->known;
    w->capacity = ch->capacity;
    w->resend = ch->resend;
    snprintf(w->key, sizeof w->key, "%s", ch->key);
    snprintf(w->endpoint, sizeof w->endpoint, "%s", ch->endpoint);
    snprintf(w->curve, sizeof w->curve, "%s", ch->info.curve);
}

//  Packs CREATE (create true) or OPEN for key into o.
static void s_pack_create_open(zchan__out_t *o, bool create, const char *key, zchan_kind_t kind, size_t capacity,
                               bool resend)
{
    if (create) {
        zchan__wire_create_t m = {.reqid = zchan__reqid(), .key = key, .key_len = strlen(key), .kind = kind,
                                  .capacity = capacity, .resend = resend};
        zchan__wire_pack_create(o, &m);
    } else {
        zchan__wire_keyed_t m = {.reqid = zchan__reqid(), .key = key, .key_len = strlen(key)};
        zchan__wire_pack_open(o, &m);
    }
}

int zchan__chan_rejoin(zchan_ctx_t *ctx, const zchan__chanloc_t *w, bool *closed)
{
    zchan__out_t o;
    s_pack_create_open(&o, w->known, w->key, w->kind, w->capacity, w->resend);
    zchan__reply_t r;
    int rc = zchan__request_key(ctx, w->endpoint, w->curve, &o, &r);
    zchan__out_fini(&o);
    zchan__wire_reply_chan_t m;
    if (rc == 0 && zchan__wire_parse_reply_chan(&r.hdr, &m) != 0)
        rc = ZCHAN_EPROTO;
    else if (rc == 0 && m.kind != (uint64_t) w->kind)
        rc = ZCHAN_EINVAL;
    if (rc == 0)
        *closed = m.closed;
    zchan__reply_fini(&r);
    return rc;
}

//  Sends CREATE (create true) or OPEN for t to the hub at endpoint and makes
//  a handle from the reply.
static zchan_t *s_exchange(zchan_ctx_t *ctx, const char *endpoint, const zchan__target_t *t, const char *uri,
                           bool create, zchan_kind_t kind, size_t capacity, bool resend)
{
    zchan__out_t o;
    s_pack_create_open(&o, create, t->key, kind, capacity, resend);
    zchan__reply_t r;
    int rc = zchan__request(ctx, endpoint, &o, &r);
    zchan__out_fini(&o);
    zchan_t *ch = NULL;
    zchan__wire_reply_chan_t m;
    if (rc == 0) {
        if (zchan__wire_parse_reply_chan(&r.hdr, &m) != 0)
            zchan__fail(ZCHAN_EPROTO);
        else
            ch = zchan__chan_make(ctx, (zchan_kind_t) m.kind, t->key, t->name, uri, endpoint, &m.info);
        if (ch) {
            ch->known = true;
            ch->capacity = (size_t) m.capacity;
            ch->resend = create && resend;
        }
    }
    zchan__reply_fini(&r);
    return ch;
}

#define S_UNNAMED_PREFIX "zc-" // an unnamed channel's name starts so

static char s_unnamed_key[ZCHAN__EP_MAX]; // the key prefix of unnamed channels
static size_t s_unnamed_len;

static void s_unnamed_key_init(void)
{
    //  The key the in-process transport gives the name "zc-", which is all
    //  unnamed keys have in common.
    const zchan__transport_t *local = zchan__transport_local();
    const zchan__tview_t none = {0};
    zchan__target_t t;
    if (local->parse_uri(&none, S_UNNAMED_PREFIX, &t) == 0) {
        snprintf(s_unnamed_key, sizeof s_unnamed_key, "%s", t.key);
        s_unnamed_len = strlen(s_unnamed_key);
    }
}

bool zchan__key_unnamed(const char *key)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, s_unnamed_key_init);
    return s_unnamed_len > 0 && strncmp(key, s_unnamed_key, s_unnamed_len) == 0;
}

//  Resolves uri (NULL: a fresh unnamed channel, a process-wide name of the
//  in-process transport) into a target of transport *tr_p. EINVAL for a bad
//  URI, ESYS if no random name can be had.
static int s_target(zchan_ctx_t *ctx, const char *uri, zchan__target_t *t, const zchan__transport_t **tr_p,
                    char *full, size_t n)
{
    memset(t, 0, sizeof *t);
    if (!uri) {
        //  The name is the channel's capability: whoever knows it can reach
        //  the channel on any endpoint of its hub, tcp included. So it is 128
        //  bits from the kernel's random source, never a guessable PRNG.
        uint8_t r[ZCHAN__UNNAMED_BYTES];
        char name[4 + 2 * sizeof r];
        int rc = zchan__random_bytes(r, sizeof r);
        if (rc != 0)
            return rc;
        memcpy(name, S_UNNAMED_PREFIX, 3);
        for (size_t i = 0; i < sizeof r; i++) {
            name[3 + 2 * i] = "0123456789abcdef"[r[i] >> 4];
            name[4 + 2 * i] = "0123456789abcdef"[r[i] & 15];
        }
        name[3 + 2 * sizeof r] = 0;
        const zchan__transport_t *local = zchan__transport_local();
        *tr_p = local;
        snprintf(full, n, "%s://%s", local->scheme, name);
        return local->parse_uri(zchan__ctx_tview(ctx, local), name, t);
    }
    const zchan__transport_t *tr = zchan__transport_for(uri);
    if (!tr || strlen(uri) >= n)
        return ZCHAN_EINVAL;
    *tr_p = tr;
    snprintf(full, n, "%s", uri);
    return tr->parse_uri(zchan__ctx_tview(ctx, tr), uri + strlen(tr->scheme) + 3, t);
}

//  A process-wide name: hosted by whichever context of this process made it.
static zchan_t *s_at_process(zchan_ctx_t *ctx, const zchan__target_t *t, const char *uri, bool create,
                             zchan_kind_t kind, size_t capacity, bool resend)
{
    char ep[ZCHAN__EP_MAX];
    if (zchan__registry_find(t->key, ep, sizeof ep))
        return s_exchange(ctx, ep, t, uri, create, kind, capacity, resend);
    if (!create)
        return zchan__fail_null(ZCHAN_ENOTFOUND);
    if (zchan__registry_add(ctx, t->key) != 0) {
        //  Another thread registered it first: join there.
        if (zchan__registry_find(t->key, ep, sizeof ep))
            return s_exchange(ctx, ep, t, uri, create, kind, capacity, resend);
        return zchan__fail_null(ZCHAN_ENOMEM);
    }
    return s_exchange(ctx, zchan__ctx_inproc(ctx), t, uri, create, kind, capacity, resend);
}

//  A host-wide name: hosted by the first process that claimed it through
//  its transport (ipc: took its lock file).
static zchan_t *s_at_host(zchan_ctx_t *ctx, const zchan__transport_t *tr, const zchan__target_t *t,
                          const char *uri, bool create, zchan_kind_t kind, size_t capacity, bool resend)
{
    char ep[ZCHAN__EP_MAX], bound[ZCHAN__EP_MAX];
    if (zchan__registry_find(t->key, ep, sizeof ep))
        return s_exchange(ctx, ep, t, uri, create, kind, capacity, resend);
    if (!tr->claim)
        return zchan__fail_null(ZCHAN_EINVAL);
    int rc = tr->claim(zchan__ctx_tview(ctx, tr), t, create);
    if (rc == ZCHAN_ECLOSED)
        return s_exchange(ctx, t->hub, t, uri, create, kind, capacity, resend);
    if (rc != 0)
        return zchan__fail_null(rc);
    if (!create)
        return zchan__fail_null(ZCHAN_ENOTFOUND);
    rc = zchan__ctx_hub_bind(ctx, t->hub, false, bound, sizeof bound);
    if (rc == 0)
        rc = zchan__registry_add(ctx, t->key);
    if (rc != 0)
        return zchan__fail_null(rc);
    return s_exchange(ctx, zchan__ctx_inproc(ctx), t, uri, create, kind, capacity, resend);
}

static zchan_t *s_new(zchan_ctx_t *ctx, const char *uri, bool create, zchan_kind_t kind, size_t capacity,
                      bool resend)
{
    zchan__assert(ctx);
    zchan__target_t t;
    const zchan__transport_t *tr = NULL;
    char full[ZCHAN__EP_MAX];
    int rc = s_target(ctx, uri, &t, &tr, full, sizeof full);
    if (rc != 0)
        return zchan__fail_null(rc);
    switch (t.where) {
    case ZCHAN__AT_PROCESS: return s_at_process(ctx, &t, full, create, kind, capacity, resend);
    case ZCHAN__AT_HOST: return s_at_host(ctx, tr, &t, full, create, kind, capacity, resend);
    case ZCHAN__AT_HUB:
    default: {
        const char *ep = zchan__ctx_is_own(ctx, t.hub) ? zchan__ctx_inproc(ctx) : t.hub;
        return s_exchange(ctx, ep, &t, full, create, kind, capacity, resend);
    }
    }
}

zchan_t *zchan_anycast_new(zchan_ctx_t *ctx, const char *uri, size_t capacity)
{
    return s_new(ctx, uri, true, ZCHAN_ANYCAST, capacity, false);
}

zchan_t *zchan_broadcast_new(zchan_ctx_t *ctx, const char *uri, bool resend_latest)
{
    return s_new(ctx, uri, true, ZCHAN_BROADCAST, 0, resend_latest);
}

zchan_t *zchan_open(zchan_ctx_t *ctx, const char *uri)
{
    if (!uri)
        return zchan__fail_null(ZCHAN_EINVAL);
    return s_new(ctx, uri, false, ZCHAN_ANYCAST, 0, false);
}

const char *zchan_uri(const zchan_t *ch)
{
    zchan__assert(ch);
    return ch->uri;
}

const char *zchan_name(const zchan_t *ch)
{
    zchan__assert(ch);
    return ch->name;
}

zchan_kind_t zchan_kind(const zchan_t *ch)
{
    zchan__assert(ch);
    return ch->kind;
}

int zchan_stat(zchan_t *ch, zchan_stat_t *st)
{
    zchan__assert(ch);
    if (!st)
        return zchan__fail(ZCHAN_EINVAL);
    if (zchan__party_dead(&ch->party))
        return zchan__fail(ZCHAN_ECLOSED);
    zchan__out_t o;
    zchan__wire_keyed_t q = {.reqid = zchan__reqid(), .key = ch->key, .key_len = strlen(ch->key)};
    zchan__wire_pack_stat(&o, &q);
    zchan__reply_t r;
    int rc = zchan__request_key(ch->ctx, ch->endpoint, ch->info.curve, &o, &r);
    zchan__out_fini(&o);
    if (rc == 0) {
        zchan__wire_reply_stat_t m;
        rc = zchan__wire_parse_reply_stat(&r.hdr, &m);
        if (rc == 0)
            *st = m.st;
    }
    zchan__reply_fini(&r);
    return rc ? zchan__fail(rc) : 0;
}

int zchan_close(zchan_t *ch)
{
    zchan__assert(ch);
    if (zchan__party_dead(&ch->party))
        return zchan__fail(ZCHAN_ECLOSED);
    int saved_errno = zchan_errno();
    //  This thread's earlier sends go first: each such sender's pipe is
    //  flushed through the hub before the close request is sent.
    int rc = zchan__senders_flush(ch->ctx, ch->info.hub, ch->key);
    if (rc != 0)
        return zchan__fail(rc);
    zchan__out_t o;
    zchan__wire_keyed_t q = {.reqid = zchan__reqid(), .key = ch->key, .key_len = strlen(ch->key)};
    zchan__wire_pack_close(&o, &q);
    zchan__reply_t r;
    rc = zchan__request_key(ch->ctx, ch->endpoint, ch->info.curve, &o, &r);
    zchan__out_fini(&o);
    zchan__reply_fini(&r);
    if (rc == 0)
        zchan__senders_mark_closed(ch->ctx, ch->info.hub, ch->key);
    //  A successful call leaves zchan_errno as it was (a flush may have
    //  found a sender detached on the way).
    if (rc != 0)
        return zchan__fail(rc);
    zchan__errno_restore(saved_errno);
    return 0;
}

void zchan_destroy(zchan_t **ch_p)
{
    if (!ch_p || !*ch_p)
        return;
    zchan_t *ch = *ch_p;
    zchan__party_leave(&ch->party);
    free(ch->key);
    free(ch->name);
    free(ch->uri);
    free(ch);
    *ch_p = NULL;
}

size_t zchan_sender_window(size_t capacity)
{
    if (capacity == 0)
        return 1;
    if (capacity <= ZCHAN_SENDER_SLACK)
        return ZCHAN_SENDER_SLACK;
    return capacity < ZCHAN_WINDOW_MAX ? capacity : ZCHAN_WINDOW_MAX;
}

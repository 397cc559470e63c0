/*  hub.c: the hub, one thread per context that hosts the context's channels.

    One ROUTER socket serves every channel, bound on inproc, ipc and any tcp
    endpoints. Senders and receivers are DEALERs, one socket each; the hub
    knows each by a handle it assigned at attach, checked against the routing
    id of every message. All channel state lives in this thread: no locks.

    Anycast: a FIFO per channel. A message is "accepted" once it fits in the
    capacity (accepted-undelivered + delivered-unconsumed < capacity); each
    acceptance sends the sender one credit (ACK). A sender may have
    zchan_sender_window(capacity) unaccepted messages, so memory stays
    bounded. Receivers
    grant credit; the hub keeps a copy of each delivered message until the
    receiver reports it consumed, so a receiver that detaches gracefully gives
    back what it did not consume. Capacity 0 is a rendezvous: a message is
    accepted only when a waiting receiver takes it.

    Broadcast: each receiver has a ring of its limit; a full ring drops its
    oldest message and counts it. Sends are never acknowledged, never blocked.

    Nothing here asserts on what a peer sent: bad frames are counted, logged
    at a limited rate, and dropped.

    Resource limits (zchan_ctx_set_limit, copied into the hub at start and on
    the pipe's LIMITS): channels, attachments, the largest capacity and
    broadcast limit are refused with ELIMIT; the bytes of messages held, per
    channel and in all, are counted where messages are queued and freed
    (s_bytes_add, s_node_free, s_ring_pop). An anycast DATA over them is
    dropped, counted lost and REFUSED to its sender; a broadcast ring drops
    its oldest. Refusals are counted and logged at a limited rate.
*/
#include "core.h"
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <sys/stat.h>

#define HUB_BATCH 512         // messages read per poll wake-up before flushing acks
#define HUB_MAX_CREDIT ZCHAN_WINDOW_MAX // the most credit a receiver may hold
#define HUB_PEER_MAX (1u << 24)
#define HUB_RING_FIRST 16       // a broadcast ring's first size; it doubles up to the limit
#define HUB_ATTACH_PER_CONN 64  // attachments one connection may hold at once
#define HUB_CHECK_FIRST_MS 500 // a receiver quiet this long while it holds messages is checked
#define HUB_CHECK_MAX_MS 5000  // checks of a quiet receiver back off to this interval
#define HUB_MSG_OVERHEAD 64    // bytes a held message counts beyond its size (its zmq_msg_t or node)
#define HUB_SWEEP_MS HUB_CHECK_MAX_MS // every attachment's connection is checked this often
#define HUB_TOMB_UNNAMED 4096  // tombstones of unnamed channels kept: the newest
#define HUB_TOMB_NAMED 16384   // ...and of named channels
#define HUB_UNNAMED_PREFIX "inproc://zc-" // the key of every unnamed channel (chan.c)

typedef struct chan chan_t;

typedef struct node {
    struct node *next;
    zmq_msg_t payload;
    uint64_t sender; // handle of the sender, for its ack
    chan_t *ch;      // whose held bytes it counts in (NULL: none)
} node_t;

typedef struct {
    node_t *head, *tail;
    size_t len;
} fifo_t;

typedef enum { ROLE_FREE = 0, ROLE_SENDER, ROLE_RECEIVER } role_t;

typedef struct {
    uint32_t gen;
    role_t role;
    uint8_t rid_len;
    uint8_t rid[255];
    chan_t *ch;
    //  sender
    uint32_t pending_ack;
    bool dirty;
    uint64_t unaccepted; // anycast: its messages queued and not yet accepted
    //  receiver
    uint64_t avail;     // messages we may still send it
    fifo_t inflight;    // anycast: delivered, not reported consumed
    zmq_msg_t *ring;    // broadcast: messages waiting for credit
    size_t ring_cap, ring_head, ring_len;
    size_t ring_limit;  // broadcast: the receiver's limit, which ring_cap grows to
    uint64_t ring_bytes; // broadcast: the bytes its ring holds (s_msg_cost)
    uint64_t dropped;   // broadcast: lost to the limit
    bool closed_sent;
    int fd;             // the peer's connection (ZMQ_SRCFD), -1 if unknown (inproc)
    dev_t dev;          // ...and the socket it was: fd may be reused
    ino_t ino;
    int64_t check_at;   // receiver: when to check it if it still holds messages
    int64_t check_gap;  // receiver: the interval of its checks, doubling
} peer_t;

struct chan {
    char *key;
    zchan_kind_t kind;
    size_t capacity;
    bool resend_latest;
    bool closed;
    fifo_t queue;   // anycast: not yet delivered; the first nacc are accepted
    size_t nacc;
    size_t used;    // accepted-undelivered + delivered-unconsumed
    uint32_t *recv; // receiver peer indexes
    size_t nrecv, recv_cap, rr;
    uint32_t *send; // sender peer indexes
    size_t nsend, send_cap;
    zmq_msg_t latest;
    bool has_latest;
    uint64_t sent, delivered, dropped, lost;
    uint64_t bytes;      // the bytes it holds: nodes, rings, latest (s_msg_cost)
    uint64_t *hub_bytes; // ...and the hub's total, which they also count in
};

//  A tombstone: what is left of a closed channel once nobody is attached to
//  it. Enough to answer for its key (closed: a late party is stopped at once)
//  and to keep its counters for STAT; its queue, lists and key copy are gone.
typedef struct tomb {
    struct tomb *next; // the next newer tombstone of its class (named or unnamed)
    size_t capacity;
    uint64_t sent, delivered, dropped, lost;
    zchan_kind_t kind;
    bool unnamed;
    char key[]; // also the key of hub->tombs
} tomb_t;

typedef struct zchan__hub {
    zchan_ctx_t *ctx;
    zsock_t *pipe;
    void *router;
    zhashx_t *chans;
    peer_t *peers;
    size_t npeers, peers_cap;
    uint32_t *free_idx;
    size_t nfree;
    uint32_t *dirty;
    size_t ndirty, dirty_cap;
    zchan__hdr_t hdr;
    //  the routing id of the message being handled
    uint8_t rid[255];
    size_t rid_len;
    uint64_t proto_errors;
    int64_t last_log_ms;
    uint64_t unlogged;
    int64_t now_ms;  // the time of the current poll wake-up
    int64_t scan_at; // when to check quiet receivers that hold messages, -1: none
    zmq_msg_t *hdr_frame; // the header frame of the message being handled
    bool closing; // after CLOSEALL: no new channels
    zhashx_t *conns; // attachments per connection: routing id (hex) -> count
    uint64_t limit[ZCHAN__NLIMITS]; // resource limits, by zchan_limit_t (ctx->limits)
    uint64_t bytes;    // bytes all channels hold (s_msg_cost)
    uint64_t refused;  // requests and messages refused over a limit
    int64_t refuse_log_ms;
    uint64_t refuse_unlogged;
    int64_t sweep_at; // when to check every attachment's connection, -1: none
    bool sweep_retry; // the last sweep found one gone while input waited
    zhashx_t *tombs;  // closed channels reclaimed: key -> tomb_t
    //  Tombstones by class, [0] named and [1] unnamed, each listed oldest first.
    tomb_t *tomb_old[2], *tomb_new[2];
    size_t ntomb[2];
} hub_t;

// ---------------------------------------------------------------------------
// Small containers

static void s_fifo_push(fifo_t *f, node_t *n)
{
    n->next = NULL;
    if (f->tail)
        f->tail->next = n;
    else
        f->head = n;
    f->tail = n;
    f->len++;
}

static void s_fifo_push_front(fifo_t *f, node_t *n)
{
    n->next = f->head;
    f->head = n;
    if (!f->tail)
        f->tail = n;
    f->len++;
}

static node_t *s_fifo_pop(fifo_t *f)
{
    node_t *n = f->head;
    if (!n)
        return NULL;
    f->head = n->next;
    if (!f->head)
        f->tail = NULL;
    f->len--;
    return n;
}

// ---------------------------------------------------------------------------
// Resource limits: the bytes channels hold, and refusals

//  What holding msg costs, in bytes, against the byte limits.
static uint64_t s_msg_cost(zmq_msg_t *msg)
{
    return (uint64_t) zmq_msg_size(msg) + HUB_MSG_OVERHEAD;
}

//  true if ch (and the hub) may hold cost more bytes within their limits.
static bool s_bytes_fit(const hub_t *hub, const chan_t *ch, uint64_t cost)
{
    return ch->bytes + cost <= hub->limit[ZCHAN_LIMIT_CHANNEL_BYTES]
           && hub->bytes + cost <= hub->limit[ZCHAN_LIMIT_QUEUED_BYTES];
}

static void s_bytes_add(chan_t *ch, uint64_t cost)
{
    ch->bytes += cost;
    *ch->hub_bytes += cost;
}

static void s_bytes_sub(chan_t *ch, uint64_t cost)
{
    ch->bytes -= cost;
    *ch->hub_bytes -= cost;
}

static const char *s_limit_names[ZCHAN__NLIMITS] = {"max-channels",        "max-attachments",
                                                    "max-capacity",        "max-broadcast-limit",
                                                    "max-channel-bytes",   "max-queued-bytes"};

//  Counts a refusal over limit which, and logs it at a limited rate.
static void s_refuse(hub_t *hub, const char *what, zchan_limit_t which)
{
    hub->refused++;
    int64_t now = zchan__now_ms();
    if (hub->refuse_log_ms == 0 || now - hub->refuse_log_ms >= 1000) {
        zsys_warning("zchan hub: refused %s over a resource limit (%s %" PRIu64 "); %" PRIu64
                     " refused in all, %" PRIu64 " not logged",
                     what, s_limit_names[which], hub->limit[which], hub->refused, hub->refuse_unlogged);
        hub->refuse_log_ms = now;
        hub->refuse_unlogged = 0;
    } else
        hub->refuse_unlogged++;
}

static void s_node_free(node_t *n)
{
    if (n->ch)
        s_bytes_sub(n->ch, s_msg_cost(&n->payload));
    zmq_msg_close(&n->payload);
    free(n);
}

static void s_fifo_clear(fifo_t *f)
{
    node_t *n;
    while ((n = s_fifo_pop(f)))
        s_node_free(n);
}

static int s_idx_add(uint32_t **arr, size_t *n, size_t *cap, uint32_t v)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        uint32_t *na = realloc(*arr, nc * sizeof *na);
        if (!na)
            return ZCHAN_ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

static void s_idx_remove(uint32_t *arr, size_t *n, uint32_t v)
{
    for (size_t i = 0; i < *n; i++)
        if (arr[i] == v) {
            memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof *arr);
            (*n)--;
            return;
        }
}

// ---------------------------------------------------------------------------
// Logging of peer misbehaviour, at a limited rate

static void s_proto_error(hub_t *hub, const char *what)
{
    hub->proto_errors++;
    int64_t now = zchan__now_ms();
    if (now - hub->last_log_ms >= 1000) {
        zsys_warning("zchan hub: dropped a bad message (%s); %" PRIu64 " bad in all, %" PRIu64
                     " not logged",
                     what, hub->proto_errors, hub->unlogged);
        hub->last_log_ms = now;
        hub->unlogged = 0;
    } else
        hub->unlogged++;
}

// ---------------------------------------------------------------------------
// Peers

static uint64_t s_handle(hub_t *hub, uint32_t idx)
{
    return ((uint64_t) hub->peers[idx].gen << 32) | idx;
}

//  Returns the peer idx for handle if it is live, has role, and belongs to the
//  routing id of the current message; UINT32_MAX otherwise.
static uint32_t s_peer_find(hub_t *hub, uint64_t handle, role_t role)
{
    uint32_t idx = (uint32_t) handle;
    if (idx >= hub->npeers)
        return UINT32_MAX;
    peer_t *p = &hub->peers[idx];
    if (p->role != role || p->gen != (uint32_t) (handle >> 32))
        return UINT32_MAX;
    if (p->rid_len != hub->rid_len || memcmp(p->rid, hub->rid, hub->rid_len) != 0)
        return UINT32_MAX;
    return idx;
}

//  The key of a connection in hub->conns: its routing id in hex.
static void s_conn_key(const uint8_t *rid, size_t len, char out[2 * 255 + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[rid[i] >> 4];
        out[2 * i + 1] = hex[rid[i] & 15];
    }
    out[2 * len] = 0;
}

//  How many attachments the connection with routing id rid holds.
static size_t s_conn_count(hub_t *hub, const uint8_t *rid, size_t len)
{
    char key[2 * 255 + 1];
    s_conn_key(rid, len, key);
    return hub->conns ? (size_t) (uintptr_t) zhashx_lookup(hub->conns, key) : 0;
}

//  Adds delta (+1 or -1) to the attachments of connection rid. 0, or -1 when
//  adding to a hub whose table could not be made.
static int s_conn_add(hub_t *hub, const uint8_t *rid, size_t len, int delta)
{
    if (!hub->conns)
        return delta > 0 ? -1 : 0;
    char key[2 * 255 + 1];
    s_conn_key(rid, len, key);
    size_t n = (size_t) (uintptr_t) zhashx_lookup(hub->conns, key);
    if (delta < 0 && n <= 1) {
        zhashx_delete(hub->conns, key);
        return 0;
    }
    zhashx_update(hub->conns, key, (void *) (uintptr_t) (delta < 0 ? n - 1 : n + 1)); // inserts if absent
    return 0;
}

static uint32_t s_peer_new(hub_t *hub, role_t role, chan_t *ch)
{
    uint32_t idx;
    if (hub->nfree)
        idx = hub->free_idx[--hub->nfree];
    else {
        if (hub->npeers == hub->peers_cap) {
            size_t nc = hub->peers_cap ? hub->peers_cap * 2 : 64;
            if (nc > HUB_PEER_MAX)
                return UINT32_MAX;
            peer_t *np = realloc(hub->peers, nc * sizeof *np);
            if (!np)
                return UINT32_MAX;
            hub->peers = np;
            hub->peers_cap = nc;
        }
        idx = (uint32_t) hub->npeers++;
        hub->peers[idx].gen = 0;
    }
    peer_t *p = &hub->peers[idx];
    uint32_t gen = p->gen + 1;
    memset(p, 0, sizeof *p);
    p->gen = gen;
    p->role = role;
    p->ch = ch;
    p->rid_len = (uint8_t) hub->rid_len;
    memcpy(p->rid, hub->rid, hub->rid_len);
    return idx;
}

static void s_ring_clear(peer_t *p)
{
    for (size_t i = 0; i < p->ring_len; i++)
        zmq_msg_close(&p->ring[(p->ring_head + i) % p->ring_cap]);
    if (p->ch && p->ring_bytes)
        s_bytes_sub(p->ch, p->ring_bytes);
    p->ring_bytes = 0;
    free(p->ring);
    p->ring = NULL;
    p->ring_len = p->ring_cap = p->ring_head = p->ring_limit = 0;
}

//  Takes the oldest message out of p's ring, and its bytes out of the count.
static void s_ring_pop(peer_t *p)
{
    zmq_msg_t *m = &p->ring[p->ring_head];
    uint64_t cost = s_msg_cost(m);
    p->ring_bytes -= cost;
    s_bytes_sub(p->ch, cost);
    zmq_msg_close(m);
    p->ring_head = (p->ring_head + 1) % p->ring_cap;
    p->ring_len--;
}

static void s_peer_free(hub_t *hub, uint32_t idx)
{
    peer_t *p = &hub->peers[idx];
    if (p->role != ROLE_FREE)
        s_conn_add(hub, p->rid, p->rid_len, -1);
    s_fifo_clear(&p->inflight);
    s_ring_clear(p);
    p->role = ROLE_FREE;
    p->gen++;
    p->ch = NULL;
    uint32_t *nf = realloc(hub->free_idx, (hub->nfree + 1) * sizeof *nf);
    if (nf) {
        hub->free_idx = nf;
        hub->free_idx[hub->nfree++] = idx;
    }
}

// ---------------------------------------------------------------------------
// Sending to peers

//  Sends a routing frame for peer (or the current message's sender when p is
//  NULL). Returns 0 or -1 (peer gone or its pipe full).
static int s_send_rid(hub_t *hub, const peer_t *p)
{
    const void *rid = p ? p->rid : hub->rid;
    size_t len = p ? p->rid_len : hub->rid_len;
    return zmq_send(hub->router, rid, len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

static int s_send_hdr(hub_t *hub, const peer_t *p, zchan__out_t *o, bool more)
{
    if (s_send_rid(hub, p) != 0)
        return -1;
    return zmq_send(hub->router, o->sbuf.data, o->sbuf.size, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

static void s_send_closed(hub_t *hub, const peer_t *p)
{
    zchan__out_t o;
    zchan__out_init(&o, 1, ZCHAN__CLOSED);
    s_send_hdr(hub, p, &o, false);
    zchan__out_fini(&o);
}

//  [CLOSED, NOT_ATTACHED] to the current message's sender: its handle is not
//  an attachment of this connection (the hub restarted, or a stranger). A
//  client that knows the field attaches again; an older one stops.
static void s_send_not_attached(hub_t *hub)
{
    zchan__out_t o;
    zchan__out_init(&o, 2, ZCHAN__CLOSED);
    zchan__out_u64(&o, ZCHAN__NOT_ATTACHED);
    s_send_hdr(hub, NULL, &o, false);
    zchan__out_fini(&o);
}

//  [CLOSING] to receiver p: the channel is closed; CLOSED follows once p has
//  drained. A receiver that heard it does not bring the channel back if the
//  hub restarts before it drained.
static void s_send_closing(hub_t *hub, const peer_t *p)
{
    zchan__out_t o;
    zchan__out_init(&o, 1, ZCHAN__CLOSING);
    s_send_hdr(hub, p, &o, false);
    zchan__out_fini(&o);
}

static void s_flush_ack(hub_t *hub, peer_t *p)
{
    if (p->pending_ack == 0)
        return;
    zchan__out_t o;
    zchan__out_init(&o, 2, ZCHAN__ACK);
    zchan__out_u64(&o, p->pending_ack);
    s_send_hdr(hub, p, &o, false);
    zchan__out_fini(&o);
    p->pending_ack = 0;
}

//  Sends the ACKs owed to senders, at the end of a read burst: to a sender
//  only once what it has out (accepted but not acknowledged, or not yet
//  accepted) is half its window or more. Below that it still holds more than
//  half its window, and an ACK per message would cost a message back per
//  message. The sender's true credit is never more than the hub's view, so
//  one that runs out has half a window or more out here, and gets its ACK.
static void s_flush_acks(hub_t *hub)
{
    for (size_t i = 0; i < hub->ndirty; i++) {
        peer_t *p = &hub->peers[hub->dirty[i]];
        p->dirty = false;
        if (p->role == ROLE_SENDER && p->ch
            && p->pending_ack + p->unaccepted >= (zchan_sender_window(p->ch->capacity) + 1) / 2)
            s_flush_ack(hub, p);
    }
    hub->ndirty = 0;
}

//  Puts sender idx on the list whose ACKs are looked at after this burst.
static void s_mark_dirty(hub_t *hub, uint32_t idx)
{
    peer_t *p = &hub->peers[idx];
    if (!p->dirty && s_idx_add(&hub->dirty, &hub->ndirty, &hub->dirty_cap, idx) == 0)
        p->dirty = true;
}

//  Credits the sender of a node with one accepted message.
static void s_ack(hub_t *hub, uint64_t sender)
{
    uint32_t idx = (uint32_t) sender;
    if (idx >= hub->npeers)
        return;
    peer_t *p = &hub->peers[idx];
    if (p->role != ROLE_SENDER || p->gen != (uint32_t) (sender >> 32))
        return; // the sender has gone; nobody waits for this credit
    if (p->unaccepted > 0)
        p->unaccepted--;
    p->pending_ack++;
    s_mark_dirty(hub, idx);
}

//  Starts a reply to the current message: [REPLY, reqid, status, ...n more].
static void s_reply_init(zchan__out_t *o, uint64_t reqid, int status, size_t more)
{
    zchan__out_init(o, 3 + more, ZCHAN__REPLY);
    zchan__out_u64(o, reqid);
    zchan__out_u64(o, (uint64_t) status);
}

static void s_reply_send(hub_t *hub, zchan__out_t *o)
{
    s_send_hdr(hub, NULL, o, false);
    zchan__out_fini(o);
}

static void s_reply_status(hub_t *hub, uint64_t reqid, int status)
{
    zchan__out_t o;
    s_reply_init(&o, reqid, status, 0);
    s_reply_send(hub, &o);
}

//  The hub heard from receiver p: it is there. Its checks start over.
static void s_heard(hub_t *hub, peer_t *p)
{
    p->check_at = hub->now_ms + HUB_CHECK_FIRST_MS;
    p->check_gap = HUB_CHECK_FIRST_MS;
}

//  A receiver was handed or kept a message: make sure a check scan is planned.
static void s_check_arm(hub_t *hub)
{
    if (hub->scan_at < 0)
        hub->scan_at = hub->now_ms + HUB_CHECK_FIRST_MS;
}

//  Sends one payload to receiver p: [DELIVER, dropped] + payload (copied).
//  Returns 0, or -1 if the receiver cannot take it (gone, or pipe full).
static int s_deliver(hub_t *hub, peer_t *p, zmq_msg_t *payload)
{
    zchan__out_t o;
    zchan__out_init(&o, 2, ZCHAN__DELIVER);
    zchan__out_u64(&o, p->dropped);
    int rc = s_send_hdr(hub, p, &o, true);
    zchan__out_fini(&o);
    if (rc != 0)
        return -1;
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, payload);
    if (zmq_msg_send(&copy, hub->router, 0) < 0) {
        zmq_msg_close(&copy);
        return -1;
    }
    s_check_arm(hub);
    return 0;
}

// ---------------------------------------------------------------------------
// Channels

static chan_t *s_chan_new(const char *key, zchan_kind_t kind, size_t capacity, bool resend)
{
    chan_t *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->key = strdup(key);
    if (!ch->key) {
        free(ch);
        return NULL;
    }
    ch->kind = kind;
    ch->capacity = capacity;
    ch->resend_latest = resend;
    zmq_msg_init(&ch->latest);
    return ch;
}

static void s_chan_destroy(void **item)
{
    chan_t *ch = (chan_t *) *item;
    if (!ch)
        return;
    s_fifo_clear(&ch->queue);
    if (ch->has_latest)
        s_bytes_sub(ch, s_msg_cost(&ch->latest));
    zmq_msg_close(&ch->latest);
    free(ch->recv);
    free(ch->send);
    free(ch->key);
    free(ch);
    *item = NULL;
}

static void s_anycast_pump(hub_t *hub, chan_t *ch);
static void s_broadcast_pump_peer(hub_t *hub, chan_t *ch, uint32_t idx);

//  Drops a receiver that cannot take messages any more (its socket is gone).
static void s_receiver_gone(hub_t *hub, chan_t *ch, uint32_t idx, bool requeue);
static void s_drop_gone(hub_t *hub, chan_t *ch, uint32_t idx);

//  Accepts queued messages while the capacity allows, crediting their senders.
static void s_anycast_accept(hub_t *hub, chan_t *ch)
{
    node_t *n = ch->queue.head;
    for (size_t i = 0; i < ch->nacc && n; i++)
        n = n->next;
    while (n && ch->used < ch->capacity) {
        ch->nacc++;
        ch->used++;
        s_ack(hub, n->sender);
        n = n->next;
    }
}

//  Returns the next receiver (round robin) with credit, or UINT32_MAX.
static uint32_t s_next_receiver(hub_t *hub, chan_t *ch)
{
    for (size_t k = 0; k < ch->nrecv; k++) {
        size_t i = (ch->rr + k) % ch->nrecv;
        peer_t *p = &hub->peers[ch->recv[i]];
        if (p->avail > 0 && !p->closed_sent) {
            ch->rr = (i + 1) % ch->nrecv;
            return ch->recv[i];
        }
    }
    return UINT32_MAX;
}

static void s_anycast_deliver(hub_t *hub, chan_t *ch)
{
    while (ch->queue.len > 0) {
        bool accepted = ch->nacc > 0;
        if (!accepted && !ch->closed && ch->capacity > 0)
            break; // full: wait for consumption
        uint32_t idx = s_next_receiver(hub, ch);
        if (idx == UINT32_MAX)
            break;
        peer_t *p = &hub->peers[idx];
        node_t *n = ch->queue.head;
        if (s_deliver(hub, p, &n->payload) != 0) {
            //  Gone: what it held is lost, as for a receiver found dead.
            s_drop_gone(hub, ch, idx);
            s_anycast_accept(hub, ch); // its share of the capacity is free
            continue;
        }
        s_fifo_pop(&ch->queue);
        if (accepted)
            ch->nacc--;
        else {
            //  Rendezvous (or after a close): taken means accepted.
            ch->used++;
            s_ack(hub, n->sender);
        }
        p->avail--;
        s_fifo_push(&p->inflight, n);
        ch->delivered++;
    }
}

static void s_anycast_finish_close(hub_t *hub, chan_t *ch)
{
    if (!ch->closed || ch->queue.len > 0)
        return;
    for (size_t i = 0; i < ch->nrecv; i++) {
        peer_t *p = &hub->peers[ch->recv[i]];
        if (!p->closed_sent) {
            s_send_closed(hub, p);
            p->closed_sent = true;
        }
    }
}

static void s_anycast_pump(hub_t *hub, chan_t *ch)
{
    s_anycast_accept(hub, ch);
    s_anycast_deliver(hub, ch);
    if (ch->closed && ch->queue.len > 0) {
        //  Messages that no receiver can take any more reach nobody: those
        //  returned after every receiver was told of the close, and those of
        //  a channel closed with no receiver attached (one attaching later is
        //  stopped at once). Count them rather than keep them forever.
        bool anyone = false;
        for (size_t i = 0; i < ch->nrecv && !anyone; i++)
            anyone = !hub->peers[ch->recv[i]].closed_sent;
        if (!anyone) {
            ch->lost += ch->queue.len;
            zsys_warning("zchan hub: %zu messages of closed channel %s had no receiver left",
                         ch->queue.len, ch->key);
            s_fifo_clear(&ch->queue);
            ch->used -= ch->nacc; // the accepted ones counted in used
            ch->nacc = 0;
        }
    }
    s_anycast_finish_close(hub, ch);
}

//  Ends sender idx of ch (detached, or its connection is gone). What it sent
//  stays queued; accepting it later acknowledges no one.
static void s_sender_gone(hub_t *hub, chan_t *ch, uint32_t idx)
{
    s_idx_remove(ch->send, &ch->nsend, idx);
    s_peer_free(hub, idx);
}

static void s_receiver_gone(hub_t *hub, chan_t *ch, uint32_t idx, bool requeue)
{
    peer_t *p = &hub->peers[idx];
    if (ch->kind == ZCHAN_ANYCAST) {
        //  Give back in order, at the front: they were first in line.
        size_t k = p->inflight.len;
        node_t **tmp = k ? malloc(k * sizeof *tmp) : NULL;
        if (requeue && tmp) {
            for (size_t i = 0; i < k; i++)
                tmp[i] = s_fifo_pop(&p->inflight);
            for (size_t i = k; i-- > 0;)
                s_fifo_push_front(&ch->queue, tmp[i]);
            ch->nacc += k;
        } else {
            ch->lost += p->inflight.len;
            ch->used -= p->inflight.len;
            s_fifo_clear(&p->inflight);
        }
        free(tmp);
    }
    s_idx_remove(ch->recv, &ch->nrecv, idx);
    if (ch->rr >= ch->nrecv)
        ch->rr = 0;
    s_peer_free(hub, idx);
}

static int s_ring_push(hub_t *hub, peer_t *p, chan_t *ch, zmq_msg_t *payload)
{
    if (!p->ring) {
        return ZCHAN_ENOMEM;
    }
    //  The byte limits hold as the count limit does: the oldest go first,
    //  counted dropped; a message larger than what is left is dropped itself.
    uint64_t cost = s_msg_cost(payload);
    if (!s_bytes_fit(hub, ch, cost)) {
        zchan_limit_t which =
            ch->bytes + cost > hub->limit[ZCHAN_LIMIT_CHANNEL_BYTES] ? ZCHAN_LIMIT_CHANNEL_BYTES : ZCHAN_LIMIT_QUEUED_BYTES;
        s_refuse(hub, "to keep a broadcast message for a receiver", which);
        //  What the others hold stays: if the message does not fit even in
        //  an empty ring, it is the one dropped.
        if (ch->bytes - p->ring_bytes + cost > hub->limit[ZCHAN_LIMIT_CHANNEL_BYTES]
            || hub->bytes - p->ring_bytes + cost > hub->limit[ZCHAN_LIMIT_QUEUED_BYTES]) {
            p->dropped++;
            ch->dropped++;
            return 0;
        }
        while (p->ring_len > 0 && !s_bytes_fit(hub, ch, cost)) {
            s_ring_pop(p);
            p->dropped++;
            ch->dropped++;
        }
    }
    if (p->ring_len == p->ring_cap && p->ring_cap < p->ring_limit) {
        //  Grow toward the limit, oldest first in the new ring. Out of
        //  memory, the ring stays as it is and drops as if full.
        size_t nc = p->ring_cap * 2 < p->ring_limit ? p->ring_cap * 2 : p->ring_limit;
        zmq_msg_t *nr = malloc(nc * sizeof *nr);
        if (nr) {
            for (size_t i = 0; i < p->ring_len; i++) {
                zmq_msg_init(&nr[i]);
                zmq_msg_move(&nr[i], &p->ring[(p->ring_head + i) % p->ring_cap]);
                zmq_msg_close(&p->ring[(p->ring_head + i) % p->ring_cap]);
            }
            free(p->ring);
            p->ring = nr;
            p->ring_cap = nc;
            p->ring_head = 0;
        }
    }
    if (p->ring_len == p->ring_cap) {
        s_ring_pop(p);
        p->dropped++;
        ch->dropped++;
    }
    zmq_msg_t *slot = &p->ring[(p->ring_head + p->ring_len) % p->ring_cap];
    zmq_msg_init(slot);
    zmq_msg_copy(slot, payload);
    p->ring_len++;
    p->ring_bytes += cost;
    s_bytes_add(ch, cost);
    return 0;
}

static void s_broadcast_pump_peer(hub_t *hub, chan_t *ch, uint32_t idx)
{
    peer_t *p = &hub->peers[idx];
    while (p->avail > 0 && p->ring_len > 0) {
        zmq_msg_t *m = &p->ring[p->ring_head];
        if (s_deliver(hub, p, m) != 0) {
            s_receiver_gone(hub, ch, idx, false);
            return;
        }
        s_ring_pop(p);
        p->avail--;
        ch->delivered++;
    }
    if (ch->closed && p->ring_len == 0 && !p->closed_sent) {
        s_send_closed(hub, p);
        p->closed_sent = true;
    }
}

static void s_broadcast_data(hub_t *hub, chan_t *ch, zmq_msg_t *payload)
{
    for (size_t i = 0; i < ch->nrecv; i++) {
        uint32_t idx = ch->recv[i];
        peer_t *p = &hub->peers[idx];
        if (p->avail > 0 && p->ring_len == 0) {
            if (s_deliver(hub, p, payload) == 0) {
                p->avail--;
                ch->delivered++;
                continue;
            }
            s_receiver_gone(hub, ch, idx, false);
            i--;
            continue;
        }
        s_ring_push(hub, p, ch, payload);
        s_check_arm(hub);
    }
    if (ch->resend_latest) {
        //  The latest message counts against the byte limits too; one that
        //  does not fit is not kept, and a new receiver gets none.
        if (ch->has_latest)
            s_bytes_sub(ch, s_msg_cost(&ch->latest));
        zmq_msg_close(&ch->latest);
        zmq_msg_init(&ch->latest);
        ch->has_latest = false;
        uint64_t cost = s_msg_cost(payload);
        if (s_bytes_fit(hub, ch, cost)) {
            zmq_msg_copy(&ch->latest, payload);
            s_bytes_add(ch, cost);
            ch->has_latest = true;
        } else
            s_refuse(hub, "to keep a broadcast channel's latest message",
                     ch->bytes + cost > hub->limit[ZCHAN_LIMIT_CHANNEL_BYTES] ? ZCHAN_LIMIT_CHANNEL_BYTES
                                                                              : ZCHAN_LIMIT_QUEUED_BYTES);
    }
}

// ---------------------------------------------------------------------------
// Closed channels are reclaimed
//
// Once a channel is closed and nobody is attached to it, nothing can reach it
// any more: a party that attaches now is stopped at once, and what was still
// queued has been counted lost (s_anycast_pump). The channel is then freed and
// a tombstone keeps its key, kind, capacity and counters, so that CREATE and
// OPEN still answer "closed", ATTACH stops the party at once and STAT reads
// the counters. Tombstones are bounded, so that a hub that sees millions of
// channels come and go keeps a bounded amount of memory for them: unnamed
// channels (keys HUB_UNNAMED_PREFIX..., random and never reused) keep the
// newest HUB_TOMB_UNNAMED, named ones the newest HUB_TOMB_NAMED. A key whose
// tombstone went is unknown again: OPEN answers ENOTFOUND, and CREATE makes a
// new channel under that name.

static const size_t s_tomb_max[2] = {HUB_TOMB_NAMED, HUB_TOMB_UNNAMED};

static void s_tomb_destroy(void **item)
{
    free(*item);
    *item = NULL;
}

static bool s_key_unnamed(const char *key)
{
    return strncmp(key, HUB_UNNAMED_PREFIX, sizeof HUB_UNNAMED_PREFIX - 1) == 0;
}

//  Replaces ch by its tombstone if it is closed and nobody is attached to it.
//  Returns true if it did: ch is then freed. Out of memory, ch stays whole.
static bool s_chan_reclaim(hub_t *hub, chan_t *ch)
{
    if (!ch->closed || ch->nsend > 0 || ch->nrecv > 0)
        return false;
    size_t klen = strlen(ch->key);
    tomb_t *t = malloc(sizeof *t + klen + 1);
    if (!t)
        return false;
    t->next = NULL;
    t->capacity = ch->capacity;
    t->kind = ch->kind;
    t->unnamed = s_key_unnamed(ch->key);
    //  The pump has counted the queue lost already; no receiver is left to
    //  take any of it in any case.
    t->sent = ch->sent;
    t->delivered = ch->delivered;
    t->dropped = ch->dropped;
    t->lost = ch->lost + ch->queue.len;
    memcpy(t->key, ch->key, klen + 1);
    if (zhashx_insert(hub->tombs, t->key, t) != 0) {
        free(t);
        return false;
    }
    zhashx_delete(hub->chans, t->key); // frees ch
    int c = t->unnamed;
    if (hub->tomb_new[c])
        hub->tomb_new[c]->next = t;
    else
        hub->tomb_old[c] = t;
    hub->tomb_new[c] = t;
    if (++hub->ntomb[c] > s_tomb_max[c]) {
        tomb_t *old = hub->tomb_old[c];
        hub->tomb_old[c] = old->next;
        hub->ntomb[c]--;
        zhashx_delete(hub->tombs, old->key); // frees old
    }
    return true;
}

// ---------------------------------------------------------------------------
// Receivers that die
//
// A receiver whose process dies never detaches. What the hub handed it would
// stay in its inflight list, counted against the capacity, and a full channel
// would block its senders for good. ZeroMQ does not tell the hub (no
// ZMQ_ROUTER_NOTIFY without the draft API), but it closes a connection's file
// descriptor once the connection is gone. So the hub records each receiver's
// descriptor (ZMQ_SRCFD) and the socket behind it, and checks them, without
// a word on the wire, when a receiver that holds messages (anycast inflight,
// a broadcast ring) has been quiet for HUB_CHECK_FIRST_MS, then at doubling
// intervals up to HUB_CHECK_MAX_MS, and at a close. One found gone is dropped,
// and the anycast messages it held are counted lost (STAT `lost`), at most
// its credit window: the hub cannot know which of them it consumed after its
// last report, and giving them back would deliver those twice. A peer host
// that vanishes without closing its connections is noticed through ZeroMQ's
// heartbeats (zchan_ctx_set_heartbeat), which close the silent connection.

//  Records the connection of the message being handled as p's.
static void s_conn_record(hub_t *hub, peer_t *p)
{
    struct stat st;
    //  The header frame: ROUTER leaves the routing id frame of a connection's
    //  first message without the connection's properties.
    p->fd = hub->hdr_frame ? zmq_msg_get(hub->hdr_frame, ZMQ_SRCFD) : -1;
    if (p->fd >= 0 && fstat(p->fd, &st) == 0) {
        p->dev = st.st_dev;
        p->ino = st.st_ino;
    } else if (p->fd >= 0) {
        //  Closed before its message was read: no live socket has inode 0,
        //  so the next check finds it gone.
        p->dev = 0;
        p->ino = 0;
    }
}

//  true if p's connection is closed: its descriptor is shut, or now another.
static bool s_conn_gone(const peer_t *p)
{
    struct stat st;
    if (p->fd < 0)
        return false;
    return fstat(p->fd, &st) != 0 || st.st_dev != p->dev || st.st_ino != p->ino;
}

//  Drops receiver idx of ch, found gone. What it held is counted lost, not
//  given back: it may have consumed some of it, and nothing is delivered twice.
static void s_drop_gone(hub_t *hub, chan_t *ch, uint32_t idx)
{
    const peer_t *p = &hub->peers[idx];
    if (ch->kind == ZCHAN_ANYCAST)
        zsys_warning("zchan hub: a receiver of %s is gone; the %zu messages it held are counted lost",
                     ch->key, p->inflight.len);
    else
        zsys_warning("zchan hub: a receiver of %s is gone; %zu messages kept for it are dropped", ch->key,
                     p->ring_len);
    s_receiver_gone(hub, ch, idx, false);
}

//  Drops attachment idx, whose connection is gone: a receiver as one that
//  died (what it held is counted lost), a sender as if it had detached. Then
//  serves its channel, which may be reclaimed (freed).
static void s_attachment_gone(hub_t *hub, uint32_t idx)
{
    peer_t *p = &hub->peers[idx];
    chan_t *ch = p->ch;
    if (p->role == ROLE_SENDER)
        s_sender_gone(hub, ch, idx);
    else if (p->inflight.len > 0 || p->ring_len > 0)
        s_drop_gone(hub, ch, idx);
    else
        s_receiver_gone(hub, ch, idx, false); // it held nothing: no warning
    if (ch->kind == ZCHAN_ANYCAST)
        s_anycast_pump(hub, ch); // what it held no longer takes up the capacity
    s_chan_reclaim(hub, ch);
}

//  Checks the receivers that hold messages and have been quiet long enough,
//  and plans the next scan.
static void s_check_scan(hub_t *hub)
{
    int64_t next = -1;
    hub->scan_at = -1;
    for (size_t idx = 0; idx < hub->npeers; idx++) {
        peer_t *p = &hub->peers[idx];
        if (p->role != ROLE_RECEIVER || p->fd < 0 || (p->inflight.len == 0 && p->ring_len == 0))
            continue;
        if (hub->now_ms >= p->check_at) {
            if (s_conn_gone(p)) {
                s_attachment_gone(hub, (uint32_t) idx);
                continue;
            }
            p->check_gap = p->check_gap * 2 > HUB_CHECK_MAX_MS ? HUB_CHECK_MAX_MS : p->check_gap * 2;
            p->check_at = hub->now_ms + p->check_gap;
        }
        if (next < 0 || p->check_at < next)
            next = p->check_at;
    }
    //  A delivery during the scan may have armed it already.
    if (next >= 0 && (hub->scan_at < 0 || next < hub->scan_at))
        hub->scan_at = next;
}

//  Whether the router has messages not yet read.
static bool s_input_waiting(hub_t *hub)
{
    int ev = 0;
    return hub->router && zmq_getsockopt(hub->router, ZMQ_EVENTS, &ev, &(size_t){sizeof ev}) == 0
           && (ev & ZMQ_POLLIN);
}

//  Checks the connection of every attachment that has one (ipc and tcp, not
//  inproc), idle ones and senders included, drops those whose connection is
//  gone, and plans the next sweep. ZeroMQ closes a connection's descriptor
//  only after handing on what it read from it, so when one is found gone
//  while input waits, the drop waits one short retry: what that peer sent
//  before it went (a DETACH, DATA) is read first.
static void s_sweep(hub_t *hub)
{
    hub->sweep_at = -1;
    bool gone = false, any = false;
    for (size_t idx = 0; idx < hub->npeers && !gone; idx++) {
        const peer_t *p = &hub->peers[idx];
        gone = p->role != ROLE_FREE && p->fd >= 0 && s_conn_gone(p);
    }
    if (gone && !hub->sweep_retry && s_input_waiting(hub)) {
        hub->sweep_retry = true;
        hub->sweep_at = hub->now_ms + HUB_CHECK_FIRST_MS;
        return;
    }
    hub->sweep_retry = false;
    for (size_t idx = 0; idx < hub->npeers; idx++) {
        const peer_t *p = &hub->peers[idx];
        if (p->role == ROLE_FREE || p->fd < 0)
            continue;
        if (gone && s_conn_gone(p))
            s_attachment_gone(hub, (uint32_t) idx);
        else
            any = true;
    }
    if (any)
        hub->sweep_at = hub->now_ms + HUB_SWEEP_MS;
}

static void s_chan_close(hub_t *hub, chan_t *ch)
{
    if (ch->closed)
        return;
    ch->closed = true;
    //  The others get what a receiver that died held before they get the close.
    for (size_t i = ch->nrecv; i-- > 0;) {
        peer_t *p = &hub->peers[ch->recv[i]];
        if (ch->kind == ZCHAN_ANYCAST && p->inflight.len > 0 && s_conn_gone(p))
            s_drop_gone(hub, ch, ch->recv[i]);
    }
    for (size_t i = 0; i < ch->nsend; i++) {
        peer_t *p = &hub->peers[ch->send[i]];
        s_flush_ack(hub, p);
        s_send_closed(hub, p);
    }
    for (size_t i = 0; i < ch->nrecv; i++)
        s_send_closing(hub, &hub->peers[ch->recv[i]]);
    if (ch->kind == ZCHAN_ANYCAST)
        s_anycast_pump(hub, ch);
    else
        for (size_t i = ch->nrecv; i-- > 0;)
            s_broadcast_pump_peer(hub, ch, ch->recv[i]);
}

// ---------------------------------------------------------------------------
// Requests

//  Copies the key of a request into key: false if it cannot be a key. Keys
//  are C strings here: one with a zero byte would alias a shorter one.
static bool s_key_copy(const char *p, size_t len, char key[ZCHAN__EP_MAX])
{
    if (len == 0 || len >= ZCHAN__EP_MAX || memchr(p, 0, len))
        return false;
    memcpy(key, p, len);
    key[len] = 0;
    return true;
}

static chan_t *s_lookup(hub_t *hub, const char *p, size_t len)
{
    char key[ZCHAN__EP_MAX];
    return s_key_copy(p, len, key) ? (chan_t *) zhashx_lookup(hub->chans, key) : NULL;
}

//  The tombstone of a reclaimed channel, or NULL.
static tomb_t *s_lookup_tomb(hub_t *hub, const char *p, size_t len)
{
    char key[ZCHAN__EP_MAX];
    return s_key_copy(p, len, key) ? (tomb_t *) zhashx_lookup(hub->tombs, key) : NULL;
}

//  [REPLY, reqid, status, kind, capacity, closed, info]
static void s_reply_chan(hub_t *hub, uint64_t reqid, zchan_kind_t kind, size_t capacity, bool closed)
{
    zchan__out_t o;
    s_reply_init(&o, reqid, 0, 4);
    zchan__out_u64(&o, kind);
    zchan__out_u64(&o, capacity);
    zchan__out_bool(&o, closed);
    pthread_mutex_lock(&hub->ctx->lock);
    zchan__hubinfo_pack(&o.pk, &hub->ctx->info);
    pthread_mutex_unlock(&hub->ctx->lock);
    s_reply_send(hub, &o);
}

static int s_check_version(const zchan__hdr_t *h, size_t i)
{
    uint64_t v;
    if (zchan__hdr_u64(h, i, &v) != 0 || v != ZCHAN_PROTO_VERSION)
        return ZCHAN_EPROTO;
    return 0;
}

static void s_on_create(hub_t *hub, uint64_t reqid)
{
    const char *kp;
    size_t klen;
    uint64_t kind, capacity;
    bool resend;
    zchan__hdr_t *h = &hub->hdr;
    if (zchan__hdr_str(h, 2, &kp, &klen) || zchan__hdr_u64(h, 3, &kind) || zchan__hdr_u64(h, 4, &capacity)
        || zchan__hdr_bool(h, 5, &resend) || s_check_version(h, 6)) {
        s_reply_status(hub, reqid, ZCHAN_EPROTO);
        return;
    }
    if ((kind != ZCHAN_ANYCAST && kind != ZCHAN_BROADCAST) || klen == 0 || klen >= ZCHAN__EP_MAX
        || memchr(kp, 0, klen) || capacity > (uint64_t) 1 << 40) {
        s_reply_status(hub, reqid, ZCHAN_EINVAL);
        return;
    }
    chan_t *ch = s_lookup(hub, kp, klen);
    if (ch) {
        if (ch->kind != (zchan_kind_t) kind)
            s_reply_status(hub, reqid, ZCHAN_EINVAL);
        else
            s_reply_chan(hub, reqid, ch->kind, ch->capacity, ch->closed);
        return;
    }
    const tomb_t *t = s_lookup_tomb(hub, kp, klen);
    if (t) {
        //  Closed and reclaimed: the key stays taken, closed.
        if (t->kind != (zchan_kind_t) kind)
            s_reply_status(hub, reqid, ZCHAN_EINVAL);
        else
            s_reply_chan(hub, reqid, t->kind, t->capacity, true);
        return;
    }
    if (hub->closing) {
        //  The hub is shutting down (zchan-relay after SIGTERM).
        s_reply_status(hub, reqid, ZCHAN_ECLOSED);
        return;
    }
    if (kind == ZCHAN_ANYCAST && capacity > hub->limit[ZCHAN_LIMIT_CAPACITY]) {
        s_refuse(hub, "a channel's capacity", ZCHAN_LIMIT_CAPACITY);
        s_reply_status(hub, reqid, ZCHAN_ELIMIT);
        return;
    }
    if (zhashx_size(hub->chans) >= hub->limit[ZCHAN_LIMIT_CHANNELS]) {
        s_refuse(hub, "a new channel", ZCHAN_LIMIT_CHANNELS);
        s_reply_status(hub, reqid, ZCHAN_ELIMIT);
        return;
    }
    char key[ZCHAN__EP_MAX];
    memcpy(key, kp, klen);
    key[klen] = 0;
    ch = s_chan_new(key, (zchan_kind_t) kind, (size_t) capacity, resend);
    if (!ch) {
        s_reply_status(hub, reqid, ZCHAN_ENOMEM);
        return;
    }
    ch->hub_bytes = &hub->bytes;
    zhashx_insert(hub->chans, key, ch);
    s_reply_chan(hub, reqid, ch->kind, ch->capacity, ch->closed);
}

//  The channel a request names by key in field 2 (*ch), or its tombstone
//  (*t). false once the request has been answered EPROTO (no key) or
//  ENOTFOUND (neither).
static bool s_request_chan(hub_t *hub, uint64_t reqid, chan_t **ch, tomb_t **t)
{
    const char *kp;
    size_t klen;
    if (zchan__hdr_str(&hub->hdr, 2, &kp, &klen)) {
        s_reply_status(hub, reqid, ZCHAN_EPROTO);
        return false;
    }
    *ch = s_lookup(hub, kp, klen);
    *t = *ch ? NULL : s_lookup_tomb(hub, kp, klen);
    if (!*ch && !*t)
        s_reply_status(hub, reqid, ZCHAN_ENOTFOUND);
    return *ch || *t;
}

static void s_on_open(hub_t *hub, uint64_t reqid)
{
    if (s_check_version(&hub->hdr, 3)) {
        s_reply_status(hub, reqid, ZCHAN_EPROTO);
        return;
    }
    chan_t *ch;
    tomb_t *t;
    if (!s_request_chan(hub, reqid, &ch, &t))
        return;
    if (ch)
        s_reply_chan(hub, reqid, ch->kind, ch->capacity, ch->closed);
    else
        s_reply_chan(hub, reqid, t->kind, t->capacity, true);
}

static void s_on_close(hub_t *hub, uint64_t reqid)
{
    chan_t *ch;
    tomb_t *t;
    if (!s_request_chan(hub, reqid, &ch, &t))
        return;
    if (ch) {
        s_chan_close(hub, ch);
        s_chan_reclaim(hub, ch);
    }
    s_reply_status(hub, reqid, 0);
}

//  [REPLY, reqid, status, handle, kind, capacity or window, closed]
static void s_reply_attach(hub_t *hub, uint64_t reqid, uint64_t handle, zchan_kind_t kind, uint64_t n,
                           bool closed)
{
    zchan__out_t o;
    s_reply_init(&o, reqid, 0, 4);
    zchan__out_u64(&o, handle);
    zchan__out_u64(&o, kind);
    zchan__out_u64(&o, n);
    zchan__out_bool(&o, closed);
    s_reply_send(hub, &o);
}

static void s_on_attach(hub_t *hub, uint64_t reqid, bool receiver)
{
    const char *kp;
    size_t klen;
    uint64_t limit = 0;
    zchan__hdr_t *h = &hub->hdr;
    if (zchan__hdr_str(h, 2, &kp, &klen)
        || (receiver ? (zchan__hdr_u64(h, 3, &limit) || s_check_version(h, 4)) : s_check_version(h, 3))) {
        s_reply_status(hub, reqid, ZCHAN_EPROTO);
        return;
    }
    chan_t *ch = s_lookup(hub, kp, klen);
    const tomb_t *t = ch ? NULL : s_lookup_tomb(hub, kp, klen);
    if (!ch && !t) {
        s_reply_status(hub, reqid, ZCHAN_ENOTFOUND);
        return;
    }
    zchan_kind_t kind = ch ? ch->kind : t->kind;
    size_t capacity = ch ? ch->capacity : t->capacity;
    uint64_t window = kind == ZCHAN_BROADCAST ? 0 : zchan_sender_window(capacity);
    if (!ch || ch->closed) {
        //  Nothing to keep: the party is stopped at once.
        s_reply_attach(hub, reqid, 0, kind, receiver ? capacity : window, true);
        return;
    }
    if (receiver && ch->kind == ZCHAN_BROADCAST && (limit == 0 || limit > ((uint64_t) 1 << 24))) {
        s_reply_status(hub, reqid, ZCHAN_EINVAL);
        return;
    }
    if (receiver && ch->kind == ZCHAN_BROADCAST && limit > hub->limit[ZCHAN_LIMIT_BROADCAST_LIMIT]) {
        s_refuse(hub, "a broadcast receiver's limit", ZCHAN_LIMIT_BROADCAST_LIMIT);
        s_reply_status(hub, reqid, ZCHAN_ELIMIT);
        return;
    }
    //  Live attachments: the peer table less its free slots.
    if (hub->npeers - hub->nfree >= hub->limit[ZCHAN_LIMIT_ATTACHMENTS]) {
        s_refuse(hub, "an attachment", ZCHAN_LIMIT_ATTACHMENTS);
        s_reply_status(hub, reqid, ZCHAN_ELIMIT);
        return;
    }
    //  One zchan sender or receiver is one connection; a peer that attaches
    //  more than this on one connection is refused, so it cannot make the hub
    //  keep state for it without bound.
    if (s_conn_count(hub, hub->rid, hub->rid_len) >= HUB_ATTACH_PER_CONN) {
        s_proto_error(hub, "too many attachments on one connection");
        s_reply_status(hub, reqid, ZCHAN_EINVAL);
        return;
    }
    if (s_conn_add(hub, hub->rid, hub->rid_len, +1) != 0) {
        s_reply_status(hub, reqid, ZCHAN_ENOMEM);
        return;
    }
    uint32_t idx = s_peer_new(hub, receiver ? ROLE_RECEIVER : ROLE_SENDER, ch);
    if (idx == UINT32_MAX) {
        s_conn_add(hub, hub->rid, hub->rid_len, -1);
        s_reply_status(hub, reqid, ZCHAN_ENOMEM);
        return;
    }
    peer_t *p = &hub->peers[idx];
    s_heard(hub, p);
    s_conn_record(hub, p);
    int rc;
    if (receiver) {
        rc = s_idx_add(&ch->recv, &ch->nrecv, &ch->recv_cap, idx);
        if (rc == 0 && ch->kind == ZCHAN_BROADCAST) {
            //  The ring starts small and grows toward the limit as it fills:
            //  a receiver asking for a large limit costs what it holds.
            p->ring_limit = (size_t) limit;
            p->ring_cap = p->ring_limit < HUB_RING_FIRST ? p->ring_limit : HUB_RING_FIRST;
            p->ring = calloc(p->ring_cap, sizeof *p->ring);
            if (!p->ring) {
                s_idx_remove(ch->recv, &ch->nrecv, idx);
                rc = ZCHAN_ENOMEM;
            } else if (ch->has_latest)
                s_ring_push(hub, p, ch, &ch->latest);
        }
    } else
        rc = s_idx_add(&ch->send, &ch->nsend, &ch->send_cap, idx);
    if (rc != 0) {
        s_peer_free(hub, idx);
        s_reply_status(hub, reqid, rc);
        return;
    }
    if (p->fd >= 0 && hub->sweep_at < 0)
        hub->sweep_at = hub->now_ms + HUB_SWEEP_MS; // its connection will be checked
    s_reply_attach(hub, reqid, s_handle(hub, idx), ch->kind, receiver ? ch->capacity : window, false);
}

//  Refuses an anycast message that would take its channel or the hub over a
//  byte limit: it is dropped and counted lost, the sender gets its credit
//  back (its ACK, as if accepted) and [REFUSED, ELIMIT] at once, so that its
//  next send (a rendezvous send: this one) fails with ELIMIT.
static void s_refuse_data(hub_t *hub, uint32_t idx, chan_t *ch, zmq_msg_t *payload)
{
    peer_t *sp = &hub->peers[idx];
    uint64_t cost = s_msg_cost(payload);
    s_refuse(hub, "an anycast message",
             ch->bytes + cost > hub->limit[ZCHAN_LIMIT_CHANNEL_BYTES] ? ZCHAN_LIMIT_CHANNEL_BYTES
                                                                      : ZCHAN_LIMIT_QUEUED_BYTES);
    ch->lost++;
    sp->unaccepted--; // counted by the caller: it is not queued after all
    zchan__out_t o;
    zchan__out_init(&o, 2, ZCHAN__REFUSED);
    zchan__out_u64(&o, ZCHAN_ELIMIT);
    s_send_hdr(hub, sp, &o, false);
    zchan__out_fini(&o);
    sp->pending_ack++;
    s_mark_dirty(hub, idx);
}

static void s_on_data(hub_t *hub, zmq_msg_t *payload)
{
    uint64_t handle;
    if (zchan__hdr_u64(&hub->hdr, 1, &handle)) {
        s_proto_error(hub, "DATA header");
        return;
    }
    uint32_t idx = s_peer_find(hub, handle, ROLE_SENDER);
    if (idx == UINT32_MAX) {
        //  Not attached here (the hub restarted, or a stranger): tell it the
        //  channel is closed for it, so it stops rather than waits.
        s_proto_error(hub, "DATA from an unknown sender");
        s_send_not_attached(hub);
        return;
    }
    chan_t *ch = hub->peers[idx].ch;
    if (ch->closed) {
        ch->lost++;
        return;
    }
    if (ch->kind == ZCHAN_ANYCAST) {
        //  A sender may have at most its window of unaccepted messages (the
        //  credit it was given at attach); more is a peer ignoring its credit,
        //  and keeping it would let one peer grow the queue without bound.
        peer_t *sp = &hub->peers[idx];
        if (sp->unaccepted >= zchan_sender_window(ch->capacity)) {
            s_proto_error(hub, "DATA beyond the sender's credit");
            return;
        }
        sp->unaccepted++;
        //  What it has out grew: its ACK may be due at the end of this burst.
        if (sp->pending_ack)
            s_mark_dirty(hub, idx);
    }
    if (ch->kind == ZCHAN_ANYCAST && !s_bytes_fit(hub, ch, s_msg_cost(payload))) {
        s_refuse_data(hub, idx, ch, payload);
        return;
    }
    ch->sent++;
    if (ch->kind == ZCHAN_BROADCAST) {
        s_broadcast_data(hub, ch, payload);
        return;
    }
    node_t *n = malloc(sizeof *n);
    if (!n) {
        ch->lost++;
        zsys_error("zchan hub: out of memory; a message on %s was lost", ch->key);
        return;
    }
    zmq_msg_init(&n->payload);
    zmq_msg_move(&n->payload, payload);
    n->sender = handle;
    n->ch = ch;
    s_bytes_add(ch, s_msg_cost(&n->payload));
    s_fifo_push(&ch->queue, n);
    s_anycast_pump(hub, ch);
}

//  Marks count inflight messages of an anycast receiver consumed.
static void s_consumed(chan_t *ch, peer_t *p, uint64_t count)
{
    while (count-- > 0 && p->inflight.len > 0) {
        s_node_free(s_fifo_pop(&p->inflight));
        ch->used--;
    }
}

static void s_on_credit(hub_t *hub)
{
    uint64_t handle, consumed, grant;
    zchan__hdr_t *h = &hub->hdr;
    if (zchan__hdr_u64(h, 1, &handle) || zchan__hdr_u64(h, 2, &consumed) || zchan__hdr_u64(h, 3, &grant)) {
        s_proto_error(hub, "CREDIT header");
        return;
    }
    uint32_t idx = s_peer_find(hub, handle, ROLE_RECEIVER);
    if (idx == UINT32_MAX) {
        s_proto_error(hub, "CREDIT from an unknown receiver");
        s_send_not_attached(hub);
        return;
    }
    peer_t *p = &hub->peers[idx];
    chan_t *ch = p->ch;
    //  avail <= HUB_MAX_CREDIT always; compare without adding, so that a huge
    //  grant cannot wrap around.
    p->avail = grant >= HUB_MAX_CREDIT - p->avail ? HUB_MAX_CREDIT : p->avail + grant;
    s_heard(hub, p);
    if (ch->kind == ZCHAN_ANYCAST) {
        s_consumed(ch, p, consumed);
        s_anycast_pump(hub, ch);
    } else
        s_broadcast_pump_peer(hub, ch, idx);
    s_chan_reclaim(hub, ch); // a delivery that failed may have dropped the last party
}

static void s_on_flush(hub_t *hub, uint64_t reqid)
{
    uint64_t handle;
    if (zchan__hdr_u64(&hub->hdr, 2, &handle)) {
        s_reply_status(hub, reqid, ZCHAN_EPROTO);
        return;
    }
    uint32_t idx = s_peer_find(hub, handle, ROLE_SENDER);
    if (idx != UINT32_MAX)
        s_flush_ack(hub, &hub->peers[idx]);
    //  Everything this peer sent before the flush has been handled.
    s_reply_status(hub, reqid, idx == UINT32_MAX ? ZCHAN_ENOTFOUND : 0);
}

static void s_on_detach(hub_t *hub, uint64_t reqid)
{
    uint64_t handle, consumed;
    zchan__hdr_t *h = &hub->hdr;
    if (zchan__hdr_u64(h, 2, &handle) || zchan__hdr_u64(h, 3, &consumed)) {
        s_reply_status(hub, reqid, ZCHAN_EPROTO);
        return;
    }
    uint32_t idx = s_peer_find(hub, handle, ROLE_SENDER);
    if (idx != UINT32_MAX) {
        chan_t *ch = hub->peers[idx].ch;
        s_sender_gone(hub, ch, idx);
        s_chan_reclaim(hub, ch);
        s_reply_status(hub, reqid, 0);
        return;
    }
    idx = s_peer_find(hub, handle, ROLE_RECEIVER);
    if (idx == UINT32_MAX) {
        s_reply_status(hub, reqid, ZCHAN_ENOTFOUND);
        return;
    }
    peer_t *p = &hub->peers[idx];
    chan_t *ch = p->ch;
    if (ch->kind == ZCHAN_ANYCAST)
        s_consumed(ch, p, consumed);
    s_receiver_gone(hub, ch, idx, true);
    if (ch->kind == ZCHAN_ANYCAST)
        s_anycast_pump(hub, ch);
    s_chan_reclaim(hub, ch);
    s_reply_status(hub, reqid, 0);
}

static void s_on_cancel(hub_t *hub, uint64_t reqid)
{
    uint64_t handle;
    if (zchan__hdr_u64(&hub->hdr, 2, &handle)) {
        s_reply_status(hub, reqid, ZCHAN_EPROTO);
        return;
    }
    uint32_t idx = s_peer_find(hub, handle, ROLE_SENDER);
    bool cancelled = false;
    if (idx != UINT32_MAX) {
        peer_t *p = &hub->peers[idx];
        chan_t *ch = p->ch;
        //  Remove the sender's unaccepted messages, if still waiting.
        node_t *prev = NULL, *n = ch->queue.head;
        for (size_t i = 0; n; i++) {
            node_t *next = n->next;
            if (i >= ch->nacc && n->sender == handle) {
                if (prev)
                    prev->next = next;
                else
                    ch->queue.head = next;
                if (ch->queue.tail == n)
                    ch->queue.tail = prev;
                ch->queue.len--;
                s_node_free(n);
                if (p->unaccepted > 0)
                    p->unaccepted--;
                cancelled = true;
            } else
                prev = n;
            n = next;
        }
        s_flush_ack(hub, p);
    }
    zchan__out_t o;
    s_reply_init(&o, reqid, idx == UINT32_MAX ? ZCHAN_ENOTFOUND : 0, 1);
    zchan__out_bool(&o, cancelled);
    s_reply_send(hub, &o);
}

static void s_on_stat(hub_t *hub, uint64_t reqid)
{
    chan_t *ch;
    tomb_t *t;
    if (!s_request_chan(hub, reqid, &ch, &t))
        return;
    uint64_t vals[10];
    if (ch) {
        size_t depth = ch->queue.len;
        if (ch->kind == ZCHAN_BROADCAST)
            for (size_t i = 0; i < ch->nrecv; i++)
                depth = hub->peers[ch->recv[i]].ring_len > depth ? hub->peers[ch->recv[i]].ring_len : depth;
        uint64_t v[] = {ch->kind, ch->capacity, depth, ch->nsend, ch->nrecv,
                        ch->sent, ch->delivered, ch->dropped, ch->lost, ch->closed};
        memcpy(vals, v, sizeof vals);
    } else {
        uint64_t v[] = {t->kind, t->capacity, 0, 0, 0, t->sent, t->delivered, t->dropped, t->lost, 1};
        memcpy(vals, v, sizeof vals);
    }
    zchan__out_t o;
    s_reply_init(&o, reqid, 0, 1);
    msgpack_packer *pk = &o.pk;
    msgpack_pack_map(pk, 10);
    const char *names[] = {"kind", "capacity", "depth", "senders", "receivers",
                           "sent", "delivered", "dropped", "lost", "closed"};
    for (size_t i = 0; i < 10; i++) {
        zchan__out_str(&o, names[i]);
        zchan__out_u64(&o, vals[i]);
    }
    s_reply_send(hub, &o);
}

// ---------------------------------------------------------------------------
// The loop

static void s_dispatch(hub_t *hub, zmq_msg_t *frames, size_t n)
{
    if (n < 2 || n > 3 || zmq_msg_size(&frames[0]) > sizeof hub->rid) {
        s_proto_error(hub, "wrong frame count");
        return;
    }
    hub->rid_len = zmq_msg_size(&frames[0]);
    memcpy(hub->rid, zmq_msg_data(&frames[0]), hub->rid_len);
    hub->hdr_frame = &frames[1];
    if (zchan__hdr_parse(&hub->hdr, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1])) != 0) {
        s_proto_error(hub, "header is not a msgpack array");
        return;
    }
    int type = zchan__hdr_type(&hub->hdr);
    if (type == ZCHAN__DATA) {
        if (n != 3)
            s_proto_error(hub, "DATA without payload");
        else
            s_on_data(hub, &frames[2]);
        return;
    }
    if (type == ZCHAN__CREDIT) {
        s_on_credit(hub);
        return;
    }
    uint64_t reqid;
    if (n != 2 || zchan__hdr_u64(&hub->hdr, 1, &reqid) != 0) {
        s_proto_error(hub, "request without a request id");
        return;
    }
    switch (type) {
    case ZCHAN__CREATE: s_on_create(hub, reqid); break;
    case ZCHAN__OPEN: s_on_open(hub, reqid); break;
    case ZCHAN__CLOSE: s_on_close(hub, reqid); break;
    case ZCHAN__ATTACH_S: s_on_attach(hub, reqid, false); break;
    case ZCHAN__ATTACH_R: s_on_attach(hub, reqid, true); break;
    case ZCHAN__FLUSH: s_on_flush(hub, reqid); break;
    case ZCHAN__DETACH: s_on_detach(hub, reqid); break;
    case ZCHAN__CANCEL: s_on_cancel(hub, reqid); break;
    case ZCHAN__STAT: s_on_stat(hub, reqid); break;
    case ZCHAN__PING: s_reply_status(hub, reqid, 0); break;
    default:
        s_proto_error(hub, "unknown message type");
        s_reply_status(hub, reqid, ZCHAN_EPROTO);
    }
}

static void s_read_router(hub_t *hub)
{
    for (int i = 0; i < HUB_BATCH; i++) {
        zmq_msg_t frames[3];
        for (int k = 0; k < 3; k++)
            zmq_msg_init(&frames[k]);
        size_t n = 0;
        int rc = zchan__recv_frames(hub->router, frames, 3, &n, ZMQ_DONTWAIT);
        if (rc == 0)
            s_dispatch(hub, frames, n);
        for (int k = 0; k < 3; k++)
            zmq_msg_close(&frames[k]);
        if (rc != 0)
            break;
    }
    s_flush_acks(hub);
}

//  Pipe command "BIND" endpoint: replies rc and the bound endpoint.
static void s_on_bind(hub_t *hub, const char *endpoint)
{
    char bound[ZCHAN__EP_MAX] = "";
    int rc = 0;
    //  The sender of BIND holds ctx->pipe_lock, which guards max_msg_size.
    //  ZeroMQ copies the option into each listener when it binds.
    int64_t maxmsg = hub->ctx->max_msg_size;
    zmq_setsockopt(hub->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zchan__socket_heartbeat(hub->ctx, hub->router); // so are the heartbeat settings
    //  ...and CURVE: on for tcp once the context has a server certificate.
    if (zchan__curve_bind_opts(hub->ctx, hub->router, endpoint) != 0)
        rc = ZCHAN_ESYS;
    else if (zmq_bind(hub->router, endpoint) != 0) {
        zsys_error("zchan hub: cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        rc = zmq_errno() == EINVAL || zmq_errno() == EPROTONOSUPPORT ? ZCHAN_EINVAL : ZCHAN_ESYS;
    } else {
        size_t len = sizeof bound;
        zmq_getsockopt(hub->router, ZMQ_LAST_ENDPOINT, bound, &len);
    }
    zsock_send(hub->pipe, "is", rc, bound);
}

//  How many deliveries and close notices of closed channels still wait for
//  receivers. Messages of a channel without receivers are not counted: nobody
//  is there to take them.
static uint64_t s_pending(hub_t *hub)
{
    uint64_t pending = 0;
    for (chan_t *ch = (chan_t *) zhashx_first(hub->chans); ch; ch = (chan_t *) zhashx_next(hub->chans)) {
        if (ch->nrecv > 0 && ch->kind == ZCHAN_ANYCAST)
            pending += ch->queue.len;
        for (size_t i = 0; i < ch->nrecv; i++) {
            const peer_t *p = &hub->peers[ch->recv[i]];
            pending += p->ring_len + (p->closed_sent ? 0 : 1);
        }
    }
    return pending;
}

//  Pipe command "CLOSEALL": closes every channel, refuses new ones from now
//  on, and replies 0 and the number of deliveries still pending. Idempotent:
//  zchan-relay repeats it to watch its receivers drain. The router then
//  lingers, so that what is queued still goes out when the hub stops.
static void s_on_close_all(hub_t *hub)
{
    hub->closing = true;
    for (chan_t *ch = (chan_t *) zhashx_first(hub->chans); ch; ch = (chan_t *) zhashx_next(hub->chans))
        s_chan_close(hub, ch);
    //  Those nobody is attached to are reclaimed, out of the iteration.
    size_t n = 0;
    chan_t **done = malloc((zhashx_size(hub->chans) + 1) * sizeof *done);
    for (chan_t *ch = (chan_t *) zhashx_first(hub->chans); ch && done; ch = (chan_t *) zhashx_next(hub->chans))
        if (ch->nsend == 0 && ch->nrecv == 0)
            done[n++] = ch;
    for (size_t i = 0; i < n; i++)
        s_chan_reclaim(hub, done[i]);
    free(done);
    s_flush_acks(hub);
    int linger = 1000;
    zmq_setsockopt(hub->router, ZMQ_LINGER, &linger, sizeof linger);
    zsock_send(hub->pipe, "i8", 0, s_pending(hub));
}

//  Pipe command "MONITOR" endpoint: starts a ZeroMQ socket monitor of every
//  event on the router, at an inproc endpoint of the process's ZeroMQ context;
//  an empty endpoint stops it.
static void s_on_monitor(hub_t *hub, const char *endpoint)
{
    int rc = 0;
    if (zmq_socket_monitor(hub->router, *endpoint ? endpoint : NULL, *endpoint ? ZMQ_EVENT_ALL : 0) != 0) {
        zsys_error("zchan hub: cannot monitor on %s: %s", endpoint, zmq_strerror(zmq_errno()));
        rc = zmq_errno() == EINVAL || zmq_errno() == EPROTONOSUPPORT ? ZCHAN_EINVAL : ZCHAN_ESYS;
    }
    zsock_send(hub->pipe, "i", rc);
}

static bool s_on_pipe(hub_t *hub)
{
    char *cmd = NULL, *arg = NULL;
    if (zsock_recv(hub->pipe, "ss", &cmd, &arg) != 0)
        return false;
    bool go_on = true;
    if (cmd && streq(cmd, "$TERM"))
        go_on = false;
    else if (cmd && streq(cmd, "BIND") && arg)
        s_on_bind(hub, arg);
    else if (cmd && streq(cmd, "CLOSEALL"))
        s_on_close_all(hub);
    else if (cmd && streq(cmd, "MONITOR") && arg)
        s_on_monitor(hub, arg);
    else if (cmd && streq(cmd, "LIMITS")) {
        //  The sender of LIMITS holds ctx->pipe_lock, which guards the limits.
        memcpy(hub->limit, hub->ctx->limits, sizeof hub->limit);
        zsock_send(hub->pipe, "i", 0);
    }
    zstr_free(&cmd);
    zstr_free(&arg);
    return go_on;
}

static void s_hub_free(hub_t *hub)
{
    //  Peers first: what they hold counts in their channels' bytes.
    for (size_t i = 0; i < hub->npeers; i++)
        if (hub->peers[i].role != ROLE_FREE) {
            s_fifo_clear(&hub->peers[i].inflight);
            s_ring_clear(&hub->peers[i]);
        }
    zhashx_destroy(&hub->chans);
    zhashx_destroy(&hub->tombs);
    zhashx_destroy(&hub->conns);
    free(hub->peers);
    free(hub->free_idx);
    free(hub->dirty);
    zchan__hdr_fini(&hub->hdr);
    if (hub->router)
        zmq_close(hub->router);
}

//  Sets up the state every hub starts with, the actor's and a fuzzer's alike.
//  Returns 0, or -1 if out of memory (the hub can still be freed).
static int s_hub_init(hub_t *hub, zchan_ctx_t *ctx)
{
    memset(hub, 0, sizeof *hub);
    hub->scan_at = -1;
    hub->sweep_at = -1;
    hub->now_ms = zchan__now_ms();
    hub->ctx = ctx;
    //  Set before the hub starts, or (a threadless hub) by the caller's thread.
    memcpy(hub->limit, ctx->limits, sizeof hub->limit);
    zchan__hdr_init(&hub->hdr);
    hub->chans = zhashx_new();
    hub->tombs = zhashx_new();
    hub->conns = zhashx_new();
    if (!hub->chans || !hub->tombs || !hub->conns)
        return -1;
    zhashx_set_destructor(hub->chans, s_chan_destroy);
    //  A tombstone holds its own key.
    zhashx_set_key_duplicator(hub->tombs, NULL);
    zhashx_set_key_destructor(hub->tombs, NULL);
    zhashx_set_destructor(hub->tombs, s_tomb_destroy);
    return 0;
}

//  Runs the checks that are due: of quiet receivers that hold messages, and
//  the sweep of every attachment's connection.
static void s_timers(hub_t *hub)
{
    if (hub->scan_at >= 0 && hub->now_ms >= hub->scan_at) {
        s_check_scan(hub);
        s_flush_acks(hub); // what went back may have been accepted
    }
    if (hub->sweep_at >= 0 && hub->now_ms >= hub->sweep_at) {
        s_sweep(hub);
        s_flush_acks(hub);
    }
}

void zchan__hub_actor(zsock_t *pipe, void *args)
{
    hub_t hub;
    int rc = s_hub_init(&hub, (zchan_ctx_t *) args);
    hub.pipe = pipe;
    hub.router = rc == 0 ? zchan__socket(hub.ctx, ZMQ_ROUTER) : NULL;
    rc = -1;
    if (hub.chans && hub.router) {
        //  Mandatory routing makes a send to a vanished peer fail, so the hub
        //  can take back what it would have lost. Credit keeps data far below
        //  the high-water mark.
        int one = 1, hwm = 4 * HUB_MAX_CREDIT;
        zmq_setsockopt(hub.router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
        zmq_setsockopt(hub.router, ZMQ_SNDHWM, &hwm, sizeof hwm);
        rc = zmq_bind(hub.router, zchan__ctx_inproc(hub.ctx));
    }
    zsock_signal(pipe, rc == 0 ? 0 : 1);
    if (rc != 0) {
        s_hub_free(&hub);
        return;
    }
    //  The loop sleeps in poll(2) on the two sockets' ZMQ_FDs. zmq_poll would
    //  ask each socket for its events before and after sleeping, a system
    //  call each; here a wake-up costs the sleep, the read that finds the
    //  router empty, and one look at its events. ZMQ_FD is edge-triggered:
    //  the sockets are read until ZeroMQ says they are empty before sleeping.
    void *psock = zsock_resolve(pipe);
    struct pollfd pfds[2] = {{-1, POLLIN, 0}, {-1, POLLIN, 0}};
    size_t fl = sizeof pfds[0].fd;
    if (zmq_getsockopt(psock, ZMQ_FD, &pfds[0].fd, &fl) != 0
        || zmq_getsockopt(hub.router, ZMQ_FD, &pfds[1].fd, &(size_t){sizeof pfds[1].fd}) != 0) {
        zsys_error("zchan hub: cannot get the sockets' descriptors: %s", zmq_strerror(zmq_errno()));
        s_hub_free(&hub);
        return;
    }
    bool check_pipe = true;
    unsigned busy = 0;
    while (true) {
        if (check_pipe) {
            check_pipe = false;
            int ev = 0;
            bool go_on = true;
            while (go_on && zmq_getsockopt(psock, ZMQ_EVENTS, &ev, &(size_t){sizeof ev}) == 0 && (ev & ZMQ_POLLIN))
                go_on = s_on_pipe(&hub);
            if (!go_on)
                break;
        }
        s_read_router(&hub);
        s_timers(&hub);
        //  Sending may have taken the router's wake-up: ask before sleeping.
        int ev = 0;
        if (zmq_getsockopt(hub.router, ZMQ_EVENTS, &ev, &(size_t){sizeof ev}) == 0 && (ev & ZMQ_POLLIN)) {
            hub.now_ms = zchan__now_ms();
            if (++busy % 16 == 0)
                check_pipe = true; // a busy router does not starve the pipe
            continue;
        }
        busy = 0;
        //  Sleeps until a message comes, or quiet receivers are due a check,
        //  or connections a sweep.
        int64_t wake = hub.scan_at < 0 || (hub.sweep_at >= 0 && hub.sweep_at < hub.scan_at) ? hub.sweep_at
                                                                                            : hub.scan_at;
        long timeout = wake < 0 ? -1 : wake > hub.now_ms ? (long) (wake - hub.now_ms) : 0;
        int prc = poll(pfds, 2, timeout > INT32_MAX ? INT32_MAX : (int) timeout);
        hub.now_ms = zchan__now_ms();
        if (prc < 0 && errno != EINTR) {
            zsys_error("zchan hub: poll: %s", strerror(errno));
            break;
        }
        if (prc > 0 && pfds[0].revents)
            check_pipe = true;
    }
    s_hub_free(&hub);
}

// ---------------------------------------------------------------------------
// A hub without its thread, for fuzzers and tests (core.h)

zchan__hub_t *zchan__hub_new(zchan_ctx_t *ctx, void *router)
{
    hub_t *hub = malloc(sizeof *hub);
    if (!hub)
        return NULL;
    if (s_hub_init(hub, ctx) != 0) {
        zchan__hub_destroy(&hub);
        return NULL;
    }
    hub->router = router;
    return hub;
}

void zchan__hub_feed(zchan__hub_t *hub, zmq_msg_t *frames, size_t n)
{
    hub->now_ms = zchan__now_ms();
    s_dispatch(hub, frames, n);
    s_flush_acks(hub);
    s_timers(hub);
}

uint64_t zchan__hub_refused(const zchan__hub_t *hub)
{
    return hub->refused;
}

uint64_t zchan__hub_bytes(const zchan__hub_t *hub)
{
    return hub->bytes;
}

void zchan__hub_destroy(zchan__hub_t **hub_p)
{
    if (!hub_p || !*hub_p)
        return;
    hub_t *hub = *hub_p;
    hub->router = NULL; // the caller's
    s_hub_free(hub);
    free(hub);
    *hub_p = NULL;
}

void zchan__hub_sizes(const zchan__hub_t *hub, size_t *chans, size_t *tombs, size_t *attached)
{
    *chans = zhashx_size(hub->chans);
    *tombs = zhashx_size(hub->tombs);
    *attached = hub->npeers - hub->nfree;
}

//  Counts the nodes of f, checking its links. SIZE_MAX if they are broken.
static size_t s_fifo_count(const fifo_t *f)
{
    size_t k = 0;
    const node_t *last = NULL;
    for (const node_t *n = f->head; n; n = n->next) {
        if (++k > f->len)
            return SIZE_MAX;
        last = n;
    }
    return last == f->tail ? k : SIZE_MAX;
}

//  How many times v appears in arr.
static size_t s_idx_count(const uint32_t *arr, size_t n, uint32_t v)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += arr[i] == v;
    return k;
}

const char *zchan__hub_check(const zchan__hub_t *hub)
{
    if (hub->npeers > hub->peers_cap || hub->nfree > hub->npeers || hub->ndirty != 0)
        return "peer table counts";
    for (size_t i = 0; i < hub->nfree; i++)
        if (hub->free_idx[i] >= hub->npeers || hub->peers[hub->free_idx[i]].role != ROLE_FREE
            || s_idx_count(hub->free_idx, hub->nfree, hub->free_idx[i]) != 1)
            return "free list";
    //  Every attachment is counted on its connection, within the cap.
    size_t attached = 0, counted = 0;
    for (size_t idx = 0; idx < hub->npeers; idx++)
        if (hub->peers[idx].role != ROLE_FREE) {
            attached++;
            if (s_conn_count((hub_t *) hub, hub->peers[idx].rid, hub->peers[idx].rid_len) > HUB_ATTACH_PER_CONN)
                return "attachments on one connection";
        }
    for (void *v = zhashx_first(hub->conns); v; v = zhashx_next(hub->conns))
        counted += (size_t) (uintptr_t) v;
    if (attached != counted)
        return "attachment counts";
    for (size_t idx = 0; idx < hub->npeers; idx++) {
        const peer_t *p = &hub->peers[idx];
        if (p->role == ROLE_FREE) {
            if (p->ch || p->inflight.len || p->ring)
                return "a free slot holds something";
            continue;
        }
        const chan_t *ch = p->ch;
        if (!ch || !zhashx_lookup(hub->chans, ch->key))
            return "a peer without its channel";
        if (p->closed_sent && !ch->closed)
            return "CLOSED sent on an open channel";
        if (p->role == ROLE_RECEIVER) {
            if (s_idx_count(ch->recv, ch->nrecv, (uint32_t) idx) != 1 || p->avail > HUB_MAX_CREDIT)
                return "receiver membership or credit";
            if (s_fifo_count(&p->inflight) != p->inflight.len)
                return "inflight list";
            if (ch->kind == ZCHAN_BROADCAST
                    ? (!p->ring || p->ring_cap == 0 || p->ring_len > p->ring_cap || p->ring_head >= p->ring_cap
                       || p->ring_cap > p->ring_limit || p->inflight.len)
                    : (p->ring != NULL))
                return "receiver ring";
        } else {
            if (s_idx_count(ch->send, ch->nsend, (uint32_t) idx) != 1)
                return "sender membership";
            if (ch->kind == ZCHAN_ANYCAST && !ch->closed) {
                uint64_t handle = s_handle((hub_t *) hub, (uint32_t) idx), mine = 0;
                size_t i = 0;
                for (const node_t *n = ch->queue.head; n; n = n->next, i++)
                    mine += i >= ch->nacc && n->sender == handle;
                if (p->unaccepted != mine || p->unaccepted > zchan_sender_window(ch->capacity))
                    return "sender's unaccepted count";
            }
        }
    }
    //  The bytes held: every node, ring slot and latest message, counted once.
    uint64_t all = 0;
    for (const chan_t *ch = (const chan_t *) zhashx_first(hub->chans); ch;
         ch = (const chan_t *) zhashx_next(hub->chans)) {
        uint64_t held = ch->has_latest ? s_msg_cost((zmq_msg_t *) &ch->latest) : 0;
        for (const node_t *n = ch->queue.head; n; n = n->next)
            held += n->ch == ch ? s_msg_cost((zmq_msg_t *) &n->payload) : UINT64_MAX / 2;
        for (size_t i = 0; i < ch->nrecv && ch->recv[i] < hub->npeers; i++) {
            const peer_t *p = &hub->peers[ch->recv[i]];
            uint64_t ring = 0;
            for (const node_t *n = p->inflight.head; n; n = n->next)
                held += n->ch == ch ? s_msg_cost((zmq_msg_t *) &n->payload) : UINT64_MAX / 2;
            for (size_t k = 0; p->ring && k < p->ring_len; k++)
                ring += s_msg_cost(&p->ring[(p->ring_head + k) % p->ring_cap]);
            if (ring != p->ring_bytes)
                return "a receiver's ring bytes";
            held += ring;
        }
        if (held != ch->bytes || ch->hub_bytes != &hub->bytes || ch->bytes > hub->limit[ZCHAN_LIMIT_CHANNEL_BYTES])
            return "a channel's bytes";
        all += held;
    }
    if (all != hub->bytes || hub->bytes > hub->limit[ZCHAN_LIMIT_QUEUED_BYTES])
        return "the hub's bytes";
    for (const chan_t *ch = (const chan_t *) zhashx_first(hub->chans); ch;
         ch = (const chan_t *) zhashx_next(hub->chans)) {
        if (!ch->key[0] || strlen(ch->key) >= ZCHAN__EP_MAX)
            return "channel key";
        if (s_fifo_count(&ch->queue) != ch->queue.len || ch->nacc > ch->queue.len)
            return "channel queue";
        size_t inflight = 0;
        for (size_t i = 0; i < ch->nrecv; i++) {
            if (ch->recv[i] >= hub->npeers || hub->peers[ch->recv[i]].role != ROLE_RECEIVER
                || hub->peers[ch->recv[i]].ch != ch)
                return "channel's receiver list";
            inflight += hub->peers[ch->recv[i]].inflight.len;
        }
        for (size_t i = 0; i < ch->nsend; i++)
            if (ch->send[i] >= hub->npeers || hub->peers[ch->send[i]].role != ROLE_SENDER
                || hub->peers[ch->send[i]].ch != ch)
                return "channel's sender list";
        if (ch->kind == ZCHAN_BROADCAST ? (ch->queue.len || ch->used) : ch->used != ch->nacc + inflight)
            return "channel's used count";
        //  A closed channel is reclaimed once nobody is attached, and keeps
        //  no message that no receiver can take any more.
        if (ch->closed && ch->nsend == 0 && ch->nrecv == 0)
            return "a closed channel nobody is attached to";
        bool anyone = false;
        for (size_t i = 0; i < ch->nrecv && !anyone; i++)
            anyone = !hub->peers[ch->recv[i]].closed_sent;
        if (ch->closed && ch->queue.len > 0 && !anyone)
            return "messages of a closed channel that no receiver can take";
    }
    //  Tombstones: one per reclaimed key, none for a live channel; each class
    //  listed oldest first, within its bound.
    size_t count[2] = {0, 0};
    for (const tomb_t *t = (const tomb_t *) zhashx_first(hub->tombs); t;
         t = (const tomb_t *) zhashx_next(hub->tombs)) {
        if (!t->key[0] || strlen(t->key) >= ZCHAN__EP_MAX || (t->kind != ZCHAN_ANYCAST && t->kind != ZCHAN_BROADCAST)
            || t->unnamed != s_key_unnamed(t->key))
            return "tombstone";
        if (zhashx_lookup(hub->chans, t->key))
            return "a channel and its tombstone";
        count[t->unnamed]++;
    }
    for (int c = 0; c < 2; c++) {
        if (count[c] != hub->ntomb[c] || hub->ntomb[c] > s_tomb_max[c])
            return "tombstone count";
        size_t listed = 0;
        const tomb_t *last = NULL;
        for (const tomb_t *t = hub->tomb_old[c]; t; t = t->next) {
            if (++listed > hub->ntomb[c] || t->unnamed != c || zhashx_lookup(hub->tombs, t->key) != t)
                return "tombstone list";
            last = t;
        }
        if (listed != hub->ntomb[c] || last != hub->tomb_new[c])
            return "tombstone list";
    }
    return NULL;
}

/*  peers.c: the hub's peer table (its attachments), the attachments each
    connection holds, and liveness: which receivers' connections are gone.
    It never calls the channel's rules: it reports a connection gone, and the
    caller (loop.c, handlers.c) tells the channel.

    Receivers that die: a receiver whose process dies never detaches. What
    the hub handed it would stay in its inflight list, counted against the
    capacity, and a full channel would block its senders for good. ZeroMQ
    does not tell the hub (no ZMQ_ROUTER_NOTIFY without the draft API), but
    it closes a connection's file descriptor once the connection is gone. So
    the hub records each receiver's descriptor (ZMQ_SRCFD) and the socket
    behind it, and checks them, without a word on the wire, when a receiver
    that holds messages (anycast inflight, a broadcast ring) has been quiet
    for HUB_CHECK_FIRST_MS, then at doubling intervals up to
    HUB_CHECK_MAX_MS, and at a close. One found gone is dropped, and the
    anycast messages it held are counted lost (STAT `lost`), at most its
    credit window: the hub cannot know which of them it consumed after its
    last report, and giving them back would deliver those twice. A peer host
    that vanishes without closing its connections is noticed through
    ZeroMQ's heartbeats (zchan_ctx_set_heartbeat), which close the silent
    connection.
*/
#include "hub.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

uint64_t zchan__peer_handle(const hub_t *hub, uint32_t idx)
{
    return ((uint64_t) hub->peers[idx]->gen << 32) | idx;
}

peer_t *zchan__peer_get(hub_t *hub, uint64_t handle, role_t role)
{
    uint32_t idx = (uint32_t) handle;
    if (idx >= hub->npeers)
        return NULL;
    peer_t *p = hub->peers[idx];
    if (p->role != role || p->gen != (uint32_t) (handle >> 32))
        return NULL;
    return p;
}

peer_t *zchan__peer_find(hub_t *hub, const hub_req_t *rq, uint64_t handle, role_t role)
{
    peer_t *p = zchan__peer_get(hub, handle, role);
    if (!p || p->rid_len != rq->rid_len || memcmp(p->rid, rq->rid, rq->rid_len) != 0)
        return NULL;
    return p;
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

size_t zchan__conn_count(const hub_t *hub, const uint8_t *rid, size_t len)
{
    char key[2 * 255 + 1];
    s_conn_key(rid, len, key);
    return hub->conns ? (size_t) (uintptr_t) zhashx_lookup(hub->conns, key) : 0;
}

int zchan__conn_add(hub_t *hub, const uint8_t *rid, size_t len, int delta)
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

//  Records the connection of rq as p's.
static void s_conn_record(const hub_req_t *rq, peer_t *p)
{
    struct stat st;
    //  The header frame: ROUTER leaves the routing id frame of a connection's
    //  first message without the connection's properties.
    p->fd = rq->hdr_frame ? zmq_msg_get(rq->hdr_frame, ZMQ_SRCFD) : -1;
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

//  A slot of the table, free or new, or NULL if out of memory or full.
static peer_t *s_slot(hub_t *hub)
{
    peer_t *p;
    if (hub->free.n)
        p = (peer_t *) hub->free.v[--hub->free.n];
    else {
        if (hub->npeers == hub->peers_cap) {
            size_t nc = hub->peers_cap ? hub->peers_cap * 2 : 64;
            if (nc > HUB_PEER_MAX)
                return NULL;
            peer_t **np = realloc(hub->peers, nc * sizeof *np);
            if (!np)
                return NULL;
            hub->peers = np;
            hub->peers_cap = nc;
        }
        p = malloc(sizeof *p);
        if (!p)
            return NULL;
        p->idx = (uint32_t) hub->npeers;
        p->gen = 0;
        hub->peers[hub->npeers++] = p;
    }
    uint32_t gen = p->gen + 1, idx = p->idx;
    memset(p, 0, sizeof *p);
    p->idx = idx;
    p->gen = gen;
    p->m.token = zchan__peer_handle(hub, idx);
    return p;
}

peer_t *zchan__peer_new(hub_t *hub, const hub_req_t *rq, role_t role)
{
    peer_t *p = s_slot(hub);
    if (!p)
        return NULL;
    p->role = role;
    p->rid_len = (uint8_t) rq->rid_len;
    memcpy(p->rid, rq->rid, rq->rid_len);
    zchan__peer_heard(hub, p);
    s_conn_record(rq, p);
    return p;
}

peer_t *zchan__peer_new_local(hub_t *hub, role_t role)
{
    peer_t *p = s_slot(hub);
    if (!p)
        return NULL;
    p->role = role;
    p->fd = -1; // no connection: never checked, never swept
    zchan__peer_heard(hub, p);
    return p;
}

void zchan__peer_free(hub_t *hub, peer_t *p)
{
    if (p->role != ROLE_FREE && !p->m.local)
        zchan__conn_add(hub, p->rid, p->rid_len, -1);
    p->role = ROLE_FREE;
    p->gen++;
    p->m.ch = NULL;
    if (zchan__vec_add(&hub->free, p) != 0) {
        //  Out of memory: the slot is lost, not its memory (hub->peers).
    }
}

void zchan__peer_heard(hub_t *hub, peer_t *p)
{
    p->check_at = hub->now_ms + HUB_CHECK_FIRST_MS;
    p->check_gap = HUB_CHECK_FIRST_MS;
}

void zchan__peer_arm(hub_t *hub)
{
    if (hub->scan_at < 0)
        hub->scan_at = hub->now_ms + HUB_CHECK_FIRST_MS;
}

bool zchan__peer_gone(const peer_t *p)
{
    struct stat st;
    if (p->fd < 0)
        return false;
    return fstat(p->fd, &st) != 0 || st.st_dev != p->dev || st.st_ino != p->ino;
}

void zchan__peers_arm_sweep(hub_t *hub, const peer_t *p)
{
    if (p->fd >= 0 && hub->sweep_at < 0)
        hub->sweep_at = hub->now_ms + HUB_SWEEP_MS; // its connection will be checked
}

bool zchan__peers_any_gone(const hub_t *hub)
{
    for (size_t idx = 0; idx < hub->npeers; idx++) {
        const peer_t *p = hub->peers[idx];
        if (p->role != ROLE_FREE && p->fd >= 0 && zchan__peer_gone(p))
            return true;
    }
    return false;
}

peer_t *zchan__peers_scan(hub_t *hub, size_t *pos, int64_t *next)
{
    for (; *pos < hub->npeers; (*pos)++) {
        peer_t *p = hub->peers[*pos];
        if (p->role != ROLE_RECEIVER || p->fd < 0 || (p->m.inflight.len == 0 && p->m.ring.len == 0))
            continue;
        if (hub->now_ms >= p->check_at) {
            if (zchan__peer_gone(p)) {
                (*pos)++;
                return p;
            }
            p->check_gap = p->check_gap * 2 > HUB_CHECK_MAX_MS ? HUB_CHECK_MAX_MS : p->check_gap * 2;
            p->check_at = hub->now_ms + p->check_gap;
        }
        if (*next < 0 || p->check_at < *next)
            *next = p->check_at;
    }
    //  A delivery during the scan may have armed it already.
    if (*next >= 0 && (hub->scan_at < 0 || *next < hub->scan_at))
        hub->scan_at = *next;
    return NULL;
}

void zchan__peers_fini(hub_t *hub)
{
    for (size_t i = 0; i < hub->npeers; i++)
        free(hub->peers[i]);
    free(hub->peers);
    hub->peers = NULL;
    hub->npeers = hub->peers_cap = 0;
    zchan__vec_fini(&hub->free);
    zchan__vec_fini(&hub->dirty);
}

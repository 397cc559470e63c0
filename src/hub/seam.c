/*  seam.c: the hub without its thread, for fuzzers and tests (core.h): a
    caller feeds it messages and reads its replies on a ROUTER of its own;
    and the checker of the hub's bookkeeping, which they run after each
    message.
*/
#include "hub.h"
#include <stdlib.h>
#include <string.h>

zchan__hub_t *zchan__hub_new(zchan_ctx_t *ctx, void *router)
{
    hub_t *hub = malloc(sizeof *hub);
    if (!hub)
        return NULL;
    if (zchan__hub_init(hub, ctx) != 0) {
        zchan__hub_destroy(&hub);
        return NULL;
    }
    hub->router = router;
    return hub;
}

void zchan__hub_feed(zchan__hub_t *hub, zmq_msg_t *frames, size_t n)
{
    hub->now_ms = zchan__now_ms();
    zchan__hub_dispatch(hub, frames, n);
    zchan__hub_flush_acks(hub);
    zchan__hub_timers(hub);
}

void zchan__hub_destroy(zchan__hub_t **hub_p)
{
    if (!hub_p || !*hub_p)
        return;
    hub_t *hub = *hub_p;
    hub->router = NULL; // the caller's
    zchan__hub_fini(hub);
    free(hub);
    *hub_p = NULL;
}

uint64_t zchan__hub_refused(const zchan__hub_t *hub)
{
    return hub->refused;
}

uint64_t zchan__hub_bytes(const zchan__hub_t *hub)
{
    return hub->budget.all;
}

void zchan__hub_sizes(const zchan__hub_t *hub, size_t *chans, size_t *tombs, size_t *attached)
{
    *chans = zhashx_size(hub->chans);
    *tombs = zhashx_size(hub->tombs);
    *attached = hub->npeers - hub->free.n;
}

const char *zchan__hub_check(const zchan__hub_t *hub)
{
    if (hub->npeers > hub->peers_cap || hub->free.n > hub->npeers || hub->dirty.n != 0)
        return "peer table counts";
    for (size_t i = 0; i < hub->npeers; i++)
        if (!hub->peers[i] || hub->peers[i]->idx != i)
            return "peer table slots";
    for (size_t i = 0; i < hub->free.n; i++) {
        const peer_t *p = hub->free.v[i];
        if (p->idx >= hub->npeers || hub->peers[p->idx] != p || p->role != ROLE_FREE
            || zchan__vec_count(&hub->free, p) != 1)
            return "free list";
    }
    //  Every attachment is counted on its connection, within the cap.
    size_t attached = 0, counted = 0;
    for (size_t idx = 0; idx < hub->npeers; idx++)
        if (hub->peers[idx]->role != ROLE_FREE) {
            attached++;
            if (zchan__conn_count(hub, hub->peers[idx]->rid, hub->peers[idx]->rid_len) > HUB_ATTACH_PER_CONN)
                return "attachments on one connection";
        }
    for (void *v = zhashx_first(hub->conns); v; v = zhashx_next(hub->conns))
        counted += (size_t) (uintptr_t) v;
    if (attached != counted)
        return "attachment counts";
    for (size_t idx = 0; idx < hub->npeers; idx++) {
        const peer_t *p = hub->peers[idx];
        if (p->role == ROLE_FREE) {
            if (p->m.ch || p->m.inflight.len || p->m.ring.slot)
                return "a free slot holds something";
            continue;
        }
        const zchan__chan_t *ch = p->m.ch;
        if (!ch || zhashx_lookup(hub->chans, ch->key) != ch)
            return "a peer without its channel";
        if (p->m.receiver != (p->role == ROLE_RECEIVER) || p->m.token != zchan__peer_handle(hub, (uint32_t) idx))
            return "a peer's member";
        const char *bad = zchan__member_check(&p->m);
        if (bad)
            return bad;
    }
    uint64_t all = 0;
    for (const zchan__chan_t *ch = zhashx_first(hub->chans); ch; ch = zhashx_next(hub->chans)) {
        if (strlen(ch->key) >= ZCHAN__EP_MAX)
            return "channel key";
        if (ch->budget != &hub->budget)
            return "a channel's bytes";
        all += ch->bytes;
        for (size_t i = 0; i < ch->recv.n + ch->send.n; i++) {
            const peer_t *p = i < ch->recv.n ? ch->recv.v[i] : ch->send.v[i - ch->recv.n];
            if (p->idx >= hub->npeers || hub->peers[p->idx] != p || p->role == ROLE_FREE)
                return "a channel's member is not a peer";
        }
        const char *bad = zchan__chan_check(ch);
        if (bad)
            return bad;
        //  A closed channel is reclaimed once nobody is attached.
        if (ch->closed && ch->send.n == 0 && ch->recv.n == 0)
            return "a closed channel nobody is attached to";
    }
    const char *bad = zchan__chans_check(hub);
    if (bad)
        return bad;
    if (all != hub->budget.all || hub->budget.all > hub->budget.all_max)
        return "the hub's bytes";
    return NULL;
}

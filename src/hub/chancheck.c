/*  chancheck.c: the checker of a channel's bookkeeping (channel.h), for the
    hub's checker (seam.c), the fuzzers and the rules' unit tests: it reads
    a channel and its members and says what does not add up. It changes
    nothing.
*/
#include "channel.h"

const char *zchan__member_check(const zchan__member_t *m)
{
    const zchan__chan_t *ch = m->ch;
    if (!ch)
        return "a member without its channel";
    if (m->closed_sent && !ch->closed)
        return "CLOSED sent on an open channel";
    if (m->receiver) {
        if (zchan__vec_count(&ch->recv, m) != 1 || m->avail + m->inflight.len > ZCHAN_WINDOW_MAX)
            return "receiver membership or credit";
        if (zchan__fifo_count(&m->inflight) != m->inflight.len)
            return "inflight list";
        const zchan__ring_t *r = &m->ring;
        uint64_t ring = 0;
        for (size_t k = 0; r->slot && k < r->len; k++)
            ring += zchan__msg_cost(zchan__ring_at(r, k));
        if (ring != m->ring_bytes)
            return "a receiver's ring bytes";
        if (ch->kind == ZCHAN_BROADCAST
                ? (!r->slot || r->cap == 0 || r->len > r->cap || r->head >= r->cap || r->cap > r->limit
                   || m->inflight.len)
                : (r->slot != NULL))
            return "receiver ring";
        return NULL;
    }
    if (zchan__vec_count(&ch->send, m) != 1)
        return "sender membership";
    if (ch->kind == ZCHAN_ANYCAST && !ch->closed) {
        uint64_t mine = 0;
        size_t i = 0;
        for (const zchan__node_t *n = ch->queue.head; n; n = n->next, i++)
            mine += i >= ch->nacc && n->sender == m->token;
        if (m->unaccepted != mine || m->unaccepted > zchan_sender_window(ch->capacity))
            return "sender's unaccepted count";
    }
    return NULL;
}

const char *zchan__chan_check(const zchan__chan_t *ch)
{
    if (!ch->key[0])
        return "channel key";
    if (zchan__fifo_count(&ch->queue) != ch->queue.len || ch->nacc > ch->queue.len)
        return "channel queue";
    if (!ch->unacc_stale) {
        const zchan__node_t *first = ch->queue.head;
        for (size_t i = 0; i < ch->nacc && first; i++)
            first = first->next;
        if (first != ch->unacc)
            return "the channel's first unaccepted message";
    }
    //  The bytes held: every node, ring slot and latest message, counted once.
    uint64_t held = ch->has_latest ? zchan__msg_cost(&ch->latest) : 0;
    for (const zchan__node_t *n = ch->queue.head; n; n = n->next)
        held += zchan__msg_cost(&n->payload);
    size_t inflight = 0;
    for (size_t i = 0; i < ch->recv.n; i++) {
        const zchan__member_t *r = ((const zchan__member_t *) ch->recv.v[i]);
        if (!r->receiver || r->ch != ch)
            return "channel's receiver list";
        inflight += r->inflight.len;
        for (const zchan__node_t *n = r->inflight.head; n; n = n->next)
            held += zchan__msg_cost(&n->payload);
        held += r->ring_bytes;
    }
    if (held != ch->bytes || ch->bytes > ch->budget->chan_max)
        return "a channel's bytes";
    for (size_t i = 0; i < ch->send.n; i++) {
        const zchan__member_t *s = (const zchan__member_t *) ch->send.v[i];
        if (s->receiver || s->ch != ch)
            return "channel's sender list";
    }
    if (ch->kind == ZCHAN_BROADCAST && (ch->queue.len || inflight))
        return "a broadcast channel's queue";
    //  A closed channel keeps no message that no receiver can take any more.
    bool anyone = false;
    for (size_t i = 0; i < ch->recv.n && !anyone; i++)
        anyone = !((const zchan__member_t *) ch->recv.v[i])->closed_sent;
    if (ch->closed && ch->queue.len > 0 && !anyone)
        return "messages of a closed channel that no receiver can take";
    return NULL;
}

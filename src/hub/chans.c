/*  chans.c: the hub's channels by key, and the tombstones of closed ones.

    Once a channel is closed and nobody is attached to it, nothing can reach
    it any more: a party that attaches now is stopped at once, and what was
    still queued has been counted lost (the rules do that). The channel is
    then freed and a tombstone keeps its key, kind, capacity and counters,
    so that CREATE and OPEN still answer "closed", ATTACH stops the party at
    once and STAT reads the counters. Tombstones are bounded, so that a hub
    that sees millions of channels come and go keeps a bounded amount of
    memory for them: unnamed channels (keys HUB_UNNAMED_PREFIX..., random and
    never reused) keep the newest HUB_TOMB_UNNAMED, named ones the newest
    HUB_TOMB_NAMED. A key whose tombstone went is unknown again: OPEN answers
    ENOTFOUND, and CREATE makes a new channel under that name.
*/
#include "hub.h"
#include <stdlib.h>
#include <string.h>

static const size_t s_tomb_max[2] = {HUB_TOMB_NAMED, HUB_TOMB_UNNAMED};

static void s_chan_destroy(void **item)
{
    zchan__chan_destroy((zchan__chan_t **) item);
}

static void s_tomb_destroy(void **item)
{
    free(*item);
    *item = NULL;
}

static bool s_key_unnamed(const char *key)
{
    return strncmp(key, HUB_UNNAMED_PREFIX, sizeof HUB_UNNAMED_PREFIX - 1) == 0;
}

int zchan__chans_init(hub_t *hub)
{
    hub->chans = zhashx_new();
    hub->tombs = zhashx_new();
    if (!hub->chans || !hub->tombs)
        return -1;
    zhashx_set_destructor(hub->chans, s_chan_destroy);
    //  A tombstone holds its own key.
    zhashx_set_key_duplicator(hub->tombs, NULL);
    zhashx_set_key_destructor(hub->tombs, NULL);
    zhashx_set_destructor(hub->tombs, s_tomb_destroy);
    return 0;
}

void zchan__chans_fini(hub_t *hub)
{
    zhashx_destroy(&hub->chans);
    zhashx_destroy(&hub->tombs);
}

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

zchan__chan_t *zchan__chans_lookup(hub_t *hub, const char *p, size_t len)
{
    char key[ZCHAN__EP_MAX];
    return s_key_copy(p, len, key) ? (zchan__chan_t *) zhashx_lookup(hub->chans, key) : NULL;
}

hub_tomb_t *zchan__chans_tomb(hub_t *hub, const char *p, size_t len)
{
    char key[ZCHAN__EP_MAX];
    return s_key_copy(p, len, key) ? (hub_tomb_t *) zhashx_lookup(hub->tombs, key) : NULL;
}

bool zchan__chans_reclaim(hub_t *hub, zchan__chan_t *ch)
{
    if (!ch->closed || ch->send.n > 0 || ch->recv.n > 0)
        return false;
    size_t klen = strlen(ch->key);
    hub_tomb_t *t = malloc(sizeof *t + klen + 1);
    if (!t)
        return false;
    t->next = NULL;
    t->capacity = ch->capacity;
    t->kind = ch->kind;
    t->unnamed = s_key_unnamed(ch->key);
    //  The rules have counted the queue lost already; no receiver is left to
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
        hub_tomb_t *old = hub->tomb_old[c];
        hub->tomb_old[c] = old->next;
        hub->ntomb[c]--;
        zhashx_delete(hub->tombs, old->key); // frees old
    }
    return true;
}

const char *zchan__chans_check(const hub_t *hub)
{
    //  Tombstones: one per reclaimed key, none for a live channel; each class
    //  listed oldest first, within its bound.
    size_t count[2] = {0, 0};
    for (const hub_tomb_t *t = zhashx_first(hub->tombs); t; t = zhashx_next(hub->tombs)) {
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
        const hub_tomb_t *last = NULL;
        for (const hub_tomb_t *t = hub->tomb_old[c]; t; t = t->next) {
            if (++listed > hub->ntomb[c] || t->unnamed != c || zhashx_lookup(hub->tombs, t->key) != t)
                return "tombstone list";
            last = t;
        }
        if (listed != hub->ntomb[c] || last != hub->tomb_new[c])
            return "tombstone list";
    }
    return NULL;
}

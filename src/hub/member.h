/*  member.h: a channel's member as its rules see it (a sender or a receiver
    attached to it), and how the rules reach members: an ops table.

    The rules (channel.c) never see a socket. They tell a member something
    through zchan__member_ops_t; the hub implements the ops for remote
    members by putting frames on its ROUTER (out.c), a unit test with a fake
    that records what it was told. (Not zchan__party_t: that is a context's
    client-side party, core.h.)

    A member is owned by whoever made it (the hub's peer table). The rules
    keep a pointer to it from zchan__chan_join until they let go of it, and
    then call ops->release exactly once: after that they never touch it.
*/
#ifndef ZCHAN_HUB_MEMBER_H_INCLUDED
#define ZCHAN_HUB_MEMBER_H_INCLUDED

#include "fifo.h"
#include "ring.h"
#include "zchan.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct zchan__chan zchan__chan_t;

typedef struct zchan__member {
    zchan__chan_t *ch; // its channel, while joined
    bool receiver;
    uint64_t token; // the owner's name for it: nodes carry a sender's token
    //  sender
    uint64_t unaccepted; // anycast: its messages queued and not yet accepted
    //  receiver
    uint64_t avail;        // messages it may still be handed (its credit)
    zchan__fifo_t inflight; // anycast: handed, not reported consumed
    zchan__ring_t ring;    // broadcast: messages waiting for credit
    uint64_t ring_bytes;   // broadcast: the bytes its ring holds (zchan__msg_cost)
    uint64_t dropped;      // broadcast: lost to the ring's limit
    bool closed_sent;      // told CLOSED: it gets nothing more
    //  A party of the hub's own process (the fast path, src/local.h): its
    //  zchan__lparty_t, which the ops reach instead of a peer. NULL: remote.
    struct zchan__lparty *local;
} zchan__member_t;

typedef struct zchan__member_ops {
    //  Hands receiver r a copy of payload, with r->dropped. 0, or -1 if r
    //  cannot take it (gone, or its pipe is full): the rules then drop r.
    int (*deliver)(void *env, zchan__member_t *r, zmq_msg_t *payload);
    //  The live sender named token, or NULL if it has gone.
    zchan__member_t *(*sender)(void *env, uint64_t token);
    //  One message of sender s was accepted: s is owed one credit.
    void (*ack)(void *env, zchan__member_t *s);
    //  Sender s has more out than before (unaccepted grew): the credit it is
    //  owed may be due now.
    void (*owed)(void *env, zchan__member_t *s);
    //  Receiver r keeps messages waiting (its ring): it should be checked
    //  for being alive if it stays quiet.
    void (*holding)(void *env, zchan__member_t *r);
    //  Something was refused over a resource limit (which): counted, logged.
    void (*over_limit)(void *env, const char *what, zchan_limit_t which);
    //  A message of sender s was refused over a byte limit and dropped:
    //  s is told at once ([REFUSED, ELIMIT]), so that its next send fails.
    void (*refuse)(void *env, zchan__member_t *s);
    //  Whether receiver r's connection is known to be gone.
    bool (*gone)(void *env, zchan__member_t *r);
    //  The channel was closed: sender s gets the credit it is owed, then
    //  CLOSED; receiver r gets CLOSING (CLOSED follows once it drained).
    void (*close_sender)(void *env, zchan__member_t *s);
    void (*closing)(void *env, zchan__member_t *r);
    //  Receiver r drained a closed channel: CLOSED, its last word.
    void (*closed)(void *env, zchan__member_t *r);
    //  The rules let go of m (left, or dropped as gone); its state is
    //  cleared. The owner may free it.
    void (*release)(void *env, zchan__member_t *m);
} zchan__member_ops_t;

#endif

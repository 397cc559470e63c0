/*  fifo.h: a FIFO of messages, each with the token of the sender that sent
    it. A node is owned by the one FIFO that links it, or by whoever popped
    it; no locks (one thread at a time).
*/
#ifndef ZCHAN_HUB_FIFO_H_INCLUDED
#define ZCHAN_HUB_FIFO_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct zchan__node {
    struct zchan__node *next;
    zmq_msg_t payload;
    uint64_t sender; // the token of its sender (zchan__member_t.token)
} zchan__node_t;

typedef struct {
    zchan__node_t *head, *tail;
    size_t len;
} zchan__fifo_t; // zero-initialised is empty

//  A node holding payload (moved into it: payload is left empty) from
//  sender. NULL if out of memory (payload is then untouched).
zchan__node_t *zchan__node_new(zmq_msg_t *payload, uint64_t sender);
//  Frees a node that no FIFO links, and its payload.
void zchan__node_free(zchan__node_t *n);

//  Appends n at the tail, or at the head.
void zchan__fifo_push(zchan__fifo_t *f, zchan__node_t *n);
void zchan__fifo_push_front(zchan__fifo_t *f, zchan__node_t *n);
//  Takes the head off, or returns NULL when empty.
zchan__node_t *zchan__fifo_pop(zchan__fifo_t *f);
//  Unlinks n, whose predecessor is prev (NULL: n is the head). The caller
//  then owns n.
void zchan__fifo_unlink(zchan__fifo_t *f, zchan__node_t *prev, zchan__node_t *n);
//  Frees every node.
void zchan__fifo_clear(zchan__fifo_t *f);
//  Counts the nodes by following the links, checking them against len and
//  tail: SIZE_MAX if they are broken. For checkers.
size_t zchan__fifo_count(const zchan__fifo_t *f);

#endif

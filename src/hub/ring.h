/*  ring.h: a ring of messages that starts small and grows toward a limit,
    for a broadcast receiver. It owns the messages it holds. The caller
    decides what to drop when it is full (zchan__ring_make_room).
*/
#ifndef ZCHAN_HUB_RING_H_INCLUDED
#define ZCHAN_HUB_RING_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

typedef struct {
    zmq_msg_t *slot; // NULL: no ring (zero-initialised, or after fini)
    size_t cap, head, len;
    size_t limit; // what cap grows to
} zchan__ring_t;

//  Makes an empty ring of first slots (at most limit) that grows to limit.
//  0, or ZCHAN_ENOMEM (r is then without a ring).
int zchan__ring_init(zchan__ring_t *r, size_t limit, size_t first);
//  Frees the messages and the ring; r is then without a ring.
void zchan__ring_fini(zchan__ring_t *r);
//  Grows the ring toward its limit if it is full. true if a slot is free;
//  false if it is full at its limit, or cannot grow (out of memory: it then
//  behaves as if at its limit).
bool zchan__ring_make_room(zchan__ring_t *r);
//  Appends a copy of msg. The ring must have room (zchan__ring_make_room).
void zchan__ring_push(zchan__ring_t *r, zmq_msg_t *msg);
//  The i-th message from the oldest (i < len).
zmq_msg_t *zchan__ring_at(const zchan__ring_t *r, size_t i);
//  Closes the oldest message (len > 0).
void zchan__ring_pop(zchan__ring_t *r);

#endif

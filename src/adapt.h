/*  adapt.h: what the adaptor files (src/adapt_*.c) share. Internal: not
    installed.

    adapt_map.c: message copies, map, filter (the reader's thread).
    adapt_event.c: events and oneshot channels; owns the event's layout.
    adapt_pipe.c: the latest-value cache and the pipe (a background thread
    each, which sleeps on its source and on a stop event).
*/
#ifndef ZCHAN_ADAPT_H_INCLUDED
#define ZCHAN_ADAPT_H_INCLUDED

#include "internal.h"

//  The read end of ev's OS pipe: it becomes readable once ev is set and
//  stays readable, so a zmq_pollitem_t (.fd, ZMQ_POLLIN) can wait for the
//  event next to sockets. Owned by ev: the caller never reads, writes or
//  closes it, and it is valid as long as ev is. Never blocks, never fails.
int zchan__event_fd(zchan_event_t *ev);

#endif

/*  ring.c: a growing ring of messages (see ring.h). */
#include "ring.h"
#include "zchan.h"
#include <stdlib.h>

int zchan__ring_init(zchan__ring_t *r, size_t limit, size_t first)
{
    r->limit = limit;
    r->cap = limit < first ? limit : first;
    r->head = r->len = 0;
    r->slot = r->cap ? calloc(r->cap, sizeof *r->slot) : NULL;
    if (!r->slot) {
        r->cap = r->limit = 0;
        return ZCHAN_ENOMEM;
    }
    return 0;
}

void zchan__ring_fini(zchan__ring_t *r)
{
    for (size_t i = 0; i < r->len; i++)
        zmq_msg_close(zchan__ring_at(r, i));
    free(r->slot);
    r->slot = NULL;
    r->len = r->cap = r->head = r->limit = 0;
}

bool zchan__ring_make_room(zchan__ring_t *r)
{
    if (r->len == r->cap && r->cap < r->limit) {
        //  Grow toward the limit, oldest first in the new ring. Out of
        //  memory, the ring stays as it is.
        size_t nc = r->cap * 2 < r->limit ? r->cap * 2 : r->limit;
        zmq_msg_t *nr = malloc(nc * sizeof *nr);
        if (nr) {
            for (size_t i = 0; i < r->len; i++) {
                zmq_msg_init(&nr[i]);
                zmq_msg_move(&nr[i], zchan__ring_at(r, i));
                zmq_msg_close(zchan__ring_at(r, i));
            }
            free(r->slot);
            r->slot = nr;
            r->cap = nc;
            r->head = 0;
        }
    }
    return r->len < r->cap;
}

void zchan__ring_push(zchan__ring_t *r, zmq_msg_t *msg)
{
    zmq_msg_t *slot = &r->slot[(r->head + r->len) % r->cap];
    zmq_msg_init(slot);
    zmq_msg_copy(slot, msg);
    r->len++;
}

zmq_msg_t *zchan__ring_at(const zchan__ring_t *r, size_t i)
{
    return &r->slot[(r->head + i) % r->cap];
}

void zchan__ring_pop(zchan__ring_t *r)
{
    zmq_msg_close(&r->slot[r->head]);
    r->head = (r->head + 1) % r->cap;
    r->len--;
}

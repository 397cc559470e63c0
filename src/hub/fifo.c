/*  fifo.c: a FIFO of messages (see fifo.h). */
#include "fifo.h"
#include <stdlib.h>

zchan__node_t *zchan__node_new(zmq_msg_t *payload, uint64_t sender)
{
    zchan__node_t *n = malloc(sizeof *n);
    if (!n)
        return NULL;
    zmq_msg_init(&n->payload);
    zmq_msg_move(&n->payload, payload);
    n->sender = sender;
    n->next = NULL;
    return n;
}

void zchan__node_free(zchan__node_t *n)
{
    zmq_msg_close(&n->payload);
    free(n);
}

void zchan__fifo_push(zchan__fifo_t *f, zchan__node_t *n)
{
    n->next = NULL;
    if (f->tail)
        f->tail->next = n;
    else
        f->head = n;
    f->tail = n;
    f->len++;
}

void zchan__fifo_push_front(zchan__fifo_t *f, zchan__node_t *n)
{
    n->next = f->head;
    f->head = n;
    if (!f->tail)
        f->tail = n;
    f->len++;
}

zchan__node_t *zchan__fifo_pop(zchan__fifo_t *f)
{
    zchan__node_t *n = f->head;
    if (!n)
        return NULL;
    f->head = n->next;
    if (!f->head)
        f->tail = NULL;
    f->len--;
    return n;
}

void zchan__fifo_unlink(zchan__fifo_t *f, zchan__node_t *prev, zchan__node_t *n)
{
    if (prev)
        prev->next = n->next;
    else
        f->head = n->next;
    if (f->tail == n)
        f->tail = prev;
    f->len--;
    n->next = NULL;
}

void zchan__fifo_clear(zchan__fifo_t *f)
{
    zchan__node_t *n;
    while ((n = zchan__fifo_pop(f)))
        zchan__node_free(n);
}

size_t zchan__fifo_count(const zchan__fifo_t *f)
{
    size_t k = 0;
    const zchan__node_t *last = NULL;
    for (const zchan__node_t *n = f->head; n; n = n->next) {
        if (++k > f->len)
            return SIZE_MAX;
        last = n;
    }
    return last == f->tail ? k : SIZE_MAX;
}

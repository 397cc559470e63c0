/*  vec.h: a growing array of pointers, kept in insertion order: the hub's
    member lists, free list and list of senders owed an ACK.
*/
#ifndef ZCHAN_HUB_VEC_H_INCLUDED
#define ZCHAN_HUB_VEC_H_INCLUDED

#include <stddef.h>

typedef struct {
    void **v;
    size_t n, cap;
} zchan__vec_t; // zero-initialised is empty

//  Appends p. 0, or ZCHAN_ENOMEM (v is then unchanged).
int zchan__vec_add(zchan__vec_t *v, void *p);
//  Removes the first p, keeping the order of the others; none: no-op.
void zchan__vec_remove(zchan__vec_t *v, const void *p);
//  How many times p is in v.
size_t zchan__vec_count(const zchan__vec_t *v, const void *p);
//  Frees the array (not what it points to); v is then empty.
void zchan__vec_fini(zchan__vec_t *v);

#endif

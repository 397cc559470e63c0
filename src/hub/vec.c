/*  vec.c: a growing array of pointers (see vec.h). */
#include "vec.h"
#include "zchan.h"
#include <stdlib.h>
#include <string.h>

int zchan__vec_add(zchan__vec_t *v, void *p)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        void **na = realloc(v->v, nc * sizeof *na);
        if (!na)
            return ZCHAN_ENOMEM;
        v->v = na;
        v->cap = nc;
    }
    v->v[v->n++] = p;
    return 0;
}

void zchan__vec_remove(zchan__vec_t *v, const void *p)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i] == p) {
            memmove(&v->v[i], &v->v[i + 1], (v->n - i - 1) * sizeof *v->v);
            v->n--;
            return;
        }
}

size_t zchan__vec_count(const zchan__vec_t *v, const void *p)
{
    size_t k = 0;
    for (size_t i = 0; i < v->n; i++)
        k += v->v[i] == p;
    return k;
}

void zchan__vec_fini(zchan__vec_t *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

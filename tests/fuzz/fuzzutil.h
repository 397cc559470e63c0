/*  fuzzutil.h: what zchan's libFuzzer targets share (tests/fuzz). */
#ifndef ZCHAN_FUZZUTIL_H_INCLUDED
#define ZCHAN_FUZZUTIL_H_INCLUDED

#include "core.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

//  A context for the targets that need one, made on first use with its ipc
//  runtime directory in a fresh temporary directory (removed at exit) and
//  czmq's log silenced. It opens no connection.
zchan_ctx_t *fz_ctx(void);

//  Silences czmq's log (the hub logs what it drops).
void fz_quiet(void);

//  Reads every byte of p[0..n) (so that the sanitizers see a bad pointer or
//  length), returning a value the compiler cannot drop.
unsigned fz_touch(const void *p, size_t n);

//  Stops the fuzzer with a message: an oracle failed.
#define FZ_ASSERT(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: oracle failed: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif

/*  testutil.h: helpers shared by the cmocka tests. */
#ifndef ZCHAN_TESTUTIL_H
#define ZCHAN_TESTUTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "zchan.h"

//  Makes a fresh temporary directory, sets ZCHAN_IPC_DIR to it, and returns
//  its path (static storage). Removed by tu_cleanup_dir.
const char *tu_ipc_dir(void);
void tu_cleanup_dir(void);

//  Returns a TCP port on 127.0.0.1 that was free a moment ago.
int tu_free_port(void);

//  The exit code of a test program that could not test what it is for in this
//  environment (e.g. no network namespaces). tests/CMakeLists.txt gives it as
//  the test's SKIP_RETURN_CODE, so ctest reports it skipped, never passed.
#define TU_SKIP 77

//  Asserts that a zchan call returned `expected`, printing both names.
#define tu_assert_rc(call, expected)                                                    \
    do {                                                                                \
        int tu_rc_ = (call);                                                            \
        if (tu_rc_ != (expected))                                                       \
            fail_msg("%s returned %d (%s), expected %d (%s)", #call, tu_rc_,          \
                     zchan_strerror(tu_rc_), (int) (expected), zchan_strerror(expected)); \
    } while (0)

//  How much slower than usual this run may be: $ZCHAN_TEST_SLOW (a whole
//  factor, default 1), which scripts/valgrind.sh sets for its runs under
//  valgrind. It stretches only the upper bounds of timing checks, never
//  the lower ones (that a wait waited at least its time).
int tu_slow(void);

//  Asserts lo <= v <= hi * tu_slow(), printing all three (microseconds in
//  the timing tests).
#define assert_between(v, lo, hi)                                                   \
    do {                                                                            \
        int64_t v_ = (v), lo_ = (lo), hi_ = (int64_t) (hi) * tu_slow();             \
        if (v_ < lo_ || v_ > hi_)                                                   \
            fail_msg("%s = %lld, expected %lld..%lld", #v, (long long) v_,          \
                     (long long) lo_, (long long) hi_);                             \
    } while (0)

//  The scheduler state of thread tid of this process ('R' running, 'S'
//  sleeping, ...), from /proc/self/task/TID/stat; 0 if unreadable. A test
//  that must know another thread is asleep inside a blocking call (no
//  handshake can come from inside it) waits for 'S'.
char tu_thread_state(int tid);

#endif

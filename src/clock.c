/*  clock.c: the monotonic clock and timeout arithmetic. */
#include "internal.h"
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

int64_t zchan__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t zchan__now_ms(void)
{
    return zchan__now_us() / 1000;
}

int64_t zchan__deadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    return zchan__now_ms() + timeout_ms;
}

long zchan__remaining(int64_t deadline_ms)
{
    if (deadline_ms < 0)
        return -1;
    int64_t left = deadline_ms - zchan__now_ms();
    return left > 0 ? (long) left : 0;
}

bool zchan__spin_worth(void)
{
    static atomic_int ncpu; // 0: not asked yet (two threads may both ask: same answer)
    int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (int) online : 1;
        atomic_store_explicit(&ncpu, n, memory_order_relaxed);
    }
    return n > 1;
}

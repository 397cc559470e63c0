/*  zchan-cqueue: the plain C in-process baseline of bench/run. A bounded
    queue (one pthread mutex and two condition variables, "not empty" and
    "not full") of a fixed number of slots of the payload's size, doing the
    job of zchan-perf's anycast workload and of Go's anycast row
    (bench/go/chanbench.go): S sender threads copy the payload into a slot,
    R receiver threads copy it out and check it (size, first and last byte).
    No library, no sockets, no serialization: what a C programmer gets with
    the least code, and a reference that needs no Go. It has no select: a
    waiting receiver sleeps on the "not empty" condition variable.

    The clock starts when every thread waits at the start barrier (then
    "go"); throughput = messages received / (last receipt - start), on
    CLOCK_MONOTONIC. After the senders are done the queue is closed and the
    receivers drain it. Any loss, duplicate or damaged item fails the run
    (exit status 1). Output: a table, or CSV (--csv) whose first columns are
    zchan-perf's (workload,transport,size,count,senders,receivers,baseline,
    repeat), then cq_msgs_per_s,cq_mb_per_s,status, as chanbench's.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 64
#define MAX_SIZES 16
#define MAX_REPEAT 100

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    char *slots;      // capacity slots of size bytes
    size_t capacity, size;
    size_t head, len; // the oldest item and how many are queued
    bool closed;
    //  The start barrier.
    int ready, parties;
    bool go;
    pthread_cond_t ready_cv, go_cv;
} s_queue_t;

typedef struct {
    s_queue_t *q;
    const char *payload;
    long count;      // a sender's share
    long got, bad;   // a receiver's
    int64_t last;    // its last receipt (ns)
} s_party_t;

static int64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void s_put_payload(char *buf, size_t size)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (char) ((i * 31 + 7) & 0xff);
}

static bool s_payload_ok(const char *p, size_t size)
{
    return size == 0 || (p[0] == (char) 7 && p[size - 1] == (char) (((size - 1) * 31 + 7) & 0xff));
}

//  zchan-perf's default count (tools/perf/options.c, perf_default_count).
static long s_default_count(size_t size)
{
    if (size <= 64)
        return 40000;
    if (size <= 1024)
        return 30000;
    if (size <= 65536)
        return 5000;
    if (size <= 1048576)
        return 300;
    long n = (long) ((300UL << 20) / size);
    return n < 20 ? 20 : n;
}

static void s_barrier(s_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->ready++;
    pthread_cond_signal(&q->ready_cv);
    while (!q->go)
        pthread_cond_wait(&q->go_cv, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

static void *s_sender(void *arg)
{
    s_party_t *p = arg;
    s_queue_t *q = p->q;
    s_barrier(q);
    for (long i = 0; i < p->count; i++) {
        pthread_mutex_lock(&q->mu);
        while (q->len == q->capacity)
            pthread_cond_wait(&q->not_full, &q->mu);
        memcpy(q->slots + ((q->head + q->len) % q->capacity) * q->size, p->payload, q->size);
        q->len++;
        pthread_cond_signal(&q->not_empty);
        pthread_mutex_unlock(&q->mu);
    }
    return NULL;
}

static void *s_receiver(void *arg)
{
    s_party_t *p = arg;
    s_queue_t *q = p->q;
    char *buf = malloc(q->size ? q->size : 1);
    if (!buf) {
        p->bad = -1;
        return NULL;
    }
    s_barrier(q);
    while (true) {
        pthread_mutex_lock(&q->mu);
        while (q->len == 0 && !q->closed)
            pthread_cond_wait(&q->not_empty, &q->mu);
        if (q->len == 0) { // closed and drained
            pthread_mutex_unlock(&q->mu);
            break;
        }
        memcpy(buf, q->slots + q->head * q->size, q->size);
        q->head = (q->head + 1) % q->capacity;
        q->len--;
        pthread_cond_signal(&q->not_full);
        pthread_mutex_unlock(&q->mu);
        int64_t t = s_now();
        if (s_payload_ok(buf, q->size)) {
            p->got++;
            p->last = t;
        } else
            p->bad++;
    }
    free(buf);
    return NULL;
}

//  One run; 0 with *rate, or -1 with err.
static int s_run(size_t size, long count, size_t capacity, int ns, int nr, double *rate, char *err, size_t errn)
{
    s_queue_t q = {.capacity = capacity, .size = size, .parties = ns + nr};
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.not_empty, NULL);
    pthread_cond_init(&q.not_full, NULL);
    pthread_cond_init(&q.ready_cv, NULL);
    pthread_cond_init(&q.go_cv, NULL);
    char *payload = malloc(size ? size : 1);
    q.slots = malloc(capacity * (size ? size : 1));
    s_party_t parties[2 * MAX_THREADS] = {{0}};
    pthread_t th[2 * MAX_THREADS];
    int started = 0, rc = -1;
    if (!payload || !q.slots) {
        snprintf(err, errn, "out of memory");
        goto out;
    }
    s_put_payload(payload, size);
    for (int i = 0; i < nr + ns; i++) {
        bool rx = i < nr;
        parties[i] = (s_party_t){.q = &q, .payload = payload,
                                 .count = rx ? 0 : count / ns + ((i - nr) < count % ns ? 1 : 0)};
        int e = pthread_create(&th[i], NULL, rx ? s_receiver : s_sender, &parties[i]);
        if (e != 0) {
            snprintf(err, errn, "pthread_create: %s", strerror(e));
            break;
        }
        started++;
    }
    //  The start: every thread waits at the barrier.
    pthread_mutex_lock(&q.mu);
    while (q.ready < started)
        pthread_cond_wait(&q.ready_cv, &q.mu);
    int64_t t0 = s_now();
    q.go = true;
    pthread_cond_broadcast(&q.go_cv);
    pthread_mutex_unlock(&q.mu);
    for (int i = nr; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_lock(&q.mu);
    q.closed = true;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
    for (int i = 0; i < started && i < nr; i++)
        pthread_join(th[i], NULL);
    if (started < nr + ns)
        goto out;
    long sum = 0;
    int64_t last = t0;
    for (int i = 0; i < nr; i++) {
        if (parties[i].bad) {
            snprintf(err, errn, "receiver %d: %ld damaged items", i, parties[i].bad);
            goto out;
        }
        sum += parties[i].got;
        if (parties[i].got && parties[i].last > last)
            last = parties[i].last;
    }
    if (sum != count) {
        snprintf(err, errn, "%s: receivers got %ld of %ld items", sum < count ? "LOSS" : "DUPLICATES", sum, count);
        goto out;
    }
    double el = (double) (last - t0) / 1e9;
    *rate = (double) sum / (el > 0 ? el : 1e-9);
    rc = 0;
out:
    free(payload);
    free(q.slots);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.not_empty);
    pthread_cond_destroy(&q.not_full);
    pthread_cond_destroy(&q.ready_cv);
    pthread_cond_destroy(&q.go_cv);
    return rc;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double s_median(double *v, int n)
{
    qsort(v, (size_t) n, sizeof *v, s_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static bool s_number(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < 0 || v > (1L << 30))
        return false;
    if (*end == 'k' || *end == 'K')
        v *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1024 * 1024, end++;
    if (*end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static void s_usage(FILE *f)
{
    fprintf(f,
"Usage: zchan-cqueue [OPTION]...\n"
"The plain C in-process baseline: a bounded queue (a pthread mutex and two\n"
"condition variables) of --capacity slots; S sender threads copy the payload\n"
"in, R receiver threads copy it out and check it. The job of zchan-perf's\n"
"anycast workload on inproc, and of Go's anycast row (bench/go). No select.\n"
"\n"
"  -s S            sender threads (default 1)\n"
"  -r R            receiver threads (default 1)\n"
"      --size N    payload bytes; repeatable; K and M suffixes (default 16)\n"
"  -n N            messages per run over all senders (default: zchan-perf's\n"
"                  by size: 40000 up to 64 B, 30000 up to 1 KiB, ...)\n"
"      --capacity N  queue slots (default 10, zchan's default capacity)\n"
"      --repeat N  runs per size; medians reported (default 1)\n"
"      --csv       CSV with a header row (chanbench's columns)\n"
"  -h, --help      this help\n"
"Exit status: 0, 1 if a run lost, duplicated or damaged an item, 2 on bad usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {{"size", required_argument, NULL, 'S'},
                                           {"capacity", required_argument, NULL, 'C'},
                                           {"repeat", required_argument, NULL, 'R'},
                                           {"csv", no_argument, NULL, 'c'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
    long ns = 1, nr = 1, count = 0, capacity = 10, repeat = 1, sizes[MAX_SIZES];
    int nsizes = 0, c;
    bool csv = false;
    while ((c = getopt_long(argc, argv, "s:r:n:h", longs, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 's': ok = s_number(optarg, 1, MAX_THREADS, &ns); break;
        case 'r': ok = s_number(optarg, 1, MAX_THREADS, &nr); break;
        case 'n': ok = s_number(optarg, 1, 100000000, &count); break;
        case 'C': ok = s_number(optarg, 1, 1000000, &capacity); break;
        case 'R': ok = s_number(optarg, 1, MAX_REPEAT, &repeat); break;
        case 'S': ok = nsizes < MAX_SIZES && s_number(optarg, 0, 1 << 30, &sizes[nsizes++]); break;
        case 'c': csv = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
        if (!ok) {
            fprintf(stderr, "zchan-cqueue: bad value '%s' (see --help)\n", optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "zchan-cqueue: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (nsizes == 0)
        sizes[nsizes++] = 16;
    if (csv)
        printf("workload,transport,size,count,senders,receivers,baseline,repeat,cq_msgs_per_s,cq_mb_per_s,status\n");
    else
        printf("%-9s %9s %9s %3s %3s %5s | %10s %10s  %s\n", "workload", "size", "count", "S", "R", "cap", "msg/s",
               "MB/s", "status");
    int status = 0;
    for (int si = 0; si < nsizes; si++) {
        size_t size = (size_t) sizes[si];
        long n = count ? count : s_default_count(size);
        double rates[MAX_REPEAT];
        char err[256] = "";
        int ok = 0;
        for (int rep = 0; rep < repeat; rep++) {
            if (s_run(size, n, (size_t) capacity, (int) ns, (int) nr, &rates[ok], err, sizeof err) != 0)
                break;
            ok++;
        }
        bool good = ok == repeat;
        double rate = good ? s_median(rates, ok) : 0;
        if (!good) {
            fprintf(stderr, "zchan-cqueue: *** FAILED: %zu B: %s ***\n", size, err);
            status = 1;
        }
        if (csv) {
            printf("anycast,inproc,%zu,%ld,%ld,%ld,cqueue,%ld", size, n, ns, nr, repeat);
            if (good)
                printf(",%.1f,%.3f,\"ok\"\n", rate, rate * (double) size / 1e6);
            else
                printf(",,,\"FAILED cqueue: %s\"\n", err);
        } else {
            printf("%-9s %9zu %9ld %3ld %3ld %5ld | ", "anycast", size, n, ns, nr, capacity);
            if (good)
                printf("%10.0f %10.2f  ok\n", rate, rate * (double) size / 1e6);
            else
                printf("%10s %10s  FAILED: %s\n", "-", "-", err);
        }
    }
    return status;
}

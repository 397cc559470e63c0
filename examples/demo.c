//  demo.c: the README's main demo. Anycast, broadcast, close and channel
//  references, between threads and between processes.
//
//  The dispatcher (this process) hosts three channels:
//    jobs     anycast: each job reaches exactly one worker thread
//    news     broadcast: every worker process hears every announcement
//    ready    anycast: workers say they are listening (no slow-joiner loss)
//  and one unnamed channel, results, that it never names: each job carries a
//  reference to it (ChannelPy's reply_to), and workers answer through it.
//
//  It starts two worker processes (this program again, with --worker), each
//  with two threads taking jobs. When the work is done it closes jobs: every
//  worker thread drains and stops. Then it says goodbye on news and closes it.
//
//  Usage: demo [--tcp] [--jobs N]
//    --tcp     host the channels on tcp://127.0.0.1:<ephemeral port> instead of ipc
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zchan.h>

#define WORKERS 2
#define THREADS 2

static int die(const char *what)
{
    fprintf(stderr, "demo: %s: %s\n", what, zchan_strerror(zchan_errno()));
    exit(1);
}

// ---------------------------------------------------------------------------
// Worker process

typedef struct {
    zchan_ctx_t *ctx;
    zchan_t *jobs;
    int worker, thread, done;
} job_thread_t;

//  Reads a map's value for key, or NULL.
static const msgpack_object *s_lookup(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key)
            && memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0)
            return &kv->val;
    }
    return NULL;
}

static void *s_job_thread(void *arg)
{
    job_thread_t *jt = arg;
    zchan_receiver_t *rx = zchan_receiver_new(jt->jobs, 0);
    zchan_t *reply_ch = NULL;
    zchan_sender_t *reply = NULL;
    zchan_msg_t *job = NULL;
    if (!rx)
        die("receiver");
    //  Each job is {"n": N, "reply_to": <channel>}; answer [worker, thread, N, N*N].
    while (zchan_recv(rx, &job, -1) == ZCHAN_OK) {
        const msgpack_object *o = zchan_msg_object(job);
        const msgpack_object *n = s_lookup(o, "n");
        if (!reply_ch) { // every job carries the same reply_to: open it once
            reply_ch = zchan_msg_chan(jt->ctx, s_lookup(o, "reply_to"));
            reply = reply_ch ? zchan_sender_new(reply_ch) : NULL;
            if (!reply)
                die("open reply_to");
        }
        if (n && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            zchan_msg_t *ans = zchan_msg_new();
            msgpack_packer *pk = zchan_msg_packer(ans);
            msgpack_pack_array(pk, 4);
            msgpack_pack_int(pk, jt->worker);
            msgpack_pack_int(pk, jt->thread);
            msgpack_pack_uint64(pk, n->via.u64);
            msgpack_pack_uint64(pk, n->via.u64 * n->via.u64);
            if (zchan_send(reply, &ans, 5000) != ZCHAN_OK)
                die("reply");
            jt->done++;
        }
        zchan_msg_destroy(&job);
    }
    //  zchan_recv gave ECLOSED: jobs was closed and this thread has drained it.
    zchan_sender_destroy(&reply); // returns once every answer reached results
    zchan_destroy(&reply_ch);
    zchan_receiver_destroy(&rx);
    return NULL;
}

static int s_worker(int id, const char *jobs_uri, const char *news_uri, const char *ready_uri)
{
    zchan_ctx_t *ctx = zchan_ctx_new();
    if (!ctx)
        die("context");
    zchan_t *jobs = zchan_open(ctx, jobs_uri);
    zchan_t *news = zchan_open(ctx, news_uri);
    zchan_t *ready = zchan_open(ctx, ready_uri);
    if (!jobs || !news || !ready)
        die("open");
    zchan_receiver_t *news_rx = zchan_receiver_new(news, 0);
    if (!news_rx)
        die("news receiver");

    job_thread_t jt[THREADS];
    pthread_t tid[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jt[t] = (job_thread_t){ .ctx = ctx, .jobs = jobs, .worker = id, .thread = t };
        pthread_create(&tid[t], NULL, s_job_thread, &jt[t]);
    }
    //  The news receiver exists, so every later announcement reaches us.
    zchan_sender_t *hi = zchan_sender_new(ready);
    if (!hi || zchan_send_int(hi, id, 5000) != ZCHAN_OK)
        die("ready");
    zchan_sender_destroy(&hi);

    int heard = 0;
    char *line = NULL;
    while (zchan_recv_str(news_rx, &line, -1) == ZCHAN_OK) {
        printf("  worker %d (pid %d) heard: %s\n", id, (int) getpid(), line);
        fflush(stdout);
        free(line);
        heard++;
    }
    int done = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(tid[t], NULL);
        done += jt[t].done;
    }
    printf("  worker %d: news closed after %d announcements; did %d jobs (%d + %d per thread)\n",
           id, heard, done, jt[0].done, jt[1].done);
    zchan_receiver_destroy(&news_rx);
    zchan_destroy(&ready);
    zchan_destroy(&news);
    zchan_destroy(&jobs);
    zchan_ctx_destroy(&ctx);
    return heard == 2 ? 0 : 1;
}

// ---------------------------------------------------------------------------
// Dispatcher

static pid_t s_spawn(const char *self, int id, const char *jobs, const char *news, const char *ready)
{
    char idbuf[16];
    snprintf(idbuf, sizeof idbuf, "%d", id);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { // exec at once: the child never touches this process's ZeroMQ state
        execl(self, self, "--worker", idbuf, jobs, news, ready, (char *) NULL);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); // lines from several processes interleave whole
    if (argc == 6 && strcmp(argv[1], "--worker") == 0)
        return s_worker(atoi(argv[2]), argv[3], argv[4], argv[5]);
    bool tcp = false;
    int njobs = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tcp") == 0)
            tcp = true;
        else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
            njobs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: demo [--tcp] [--jobs N]\n");
            return 2;
        }
    }
    zchan_ctx_t *ctx = zchan_ctx_new();
    if (!ctx)
        die("context");
    char base[128];
    if (tcp) {
        if (zchan_ctx_bind(ctx, "tcp://127.0.0.1:0") != ZCHAN_OK)
            die("bind");
        snprintf(base, sizeof base, "%s/demo-", zchan_ctx_endpoint(ctx, "tcp"));
    } else
        snprintf(base, sizeof base, "ipc://demo%d-", (int) getpid());
    char jobs_uri[160], news_uri[160], ready_uri[160];
    snprintf(jobs_uri, sizeof jobs_uri, "%sjobs", base);
    snprintf(news_uri, sizeof news_uri, "%snews", base);
    snprintf(ready_uri, sizeof ready_uri, "%sready", base);

    zchan_t *jobs = zchan_anycast_new(ctx, jobs_uri, ZCHAN_ANYCAST_CAPACITY);
    zchan_t *news = zchan_broadcast_new(ctx, news_uri, false);
    zchan_t *ready = zchan_anycast_new(ctx, ready_uri, WORKERS);
    zchan_t *results = zchan_anycast_new(ctx, NULL, ZCHAN_ANYCAST_CAPACITY); // unnamed
    if (!jobs || !news || !ready || !results)
        die("create");
    printf("dispatcher (pid %d): jobs on %s, news on %s, results unnamed (%s)\n",
           (int) getpid(), jobs_uri, news_uri, zchan_name(results));

    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return die("readlink"), 1;
    self[len] = '\0';
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++)
        pids[w] = s_spawn(self, w, jobs_uri, news_uri, ready_uri);

    zchan_receiver_t *ready_rx = zchan_receiver_new(ready, 0);
    for (int w = 0; w < WORKERS; w++) {
        int64_t id;
        if (zchan_recv_int(ready_rx, &id, 10000) != ZCHAN_OK)
            die("waiting for workers");
        printf("dispatcher: worker %lld is listening\n", (long long) id);
    }
    zchan_sender_t *news_tx = zchan_sender_new(news);
    zchan_send_str(news_tx, "work starts now", -1);

    //  Jobs go out while results come back: a sender thread would do as well,
    //  but capacity 10 + slack lets a single thread interleave for 20 jobs.
    zchan_sender_t *jobs_tx = zchan_sender_new(jobs);
    zchan_receiver_t *results_rx = zchan_receiver_new(results, 0);
    int sent = 0, got = 0, per[WORKERS][THREADS] = { { 0 } };
    uint64_t sum = 0;
    while (got < njobs) {
        if (sent < njobs) {
            zchan_msg_t *job = zchan_msg_new();
            msgpack_packer *pk = zchan_msg_packer(job);
            msgpack_pack_map(pk, 2);
            msgpack_pack_str_with_body(pk, "n", 1);
            msgpack_pack_uint64(pk, (uint64_t) sent + 1);
            msgpack_pack_str_with_body(pk, "reply_to", 8);
            zchan_msg_pack_chan(job, results);
            int rc = zchan_send(jobs_tx, &job, 0);
            zchan_msg_destroy(&job); // still ours if the send did not take it
            if (rc == ZCHAN_OK) {
                sent++;
                continue;
            }
        }
        zchan_msg_t *ans = NULL;
        int rc = zchan_recv(results_rx, &ans, sent < njobs ? 10 : 10000);
        if (rc == ZCHAN_ETIMEDOUT && sent < njobs)
            continue;
        if (rc != ZCHAN_OK)
            die("results");
        const msgpack_object *a = zchan_msg_object(ans);
        if (a && a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 4) {
            int w = (int) a->via.array.ptr[0].via.i64, t = (int) a->via.array.ptr[1].via.i64;
            if (w >= 0 && w < WORKERS && t >= 0 && t < THREADS)
                per[w][t]++;
            sum += a->via.array.ptr[3].via.u64;
        }
        zchan_msg_destroy(&ans);
        got++;
    }
    uint64_t expect = (uint64_t) njobs * (njobs + 1) * (2 * njobs + 1) / 6;
    printf("dispatcher: %d results, sum of squares %llu (expected %llu)\n", got,
           (unsigned long long) sum, (unsigned long long) expect);
    for (int w = 0; w < WORKERS; w++)
        printf("dispatcher: worker %d threads handled %d and %d jobs\n", w, per[w][0], per[w][1]);

    //  Close jobs for everyone: worker threads drain, then their recv gives ECLOSED.
    zchan_sender_destroy(&jobs_tx);
    zchan_close(jobs);
    zchan_send_str(news_tx, "all jobs done, goodbye", -1);
    zchan_close(news); // the goodbye, sent before the close, is still delivered

    int failed = sum != expect;
    for (int w = 0; w < WORKERS; w++) {
        int status = 0;
        waitpid(pids[w], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    }
    zchan_receiver_destroy(&results_rx);
    zchan_receiver_destroy(&ready_rx);
    zchan_sender_destroy(&news_tx);
    zchan_destroy(&results);
    zchan_destroy(&ready);
    zchan_destroy(&news);
    zchan_destroy(&jobs);
    zchan_ctx_destroy(&ctx);
    printf(failed ? "demo: FAILED\n" : "demo: ok\n");
    return failed;
}

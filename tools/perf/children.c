/*  children.c: the coordinator's side of its workers (perf.h): each is a
    thread (inproc) or this program re-executed with --role, behind two
    pipes, one line per message.
*/
#define _GNU_SOURCE
#include "perf.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

//  A worker thread on the pipe ends in (its commands) and out (its reports).
static int s_start_thread(child_t *c, int in, int out)
{
    c->w.in_fd = in;
    c->w.out_fd = out;
    int rc = pthread_create(&c->thread, NULL, perf_worker_thread, &c->w);
    if (rc != 0) {
        close(in);
        close(out);
    }
    return rc;
}

//  A worker process, with in and out as its fds 3 and 4. The pipe ends are
//  closed here either way.
static int s_spawn(child_t *c, const worker_t *w, int in, int out)
{
    static perf_argval_t vals[PERF_WORKER_ARGS];
    char *argv[2 * PERF_WORKER_ARGS + 2];
    perf_worker_argv(w, g_self, vals, argv);
    return worker_spawn(&c->pid, argv, in, out);
}

int perf_child_start(child_t *c, const worker_t *w, bool thread, char *err, size_t errn)
{
    int down[2], up[2];
    memset(c, 0, sizeof *c);
    c->to_fd = c->from.fd = -1;
    if (worker_pipes(down, up, err, errn) != 0)
        return -1;
    c->w = *w;
    c->to_fd = down[1];
    c->from.fd = up[0];
    c->is_thread = thread;
    int rc = thread ? s_start_thread(c, down[0], up[1]) : s_spawn(c, w, down[0], up[1]);
    if (rc != 0) {
        snprintf(err, errn, "cannot start a %s worker: %s", perf_roles[w->role].name, strerror(rc));
        close(c->to_fd);
        close(c->from.fd);
        c->to_fd = c->from.fd = -1;
        return -1;
    }
    c->started = true;
    return 0;
}

int perf_child_finish(child_t *c, int grace_ms)
{
    if (!c->started)
        return 0;
    int status = 0;
    if (c->to_fd >= 0)
        close(c->to_fd);
    c->to_fd = -1;
    if (c->is_thread) {
        pthread_join(c->thread, NULL);
        status = c->w.status;
    } else {
        status = worker_reap(c->pid, grace_ms);
    }
    if (c->from.fd >= 0)
        close(c->from.fd);
    c->from.fd = -1;
    c->started = false;
    return status;
}

void perf_kids_abort(child_t *kids, int n)
{
    for (int i = 0; i < n; i++)
        if (kids[i].started && !kids[i].is_thread)
            kill(kids[i].pid, SIGKILL);
    for (int i = 0; i < n; i++)
        perf_child_finish(&kids[i], 1000);
}

int perf_kids_say(child_t *kids, int n, const char *cmd)
{
    for (int i = 0; i < n; i++)
        if (kids[i].started && say(kids[i].to_fd, "%s", cmd) != 0)
            return -1;
    return 0;
}

//  Looks through what c has sent for the line starting with prefix: 1 when
//  it came (kept in c->line), 0 if not yet, -1 on an error line or the end.
static int s_scan(child_t *c, const char *prefix, char *err, size_t errn)
{
    size_t plen = strlen(prefix);
    char line[LINE_MAX_];
    while (line_take(&c->from, line, sizeof line)) {
        if (!strncmp(line, "error ", 6)) {
            perf_copy_str(err, errn, line + 6);
            return -1;
        }
        if (!strncmp(line, prefix, plen) && (line[plen] == 0 || line[plen] == ' ')) {
            perf_copy_str(c->line, sizeof c->line, line);
            return 1;
        }
    }
    if (c->from.eof) {
        snprintf(err, errn, "%s worker %d ended before reporting '%s'", perf_roles[c->w.role].name, c->w.id,
                 prefix);
        return -1;
    }
    return 0;
}

//  Waits up to 100 ms for more from the np workers of pfd (kids idx).
static int s_wait(child_t *kids, struct pollfd *pfd, const int *idx, int np, char *err, size_t errn)
{
    int rc = poll(pfd, (nfds_t) np, 100);
    if (rc < 0 && errno != EINTR) {
        snprintf(err, errn, "poll: %s", strerror(errno));
        return -1;
    }
    for (int k = 0; k < np && rc > 0; k++)
        if (pfd[k].revents)
            line_fill(&kids[idx[k]].from);
    return 0;
}

int perf_collect(child_t *kids, int n, const char *prefix, int64_t deadline, char *err, size_t errn)
{
    bool got[MAX_KIDS] = {false};
    int left = n;
    while (left > 0) {
        struct pollfd pfd[MAX_KIDS];
        int idx[MAX_KIDS], np = 0;
        for (int i = 0; i < n; i++) {
            if (got[i])
                continue;
            int s = s_scan(&kids[i], prefix, err, errn);
            if (s < 0)
                return -1;
            if (s > 0) {
                got[i] = true;
                left--;
                continue;
            }
            pfd[np] = (struct pollfd){kids[i].from.fd, POLLIN, 0};
            idx[np++] = i;
        }
        if (left == 0)
            break;
        if (g_stop) {
            snprintf(err, errn, "interrupted");
            return -1;
        }
        if (now_ns() > deadline) {
            snprintf(err, errn, "timed out waiting for '%s' from %d worker(s)", prefix, left);
            return -1;
        }
        if (s_wait(kids, pfd, idx, np, err, errn) != 0)
            return -1;
    }
    return 0;
}

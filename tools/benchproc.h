/*  benchproc.h: the process plumbing zchan-perf and zchan-scale share.

    Both benchmarks are a coordinator that re-executes itself as worker
    processes (or runs workers as threads) and talks to each over a pair of
    pipes, one line per message. This is that: line buffers, "say" and
    "read a line within a timeout", pipes out of the workers' way, starting
    and reaping worker processes, the coordinator's signal handling (it
    kills its workers), its private runtime directory, and the start of
    main.
*/
#ifndef ZCHAN_BENCHPROC_H_INCLUDED
#define ZCHAN_BENCHPROC_H_INCLUDED

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define LINE_MAX_ 1024 // the longest line between coordinator and worker
#define WORKER_IN_FD 3  // a worker process's commands from the coordinator
#define WORKER_OUT_FD 4 // its reports to the coordinator

extern volatile sig_atomic_t g_stop; // coordinator: interrupted by a signal
extern char g_self[PATH_MAX];        // this program, for re-executing it as a worker
extern char g_tmpdir[PATH_MAX];      // the coordinator's private directory, "" if none

//  CLOCK_MONOTONIC in ns; sleeps ms milliseconds (through EINTR).
int64_t now_ns(void);
void sleep_ms(int ms);

//  Writes all n bytes (through EINTR). 0 or -1.
int write_all(int fd, const char *p, size_t n);

//  Writes one line (the format, then '\n'), cut to LINE_MAX_. 0 or -1.
int say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

//  Lines read from a pipe.
typedef struct {
    int fd;
    char buf[LINE_MAX_];
    size_t len;
    bool eof; // the other end closed, failed, or sent a line too long
} linebuf_t;

//  Takes one whole line out of lb into out (cut to n - 1, NUL-terminated).
//  false if no whole line is buffered.
bool line_take(linebuf_t *lb, char *out, size_t n);
//  Reads what the pipe has. 0, or -1 at the end (eof set).
int line_fill(linebuf_t *lb);
//  Waits up to timeout_ms (-1: no limit) for a line. 1 when one was read, 0
//  on timeout, -1 at the end of the pipe or when g_stop is set.
int line_read(linebuf_t *lb, char *out, size_t n, int timeout_ms);

//  A pipe whose ends are close-on-exec and above the fds a worker gets.
//  0 or -1 (nothing left open).
int pipe_hi(int fds[2]);

//  The two pipes to one worker: down (commands) and up (reports), each as
//  pipe_hi makes it. 0, or -1 with "pipe: REASON" in err (nothing left open).
int worker_pipes(int down[2], int up[2], char *err, size_t errn);

//  Starts this program (g_self) as a worker process with argv (argv[0] is
//  g_self), with in and out as its fds WORKER_IN_FD and WORKER_OUT_FD, and
//  tracks it (pid_track). Closes in and out here either way. 0, or
//  posix_spawn's error number.
int worker_spawn(pid_t *pid, char *const argv[], int in, int out);

//  Waits for a worker process, killing it after grace_ms, and stops tracking
//  it. Its exit status: its exit code, 128 + the signal that ended it, or 1
//  if it had to be killed or could not be waited for.
int worker_reap(pid_t pid, int grace_ms);

//  Parses a whole decimal number within [min, max]. false if it is not one.
bool parse_long(const char *s, long min, long max, long *out);

//  Worker processes the signal handler kills: add or remove one.
void pid_track(pid_t pid, bool add);

//  Makes g_tmpdir, $TMPDIR/PROG-XXXXXX (/tmp without $TMPDIR), and sets
//  ZCHAN_IPC_DIR to it. 0, or -1 (reported on stderr, named by prog).
int make_tmpdir(const char *prog);

//  Removes g_tmpdir and everything in it, if set, and clears it.
void rm_tmpdir(void);

//  The start of a coordinator's main: results go to *out (the real
//  stdout), while stdout itself goes to stderr (czmq logs there, and CSV
//  must stay clean); g_self is found; SIGINT, SIGTERM and SIGHUP set g_stop
//  and kill the tracked workers; SIGPIPE is ignored. prog names errors.
//  0, or -1 (reported on stderr).
int coordinator_setup(const char *prog, FILE **out);

#endif

/*  relayutil.h: the harness of the tests that run the programs of tools/
    (test_relay, test_cli): processes started with posix_spawn (exec), each
    recorded so that the teardown kills and reaps whatever a failed test left
    running; files in the test's temporary ZCHAN_IPC_DIR; CLI runs; relays
    on 127.0.0.1 port 0 that name their endpoints in --endpoint-file.

    Upper bounds of the waits here are stretched by tu_slow().
*/
#ifndef ZCHAN_TESTS_RELAYUTIL_H
#define ZCHAN_TESTS_RELAYUTIL_H

#include "testutil.h"
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

extern char ru_bin[PATH_MAX]; // the build directory ($ZCHAN_TEST_BIN_DIR, else "..")
extern const char *ru_dir;    // the temporary runtime directory

//  The group setup: the temporary directory, ru_bin, ZCHAN_TIMEOUT_MS=3000,
//  SIGPIPE ignored. Always 0.
int ru_setup(void **state);
//  Kills and reaps every recorded process. Always 0.
int ru_teardown(void **state);
//  ru_teardown, then removes the temporary directory. Always 0.
int ru_group_teardown(void **state);

int64_t ru_now_ms(void);
void ru_sleep_ms(int ms);

//  A number not handed out before (for fresh names).
int ru_seq(void);
//  A fresh path in the test directory: DIR/WHAT-N.
void ru_path(char *out, size_t n, const char *what);
//  The path of a program of tools/ in the build directory.
void ru_tool(char *out, size_t n, const char *name);

//  Starts argv with this process's environment plus env (NAME=VALUE
//  strings, NULL-terminated, may be NULL; they win), stdin, stdout and
//  stderr from/to the given files (NULL: /dev/null; stdout is truncated,
//  stderr appended to). Recorded for the teardown. Fails the test if it
//  cannot start.
pid_t ru_spawn(char *const argv[], char *const env[], const char *in, const char *out, const char *err);
//  Waits for pid to exit within timeout_ms. Returns its exit code, 128 + the
//  signal that ended it, or -1 if it was still running (then it is killed).
int ru_wait(pid_t pid, int timeout_ms);
bool ru_alive(pid_t pid);

//  Reads a whole file into a new string ("" if missing); *len its length
//  if len is given.
char *ru_slurp_n(const char *path, size_t *len);
char *ru_slurp(const char *path);
void ru_write_file(const char *path, const char *text);

//  A finished CLI run: exit code, stdout and stderr (free both).
typedef struct {
    int rc;
    char *out;
    char *err;
} ru_run_t;

void ru_run_free(ru_run_t *r);

//  Runs `zchan ARGS...` (ap: NULL-terminated strings) with env added to the
//  environment and stdin from in (may be NULL), and waits for it (20 s at
//  most). Its stderr is also echoed to ours.
ru_run_t ru_cli_v(char *const env[], const char *in, va_list ap);
ru_run_t ru_cli(char *const env[], const char *in, ...);

//  A relay process and where it listens.
typedef struct {
    pid_t pid;
    char tcp[128]; // tcp://127.0.0.1:PORT
    char ipc[64];  // ipc://NAME, "" if it has none
    char log[PATH_MAX];
    char epfile[PATH_MAX];
} ru_relay_t;

//  Starts a relay bound to tcp (port 0 unless tcp_bind says otherwise), and
//  with ipc also to a fresh ipc name, with extra options (NULL-terminated);
//  its stderr goes to r->log. Returns once it listens (ru_relay_wait_ready).
void ru_relay_start(ru_relay_t *r, const char *tcp_bind, bool ipc, ...);
//  Waits until the endpoint file has nlines lines, then reads the first into
//  r->tcp. The relay writes it (atomically) once it listens. Fails the test
//  if the relay exits first (showing its log) or takes more than 10 s.
void ru_relay_wait_ready(ru_relay_t *r, int nlines);

//  Waits until the channel at uri has n receivers attached (the handshake
//  before a broadcast: a receiver gets what is sent after it attached).
void ru_wait_receivers(zchan_ctx_t *ctx, const char *uri, uint64_t n);
//  A new context with a 3 s timeout.
zchan_ctx_t *ru_ctx(void);

#endif

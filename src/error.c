/*  error.c: the error enum's strings, the per-thread errno, and the one place
    where ZeroMQ's errno becomes a zchan error.
*/
#include "internal.h"
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local int s_errno;

int zchan_errno(void)
{
    return s_errno;
}

const char *zchan_strerror(int err)
{
    switch (err) {
    case ZCHAN_OK: return "success";
    case ZCHAN_ETIMEDOUT: return "timed out";
    case ZCHAN_ECLOSED: return "channel closed";
    case ZCHAN_EINVAL: return "invalid argument";
    case ZCHAN_ENOTFOUND: return "channel not found";
    case ZCHAN_ETYPE: return "message of another type";
    case ZCHAN_EPROTO: return "protocol error: bytes that are not zchan protocol";
    case ZCHAN_ENOMEM: return "out of memory";
    case ZCHAN_ESYS: return "system or ZeroMQ failure (see the log)";
    case ZCHAN_ELIMIT: return "refused by a hub's resource limit";
    default: return "unknown zchan error";
    }
}

int zchan__fail(int err)
{
    s_errno = err;
    return err;
}

void *zchan__fail_null(int err)
{
    s_errno = err;
    return NULL;
}

void zchan__errno_restore(int saved)
{
    s_errno = saved;
}

int zchan__zmq_error(const char *what)
{
    int e = zmq_errno();
    switch (e) {
    case EAGAIN: return ZCHAN_ETIMEDOUT;
    case ETERM:
    case ENOTSOCK: return zchan__fail(ZCHAN_ECLOSED);
    case ENOMEM: return zchan__fail(ZCHAN_ENOMEM);
    case EINTR: return ZCHAN_ETIMEDOUT;
    default:
        zchan__log_init();
        zsys_error("zchan: %s: %s", what, zmq_strerror(e));
        return zchan__fail(ZCHAN_ESYS);
    }
}

static pthread_once_t s_log_once = PTHREAD_ONCE_INIT;

static void s_log_setup(void)
{
    //  czmq installs SIGINT/SIGTERM handlers on first use unless told not to;
    //  a library must leave its host program's signals alone.
    zsys_handler_set(NULL);
}

void zchan__misuse(const char *cond, const char *func, const char *file, int line)
{
    fprintf(stderr, "zchan: misuse in %s: %s is false (%s:%d)\n", func, cond, file, line);
    abort();
}

void zchan__log_init(void)
{
    pthread_once(&s_log_once, s_log_setup);
}

static pthread_once_t s_stream_once = PTHREAD_ONCE_INIT;

static void s_stream_setup(void)
{
    //  czmq logs to stdout unless told otherwise, which mixes the library's
    //  log lines into a program's output (zchan recv | zchan send). czmq has
    //  no getter for the stream: $ZSYS_LOGSTREAM is the one choice it lets
    //  us see, and it wins.
    if (!getenv("ZSYS_LOGSTREAM"))
        zsys_set_logstream(stderr);
}

void zchan__log_to_stderr(void)
{
    zchan__log_init();
    pthread_once(&s_stream_once, s_stream_setup);
}

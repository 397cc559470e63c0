/*  internal.h: declarations shared by zchan's own source files. Not installed.

    Names: public zchan_, internal non-static zchan__, file-local static.
*/
#ifndef ZCHAN_INTERNAL_H_INCLUDED
#define ZCHAN_INTERNAL_H_INCLUDED

#include "zchan.h"
#include <pthread.h>
#include <zmq.h>

// ---------------------------------------------------------------------------
// Errors (src/error.c)

//  Sets this thread's zchan_errno to err and returns err, so a failing
//  function can `return zchan__fail(ZCHAN_EINVAL);`.
int zchan__fail(int err);

//  Sets zchan_errno to err and returns NULL.
void *zchan__fail_null(int err);

//  Sets zchan_errno back to saved (read at the start of a public call that
//  succeeded): a successful call leaves it as it was, whatever failed and
//  was handled inside it.
void zchan__errno_restore(int saved);

//  Converts the current zmq_errno() to a zchan error: EAGAIN -> ETIMEDOUT,
//  ETERM/ENOTSOCK -> ECLOSED, ENOMEM -> ENOMEM, anything else -> ESYS (logged
//  with what, once). Sets zchan_errno, except for EAGAIN and EINTR: those
//  are what a non-blocking read or send meets in the normal course, and a
//  public call that fails with them sets it on its way out.
int zchan__zmq_error(const char *what);

//  Aborts on the caller's misuse (include/zchan.h: passing a NULL object
//  where one is required aborts), like assert() but in every build type,
//  NDEBUG or not. Only for programming errors: never for a peer's bytes, the
//  network, the filesystem or memory, which are returned as errors.
#define zchan__assert(cond) ((cond) ? (void) 0 : zchan__misuse(#cond, __func__, __FILE__, __LINE__))
_Noreturn void zchan__misuse(const char *cond, const char *func, const char *file, int line);

//  Prepares czmq logging (disables czmq's signal handler first). Idempotent.
void zchan__log_init(void);

//  As zchan__log_init, and, once per process, points czmq's log stream at
//  stderr unless $ZSYS_LOGSTREAM chose one. Initialises czmq (zsys_init):
//  call it where the ZeroMQ context is made anyway (zchan_ctx_new).
void zchan__log_to_stderr(void);

// ---------------------------------------------------------------------------
// Time (src/clock.c)

//  Monotonic clock in microseconds and milliseconds.
int64_t zchan__now_us(void);
int64_t zchan__now_ms(void);

//  Converts a user timeout (-1 forever, 0, N ms) into an absolute deadline in
//  ms (-1 for forever), and back into the remaining zmq_poll timeout.
int64_t zchan__deadline(int timeout_ms);
long zchan__remaining(int64_t deadline_ms);

//  Whether a thread that waits for another should spin a little before it
//  sleeps: only with more than one CPU online, where the thread that will
//  wake it can run meanwhile. Asked of the system once. Never blocks.
bool zchan__spin_worth(void);

//  One step of a spin-wait: tells the CPU the thread is spinning.
static inline void zchan__relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// ---------------------------------------------------------------------------
// Receivers are polymorphic so that select and merge treat a channel
// receiver, a merged receiver and an adaptor alike (src/receiver.c).

typedef struct zchan__recv_ops {
    //  Does the non-blocking work a receiver needs before its owner waits on
    //  its poll items (for a channel receiver: report consumption, ask for
    //  messages). Returns 0 or an error.
    int (*prepare)(zchan_receiver_t *r);
    //  Writes up to max poll items (ZMQ_POLLIN) into items; returns how many it
    //  needs (which may exceed max: call again with more room).
    size_t (*pollitems)(zchan_receiver_t *r, zmq_pollitem_t *items, size_t max);
    //  Never blocks. Returns true if a read with timeout 0 will not give
    //  ETIMEDOUT: a message is ready, or the receiver has stopped.
    bool (*ready)(zchan_receiver_t *r);
    //  zchan_recv for this kind of receiver.
    int (*recv)(zchan_receiver_t *r, zchan_msg_t **msg_p, int timeout_ms);
    //  Frees what the receiver owns, except the zchan_receiver_t itself.
    void (*destroy)(zchan_receiver_t *r);
    //  With on, marks the sockets of its poll items as in use by a zmq_poll
    //  about to be made, so that a shutdown of their context (at exit, from
    //  another thread) does not close them under it; without, ends that.
    //  Calls pair up. NULL for a receiver without sockets of its own.
    void (*hold)(zchan_receiver_t *r, bool on);
    //  For a receiver that a select may watch by spinning before it sleeps
    //  (a local receiver, local.h): asks for a message as prepare does,
    //  without arming any descriptor, and returns a counter that changes
    //  whenever the receiver may have become ready. Never blocks. NULL for
    //  other kinds.
    unsigned (*watch)(zchan_receiver_t *r);
    //  That counter now, read without a lock. NULL with watch.
    unsigned (*events)(zchan_receiver_t *r);
} zchan__recv_ops_t;

//  The common head of every receiver. Kinds embed it first.
struct zchan_receiver_t {
    const zchan__recv_ops_t *ops;
    bool stopped;         // has returned ECLOSED (or will on the next read)
    bool selected_unread; // returned by select and not read since (debug check)
};

//  r->ops->hold(r, on) where there is one.
static inline void zchan__receiver_hold(zchan_receiver_t *r, bool on)
{
    if (r->ops->hold)
        r->ops->hold(r, on);
}

//  Waits on a receiver's poll items until it is ready or the deadline passes.
//  Returns 0 when ready, ETIMEDOUT, or an error.
int zchan__receiver_wait(zchan_receiver_t *r, int64_t deadline_ms);

// ---------------------------------------------------------------------------
// Timers (src/timer.c): select needs the next due time without consuming.

//  Returns the absolute monotonic time (us) of the timer's next tick, or -1
//  if stopped. Never blocks.
int64_t zchan__timer_next_us(const zchan_timer_t *t);

//  True if the timer is stopped (a wait would give ECLOSED).
bool zchan__timer_stopped(const zchan_timer_t *t);

//  Marks a timer as returned by select and not yet read (the debug check of
//  zchan_select_*), or clears the mark. Never blocks.
void zchan__timer_set_selected(zchan_timer_t *t, bool selected);

//  True while a timer returned by select has not been read since.
bool zchan__timer_selected(const zchan_timer_t *t);

#endif

/*  ipc.c: channels between processes of one host, over Unix sockets (mode
    0600) in the runtime directory (mode 0700; see s_runtime_dir for where it
    is and what is checked). Without a usable runtime directory a context has
    no ipc, and every ipc URI and bind is EINVAL.

    "ipc://NAME" is a host-wide name. The process that creates it first takes
    the lock file NAME.lock (flock, released by the kernel when the process
    dies) and makes its hub listen at NAME.sock as well; later processes find
    the lock taken and connect to NAME.sock. A socket file left by a dead
    process is never trusted: whoever next wins the lock removes it and binds
    afresh. "ipc://HUB/NAME" is channel NAME on the hub bound at "ipc://HUB"
    (socket HUB.hub, lock HUB.hub.lock, taken over the same way).

    The transport owns, per context, the runtime directory's path, the lock
    files the context holds and the socket files its hub bound. At the
    context's shutdown it removes the socket files, then the lock files while
    still holding them, so the runtime directory does not fill up with files
    of processes long gone.
*/
#include "transport.h"
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define S_SCHEME "ipc://"
#define S_SCHEME_LEN 6

//  A file the context made in the runtime directory: a lock file it holds
//  (fd >= 0) or a socket file its hub bound (fd -1).
typedef struct s_file {
    struct s_file *next;
    int fd;
    char path[ZCHAN__EP_MAX + 16];
} s_file_t;

//  The transport's state for one context.
typedef struct {
    char dir[200];        // the runtime directory, "" if ipc is unusable (set once, by ctx_init)
    pthread_mutex_t lock; // guards files
    s_file_t *files;      // newest first
} s_ipc_t;

// ---------------------------------------------------------------------------
// The runtime directory

//  Why dir, an existing runtime directory, cannot be used (NULL if it can):
//  it must be a directory itself (not a symlink), owned by the effective
//  user, and closed to group and others. zchan never changes the mode of a
//  directory it did not make: the user may share it for other purposes (or
//  have pointed $ZCHAN_IPC_DIR at /tmp).
static const char *s_runtime_dir_unfit(const struct stat *st)
{
    if (S_ISLNK(st->st_mode))
        return "it is a symbolic link";
    if (!S_ISDIR(st->st_mode))
        return "it is not a directory";
    if (st->st_uid != geteuid())
        return "it is owned by another user";
    if ((st->st_mode & 0077) != 0)
        return "group or others have permissions on it (it must be mode 0700 or stricter)";
    return NULL;
}

//  Finds or makes the runtime directory into out ($ZCHAN_IPC_DIR, else
//  $XDG_RUNTIME_DIR/zchan, else /tmp/zchan-UID); "" if it cannot be used,
//  with the reason logged.
static void s_runtime_dir(char *out, size_t n)
{
    const char *env = getenv("ZCHAN_IPC_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    char dir[sizeof ((s_ipc_t *) 0)->dir];
    int w;
    out[0] = 0;
    if (env && *env)
        w = snprintf(dir, sizeof dir, "%s", env);
    else if (xdg && *xdg)
        w = snprintf(dir, sizeof dir, "%s/zchan", xdg);
    else
        w = snprintf(dir, sizeof dir, "/tmp/zchan-%u", (unsigned) getuid());
    if (w < 0 || (size_t) w >= sizeof dir) {
        zsys_error("zchan: ipc disabled: the runtime directory's path is longer than %zu bytes", sizeof dir - 1);
        return;
    }
    struct stat st;
    const char *unfit = NULL;
    if (mkdir(dir, 0700) == 0) {
        //  Made here, so ours to set: the umask may have taken bits from 0700.
        //  Through an fd that is surely that directory.
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || fchmod(fd, 0700) != 0 || fstat(fd, &st) != 0) {
            zsys_error("zchan: ipc disabled: cannot make the runtime directory %s private: %s", dir,
                       strerror(errno));
            if (fd >= 0)
                close(fd);
            return;
        }
        close(fd);
        unfit = s_runtime_dir_unfit(&st);
    } else if (errno != EEXIST) {
        zsys_error("zchan: ipc disabled: cannot make the runtime directory %s: %s", dir, strerror(errno));
        return;
    } else if (lstat(dir, &st) != 0) {
        zsys_error("zchan: ipc disabled: cannot examine the runtime directory %s: %s", dir, strerror(errno));
        return;
    } else
        unfit = s_runtime_dir_unfit(&st);
    if (unfit) {
        zsys_error("zchan: ipc disabled: refusing the runtime directory %s: %s", dir, unfit);
        return;
    }
    snprintf(out, n, "%s", dir);
}

//  Writes "DIR/NAME.SUFFIX" into out; EINVAL if it would not fit a socket
//  path, or the context has no runtime directory (logged).
static int s_path(const zchan__tview_t *v, const char *name, size_t len, const char *suffix, char *out, size_t n)
{
    const s_ipc_t *ipc = (const s_ipc_t *) v->state;
    struct sockaddr_un sa;
    if (!ipc || !ipc->dir[0]) {
        zsys_error("zchan: ipc://%.*s: this context has no ipc (its runtime directory was refused or could "
                   "not be made; see the error logged when the context was created)",
                   (int) len, name);
        return ZCHAN_EINVAL;
    }
    int w = snprintf(out, n, "%s/%.*s%s", ipc->dir, (int) len, name, suffix);
    if (w < 0 || (size_t) w >= n || (size_t) w + 1 > sizeof sa.sun_path)
        return ZCHAN_EINVAL;
    return 0;
}

// ---------------------------------------------------------------------------
// Lock files and socket files

//  Notes path as the context's, to remove at ctx_fini (and fd, if >= 0, to
//  close then). ENOMEM (fd left open) or 0.
static int s_file_add(const zchan__tview_t *v, const char *path, int fd)
{
    s_ipc_t *ipc = (s_ipc_t *) v->state;
    s_file_t *f = calloc(1, sizeof *f);
    if (!f)
        return ZCHAN_ENOMEM;
    f->fd = fd;
    snprintf(f->path, sizeof f->path, "%s", path);
    pthread_mutex_lock(&ipc->lock);
    f->next = ipc->files;
    ipc->files = f;
    pthread_mutex_unlock(&ipc->lock);
    return 0;
}

//  Opens and locks path. The lock is only good if path still names the file
//  locked: a holder that exits unlinks it, and a process that opened the old
//  file just before would otherwise lock a file nobody else can find.
//  Returns the fd, or -ECLOSED (a live process holds it) / -ESYS (logged).
static int s_lock_file(const char *path)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            zsys_error("zchan: cannot open lock file %s: %s", path, strerror(errno));
            return -ZCHAN_ESYS;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return -ZCHAN_ECLOSED;
            zsys_error("zchan: cannot lock %s: %s", path, strerror(e));
            return -ZCHAN_ESYS;
        }
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_dev == named.st_dev
            && held.st_ino == named.st_ino)
            return fd;
        close(fd); // unlinked under us: try the file that is there now
    }
    zsys_error("zchan: lock file %s keeps changing", path);
    return -ZCHAN_ESYS;
}

//  Claims the lock file lock (with keep false, only tests whether it could,
//  and lets go). A kept lock lasts until ctx_fini, and the socket file sock
//  it guards, left by a dead holder if it exists, is removed: nobody else
//  can be listening there. 0, ECLOSED if a live process holds it, ESYS or
//  ENOMEM.
static int s_claim(const zchan__tview_t *v, const char *lock, const char *sock, bool keep)
{
    int fd = s_lock_file(lock);
    if (fd < 0)
        return -fd;
    if (!keep) {
        close(fd);
        return 0;
    }
    if (s_file_add(v, lock, fd) != 0) {
        close(fd);
        return ZCHAN_ENOMEM;
    }
    if (unlink(sock) != 0 && errno != ENOENT)
        zsys_warning("zchan: cannot remove the stale socket file %s: %s", sock, strerror(errno));
    return 0;
}

// ---------------------------------------------------------------------------
// The ops

static int s_ctx_init(zchan__tview_t *v)
{
    s_ipc_t *ipc = calloc(1, sizeof *ipc);
    if (!ipc)
        return ZCHAN_ENOMEM;
    pthread_mutex_init(&ipc->lock, NULL);
    s_runtime_dir(ipc->dir, sizeof ipc->dir);
    v->state = ipc;
    return 0;
}

//  Socket files first, then lock files, so that no socket file is ever left
//  unguarded by its lock.
static void s_ctx_fini(zchan__tview_t *v)
{
    s_ipc_t *ipc = (s_ipc_t *) v->state;
    if (!ipc)
        return;
    for (s_file_t *f = ipc->files; f; f = f->next)
        if (f->fd < 0)
            unlink(f->path);
    while (ipc->files) {
        s_file_t *f = ipc->files;
        ipc->files = f->next;
        if (f->fd >= 0) {
            unlink(f->path);
            close(f->fd);
        }
        free(f);
    }
    pthread_mutex_destroy(&ipc->lock);
    free(ipc);
    v->state = NULL;
}

static bool s_usable(const zchan__tview_t *v)
{
    const s_ipc_t *ipc = (const s_ipc_t *) v->state;
    return ipc && ipc->dir[0];
}

//  "ipc://hub-PID-N", a hub of its own in the runtime directory.
static int s_hub_address(const zchan__tview_t *v, uint64_t n, char *out, size_t len)
{
    if (!s_usable(v))
        return ZCHAN_ENOTFOUND;
    snprintf(out, len, S_SCHEME "hub-%d-%" PRIu64, (int) getpid(), n);
    return 0;
}

//  "NAME" -> host-wide name, key "ipc://NAME", hub "ipc://DIR/NAME.sock";
//  "HUB/NAME" -> name NAME on hub "ipc://DIR/HUB.hub". EINVAL for bad names,
//  or when the runtime directory is unusable. Never blocks.
static int s_parse_uri(const zchan__tview_t *v, const char *rest, zchan__target_t *t)
{
    const char *slash = strchr(rest, '/');
    char path[ZCHAN__EP_MAX];
    if (!slash) {
        size_t len = strlen(rest);
        if (!zchan__name_valid(rest, len) || s_path(v, rest, len, ".sock", path, sizeof path))
            return ZCHAN_EINVAL;
        t->where = ZCHAN__AT_HOST;
        snprintf(t->name, sizeof t->name, "%s", rest);
        snprintf(t->key, sizeof t->key, S_SCHEME "%.200s", rest);
    } else {
        size_t hlen = (size_t) (slash - rest), nlen = strlen(slash + 1);
        if (!zchan__name_valid(rest, hlen) || !zchan__name_valid(slash + 1, nlen)
            || s_path(v, rest, hlen, ".hub", path, sizeof path))
            return ZCHAN_EINVAL;
        t->where = ZCHAN__AT_HUB;
        snprintf(t->name, sizeof t->name, "%s", slash + 1);
        snprintf(t->key, sizeof t->key, "%s", slash + 1);
    }
    snprintf(t->hub, sizeof t->hub, S_SCHEME "%.240s", path);
    return 0;
}

//  A host-wide name NAME: lock DIR/NAME.lock, guarding DIR/NAME.sock.
static int s_claim_name(const zchan__tview_t *v, const zchan__target_t *t, bool keep)
{
    char sock[ZCHAN__EP_MAX], lock[ZCHAN__EP_MAX];
    size_t len = strlen(t->name);
    if (t->where != ZCHAN__AT_HOST || s_path(v, t->name, len, ".sock", sock, sizeof sock)
        || s_path(v, t->name, len, ".lock", lock, sizeof lock))
        return ZCHAN_EINVAL;
    return s_claim(v, lock, sock, keep);
}

//  "NAME" -> "ipc://DIR/NAME.hub", after claiming NAME.hub.lock for the
//  context. ESYS if a live process holds it.
static int s_bind_endpoint(const zchan__tview_t *v, const char *rest, char *out, size_t n)
{
    char path[ZCHAN__EP_MAX], lock[ZCHAN__EP_MAX];
    size_t len = strlen(rest);
    if (!zchan__name_valid(rest, len) || s_path(v, rest, len, ".hub", path, sizeof path)
        || s_path(v, rest, len, ".hub.lock", lock, sizeof lock))
        return ZCHAN_EINVAL;
    int rc = s_claim(v, lock, path, true);
    if (rc == ZCHAN_ECLOSED) {
        zsys_error("zchan: ipc://%s is bound by another live process", rest);
        return ZCHAN_ESYS;
    }
    if (rc != 0)
        return rc;
    snprintf(out, n, S_SCHEME "%s", path);
    return 0;
}

//  ZeroMQ makes an ipc socket file with the umask's mode (0755 under the
//  usual 022); zchan's are 0600, the runtime directory (0700) keeping
//  everyone else out meanwhile.
static int s_bound(const zchan__tview_t *v, const char *endpoint)
{
    const char *path = endpoint + S_SCHEME_LEN;
    if (s_file_add(v, path, -1) != 0)
        return ZCHAN_ENOMEM;
    if (chmod(path, 0600) != 0) {
        zsys_error("zchan: cannot make the socket file %s private: %s", path, strerror(errno));
        return ZCHAN_ESYS;
    }
    return 0;
}

//  The locator is the bound endpoint.
static int s_advertise(const char *host, const char *bound, char *out, size_t n)
{
    (void) host;
    snprintf(out, n, "%s", bound);
    return 0;
}

//  Reachable from the same host, while the socket file exists.
static bool s_reachable(const char *locator, const char *host, const char *proc)
{
    (void) proc;
    return strcmp(host, zchan__host_id()) == 0 && access(locator + S_SCHEME_LEN, F_OK) == 0;
}

const zchan__transport_t zchan__transport_ipc = {
    .scheme = "ipc",
    .rank = 1,
    .ctx_init = s_ctx_init,
    .ctx_fini = s_ctx_fini,
    .usable = s_usable,
    .hub_address = s_hub_address,
    .parse_uri = s_parse_uri,
    .claim = s_claim_name,
    .bind_endpoint = s_bind_endpoint,
    .bound = s_bound,
    .advertise = s_advertise,
    .reachable = s_reachable,
};

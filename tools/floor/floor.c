/* The C FUSE floor for tools/bench.py: the cheapest server of fakeproc's shape.
 *
 * libfuse3, high-level (path) API like fusepy's libfuse2, multithreaded (fuse_main's default); direct_io (set in
 * init: libfuse3 has no such -o option) and entry/attr/negative timeouts 0 as fakeproc (passed as -o before the
 * caller's own options, which may override them).  Serves /1/oom_score (0444, "0\n") and /1/oom_adj (0644, reads
 * "0\n", accepts any write and O_TRUNC), and the same under /2 (a second client's own files).  No flush callback,
 * as fakeproc (libfuse answers ENOSYS once, then the
 * kernel stops sending FLUSH).  libfuse3's defaults stay, atomic O_TRUNC included (libfuse2 sends a truncate
 * instead).  Other -o options (default_permissions, allow_other) pass through to libfuse.
 *
 * Request counting: every callback is counted by name.  A lookup of "/.bench-mark..." is a marker: it writes the
 * counts since the previous marker to $FLOOR_COUNTS ("NAME N" lines), resets them, and answers ENOENT.  The counts
 * are also written there at exit and on SIGUSR1.
 *
 *   cc -O2 -o floor floor.c $(pkg-config fuse3 --cflags --libs)
 *   FLOOR_COUNTS=/tmp/counts ./floor MOUNTPOINT -f [-o default_permissions,allow_other]
 *
 * As root, libfuse3 mounts with mount(2) itself: no fusermount3 (Debian's fuse3 package conflicts with fuse).
 */
#define FUSE_USE_VERSION 31
#include <fuse.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { OP_GETATTR, OP_READDIR, OP_OPEN, OP_READ, OP_WRITE, OP_TRUNCATE, OP_RELEASE, OP_N };
static const char *const op_names[OP_N] = {"getattr", "readdir", "open", "read", "write", "truncate", "release"};
static atomic_ulong counts[OP_N];
static const char *counts_file;
static time_t started;

static const char CONTENT[] = "0\n";
#define MARK "/.bench-mark"

static void dump_counts(void) {
    if (!counts_file)
        return;
    char buf[512];
    int n = 0;
    for (int i = 0; i < OP_N; i++) {
        unsigned long c = atomic_exchange(&counts[i], 0);
        if (c)
            n += snprintf(buf + n, sizeof buf - n, "%s %lu\n", op_names[i], c);
    }
    FILE *f = fopen(counts_file, "w");
    if (f) {
        fwrite(buf, 1, n, f);
        fclose(f);
    }
}

static void on_usr1(int sig) {
    (void)sig;
    dump_counts(); /* not async-signal-safe in theory; good enough for a benchmark helper */
}

/* "/1" and "/2" are alike (two processes, so that two clients can each have their own files) */
static int is_pid_dir(const char *path) { return !strcmp(path, "/1") || !strcmp(path, "/2"); }
static int is_named(const char *path, const char *name) {
    return (!strncmp(path, "/1/", 3) || !strncmp(path, "/2/", 3)) && !strcmp(path + 3, name);
}
static int is_file(const char *path) { return is_named(path, "oom_score") || is_named(path, "oom_adj"); }

static void *floor_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    (void)conn;
    cfg->direct_io = 1;
    cfg->kernel_cache = 0;
    return NULL;
}

static void floor_destroy(void *data) {
    (void)data;
    dump_counts();
}

static int floor_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    (void)fi;
    if (!strncmp(path, MARK, sizeof MARK - 1)) {
        dump_counts();
        return -ENOENT;
    }
    atomic_fetch_add(&counts[OP_GETATTR], 1);
    memset(st, 0, sizeof *st);
    st->st_atime = st->st_mtime = st->st_ctime = started;
    if (!strcmp(path, "/") || is_pid_dir(path)) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
    } else if (is_named(path, "oom_score")) {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
    } else if (is_named(path, "oom_adj")) {
        st->st_mode = S_IFREG | 0644;
        st->st_nlink = 1;
    } else {
        return -ENOENT;
    }
    return 0;
}

static int floor_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                         enum fuse_readdir_flags flags) {
    (void)off;
    (void)fi;
    (void)flags;
    atomic_fetch_add(&counts[OP_READDIR], 1);
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    if (!strcmp(path, "/")) {
        fill(buf, "1", NULL, 0, 0);
        fill(buf, "2", NULL, 0, 0);
    } else if (is_pid_dir(path)) {
        fill(buf, "oom_adj", NULL, 0, 0);
        fill(buf, "oom_score", NULL, 0, 0);
    } else {
        return -ENOTDIR;
    }
    return 0;
}

static int floor_open(const char *path, struct fuse_file_info *fi) {
    atomic_fetch_add(&counts[OP_OPEN], 1);
    if (!is_file(path))
        return -EISDIR;
    fi->direct_io = 1;
    return 0;
}

static int floor_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)path;
    (void)fi;
    atomic_fetch_add(&counts[OP_READ], 1);
    size_t len = sizeof CONTENT - 1;
    if (off < 0 || (size_t)off >= len)
        return 0;
    if (size > len - off)
        size = len - off;
    memcpy(buf, CONTENT + off, size);
    return (int)size;
}

static int floor_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)buf;
    (void)off;
    (void)fi;
    atomic_fetch_add(&counts[OP_WRITE], 1);
    if (!is_named(path, "oom_adj"))
        return -EACCES;
    return (int)size;
}

static int floor_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
    (void)size;
    (void)fi;
    atomic_fetch_add(&counts[OP_TRUNCATE], 1);
    return is_file(path) ? 0 : -EISDIR;
}

static int floor_release(const char *path, struct fuse_file_info *fi) {
    (void)path;
    (void)fi;
    atomic_fetch_add(&counts[OP_RELEASE], 1);
    return 0;
}

static const struct fuse_operations floor_ops = {
    .init = floor_init,
    .destroy = floor_destroy,
    .getattr = floor_getattr,
    .readdir = floor_readdir,
    .open = floor_open,
    .read = floor_read,
    .write = floor_write,
    .truncate = floor_truncate,
    .release = floor_release,
};

int main(int argc, char *argv[]) {
    /* fakeproc's timeouts first, so that options given on the command line override them */
    char *args[argc + 3];
    args[0] = argv[0];
    args[1] = "-o";
    args[2] = "entry_timeout=0,attr_timeout=0,negative_timeout=0";
    for (int i = 1; i < argc; i++)
        args[i + 2] = argv[i];
    args[argc + 2] = NULL;
    counts_file = getenv("FLOOR_COUNTS");
    started = time(NULL);
    signal(SIGUSR1, on_usr1);
    return fuse_main(argc + 2, args, &floor_ops, NULL);
}

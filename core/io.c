/* Small file helpers shared by the readers of checkpoints, safetensors and data files. */
#include "io.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t gl_fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

bool gl_read_whole_file(const char *path, unsigned char **data, size_t *len, char *err, size_t err_len) {
    /* a directory would report a size of 2^63, a FIFO would block forever: only regular files are read */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return snprintf(err, err_len, "cannot open '%s': %s", path, strerror(errno)), false;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return snprintf(err, err_len, "'%s' is not a regular file", path), false;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return snprintf(err, err_len, "cannot open '%s': %s", path, strerror(errno)), false;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return snprintf(err, err_len, "cannot seek in '%s'", path), false;
    }
    long size = ftell(f);
    rewind(f);
    unsigned char *buf = size >= 0 ? malloc((size_t)size + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        return snprintf(err, err_len, "cannot read '%s'", path), false;
    }
    fclose(f);
    buf[size] = 0;
    *data = buf;
    *len = (size_t)size;
    return true;
}


void gl_parent_dir(const char *path, char *dir, size_t n) {
    snprintf(dir, n, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, n, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
}

FILE *gl_atomic_open(gl_atomic *a, const char *path) {
    a->f = NULL;
    a->err = 0;
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp-XXXXXX", a->path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) return a->err = errno, NULL;
    /* mkstemp makes the file 0600; an output should get the permissions a plain fopen would give it */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(a->f = fdopen(fd, "wb"))) {
        a->err = errno;
        close(fd);
        unlink(a->tmp);
        return NULL;
    }
    return a->f;
}

/* the folder's entry for the renamed file is made durable too (without it a power loss can undo the rename) */
static bool fsync_parent(const char *path) {
    char dir[4096];
    gl_parent_dir(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return false;
    bool ok = fsync(fd) == 0 || errno == EINVAL; /* some file systems cannot sync a folder: nothing more to do */
    close(fd);
    return ok;
}

bool gl_atomic_commit(gl_atomic *a) {
    if (!a->f) return false;
    bool ok = !ferror(a->f) && fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    if (!ok && !a->err) a->err = errno ? errno : EIO;
    if (fclose(a->f) != 0 && ok) ok = false, a->err = errno;
    a->f = NULL;
    if (ok && rename(a->tmp, a->path) == 0) return fsync_parent(a->path) || (a->err = errno, false);
    if (ok) a->err = errno;
    unlink(a->tmp);
    return false;
}

void gl_atomic_abort(gl_atomic *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
}

bool gl_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t err_len) {
    gl_atomic a;
    FILE *f = gl_atomic_open(&a, path);
    if (f && (len == 0 || fwrite(data, 1, len, f) == len) && gl_atomic_commit(&a)) return true;
    int e = a.err ? a.err : errno;
    gl_atomic_abort(&a);
    return snprintf(err, err_len, "cannot write '%s': %s", path, strerror(e ? e : EIO)), false;
}

bool gl_lock_output(const char *path, char *err, size_t err_len) {
    char lock[4200];
    snprintf(lock, sizeof lock, "%s.lock", path);
    int fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0)
        return snprintf(err, err_len, "cannot create '%s' (is the folder there and writable?): %s", lock, strerror(errno)),
               false;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        return snprintf(err, err_len, "'%s' is in use by another run (%s is locked%s)", path, lock,
                        e == EWOULDBLOCK ? "" : ": cannot lock"), false;
    }
    /* the lock makes us the only writer of path: temporaries that a killed writer left beside it are removed */
    char dir[4096];
    gl_parent_dir(path, dir, sizeof dir);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    DIR *d = opendir(dir);
    size_t blen = strlen(base);
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *n = e->d_name;
        if (strlen(n) == blen + 11 && !strncmp(n, base, blen) && !strncmp(n + blen, ".tmp-", 5)) {
            char stale[8300];
            snprintf(stale, sizeof stale, "%s/%s", dir, n);
            unlink(stale);
        }
    }
    if (d) closedir(d);
    return true; /* the descriptor stays open: the lock lasts until the process exits */
}

bool gl_find_nul(const unsigned char *data, size_t n, size_t *line) {
    const unsigned char *z = memchr(data, 0, n);
    if (!z) return false;
    size_t l = 1;
    for (const unsigned char *p = data; p < z; p++) l += *p == '\n';
    *line = l;
    return true;
}

bool gl_find_data(const char *rel, char *out, size_t out_len) {
    const char *roots[3] = {getenv("GRADLAB_DATA"), "../shared/data", "data"};
    for (int i = 0; i < 3; i++) {
        if (!roots[i] || !roots[i][0]) continue;
        snprintf(out, out_len, "%s/%s", roots[i], rel);
        if (access(out, R_OK) == 0) return true;
    }
    snprintf(out, out_len, "data/%s", rel);
    return false;
}

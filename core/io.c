/* Small file helpers shared by the readers of checkpoints, safetensors and data files. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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


FILE *gl_atomic_open(gl_atomic *a, const char *path) {
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp", a->path);
    a->f = fopen(a->tmp, "wb");
    return a->f;
}

bool gl_atomic_commit(gl_atomic *a) {
    if (!a->f) return false;
    bool ok = !ferror(a->f) && fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    ok = fclose(a->f) == 0 && ok;
    a->f = NULL;
    if (ok && rename(a->tmp, a->path) == 0) return true;
    remove(a->tmp);
    return false;
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

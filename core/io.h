#ifndef GRADLAB_IO_H
#define GRADLAB_IO_H

#include <stdbool.h>
#include <stddef.h>

/* The whole file in a malloc'd buffer (NUL-terminated, *len bytes before the NUL); false with a message. */
bool gl_read_whole_file(const char *path, unsigned char **data, size_t *len, char *err, size_t err_len);

/* 64-bit FNV-1a, continuing from h (start with GL_FNV_OFFSET): the checksum of every file format we write, and a
 * fast hash of short byte strings */
#include <stdint.h>
#define GL_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t gl_fnv1a(uint64_t h, const void *data, size_t n);

/* Where a data set lives: the first of $GRADLAB_DATA/rel, ../shared/data/rel (the course's shared folder) and
 * data/rel (where `make data` puts it) that exists. Writes the path into out and returns true; false (with the
 * data/ path in out, for the message) when none exists. */
bool gl_find_data(const char *rel, char *out, size_t out_len);

/* Writing a file so that a reader never sees half of it. gl_atomic_open creates a fresh temporary beside PATH
 * (PATH.tmp-XXXXXX via mkstemp: O_CREAT|O_EXCL, so a symlink or file planted at a predictable name is never written
 * through); gl_atomic_commit flushes and fsyncs it, renames it over PATH and fsyncs the folder, so after a crash or
 * power loss PATH holds either the old file or the whole new one. Any failure removes the temporary. */
#include <stdio.h>
typedef struct {
    FILE *f;
    char path[4096], tmp[4108];
    int err; /* errno of the first failure, for the message */
} gl_atomic;
FILE *gl_atomic_open(gl_atomic *a, const char *path); /* NULL if the temporary cannot be created (errno set) */
bool gl_atomic_commit(gl_atomic *a);                  /* false if anything failed; nothing is left half-written */
void gl_atomic_abort(gl_atomic *a);                   /* closes and removes the temporary; PATH is untouched */
/* the whole of data written to path through gl_atomic; false with "cannot write 'PATH': reason" */
bool gl_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t err_len);

/* the folder that holds path: "a/b" for "a/b/c", "." for "c", "/" for "/c" */
void gl_parent_dir(const char *path, char *dir, size_t n);

/* An advisory lock that keeps two programs from writing one output (two `train --out X` runs): takes an exclusive
 * flock on PATH.lock (created if missing, never followed through a symlink) and holds it until the process exits.
 * Holding it, removes the PATH.tmp-XXXXXX temporaries a killed writer left. False with a message naming the path
 * when another process holds it or the folder is not writable. */
bool gl_lock_output(const char *path, char *err, size_t err_len);

/* true if the n bytes hold a NUL; *line gets its 1-based line number. Text readers refuse such files rather than
 * stop silently at the NUL as C strings would. */
bool gl_find_nul(const unsigned char *data, size_t n, size_t *line);

#endif

#ifndef GRADLAB_IO_H
#define GRADLAB_IO_H

#include <stdbool.h>
#include <stddef.h>

/* The whole file in a malloc'd buffer (NUL-terminated, *len bytes before the NUL); false with a message. */
bool gl_read_whole_file(const char *path, unsigned char **data, size_t *len, char *err, size_t err_len);

/* Where a data set lives: the first of $GRADLAB_DATA/rel, ../shared/data/rel (the course's shared folder) and
 * data/rel (where `make data` puts it) that exists. Writes the path into out and returns true; false (with the
 * data/ path in out, for the message) when none exists. */
bool gl_find_data(const char *rel, char *out, size_t out_len);

/* Writing a file so that a reader never sees half of it: write to PATH.tmp, then gl_atomic_commit flushes it to
 * disk and renames it over PATH (or removes the temporary on any error). */
#include <stdio.h>
typedef struct {
    FILE *f;
    char path[4096], tmp[4100];
} gl_atomic;
FILE *gl_atomic_open(gl_atomic *a, const char *path); /* NULL if the temporary cannot be created */
bool gl_atomic_commit(gl_atomic *a);                  /* false if anything failed; nothing is left half-written */

#endif

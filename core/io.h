#ifndef GRADLAB_IO_H
#define GRADLAB_IO_H

#include <stdbool.h>
#include <stddef.h>

/* The whole file in a malloc'd buffer (NUL-terminated, *len bytes before the NUL); false with a message. */
bool gl_read_whole_file(const char *path, unsigned char **data, size_t *len, char *err, size_t err_len);

#endif

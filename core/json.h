/* A small JSON reader (RFC 8259): parses a whole document into a tree of values. Enough for safetensors
 * headers, Hugging Face config.json and GPT-2's encoder.json; errors name the byte offset.
 * And a streaming writer for the results files of labs and benchmarks (below). */
#ifndef GRADLAB_JSON_H
#define GRADLAB_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "io.h"

typedef enum { GL_JSON_NULL, GL_JSON_BOOL, GL_JSON_NUMBER, GL_JSON_STRING, GL_JSON_ARRAY, GL_JSON_OBJECT } gl_json_type;

typedef struct gl_json {
    gl_json_type type;
    bool boolean;
    double number;
    char *string;   /* UTF-8, NUL-terminated (may contain NUL from \u0000: use string_len) */
    size_t string_len;
    size_t count;   /* array items or object members */
    struct gl_json *items;  /* array items / object values */
    char **keys;            /* object keys */
} gl_json;

/* Parses text[0..len); on error returns NULL and writes "... at byte N" into err. Free with gl_json_free. */
gl_json *gl_json_parse(const char *text, size_t len, char *err, size_t err_len);
void gl_json_free(gl_json *v);
/* member of an object by key, or NULL */
const gl_json *gl_json_get(const gl_json *obj, const char *key);

/* ---- writing ----
 * A document written value by value into a temporary file that gl_jw_close renames over the path (io.h's
 * gl_atomic): a reader never sees half a file. Inside an object every value takes a key; at the top level and
 * inside arrays the key is NULL (a mismatch is a programming error: the program stops with a message). Numbers
 * that are not finite are written as null (JSON has no NaN). Two-space indentation, one member per line. */
enum { GL_JW_MAX_DEPTH = 16 };
typedef struct gl_json_writer {
    gl_atomic file;
    FILE *f;
    int depth;
    bool in_object[GL_JW_MAX_DEPTH], has_items[GL_JW_MAX_DEPTH];
    bool wrote_root;
} gl_json_writer;

bool gl_jw_open(gl_json_writer *w, const char *path); /* false if the temporary cannot be created */
void gl_jw_object(gl_json_writer *w, const char *key); /* opens an object ... */
void gl_jw_array(gl_json_writer *w, const char *key);  /* ... or an array, closed by gl_jw_end */
void gl_jw_end(gl_json_writer *w);
void gl_jw_number(gl_json_writer *w, const char *key, double v); /* 7 significant digits: a float's precision */
void gl_jw_int(gl_json_writer *w, const char *key, long long v);
void gl_jw_string(gl_json_writer *w, const char *key, const char *s); /* escaped; UTF-8 passes through */
void gl_jw_bool(gl_json_writer *w, const char *key, bool v);
/* Commits the file; false (and nothing left at path's temporary) if writing failed or the document is unclosed. */
bool gl_jw_close(gl_json_writer *w);

#endif

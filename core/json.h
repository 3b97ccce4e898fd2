/* A small JSON reader (RFC 8259): parses a whole document into a tree of values. Enough for safetensors
 * headers, Hugging Face config.json and GPT-2's encoder.json; errors name the byte offset. */
#ifndef GRADLAB_JSON_H
#define GRADLAB_JSON_H

#include <stdbool.h>
#include <stddef.h>

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

#endif

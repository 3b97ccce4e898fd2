/* GGUF (version 2 and 3), the file format of ggml and llama.cpp: a header of typed key/value metadata, a table of
 * tensor descriptions, and the tensors' bytes, aligned. The file is mapped read-only and everything handed out
 * (strings, array data, tensor bytes) points into the mapping: quantized weights are used in place.
 *
 * Every count, length and offset is checked against the file's size before anything is allocated for it, sizes
 * are computed with overflow checks, tensors must lie inside the data section without overlapping, and unknown
 * value or tensor types are refused. A bad file gives NULL and one line naming the file and the problem.
 * docs/formats.md describes the layout. */
#ifndef GRADLAB_GGUF_H
#define GRADLAB_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3, GGUF_UINT32 = 4, GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12, GGUF_TYPE_COUNT = 13
} gguf_value_type;

/* ggml's tensor types (the numbers are the file's); the reader knows the block size and bytes of each one listed */
typedef enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8,
    GGML_Q8_1 = 9, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_Q8_K = 15,
    GGML_BF16 = 30,
    GGML_GL_Q3_0 = 130 /* gradlab's 3-bit block (kernels.h); a number ggml does not use, so llama.cpp refuses the file */
} ggml_type;

typedef struct {
    const char *ptr; /* not NUL-terminated: points into the file */
    uint64_t len;
} gguf_str;

typedef struct {
    gguf_str key;
    gguf_value_type type;
    union {
        uint64_t u;  /* unsigned integers and bool */
        int64_t i;   /* signed integers */
        double f;    /* floats */
        gguf_str s;
    } v;
    /* arrays: element type and count; the elements start at arr (little-endian, packed); strs indexes string
     * arrays (NULL otherwise); arrays of arrays are checked but not indexed (arr_type GGUF_ARRAY) */
    gguf_value_type arr_type;
    uint64_t arr_count;
    const uint8_t *arr;
    gguf_str *strs;
} gguf_kv;

typedef struct {
    gguf_str name;
    int n_dims;
    int64_t ne[4];    /* ne[0] is the fastest-varying dimension (a row's length); unused dims are 1 */
    ggml_type type;
    uint64_t offset;  /* from the start of the data section */
    uint64_t n_bytes;
    const uint8_t *data;
} gguf_tensor;

typedef struct gl_gguf {
    char path[512];
    const uint8_t *base; /* the whole file */
    uint64_t size;
    bool mapped;         /* base is an mmap of the file (else memory the caller owns) */
    uint32_t version;
    uint64_t n_kv, n_tensors, alignment, data_offset;
    gguf_kv *kv;
    gguf_tensor *tensors;
} gl_gguf;

/* Opens and validates a file (mmap, read-only). NULL with "PATH: problem" in err. */
gl_gguf *gl_gguf_open(const char *path, char *err, size_t err_len);
/* The same checks on bytes in memory (tests, fuzzing); buf must outlive the result. `what` names it in errors. */
gl_gguf *gl_gguf_parse(const uint8_t *buf, uint64_t len, const char *what, char *err, size_t err_len);
void gl_gguf_close(gl_gguf *g);

const gguf_kv *gl_gguf_find(const gl_gguf *g, const char *key);
const gguf_tensor *gl_gguf_tensor(const gl_gguf *g, const char *name);
/* Typed getters: false (with "PATH: ..." in err) if the key is missing or not of a fitting type. Integer getters
 * take any integer type whose value fits; float getters take float32/float64 or an integer. */
bool gl_gguf_get_int(const gl_gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err, size_t n);
bool gl_gguf_get_float(const gl_gguf *g, const char *key, double *out, char *err, size_t n);
bool gl_gguf_get_str(const gl_gguf *g, const char *key, gguf_str *out, char *err, size_t n);
bool gl_gguf_str_eq(gguf_str s, const char *c);
/* element i of an array of float32 or integers as a double (the caller checked i < arr_count) */
double gl_gguf_arr_number(const gguf_kv *kv, uint64_t i);

const char *gl_ggml_type_name(ggml_type t);  /* "Q4_1", or "type 99" for an unknown one (static buffer) */
/* weights per block and bytes per block; false for a type the reader does not know */
bool gl_ggml_type_size(ggml_type t, int64_t *block, int64_t *bytes);

/* ---- writing (tests, quantize) ----
 * A file is built in memory: metadata in the order added, then tensors in the order added, and written at once
 * through a temporary file renamed over the path. Values are copied, so the caller's buffers may go. */
typedef struct gl_gguf_writer gl_gguf_writer;
gl_gguf_writer *gl_gguf_writer_new(void);
void gl_gguf_put_u32(gl_gguf_writer *w, const char *key, uint32_t v);
void gl_gguf_put_i32(gl_gguf_writer *w, const char *key, int32_t v);
void gl_gguf_put_f32(gl_gguf_writer *w, const char *key, float v);
void gl_gguf_put_bool(gl_gguf_writer *w, const char *key, bool v);
void gl_gguf_put_str(gl_gguf_writer *w, const char *key, const char *v);
/* arrays: of strings (count NUL-terminated strings), of int32, of float32 */
void gl_gguf_put_str_array(gl_gguf_writer *w, const char *key, const char *const *v, uint64_t count);
void gl_gguf_put_i32_array(gl_gguf_writer *w, const char *key, const int32_t *v, uint64_t count);
void gl_gguf_put_f32_array(gl_gguf_writer *w, const char *key, const float *v, uint64_t count);
/* a key/value of an open file, copied as it is (quantize keeps a model's tokenizer and settings); false, with nothing
 * written, for an array of arrays */
bool gl_gguf_put_kv_copy(gl_gguf_writer *w, const gguf_kv *kv);
/* a tensor of n_dims dimensions ne (ne[0] fastest) holding n_bytes of data in the given type */
void gl_gguf_put_tensor(gl_gguf_writer *w, const char *name, ggml_type type, int n_dims, const int64_t *ne,
                        const void *data, uint64_t n_bytes);
/* the file's bytes (malloc'd) without writing it: tests corrupt them */
uint8_t *gl_gguf_writer_bytes(const gl_gguf_writer *w, uint64_t *len);
bool gl_gguf_writer_save(const gl_gguf_writer *w, const char *path, char *err, size_t err_len);
void gl_gguf_writer_free(gl_gguf_writer *w);

#endif

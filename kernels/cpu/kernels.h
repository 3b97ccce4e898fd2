/* gradlab CPU kernels: plain functions on float pointers.
 *
 * Kernels know floats, strides and SIMD; they never allocate in hot loops and know nothing of tensors or
 * autograd. Every kernel exists in three builds of the same source file (vec.c, gemm_micro.c):
 *   scalar  - the reference, compiled without SIMD flags; the obviously-correct path tests compare against
 *   avx2    - compiled with -mavx2 -mfma
 *   avx512  - compiled with -mavx512f
 * and the active build is chosen once at run time from what the CPU supports (AVX-512 -> AVX2+FMA -> scalar).
 * GRADLAB_KERNELS=scalar|avx2|avx512 in the environment forces a level (never above what the CPU has).
 *
 * Backward kernels ACCUMULATE (+=) into their gradient outputs, so a tensor used twice collects both
 * contributions; forward kernels overwrite their outputs.
 */
#ifndef GRADLAB_KERNELS_H
#define GRADLAB_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { GL_ISA_SCALAR = 0, GL_ISA_AVX2 = 1, GL_ISA_AVX512 = 2, GL_ISA_COUNT = 3 } gl_isa;

/* One set of kernels for one instruction-set level. n counts floats; rows x cols are row-major. */
typedef struct gl_kernels {
    const char *name;
    /* elementwise, equal shapes: out[i] = a[i] (op) b[i] */
    void (*add)(size_t n, const float *a, const float *b, float *out);
    void (*sub)(size_t n, const float *a, const float *b, float *out);
    void (*mul)(size_t n, const float *a, const float *b, float *out);
    void (*div)(size_t n, const float *a, const float *b, float *out);
    /* y[i] += alpha * x[i] */
    void (*axpy)(size_t n, float alpha, const float *x, float *y);
    /* y[i] += a[i] * b[i] */
    void (*mul_acc)(size_t n, const float *a, const float *b, float *y);
    /* sum of a[i] * b[i] */
    float (*dot)(size_t n, const float *a, const float *b);
    /* word2vec's skip-gram negative-sampling step for one context vector v and n_out output vectors (outs[0] the
     * true word, label 1; the rest negatives, label 0), each used as it was before its own update:
     *   g_j = alpha (label_j - sigmoid(v . u_j));  u_j += g_j v;  then v += sum_j g_j u_j.
     * acc is n floats of scratch. Returns sum_j -log sigmoid(+-v . u_j) when want_loss, else 0. */
    float (*sgns_step)(size_t n, float *v, float *const *outs, int n_out, float alpha, float *acc, int want_loss);
    /* one Adam/AdamW step on n weights: g += l2 * w; w -= lr * decoupled * w; moments; bias-corrected update */
    void (*adam_update)(size_t n, float *w, const float *g, float *m, float *v, float lr, float beta1, float beta2,
                        float eps, float l2, float decoupled, float bc1, float bc2);
    /* unary forward y = f(x) and backward dx += dy * f'(x) (given x and y = f(x)) */
    void (*exp_fwd)(size_t n, const float *x, float *y);
    void (*tanh_fwd)(size_t n, const float *x, float *y);
    void (*tanh_bwd)(size_t n, const float *y, const float *dy, float *dx);
    void (*gelu_fwd)(size_t n, const float *x, float *y);
    void (*gelu_bwd)(size_t n, const float *x, const float *dy, float *dx);
    /* attention's row helpers: max; x = exp(x - shift) returning the sum; x *= a; g = p * (g - d) */
    float (*row_max)(size_t n, const float *x);
    float (*exp_shift)(size_t n, float *x, float shift);
    void (*scale)(size_t n, float a, float *x);
    void (*dsoftmax)(size_t n, const float *p, float d, float *g);
    /* per row: y = softmax(x) (y may alias x) */
    void (*softmax_rows)(size_t rows, size_t cols, const float *x, float *y);
    /* per row: y = (x - mean) * rstd * w + b; w and/or b may be NULL; mean/rstd (rows) may be NULL */
    void (*layernorm_rows)(size_t rows, size_t cols, const float *x, const float *w, const float *b, float eps,
                           float *y, float *mean, float *rstd);
    /* llama.cpp's fp16 dot products (a and b hold fp16 values as floats; every level returns the same bits):
     * acc4x16 is ggml_vec_dot_f16 (one token), lanes16 llamafile's tinyBLAS (n a multiple of 16; two or more) */
    float (*dot_acc4x16)(size_t n, const float *a, const float *b);
    float (*dot_lanes16)(size_t n, const float *a, const float *b);
    /* with ggml's vector expf, the same bits at every level: y = x / (1 + e^-x) * g (SwiGLU); x = e^(x - shift),
     * returning the sum of x as ggml's softmax forms it (16-element chunks, each reduced, added in double) */
    void (*swiglu_ggml)(size_t n, const float *x, const float *g, float *y);
    double (*exp_shift_ggml)(size_t n, float *x, float shift);
    /* GEMM micro-kernel: C[MR x NR] (row stride ldc) = alpha * packed A panel (kc x MR) times the B panel (kc rows
     * of NR floats, ldb apart: NR when packed, B's own row stride when read in place) + beta * C; beta == 0 does
     * not read C */
    void (*gemm_micro)(int kc, const float *a_panel, const float *b_panel, size_t ldb, float *c, size_t ldc,
                       float alpha, float beta);
    /* the same product with A read in place: row i of the MR x kc block at a + i * lda (all MR rows readable) */
    void (*gemm_micro_rows)(int kc, const float *a, size_t lda, const float *b_panel, size_t ldb, float *c,
                            size_t ldc, float alpha, float beta);
    int gemm_mr, gemm_nr;
} gl_kernels;

extern const gl_kernels gl_kernels_scalar;
extern const gl_kernels gl_kernels_avx2;
extern const gl_kernels gl_kernels_avx512;

/* The level the CPU supports (ignores GRADLAB_KERNELS). */
gl_isa gl_isa_supported(void);
/* The level in use: the supported one, or the GRADLAB_KERNELS override (clamped to what is supported). */
gl_isa gl_isa_active(void);
/* Force a level for the rest of the process (tests and benchmarks); returns the level actually set. */
gl_isa gl_isa_set(gl_isa isa);
const char *gl_isa_name(gl_isa isa);
/* The kernels of the active level, or of a given level (NULL if the CPU lacks it). */
const gl_kernels *gl_kern(void);
const gl_kernels *gl_kern_for(gl_isa isa);

/* C = alpha * op(A) * op(B) + beta * C, row-major. op(A) is M x K, op(B) is K x N, C is M x N.
 * trans_a: A is stored K x M (lda >= M) and op(A) = A^T; likewise trans_b: B stored N x K.
 * beta == 0 never reads C (NaN there is overwritten). Packed, cache-blocked, OpenMP over row blocks, with the
 * active SIMD micro-kernel; each C element is summed in a fixed order whatever the thread count, so results
 * are bitwise identical for any OMP_NUM_THREADS. M == 1 (a matrix-vector product, as in decoding one token)
 * skips packing and streams B once: dot products along B's rows or axpy over them, split by columns. */
void gl_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
             int ldb, float beta, float *C, int ldc);
/* The reference: a plain triple loop, summing over k in order. */
void gl_gemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
/* ---- NF4: 4-bit NormalFloat weights (QLoRA), kernels/cpu/nf4.c ---- */
#include <stdbool.h>
#define GL_NF4_BLOCK 64  /* values per absmax */
#define GL_NF4_GROUP 256 /* absmax values per second-level scale (double quantisation) */
extern const float gl_nf4_levels[16]; /* the 16 NormalFloat levels of the QLoRA paper, ascending */
typedef struct gl_nf4 {
    int rows, cols;           /* the fp32 matrix it stands for, row-major */
    int64_t n_blocks, n_groups;
    uint8_t *packed;          /* (rows * cols + 1) / 2 bytes: value e in byte e / 2, the even one in the high nibble */
    int8_t *absmax_q;         /* per block: (absmax - offset) / group_scale, rounded */
    float *group_scale;       /* per group of 256 blocks */
    float offset;             /* the mean absmax */
} gl_nf4;
/* Quantises w (rows x cols, row-major). Each value decodes to within absmax * 0.1386 (half the widest gap
 * between levels) plus the double quantisation's error of its block's absmax (at most group_scale / 2). */
bool gl_nf4_quantize(gl_nf4 *q, const float *w, int rows, int cols);
float gl_nf4_absmax(const gl_nf4 *q, int64_t block);   /* the absmax a block decodes with */
void gl_nf4_dequantize_run(const gl_nf4 *q, int64_t start, int n, float *dst); /* values start .. start+n-1 */
size_t gl_nf4_bytes(const gl_nf4 *q);
void gl_nf4_free(gl_nf4 *q);
/* gl_gemm with B in NF4: op(B) is W (trans_b = 0; W is K x N) or W^T (trans_b = 1; W is N x K). W's values are
 * dequantised straight into the GEMM's packed panels, one KC x NR panel at a time, so no fp32 copy of W ever
 * exists; for M > 1 the result is bitwise that of gl_gemm on the dequantised matrix (M = 1 takes gl_gemm's packed
 * path too, not its streaming one). */
void gl_gemm_nf4(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const gl_nf4 *W,
                 float beta, float *C, int ldc);

/* The GEMM's packed operands, for kernels that drive gemm_micro themselves (flash attention): op(A)[i0 : i0+mc,
 * p0 : p0+kc] as panels of mr rows (mr * kc floats each, column p as mr consecutive floats, rows past mc zero);
 * op(B)[p0 : p0+kc, j0 : j0+cols] as one panel of nr columns (row p as nr consecutive floats, columns past cols
 * zero). trans as in gl_gemm: the operand is stored transposed. */
void gl_gemm_pack_a(int mr, int trans, const float *A, int lda, int i0, int mc, int p0, int kc, float *dst);
void gl_gemm_pack_b(int nr, int trans, const float *B, int ldb, int p0, int kc, int j0, int cols, float *dst);

/* gl_gemm with an explicit kernel set (for tests that compare levels). */
void gl_gemm_with(const gl_kernels *k, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Per-thread scratch that grows to the largest size asked and is then reused (freed when the thread ends):
 * slots 0-2 are the GEMM's packing buffers, 3 the quantized matmul's activations, 4-7 the backend ops' (ops.c). */
#define GL_SCRATCH_SLOTS 8
float *gl_kernel_scratch(int which, size_t floats);

/* ---- ggml's block formats (kernels/cpu/quant.c; layouts in docs/formats.md) ----
 * A row of K weights (K a multiple of 32) is K / 32 blocks; each block holds fp16 scale(s) and 32 small integers:
 *   Q8_0  d, int8 q[32]            w = d * q                                  34 bytes (8.5 bits per weight)
 *   Q4_0  d, 4-bit q[32] in 16 B   w = d * (q - 8)                            18 bytes (4.5 bits)
 *   Q4_1  d, m, 4-bit q[32]        w = d * q + m                              20 bytes (5 bits)
 *   Q3_0  d, 3-bit q[32] in 12 B   w = d * (q - 4)                            14 bytes (3.5 bits; gradlab's own)
 * 4-bit values: byte j holds weight j in its low nibble and weight j + 16 in its high nibble.
 * 3-bit values: the low two bits of weight j are bits 2(j / 8), 2(j / 8) + 1 of ql[j % 8]; its high bit is bit j % 8
 * of qh[j / 8] (so SIMD unpacks a block with one 64-bit shift per quarter and one byte compare).
 * For the integer dot product, activations are quantized the same way as Q8_0 (d = max|x| / 127, q = round(x / d))
 * into gl_block_q8a, which also keeps sum(q) and d * sum(q) (ggml's Q8_1) for the offsets of Q4_0 and Q4_1.
 * The type numbers are ggml's (and GGUF's); Q3_0 has a number ggml does not use (docs/formats.md). */
typedef enum { GL_QT_F32 = 0, GL_QT_F16 = 1, GL_QT_Q4_0 = 2, GL_QT_Q4_1 = 3, GL_QT_Q8_0 = 8, GL_QT_Q3_0 = 130 } gl_qtype;
#define GL_QK 32
typedef struct { uint16_t d; int8_t qs[GL_QK]; } gl_block_q8_0;
typedef struct { uint16_t d; uint8_t qs[GL_QK / 2]; } gl_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[GL_QK / 2]; } gl_block_q4_1;
typedef struct { uint16_t d; uint8_t ql[GL_QK / 4], qh[GL_QK / 8]; } gl_block_q3_0;
typedef struct {
    float d, s;  /* both rounded to fp16 precision, as ggml stores them: the same products as llama.cpp */
    int32_t sum; /* sum of qs */
    int8_t qs[GL_QK];
} gl_block_q8a;

float gl_f16_to_f32(uint16_t h);
uint16_t gl_f32_to_f16(float f); /* round to nearest even; overflow gives infinity */
void gl_round_to_f16(float *x, size_t n); /* x[i] = the nearest fp16 value (F16C where the CPU has it) */
/* bytes of one row of k weights of type t (k a multiple of 32 for the block types); 0 for an unknown type */
size_t gl_qtype_row_bytes(gl_qtype t, int64_t k);
bool gl_qtype_known(gl_qtype t);
/* a row of k weights of type t to floats / floats to a row (round to nearest per block, as ggml's reference) */
void gl_dequantize_row(gl_qtype t, const void *src, float *dst, int64_t k);
void gl_quantize_row(gl_qtype t, const float *src, void *dst, int64_t k);
void gl_quantize_act(const float *x, gl_block_q8a *y, int64_t k);
/* Round to nearest, one block at a time: the scale (and Q4_1's minimum) chosen from a block's 32 values, the code
 * of a value under them (clamped to the type's range, so a value outside the block's span maps to an end), the
 * value a code stands for, and the packed block. gl_quantize_row is these four in a row; GPTQ chooses a block's
 * scale when it reaches the block's first column and then codes the columns one at a time. */
typedef struct {
    uint16_t d16, m16; /* as stored (fp16) */
    float id, m;       /* what the codes are computed with: 1 / d and the minimum before rounding, as ggml does */
} gl_block_scale;
gl_block_scale gl_block_scale_of(gl_qtype t, const float *x);
int gl_block_code(gl_qtype t, gl_block_scale s, float x);
float gl_block_value(gl_qtype t, gl_block_scale s, int q);
void gl_block_pack(gl_qtype t, gl_block_scale s, const int *q, void *dst);
/* dot of a weight row (k weights of a block type) with quantized activations; the scalar reference */
float gl_vec_dot_q_ref(gl_qtype t, int64_t k, const void *w, const gl_block_q8a *x);
/* the same through the active level's SIMD path (AVX-512 VNNI, AVX2, or the reference) */
float gl_vec_dot_q(gl_qtype t, int64_t k, const void *w, const gl_block_q8a *x);
/* Y[M, N] = X[M, K] W^T for W of N rows of K weights of type t, stored row after row (GGUF's [K, N] tensor).
 * Block types quantize X to gl_block_q8a and use the integer dot; F32 and F16 weights take a float dot. Each output
 * is summed in a fixed order by one thread, so results are bitwise the same for any thread count. */
void gl_matmul_q(gl_qtype t, const void *W, int N, int K, const float *X, int M, float *Y);
/* GPTQ (kernels/cpu/gptq.c): W (rows x cols, row-major: a linear layer's weight, one row per output) quantized to
 * block type t into out (rows rows of gl_qtype_row_bytes(t, cols) bytes) with the rounding error of each column
 * spread over the later columns through the inverse of H (cols x cols, the Hessian 2 X^T X / n of the layer's
 * inputs X; destroyed), after damping its diagonal by damp times its mean. W is left holding the dequantized
 * values. block: columns per lazy batch update (a multiple of 32; 128 in the paper). act_order: columns in the
 * order of decreasing Hessian diagonal, each 32-weight block with the scale round to nearest gives it ("static
 * groups"); else in their order, each block's scale chosen when its first column is reached. false with a message
 * if H is not positive definite even with the damping, or has non-finite values. Bitwise the same for any thread
 * count. */
bool gl_gptq_quantize(gl_qtype t, float *W, int rows, int cols, double *H, double damp, int block, bool act_order,
                      void *out, char *err, size_t err_len);

#endif

/* Elementwise, softmax, layernorm and GEMM micro-kernels. This one file is compiled three times (see simd.h):
 * GL_VL == 1 is the scalar reference; 8 and 16 are the AVX2+FMA and AVX-512 builds. Each kernel that needs
 * hand-written SIMD shows its reference (#if GL_VL == 1) right above its vector body; plain loops are written
 * once and the compiler vectorises them in the SIMD builds (-O3 with the ISA flags).
 */
#include "simd.h"
#include "kernels.h"

#if GL_VL == 1
#define GL_KERNELS_NAME gl_kernels_scalar
#define GL_ISA_LABEL "scalar"
#define GEMM_MR 4
#define GEMM_NR 8
#elif GL_VL == 8
#define GL_KERNELS_NAME gl_kernels_avx2
#define GL_ISA_LABEL "avx2"
#define GEMM_MR 6
#define GEMM_NR 16
#else
#define GL_KERNELS_NAME gl_kernels_avx512
#define GL_ISA_LABEL "avx512"
#ifndef GEMM_MR
#define GEMM_MR 14
#define GEMM_NR 32
#endif
#endif

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_CUBIC 0.044715f

/* ---- plain loops: one text, vectorised by the compiler in the SIMD builds ---- */
static void k_add(size_t n, const float *a, const float *b, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
static void k_sub(size_t n, const float *a, const float *b, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] - b[i];
}
static void k_mul(size_t n, const float *a, const float *b, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}
static void k_div(size_t n, const float *a, const float *b, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] / b[i];
}
static void k_axpy(size_t n, float alpha, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
static void k_mul_acc(size_t n, const float *a, const float *b, float *y) {
    for (size_t i = 0; i < n; i++) y[i] += a[i] * b[i];
}
/* sum of a[i] * b[i]: the reference sums in order; the SIMD builds keep GL_VL partial sums (another order) */
static float k_dot(size_t n, const float *a, const float *b) {
#if GL_VL == 1
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
#else
    vf acc0 = v_set(0.0f), acc1 = v_set(0.0f);
    size_t i = 0;
    for (; i + 2 * GL_VL <= n; i += 2 * GL_VL) {
        acc0 += v_load(a + i) * v_load(b + i);
        acc1 += v_load(a + i + GL_VL) * v_load(b + i + GL_VL);
    }
    float s = v_hsum(acc0 + acc1);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
#endif
}

/* ---- word2vec's skip-gram negative-sampling step ---- */
/* g = alpha (label - s(f)) for the logistic s; adds -log s(f) (label 1) or -log s(-f) (label 0) to *loss when
 * loss is not NULL. Both from one exp(-|f|), so neither overflows for any f. */
static inline float sgns_gradient(float f, int label, float alpha, float *loss) {
    float e = expf(-fabsf(f)), sig = f >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
    if (loss) *loss += log1pf(e) + (label ? fmaxf(-f, 0.0f) : fmaxf(f, 0.0f));
    return ((float)label - sig) * alpha;
}

static float k_sgns_step(size_t n, float *v, float *const *outs, int n_out, float alpha, float *acc, int want_loss) {
    float loss = 0.0f, *lp = want_loss ? &loss : NULL;
#if GL_VL == 1
    /* BEGIN SOLUTION lab03: the skip-gram negative-sampling step, plainly: for each output u_j (j = 0 the true word) f = v.u_j, g = sgns_gradient(f, j == 0, alpha, lp), acc += g u_j, u_j += g v; then v += acc */
    for (size_t i = 0; i < n; i++) acc[i] = 0.0f;
    for (int j = 0; j < n_out; j++) {
        float *u = outs[j], f = 0.0f;
        for (size_t i = 0; i < n; i++) f += v[i] * u[i];
        float g = sgns_gradient(f, j == 0, alpha, lp);
        for (size_t i = 0; i < n; i++) acc[i] += g * u[i];
        for (size_t i = 0; i < n; i++) u[i] += g * v[i];
    }
    for (size_t i = 0; i < n; i++) v[i] += acc[i];
    /* END SOLUTION */
#else
    size_t nv = n / GL_VL * GL_VL;
    for (size_t i = 0; i < n; i++) acc[i] = 0.0f;
    for (int j = 0; j < n_out; j++) {
        float *u = outs[j];
        vf d0 = v_set(0.0f), d1 = v_set(0.0f), d2 = v_set(0.0f), d3 = v_set(0.0f);
        size_t i = 0;
        for (; i + 4 * GL_VL <= nv; i += 4 * GL_VL) {
            d0 += v_load(v + i) * v_load(u + i);
            d1 += v_load(v + i + GL_VL) * v_load(u + i + GL_VL);
            d2 += v_load(v + i + 2 * GL_VL) * v_load(u + i + 2 * GL_VL);
            d3 += v_load(v + i + 3 * GL_VL) * v_load(u + i + 3 * GL_VL);
        }
        for (; i < nv; i += GL_VL) d0 += v_load(v + i) * v_load(u + i);
        float f = v_hsum_tree((d0 + d1) + (d2 + d3));
        for (; i < n; i++) f += v[i] * u[i];
        float g = sgns_gradient(f, j == 0, alpha, lp);
        vf gv = v_set(g);
        for (i = 0; i < nv; i += GL_VL) {
            vf uu = v_load(u + i);
            v_store(acc + i, v_load(acc + i) + gv * uu);
            v_store(u + i, uu + gv * v_load(v + i));
        }
        for (; i < n; i++) {
            acc[i] += g * u[i];
            u[i] += g * v[i];
        }
    }
    for (size_t i = 0; i < n; i++) v[i] += acc[i];
#endif
    return loss;
}

static void k_tanh_bwd(size_t n, const float *y, const float *dy, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

/* ---- Adam / AdamW update of one parameter tensor (written once; the compiler vectorises it per ISA) ----
 * g' = g + l2 * w (Adam's coupled decay); w -= lr * decoupled * w (AdamW's); then the Adam step with bias
 * corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t. */
static void k_adam_update(size_t n, float *w, const float *g, float *m, float *v, float lr, float beta1, float beta2,
                          float eps, float l2, float decoupled, float bc1, float bc2) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + l2 * w[i];
        float wi = w[i] - lr * decoupled * w[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        w[i] = wi - lr * (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps);
    }
}

/* ---- row helpers for attention's online softmax ---- */
static float k_row_max(size_t n, const float *x) {
#if GL_VL == 1
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
#else
    size_t full = n - n % GL_VL;
    vf vm = v_set(-INFINITY);
    for (size_t i = 0; i < full; i += GL_VL) vm = v_max(vm, v_load(x + i));
    if (full < n) vm = v_max(vm, v_load_part(x + full, n - full, -INFINITY));
    return v_hmax(vm);
#endif
}

/* x[i] = exp(x[i] - shift); returns the sum of the new values */
static float k_exp_shift(size_t n, float *x, float shift) {
#if GL_VL == 1
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += x[i] = expf(x[i] - shift);
    return s;
#else
    size_t full = n - n % GL_VL;
    vf vs = v_set(0.0f);
    for (size_t i = 0; i < full; i += GL_VL) {
        vf e = v_exp(v_load(x + i) - shift);
        v_store(x + i, e);
        vs += e;
    }
    float s = v_hsum(vs);
    for (size_t i = full; i < n; i++) s += x[i] = v_exp(v_set(x[i] - shift))[0];
    return s;
#endif
}

static void k_scale(size_t n, float a, float *x) {
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

/* softmax backward on a row: g[i] = p[i] * (g[i] - d) */
static void k_dsoftmax(size_t n, const float *p, float d, float *g) {
    for (size_t i = 0; i < n; i++) g[i] = p[i] * (g[i] - d);
}

/* ---- exp and tanh ---- */
#if GL_VL == 1
static void k_exp_fwd(size_t n, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = expf(x[i]);
}
static void k_tanh_fwd(size_t n, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}
#else
/* y = f(x) a vector at a time, the ragged end through a zero-padded vector */
static inline void map_vectors(size_t n, const float *x, float *y, vf (*f)(vf)) {
    size_t i = 0;
    for (; i + GL_VL <= n; i += GL_VL) v_store(y + i, f(v_load(x + i)));
    if (i < n) v_store_part(y + i, f(v_load_part(x + i, n - i, 0.0f)), n - i);
}
static void k_exp_fwd(size_t n, const float *x, float *y) { map_vectors(n, x, y, v_exp); }
static void k_tanh_fwd(size_t n, const float *x, float *y) { map_vectors(n, x, y, v_tanh); }
#endif

/* ---- GELU, tanh form: y = x/2 (1 + tanh(s (x + c x^3))) ---- */
static void k_gelu_fwd(size_t n, const float *x, float *y) {
#if GL_VL == 1
    for (size_t i = 0; i < n; i++) {
        float u = GELU_SCALE * (x[i] + GELU_CUBIC * x[i] * x[i] * x[i]);
        y[i] = 0.5f * x[i] * (1.0f + tanhf(u));
    }
#else
    size_t i = 0;
    for (; i < n; i += GL_VL) {
        size_t m = n - i < GL_VL ? n - i : GL_VL;
        vf v = m == GL_VL ? v_load(x + i) : v_load_part(x + i, m, 0.0f);
        vf t = v_tanh(GELU_SCALE * (v + GELU_CUBIC * v * v * v));
        vf out = 0.5f * v * (1.0f + t);
        if (m == GL_VL) v_store(y + i, out);
        else v_store_part(y + i, out, m);
    }
#endif
}

/* d/dx: (1 + t)/2 + x/2 (1 - t^2) s (1 + 3c x^2), t = tanh(s (x + c x^3)) */
static void k_gelu_bwd(size_t n, const float *x, const float *dy, float *dx) {
#if GL_VL == 1
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float t = tanhf(GELU_SCALE * (v + GELU_CUBIC * v * v * v));
        float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * v * v);
        dx[i] += dy[i] * d;
    }
#else
    size_t i = 0;
    for (; i < n; i += GL_VL) {
        size_t m = n - i < GL_VL ? n - i : GL_VL;
        int full = m == GL_VL;
        vf v = full ? v_load(x + i) : v_load_part(x + i, m, 0.0f);
        vf g = full ? v_load(dy + i) : v_load_part(dy + i, m, 0.0f);
        vf acc = full ? v_load(dx + i) : v_load_part(dx + i, m, 0.0f);
        vf t = v_tanh(GELU_SCALE * (v + GELU_CUBIC * v * v * v));
        vf d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * v * v);
        acc = acc + g * d;
        if (full) v_store(dx + i, acc);
        else v_store_part(dx + i, acc, m);
    }
#endif
}

/* ---- softmax over each row, max-subtracted for stability ---- */
static void k_softmax_rows(size_t rows, size_t cols, const float *x, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
#if GL_VL == 1
        float mx = -INFINITY;
        for (size_t j = 0; j < cols; j++) mx = xr[j] > mx ? xr[j] : mx;
        float sum = 0.0f;
        for (size_t j = 0; j < cols; j++) {
            yr[j] = expf(xr[j] - mx);
            sum += yr[j];
        }
        float inv = 1.0f / sum;
        for (size_t j = 0; j < cols; j++) yr[j] *= inv;
#else
        size_t full = cols - cols % GL_VL, tail = cols - full;
        vf vmax = v_set(-INFINITY);
        for (size_t j = 0; j < full; j += GL_VL) vmax = v_max(vmax, v_load(xr + j));
        if (tail) vmax = v_max(vmax, v_load_part(xr + full, tail, -INFINITY));
        float mx = v_hmax(vmax);
        vf vsum = v_set(0.0f);
        for (size_t j = 0; j < full; j += GL_VL) {
            vf e = v_exp(v_load(xr + j) - mx);
            v_store(yr + j, e);
            vsum += e;
        }
        if (tail) { /* padding lanes hold -inf: exp gives 0 there */
            vf e = v_exp(v_load_part(xr + full, tail, -INFINITY) - mx);
            v_store_part(yr + full, e, tail);
            vsum += e;
        }
        float inv = 1.0f / v_hsum(vsum);
        for (size_t j = 0; j < full; j += GL_VL) v_store(yr + j, v_load(yr + j) * inv);
        if (tail) v_store_part(yr + full, v_load_part(yr + full, tail, 0.0f) * inv, tail);
#endif
    }
}

/* ---- layernorm over each row ---- */
static void k_layernorm_rows(size_t rows, size_t cols, const float *x, const float *w, const float *b, float eps,
                             float *y, float *mean_out, float *rstd_out) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float mean, var;
#if GL_VL == 1
        float s = 0.0f;
        for (size_t j = 0; j < cols; j++) s += xr[j];
        mean = s / (float)cols;
        float ss = 0.0f;
        for (size_t j = 0; j < cols; j++) ss += (xr[j] - mean) * (xr[j] - mean);
        var = ss / (float)cols;
#else
        size_t full = cols - cols % GL_VL, tail = cols - full;
        vf vs = v_set(0.0f);
        for (size_t j = 0; j < full; j += GL_VL) vs += v_load(xr + j);
        float s = v_hsum(vs);
        for (size_t j = full; j < cols; j++) s += xr[j];
        mean = s / (float)cols;
        vf vss = v_set(0.0f);
        for (size_t j = 0; j < full; j += GL_VL) {
            vf d = v_load(xr + j) - mean;
            vss += d * d;
        }
        float ss = v_hsum(vss);
        for (size_t j = full; j < cols; j++) ss += (xr[j] - mean) * (xr[j] - mean);
        var = ss / (float)cols;
        (void)tail;
#endif
        float rstd = 1.0f / sqrtf(var + eps);
        for (size_t j = 0; j < cols; j++) {
            float v = (xr[j] - mean) * rstd;
            if (w) v *= w[j];
            if (b) v += b[j];
            yr[j] = v;
        }
        if (mean_out) mean_out[r] = mean;
        if (rstd_out) rstd_out[r] = rstd;
    }
}

/* ---- GEMM micro-kernel: an MR x NR tile of C from kc steps of packed panels ----
 * a_panel holds, for each k, MR consecutive values of a column of A; b_panel, NR values of a row of B.
 * Accumulators stay in registers (MR x NR/GL_VL vectors); each step is one row of B times MR broadcasts.
 * The tile is then written as C = alpha * AB + beta * C (beta == 0: C is not read). One body serves both entry
 * points: element (i, p) of A is a[i * a_row + p * a_step], (1, MR) for a packed panel, (lda, 1) for A read in
 * place; with the packed constants inlined the packed kernel compiles as if written alone. */
static inline __attribute__((always_inline)) void gemm_micro_body(int kc, const float *a, size_t a_row, size_t a_step,
                                                                  const float *b, size_t ldb, float *c, size_t ldc,
                                                                  float alpha, float beta) {
#if GL_VL == 1
    float acc[GEMM_MR][GEMM_NR] = {{0}};
    for (int p = 0; p < kc; p++, a += a_step, b += ldb)
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++) acc[i][j] += a[i * a_row] * b[j];
    for (int i = 0; i < GEMM_MR; i++)
        for (int j = 0; j < GEMM_NR; j++)
            c[i * ldc + j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
#else
    enum { NV = GEMM_NR / GL_VL };
    vf acc[GEMM_MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < GEMM_MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[i][v] = v_set(0.0f);
    for (int p = 0; p < kc; p++, a += a_step, b += ldb) {
        vf bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bv[v] = v_load(b + v * GL_VL);
#pragma GCC unroll 16
        for (int i = 0; i < GEMM_MR; i++) {
            vf ai = v_set(a[i * a_row]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[i][v] += ai * bv[v];
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < GEMM_MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *cv = c + i * ldc + v * GL_VL;
            v_store(cv, beta == 0.0f ? alpha * acc[i][v] : alpha * acc[i][v] + beta * v_load(cv));
        }
#endif
}

static void k_gemm_micro(int kc, const float *a, const float *b, size_t ldb, float *c, size_t ldc, float alpha,
                         float beta) {
    gemm_micro_body(kc, a, 1, GEMM_MR, b, ldb, c, ldc, alpha, beta);
}

static void k_gemm_micro_rows(int kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc,
                              float alpha, float beta) {
    gemm_micro_body(kc, a, lda, 1, b, ldb, c, ldc, alpha, beta);
}

/* ---- fp16 dot products in llama.cpp's order ----
 * For values that are fp16 numbers held in floats the products are exact, so fused or separate multiply-adds give
 * the same sums and every build of this file returns the same bits: the order alone decides them.
 * 16 lanes, whatever GL_VL: lane l takes the elements i with i % 16 == l. */
static inline float reduce16(const float v[16]) { /* GCC's _mm512_reduce_add_ps: 16 -> 8 -> 4, (0+2) + (1+3) */
    float a[8], b[4];
    for (int l = 0; l < 8; l++) a[l] = v[8 + l] + v[l];
    for (int l = 0; l < 4; l++) b[l] = a[4 + l] + a[l];
    return (b[0] + b[2]) + (b[1] + b[3]);
}

/* ggml_vec_dot_f16: four 16-lane accumulators over steps of 64, combined (0+2) + (1+3), reduced; the last n % 64
 * products summed in double */
static float k_dot_acc4x16(size_t n, const float *a, const float *b) {
    float acc[4][16] = {{0}}, v[16];
    size_t np = n - n % 64;
    for (size_t s = 0; s < np; s += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++) acc[j][l] += a[s + 16 * j + l] * b[s + 16 * j + l];
    for (int l = 0; l < 16; l++) v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    double sum = reduce16(v);
    for (size_t i = np; i < n; i++) sum += (double)(a[i] * b[i]);
    return (float)sum;
}

/* llamafile's tinyBLAS on AVX-512: one 16-lane accumulator over steps of 16 (n a multiple of 16), reduced */
static float k_dot_lanes16(size_t n, const float *a, const float *b) {
    float acc[16] = {0};
    for (size_t s = 0; s < n; s += 16)
        for (int l = 0; l < 16; l++) acc[l] += a[s + l] * b[s + l];
    return reduce16(acc);
}

/* ggml's vector expf (ARM optimized-routines' scheme): x = n ln2 + b, a degree-5 polynomial in b, times 2^n;
 * |n| > 192 gives 0 or infinity. fmaf is exact in every build (an instruction in the SIMD ones, libm's in the
 * scalar one), and 2^n is built in the exponent bits in two exact steps, so all levels agree to the bit. */
static inline float ggml_expf(float x) {
    const float shift = 0x1.8p23f;
    float z = fmaf(x, 0x1.715476p+0f, shift), n = z - shift;
    float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x)), u = b * b;
    float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                   fmaf(0x1.ffffecp-1f, b, 1.0f));
    int32_t k = (int32_t)n, k1 = k / 2, k2 = k - k1; /* j 2^k = (j 2^k1) 2^k2: each factor a normal power of two */
    uint32_t e1 = (uint32_t)(k1 + 127) << 23, e2 = (uint32_t)(k2 + 127) << 23;
    float p1, p2;
    memcpy(&p1, &e1, 4);
    memcpy(&p2, &e2, 4);
    float r = j * p1 * p2;
    return fabsf(n) > 192.0f ? (n <= 0.0f ? 0.0f : INFINITY) : r;
}

/* ggml's swiglu: y = x / (1 + expf(0 - x)) * g */
static void k_swiglu_ggml(size_t n, const float *x, const float *g, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + ggml_expf(0.0f - x[i])) * g[i];
}

/* x[i] = expf(x[i] - shift) with ggml's expf, returning their sum as ggml's softmax takes it: 16-element chunks
 * (zeros past n) reduced as one vector each, the chunk sums added in double */
static double k_exp_shift_ggml(size_t n, float *x, float shift) {
    double sum = 0;
    for (size_t c = 0; c < n; c += 16) {
        float chunk[16] = {0};
        for (size_t l = 0; l < 16 && c + l < n; l++) chunk[l] = x[c + l] = ggml_expf(x[c + l] - shift);
        sum += (double)reduce16(chunk);
    }
    return sum;
}

const gl_kernels GL_KERNELS_NAME = {
    .name = GL_ISA_LABEL,
    .add = k_add,
    .sub = k_sub,
    .mul = k_mul,
    .div = k_div,
    .axpy = k_axpy,
    .mul_acc = k_mul_acc,
    .dot = k_dot,
    .sgns_step = k_sgns_step,
    .adam_update = k_adam_update,
    .row_max = k_row_max,
    .exp_shift = k_exp_shift,
    .scale = k_scale,
    .dsoftmax = k_dsoftmax,
    .exp_fwd = k_exp_fwd,
    .tanh_fwd = k_tanh_fwd,
    .tanh_bwd = k_tanh_bwd,
    .gelu_fwd = k_gelu_fwd,
    .gelu_bwd = k_gelu_bwd,
    .softmax_rows = k_softmax_rows,
    .layernorm_rows = k_layernorm_rows,
    .dot_acc4x16 = k_dot_acc4x16,
    .dot_lanes16 = k_dot_lanes16,
    .swiglu_ggml = k_swiglu_ggml,
    .exp_shift_ggml = k_exp_shift_ggml,
    .gemm_micro = k_gemm_micro,
    .gemm_micro_rows = k_gemm_micro_rows,
    .gemm_mr = GEMM_MR,
    .gemm_nr = GEMM_NR,
};

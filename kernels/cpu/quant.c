/* ggml's block formats Q8_0, Q4_0, Q4_1 (kernels.h): conversion, the integer dot product against 8-bit
 * activations, and the quantized matrix product that a Llama model's decoding and prefill run on.
 *
 * Each dot product has the scalar reference first and its SIMD bodies after it. The SIMD bodies need more than
 * vec.c's per-level flags (byte shuffles, VNNI), so they are compiled with function target attributes and chosen
 * from the active level (GRADLAB_KERNELS lowers it as for every kernel): AVX-512 when the CPU also has BW, VL and
 * VNNI, AVX2 + FMA + F16C otherwise. All three add in ggml's x86 order and return the same bits (tested). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define GL_QUANT_SIMD 1
#include <cpuid.h>
/* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c" */
static bool cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

/* ---- fp16 ---- */
float gl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) bits = sign | 0x7F800000 | (man << 13); /* inf, nan */
    else if (exp) bits = sign | ((exp + 112) << 23) | (man << 13);
    else if (!man) bits = sign;
    else { /* subnormal: normalise */
        int e = -1;
        do e++, man <<= 1; while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t gl_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7FFFFFFF;
    if (ax > 0x7F800000) return (uint16_t)(sign | 0x7E00);   /* nan */
    if (ax >= 0x477FF000) return (uint16_t)(sign | 0x7C00);  /* rounds above 65504: inf */
    if (ax < 0x38800000) {                                   /* below 2^-14: subnormal or zero */
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f)); /* units of 2^-24, ties to even */
    }
    uint32_t r = ax + 0xFFF + ((ax >> 13) & 1); /* round the 13 dropped bits to nearest even */
    return (uint16_t)(sign | ((r - 0x38000000) >> 13));
}

#ifdef GL_QUANT_SIMD
__attribute__((target("avx,f16c"))) static void round_to_f16_f16c(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) x[i] = gl_f16_to_f32(gl_f32_to_f16(x[i]));
}
#endif

void gl_round_to_f16(float *x, size_t n) {
#ifdef GL_QUANT_SIMD
    static int f16c = -1;
    if (f16c < 0) __builtin_cpu_init(), f16c = cpu_has_f16c() && __builtin_cpu_supports("avx");
    if (f16c && gl_isa_active() != GL_ISA_SCALAR) return round_to_f16_f16c(x, n);
#endif
    for (size_t i = 0; i < n; i++) x[i] = gl_f16_to_f32(gl_f32_to_f16(x[i]));
}

bool gl_qtype_known(gl_qtype t) {
    return t == GL_QT_F32 || t == GL_QT_F16 || t == GL_QT_Q4_0 || t == GL_QT_Q4_1 || t == GL_QT_Q8_0 || t == GL_QT_Q3_0;
}

size_t gl_qtype_row_bytes(gl_qtype t, int64_t k) {
    switch (t) {
    case GL_QT_F32: return (size_t)k * 4;
    case GL_QT_F16: return (size_t)k * 2;
    case GL_QT_Q4_0: return (size_t)(k / GL_QK) * sizeof(gl_block_q4_0);
    case GL_QT_Q4_1: return (size_t)(k / GL_QK) * sizeof(gl_block_q4_1);
    case GL_QT_Q8_0: return (size_t)(k / GL_QK) * sizeof(gl_block_q8_0);
    case GL_QT_Q3_0: return (size_t)(k / GL_QK) * sizeof(gl_block_q3_0);
    }
    return 0;
}

/* ---- one block: scale, codes, values, packing ---- */
gl_block_scale gl_block_scale_of(gl_qtype t, const float *x) {
    gl_block_scale s = {0, 0, 0, 0};
    float d = 0;
    if (t == GL_QT_Q4_1) { /* ggml: m = min, d = (max - min) / 15 */
        float min = x[0], max = x[0];
        for (int j = 1; j < GL_QK; j++) min = fminf(min, x[j]), max = fmaxf(max, x[j]);
        d = (max - min) / 15.0f;
        s.m = min, s.m16 = gl_f32_to_f16(min);
    } else if (t == GL_QT_Q8_0) {
        float amax = 0;
        for (int j = 0; j < GL_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        d = amax / 127.0f;
    } else { /* Q4_0 (ggml) and Q3_0: the value of largest magnitude maps to the lowest code, q = 0 */
        float amax = 0, max = 0;
        for (int j = 0; j < GL_QK; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
        d = max / (t == GL_QT_Q4_0 ? -8.0f : -4.0f);
    }
    s.d16 = gl_f32_to_f16(d);
    s.id = d ? 1.0f / d : 0.0f;
    return s;
}

int gl_block_code(gl_qtype t, gl_block_scale s, float x) {
    switch (t) {
    case GL_QT_Q8_0: return (int)fmaxf(-127.0f, fminf(127.0f, roundf(x * s.id)));
    case GL_QT_Q4_0: return (int)fminf(15.0f, fmaxf(0.0f, x * s.id + 8.5f));
    case GL_QT_Q4_1: return (int)fminf(15.0f, fmaxf(0.0f, (x - s.m) * s.id + 0.5f));
    case GL_QT_Q3_0: return (int)fminf(7.0f, fmaxf(0.0f, x * s.id + 4.5f));
    default: return 0;
    }
}

float gl_block_value(gl_qtype t, gl_block_scale s, int q) {
    float d = gl_f16_to_f32(s.d16);
    switch (t) {
    case GL_QT_Q8_0: return d * q;
    case GL_QT_Q4_0: return d * (q - 8);
    case GL_QT_Q4_1: return d * q + gl_f16_to_f32(s.m16);
    case GL_QT_Q3_0: return d * (q - 4);
    default: return 0;
    }
}

void gl_block_pack(gl_qtype t, gl_block_scale s, const int *q, void *dst) {
    switch (t) {
    case GL_QT_Q8_0: {
        gl_block_q8_0 *y = dst;
        y->d = s.d16;
        for (int j = 0; j < GL_QK; j++) y->qs[j] = (int8_t)q[j];
        return;
    }
    case GL_QT_Q4_0:
    case GL_QT_Q4_1: {
        uint8_t *qs = t == GL_QT_Q4_0 ? ((gl_block_q4_0 *)dst)->qs : ((gl_block_q4_1 *)dst)->qs;
        if (t == GL_QT_Q4_0) ((gl_block_q4_0 *)dst)->d = s.d16;
        else ((gl_block_q4_1 *)dst)->d = s.d16, ((gl_block_q4_1 *)dst)->m = s.m16;
        for (int j = 0; j < GL_QK / 2; j++) qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
        return;
    }
    case GL_QT_Q3_0: {
        gl_block_q3_0 *y = dst;
        y->d = s.d16;
        memset(y->ql, 0, sizeof y->ql), memset(y->qh, 0, sizeof y->qh);
        for (int j = 0; j < GL_QK; j++) {
            y->ql[j % 8] |= (uint8_t)((q[j] & 3) << (2 * (j / 8)));
            y->qh[j / 8] |= (uint8_t)(((q[j] >> 2) & 1) << (j % 8));
        }
        return;
    }
    default: return;
    }
}

/* the codes of one block of a 3-bit row */
static void q3_codes(const gl_block_q3_0 *x, int *q) {
    for (int j = 0; j < GL_QK; j++) q[j] = ((x->ql[j % 8] >> (2 * (j / 8))) & 3) | ((x->qh[j / 8] >> (j % 8)) & 1) << 2;
}

/* ---- conversion ---- */
void gl_dequantize_row(gl_qtype t, const void *src, float *dst, int64_t k) {
    switch (t) {
    case GL_QT_F32: memcpy(dst, src, (size_t)k * 4); return;
    case GL_QT_F16:
        for (int64_t i = 0; i < k; i++) dst[i] = gl_f16_to_f32(((const uint16_t *)src)[i]);
        return;
    case GL_QT_Q8_0:
        for (int64_t b = 0; b < k / GL_QK; b++) {
            const gl_block_q8_0 *x = (const gl_block_q8_0 *)src + b;
            float d = gl_f16_to_f32(x->d);
            for (int j = 0; j < GL_QK; j++) dst[b * GL_QK + j] = d * x->qs[j];
        }
        return;
    case GL_QT_Q4_0:
        for (int64_t b = 0; b < k / GL_QK; b++) {
            const gl_block_q4_0 *x = (const gl_block_q4_0 *)src + b;
            float d = gl_f16_to_f32(x->d);
            for (int j = 0; j < GL_QK / 2; j++) {
                dst[b * GL_QK + j] = d * ((x->qs[j] & 15) - 8);
                dst[b * GL_QK + j + 16] = d * ((x->qs[j] >> 4) - 8);
            }
        }
        return;
    case GL_QT_Q4_1:
        for (int64_t b = 0; b < k / GL_QK; b++) {
            const gl_block_q4_1 *x = (const gl_block_q4_1 *)src + b;
            float d = gl_f16_to_f32(x->d), m = gl_f16_to_f32(x->m);
            for (int j = 0; j < GL_QK / 2; j++) {
                dst[b * GL_QK + j] = d * (x->qs[j] & 15) + m;
                dst[b * GL_QK + j + 16] = d * (x->qs[j] >> 4) + m;
            }
        }
        return;
    case GL_QT_Q3_0:
        for (int64_t b = 0; b < k / GL_QK; b++) {
            const gl_block_q3_0 *x = (const gl_block_q3_0 *)src + b;
            float d = gl_f16_to_f32(x->d);
            int q[GL_QK];
            q3_codes(x, q);
            for (int j = 0; j < GL_QK; j++) dst[b * GL_QK + j] = d * (q[j] - 4);
        }
        return;
    }
}

void gl_quantize_row(gl_qtype t, const float *src, void *dst, int64_t k) {
    if (t == GL_QT_F32) return (void)memcpy(dst, src, (size_t)k * 4);
    if (t == GL_QT_F16) {
        for (int64_t i = 0; i < k; i++) ((uint16_t *)dst)[i] = gl_f32_to_f16(src[i]);
        return;
    }
    size_t block_bytes = gl_qtype_row_bytes(t, GL_QK);
    for (int64_t b = 0; b < k / GL_QK; b++) {
        const float *x = src + b * GL_QK;
        gl_block_scale s = gl_block_scale_of(t, x);
        int q[GL_QK];
        for (int j = 0; j < GL_QK; j++) q[j] = gl_block_code(t, s, x[j]);
        gl_block_pack(t, s, q, (uint8_t *)dst + b * block_bytes);
    }
}

/* ggml's quantize_row_q8_1 as its x86 SIMD builds compute it (its Q8_0 gives the same d and q): d = max|x| / 127,
 * q = x * (127 / max|x|) rounded half to even. The exact rounding matters: a block holding one of the model's huge
 * activations has a large d, and a q one step off moves a product by d. */
void gl_quantize_act(const float *x, gl_block_q8a *y, int64_t k) {
    for (int64_t b = 0; b < k / GL_QK; b++, x += GL_QK, y++) {
        float amax = 0;
        for (int j = 0; j < GL_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < GL_QK; j++) sum += y->qs[j] = (int8_t)nearbyintf(x[j] * id);
        y->d = gl_f16_to_f32(gl_f32_to_f16(d));
        y->s = gl_f16_to_f32(gl_f32_to_f16(d * (float)sum));
        y->sum = sum;
    }
}

/* ---- the dot product: reference ----
 * Written in the order the SIMD bodies (and ggml's x86 kernels) add: per block, 8 integer lanes of 4 adjacent byte
 * products each; lane l of a float accumulator gets d_w d_x lane (fused: fmaf); then the 8 lanes are summed as
 * (l + l+4), then (0 + 2) + (1 + 3); Q4_1 adds m s_x per block to a separate sum. So every level gives the same
 * bits, and the tests can demand it. */
float gl_vec_dot_q_ref(gl_qtype t, int64_t k, const void *w, const gl_block_q8a *x) {
    float acc[8] = {0}, extra = 0;
    for (int64_t b = 0; b < k / GL_QK; b++) {
        int wq[GL_QK];
        float dw;
        if (t == GL_QT_Q8_0) {
            const gl_block_q8_0 *y = (const gl_block_q8_0 *)w + b;
            for (int j = 0; j < GL_QK; j++) wq[j] = y->qs[j];
            dw = gl_f16_to_f32(y->d);
        } else if (t == GL_QT_Q3_0) {
            const gl_block_q3_0 *y = (const gl_block_q3_0 *)w + b;
            q3_codes(y, wq);
            for (int j = 0; j < GL_QK; j++) wq[j] -= 4;
            dw = gl_f16_to_f32(y->d);
        } else {
            const uint8_t *qs = t == GL_QT_Q4_0 ? ((const gl_block_q4_0 *)w)[b].qs : ((const gl_block_q4_1 *)w)[b].qs;
            int offset = t == GL_QT_Q4_0 ? 8 : 0;
            for (int j = 0; j < GL_QK / 2; j++) wq[j] = (qs[j] & 15) - offset, wq[j + 16] = (qs[j] >> 4) - offset;
            dw = gl_f16_to_f32(t == GL_QT_Q4_0 ? ((const gl_block_q4_0 *)w)[b].d : ((const gl_block_q4_1 *)w)[b].d);
            if (t == GL_QT_Q4_1) extra += gl_f16_to_f32(((const gl_block_q4_1 *)w)[b].m) * x[b].s;
        }
        for (int l = 0; l < 8; l++) {
            int32_t lane = 0;
            for (int j = 4 * l; j < 4 * l + 4; j++) lane += wq[j] * x[b].qs[j];
            acc[l] = fmaf(dw * x[b].d, (float)lane, acc[l]);
        }
    }
    float r[4];
    for (int l = 0; l < 4; l++) r[l] = acc[4 + l] + acc[l];
    return ((r[0] + r[2]) + (r[1] + r[3])) + extra;
}

#ifdef GL_QUANT_SIMD
/* ---- SIMD: one block per 8 int32 lanes, each lane the sum of 4 adjacent byte products, scaled and added to a float
 * accumulator; then the 8 lanes are summed as (lo + hi) halves. This is ggml's x86 order, so for the same
 * activations the dot products equal llama.cpp's to the bit. AVX2 forms the lanes with maddubs + madd,
 * AVX-512 VNNI with one vpdpbusd: the same integers either way. */
/* a Q3_0 block's 32 codes minus 4, as signed bytes: the low two bits by one 64-bit shift per quarter, the high bit
 * by spreading qh's bytes over the quarters and testing each byte's own bit */
__attribute__((target("avx2"))) static inline __m256i unpack_q3(const gl_block_q3_0 *b) {
    uint64_t ql;
    uint32_t qh;
    memcpy(&ql, b->ql, 8), memcpy(&qh, b->qh, 4);
    __m256i lo = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x((long long)ql), _mm256_set_epi64x(6, 4, 2, 0)),
                                  _mm256_set1_epi8(3));
    __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                         _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(4));
    return _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(4));
}

#define SIMD_DOT(NAME, TARGET, LANES)                                                                                 \
    TARGET static float NAME(gl_qtype t, int64_t nb, const void *w, const gl_block_q8a *x) {                          \
        __m256 acc = _mm256_setzero_ps();                                                                              \
        float extra = 0;                                                                                               \
        const __m256i low4 = _mm256_set1_epi8(15);                                                                     \
        for (int64_t b = 0; b < nb; b++) {                                                                             \
            __m256i q = _mm256_loadu_si256((const __m256i *)x[b].qs), wv;                                              \
            float dw;                                                                                                  \
            if (t == GL_QT_Q8_0) {                                                                                     \
                const gl_block_q8_0 *y = (const gl_block_q8_0 *)w + b;                                                 \
                wv = _mm256_loadu_si256((const __m256i *)y->qs), dw = _cvtsh_ss(y->d);                                 \
            } else if (t == GL_QT_Q3_0) {                                                                              \
                wv = unpack_q3((const gl_block_q3_0 *)w + b), dw = _cvtsh_ss(((const gl_block_q3_0 *)w)[b].d);         \
            } else {                                                                                                   \
                const uint8_t *qs = t == GL_QT_Q4_0 ? ((const gl_block_q4_0 *)w)[b].qs : ((const gl_block_q4_1 *)w)[b].qs; \
                __m128i h = _mm_loadu_si128((const __m128i *)qs);                                                      \
                wv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(h, 4), h), low4);                                \
                dw = _cvtsh_ss(t == GL_QT_Q4_0 ? ((const gl_block_q4_0 *)w)[b].d : ((const gl_block_q4_1 *)w)[b].d);   \
                if (t == GL_QT_Q4_0) wv = _mm256_sub_epi8(wv, _mm256_set1_epi8(8));                                    \
            }                                                                                                          \
            __m256i lanes;                                                                                             \
            if (t == GL_QT_Q4_1) lanes = LANES(wv, q); /* unsigned 0..15 times signed */                               \
            else lanes = LANES(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(q, wv)); /* |w| times q with w's sign */     \
            if (t == GL_QT_Q4_1) extra += _cvtsh_ss(((const gl_block_q4_1 *)w)[b].m) * x[b].s;                         \
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * x[b].d), _mm256_cvtepi32_ps(lanes), acc);                         \
        }                                                                                                              \
        __m128 r = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));                             \
        r = _mm_add_ps(r, _mm_movehl_ps(r, r));                                                                        \
        r = _mm_add_ss(r, _mm_movehdup_ps(r));                                                                         \
        return _mm_cvtss_f32(r) + extra;                                                                               \
    }

#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
AVX2_TARGET static inline __m256i lanes_avx2(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
AVX512_TARGET static inline __m256i lanes_vnni(__m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}
SIMD_DOT(dot_avx2, AVX2_TARGET, lanes_avx2)
SIMD_DOT(dot_avx512, AVX512_TARGET, lanes_vnni)

/* ---- a tile of RM weight rows x RN tokens: each weight block unpacked once for RN tokens, each activation block
 * loaded once for RM rows; every output keeps its own accumulator and the dot's order, so the bits are the dot's ---- */
#define SIMD_TILE(NAME, TARGET, LANES, RM, RN)                                                                          \
    TARGET static void NAME(gl_qtype t, int64_t nb, const uint8_t *w, size_t row_bytes, const gl_block_q8a *x,      \
                            float *y, size_t ldy) {                                                                     \
        __m256 acc[RM][RN];                                                                                            \
        float extra[RM][RN];                                                                                           \
        for (int r = 0; r < RM; r++)                                                                                   \
            for (int c = 0; c < RN; c++) acc[r][c] = _mm256_setzero_ps(), extra[r][c] = 0;                             \
        const __m256i low4 = _mm256_set1_epi8(15);                                                                     \
        for (int64_t b = 0; b < nb; b++) {                                                                             \
            __m256i wv[RM], wabs[RM];                                                                                  \
            float dw[RM], mw[RM];                                                                                      \
            _Pragma("GCC unroll 8") for (int r = 0; r < RM; r++) {                                                     \
                const uint8_t *row = w + r * row_bytes;                                                                \
                if (t == GL_QT_Q8_0) {                                                                                 \
                    const gl_block_q8_0 *y0 = (const gl_block_q8_0 *)row + b;                                          \
                    wv[r] = _mm256_loadu_si256((const __m256i *)y0->qs), dw[r] = _cvtsh_ss(y0->d), mw[r] = 0;          \
                } else if (t == GL_QT_Q3_0) {                                                                          \
                    const gl_block_q3_0 *y0 = (const gl_block_q3_0 *)row + b;                                          \
                    wv[r] = unpack_q3(y0), dw[r] = _cvtsh_ss(y0->d), mw[r] = 0;                                        \
                } else {                                                                                               \
                    const uint8_t *qs = t == GL_QT_Q4_0 ? ((const gl_block_q4_0 *)row)[b].qs : ((const gl_block_q4_1 *)row)[b].qs; \
                    __m128i h = _mm_loadu_si128((const __m128i *)qs);                                                  \
                    wv[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(h, 4), h), low4);                         \
                    if (t == GL_QT_Q4_0) {                                                                             \
                        wv[r] = _mm256_sub_epi8(wv[r], _mm256_set1_epi8(8));                                           \
                        dw[r] = _cvtsh_ss(((const gl_block_q4_0 *)row)[b].d), mw[r] = 0;                               \
                    } else                                                                                             \
                        dw[r] = _cvtsh_ss(((const gl_block_q4_1 *)row)[b].d), mw[r] = _cvtsh_ss(((const gl_block_q4_1 *)row)[b].m); \
                }                                                                                                      \
                wabs[r] = _mm256_sign_epi8(wv[r], wv[r]);                                                              \
            }                                                                                                          \
            _Pragma("GCC unroll 8") for (int c = 0; c < RN; c++) {                                                     \
                const gl_block_q8a *xb = x + c * nb + b;                                                               \
                __m256i q = _mm256_loadu_si256((const __m256i *)xb->qs);                                               \
                _Pragma("GCC unroll 8") for (int r = 0; r < RM; r++) {                                                 \
                    __m256i lanes = t == GL_QT_Q4_1 ? LANES(wv[r], q) : LANES(wabs[r], _mm256_sign_epi8(q, wv[r]));    \
                    acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * xb->d), _mm256_cvtepi32_ps(lanes), acc[r][c]);  \
                    extra[r][c] += mw[r] * xb->s; /* m and s are fp16 values: the product is exact, fused or not */    \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        for (int r = 0; r < RM; r++)                                                                                   \
            for (int c = 0; c < RN; c++) {                                                                             \
                __m128 s4 = _mm_add_ps(_mm256_extractf128_ps(acc[r][c], 1), _mm256_castps256_ps128(acc[r][c]));       \
                s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                                                            \
                s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));                                                              \
                y[c * ldy + r] = _mm_cvtss_f32(s4) + extra[r][c];                                                      \
            }                                                                                                          \
    }
SIMD_TILE(tile_avx2, AVX2_TARGET, lanes_avx2, 2, 4)
SIMD_TILE(tile_avx512, AVX512_TARGET, lanes_vnni, 4, 4)

static bool avx512_quant_ok(void) {
    static int ok = -1;
    if (ok < 0) {
        __builtin_cpu_init();
        ok = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni") && cpu_has_f16c();
    }
    return ok;
}
static bool avx2_quant_ok(void) {
    static int ok = -1;
    if (ok < 0) __builtin_cpu_init(), ok = cpu_has_f16c();
    return ok;
}
#endif

typedef float (*dot_fn)(gl_qtype t, int64_t nb, const void *w, const gl_block_q8a *x);

static float dot_ref_blocks(gl_qtype t, int64_t nb, const void *w, const gl_block_q8a *x) {
    return gl_vec_dot_q_ref(t, nb * GL_QK, w, x);
}

static dot_fn active_dot(void) {
#ifdef GL_QUANT_SIMD
    gl_isa isa = gl_isa_active();
    if (isa == GL_ISA_AVX512 && avx512_quant_ok()) return dot_avx512;
    if (isa >= GL_ISA_AVX2 && avx2_quant_ok()) return dot_avx2;
#endif
    return dot_ref_blocks;
}

float gl_vec_dot_q(gl_qtype t, int64_t k, const void *w, const gl_block_q8a *x) {
    return active_dot()(t, k / GL_QK, w, x);
}

typedef void (*tile_fn)(gl_qtype t, int64_t nb, const uint8_t *w, size_t row_bytes, const gl_block_q8a *x, float *y,
                        size_t ldy);
/* the tile kernel of the active level and its shape, or NULL (the reference goes pair by pair) */
static tile_fn active_tile(int *rm, int *rn) {
    *rn = 4;
#ifdef GL_QUANT_SIMD
    gl_isa isa = gl_isa_active();
    if (isa == GL_ISA_AVX512 && avx512_quant_ok()) return *rm = 4, tile_avx512;
    if (isa >= GL_ISA_AVX2 && avx2_quant_ok()) return *rm = 2, tile_avx2;
#endif
    return *rm = 1, NULL;
}

/* ---- the matrix product ---- */
enum { ROWS_PER_TASK = 16 };

void gl_matmul_q(gl_qtype t, const void *W, int N, int K, const float *X, int M, float *Y) {
    size_t row_bytes = gl_qtype_row_bytes(t, K);
    const uint8_t *w = W;
    int tasks = (N + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    bool parallel = (int64_t)N * K * M >= 32768 && !omp_in_parallel();
    if (t == GL_QT_F32 || t == GL_QT_F16) { /* float weights: a row at a time into floats, then dot products */
        const gl_kernels *k = gl_kern();
        int nthreads = parallel ? omp_get_max_threads() : 1;
        float *rows = gl_kernel_scratch(3, (size_t)K * nthreads);
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (int task = 0; task < tasks; task++) {
            float *row = rows + (size_t)K * omp_get_thread_num();
            for (int n = task * ROWS_PER_TASK; n < N && n < (task + 1) * ROWS_PER_TASK; n++) {
                const float *wr = (const float *)(w + n * row_bytes);
                if (t == GL_QT_F16) gl_dequantize_row(t, w + n * row_bytes, row, K), wr = row;
                for (int m = 0; m < M; m++) Y[(size_t)m * N + n] = k->dot((size_t)K, wr, X + (size_t)m * K);
            }
        }
        return;
    }
    int nb = K / GL_QK;
    size_t act_floats = ((size_t)M * nb * sizeof(gl_block_q8a) + 3) / 4;
    gl_block_q8a *xq = (gl_block_q8a *)gl_kernel_scratch(3, act_floats);
    dot_fn dot = active_dot();
    int rm, rn;
    tile_fn tile = active_tile(&rm, &rn);
    bool quantize_together = M >= 4; /* a row or two: quantized here, sparing the threads a barrier */
    if (!quantize_together)
        for (int m = 0; m < M; m++) gl_quantize_act(X + (size_t)m * K, xq + (size_t)m * nb, K);
#pragma omp parallel if (parallel)
    {
        if (quantize_together) {
#pragma omp for schedule(static)
            for (int m = 0; m < M; m++) gl_quantize_act(X + (size_t)m * K, xq + (size_t)m * nb, K);
        }
        /* a task's rows stay in L1 while every activation row passes them; tiles of rm rows x rn tokens where they
         * fit, single dot products at the edges (the same bits either way) */
#pragma omp for schedule(static)
        for (int task = 0; task < tasks; task++) {
            int n0 = task * ROWS_PER_TASK, n1 = n0 + ROWS_PER_TASK < N ? n0 + ROWS_PER_TASK : N, m = 0;
            if (tile)
                for (; m + rn <= M; m += rn) {
                    int n = n0;
                    for (; n + rm <= n1; n += rm)
                        tile(t, nb, w + (size_t)n * row_bytes, row_bytes, xq + (size_t)m * nb, Y + (size_t)m * N + n, (size_t)N);
                    for (; n < n1; n++)
                        for (int c = 0; c < rn; c++)
                            Y[(size_t)(m + c) * N + n] = dot(t, nb, w + (size_t)n * row_bytes, xq + (size_t)(m + c) * nb);
                }
            for (; m < M; m++)
                for (int n = n0; n < n1; n++)
                    Y[(size_t)m * N + n] = dot(t, nb, w + (size_t)n * row_bytes, xq + (size_t)m * nb);
        }
    }
}

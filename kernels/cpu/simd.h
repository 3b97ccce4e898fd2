/* Width-generic SIMD helpers on GCC vector extensions, for the kernel files compiled once per ISA level.
 *
 * The including file is compiled with GL_VL = 1 (scalar reference, no SIMD flags), 8 (-mavx2 -mfma) or
 * 16 (-mavx512f). With GL_VL > 1, `vf` is a vector of GL_VL floats and the same source becomes ymm or zmm
 * code; the math (exp, tanh) is a branch-free polynomial because libm has no vector entry points we can rely on.
 * With GL_VL == 1 the kernels use libm directly: that build is the obviously-correct reference.
 */
#ifndef GRADLAB_SIMD_H
#define GRADLAB_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef GL_VL
#error "GL_VL must be defined (1, 8 or 16) by the Makefile"
#endif

#if GL_VL > 1
typedef float vf __attribute__((vector_size(GL_VL * 4)));
typedef int32_t vi __attribute__((vector_size(GL_VL * 4)));

static inline vf v_load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v_store(float *p, vf v) { memcpy(p, &v, sizeof v); }
/* n < GL_VL floats, the rest of the vector filled with `fill` */
static inline vf v_load_part(const float *p, size_t n, float fill) {
    float buf[GL_VL];
    for (size_t i = 0; i < GL_VL; i++) buf[i] = i < n ? p[i] : fill;
    return v_load(buf);
}
static inline void v_store_part(float *p, vf v, size_t n) {
    float buf[GL_VL];
    v_store(buf, v);
    for (size_t i = 0; i < n; i++) p[i] = buf[i];
}
/* x - (+0) is exactly x for every x (unlike x + 0 at -0), so the compiler emits a plain broadcast */
static inline vf v_set(float x) { return x - (vf){0}; }
static inline vf v_select(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }
static inline vf v_min(vf a, vf b) { return v_select(a < b, a, b); }
static inline vf v_max(vf a, vf b) { return v_select(a > b, a, b); }
static inline float v_hsum(vf v) {
    float s = 0.0f;
    for (int i = 0; i < GL_VL; i++) s += v[i];
    return s;
}
/* the same sum as a tree (halves added to halves): a chain of log2(GL_VL) adds instead of GL_VL, for kernels whose
 * dot products are short enough that the reduction's latency matters. v_hsum keeps its order because the
 * existing kernels' recorded results were computed with it. */
static inline float v_hsum_tree(vf v) {
    float buf[GL_VL];
    v_store(buf, v);
    for (int half = GL_VL / 2; half >= 1; half /= 2)
        for (int i = 0; i < half; i++) buf[i] += buf[i + half];
    return buf[0];
}
static inline float v_hmax(vf v) {
    float m = v[0];
    for (int i = 1; i < GL_VL; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/* exp(x): x = n ln2 + r, |r| <= ln2/2, exp(r) by Cephes' expf polynomial, 2^n built in the exponent bits.
 * Relative error about 2e-7 for normal results; below -87.3 (where libm would return denormals) it returns 0,
 * so exp(-inf) is exactly 0 as masked softmax entries need. */
static inline vf v_exp(vf x_in) {
    vf x = v_min(v_max(x_in, v_set(-87.3f)), v_set(88.7f));
    const vf round_magic = v_set(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    vf n = (x * 1.44269504088896341f + round_magic) - round_magic;
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = v_set(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return v_select(x_in < -87.3f, v_set(0.0f), p * (vf)bits);
}

/* tanh(x): an odd polynomial (Cephes tanhf) for |x| < 0.625, where 1 - 2/(e^2x + 1) would cancel,
 * and that formula elsewhere. Absolute error about 1e-7. */
static inline vf v_tanh(vf x) {
    vf z = x * x;
    vf p = v_set(-5.70498872745e-3f);
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    vf small = p * z * x + x;
    vf large = 1.0f - 2.0f / (v_exp(2.0f * x) + 1.0f);
    vf ax = v_select(x < 0.0f, -x, x);
    return v_select(ax < 0.625f, small, large);
}
#endif

#endif

/* Every fast kernel against its scalar reference, on odd sizes, for each ISA level this CPU supports.
 * Levels the CPU lacks are skipped with a printed reason. */
#include <omp.h>

#include "kernels.h"
#include "testutil.h"

static const size_t sizes[] = {1, 3, 7, 17, 33, 127, 1000};
#define N_SIZES (sizeof sizes / sizeof *sizes)

static void fill(float *x, size_t n, uint64_t seed, float lo, float hi) {
    gl_rng r;
    gl_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * gl_rng_uniform(&r);
}

/* |fast - ref| <= atol + rtol * |ref| for every element */
static void assert_close(const char *what, const char *isa, size_t n, const float *fast, const float *ref, float atol,
                         float rtol) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(fast[i] - ref[i]) <= atol + rtol * fabsf(ref[i]), "%s (%s, n=%zu): element %zu is %.9g, reference %.9g",
                  what, isa, n, i, (double)fast[i], (double)ref[i]);
}

static const gl_kernels *level(int isa) {
    const gl_kernels *k = gl_kern_for((gl_isa)isa);
    if (!k) fprintf(stderr, "[WARN] skipping %s kernels: this CPU does not support them\n", gl_isa_name((gl_isa)isa));
    return k;
}

/* Tolerances. Plain arithmetic (add ... div) is exact: the SIMD build does the same IEEE operation per element.
 * axpy / mul_acc may fuse into one FMA (one rounding instead of two): 2 ulp. exp's polynomial has a relative
 * error near 2e-7 and tanh's an absolute error near 1e-7 (simd.h), so 1e-6 leaves room; GELU and its
 * derivative inherit tanh's error times O(x). Softmax and layernorm sum in a different order (SIMD lanes):
 * 1e-6 relative of values of order 1. */
Test(kernels, elementwise_match_scalar) {
    const gl_kernels *ref = &gl_kernels_scalar;
    for (int isa = GL_ISA_AVX2; isa < GL_ISA_COUNT; isa++) {
        const gl_kernels *k = level(isa);
        if (!k) continue;
        for (size_t s = 0; s < N_SIZES; s++) {
            size_t n = sizes[s];
            float *a = malloc(n * 4), *b = malloc(n * 4), *o1 = malloc(n * 4), *o2 = malloc(n * 4);
            fill(a, n, 1, -5, 5);
            fill(b, n, 2, 0.5f, 3);
            void (*bin_fast[4])(size_t, const float *, const float *, float *) = {k->add, k->sub, k->mul, k->div};
            void (*bin_ref[4])(size_t, const float *, const float *, float *) = {ref->add, ref->sub, ref->mul, ref->div};
            for (int op = 0; op < 4; op++) {
                bin_fast[op](n, a, b, o1);
                bin_ref[op](n, a, b, o2);
                assert_close("add/sub/mul/div", k->name, n, o1, o2, 0, 0);
            }
            fill(o1, n, 3, -1, 1);
            memcpy(o2, o1, n * 4);
            k->axpy(n, 0.37f, a, o1);
            ref->axpy(n, 0.37f, a, o2);
            assert_close("axpy", k->name, n, o1, o2, 1e-6f, 2.4e-7f);
            k->mul_acc(n, a, b, o1);
            ref->mul_acc(n, a, b, o2);
            assert_close("mul_acc", k->name, n, o1, o2, 1e-6f, 2.4e-7f);

            /* dot: SIMD lanes sum in another order; bound by n u sum|a b| */
            double absdot = 0;
            for (size_t i = 0; i < n; i++) absdot += fabs((double)a[i] * b[i]);
            cr_assert(fabs((double)k->dot(n, a, b) - ref->dot(n, a, b)) <= 2.0 * n * 5.96e-8 * absdot + 1e-30,
                      "dot (%s, n=%zu)", k->name, n);
            fill(a, n, 4, -80, 80);
            k->exp_fwd(n, a, o1);
            ref->exp_fwd(n, a, o2);
            assert_close("exp", k->name, n, o1, o2, 0, 1e-6f);
            fill(a, n, 5, -6, 6);
            k->tanh_fwd(n, a, o1);
            ref->tanh_fwd(n, a, o2);
            assert_close("tanh", k->name, n, o1, o2, 1e-6f, 0);
            k->gelu_fwd(n, a, o1);
            ref->gelu_fwd(n, a, o2);
            assert_close("gelu", k->name, n, o1, o2, 5e-6f, 1e-6f);
            fill(b, n, 6, -1, 1);
            memset(o1, 0, n * 4);
            memset(o2, 0, n * 4);
            k->gelu_bwd(n, a, b, o1);
            ref->gelu_bwd(n, a, b, o2);
            assert_close("gelu backward", k->name, n, o1, o2, 5e-6f, 1e-6f);
            k->tanh_fwd(n, a, o1); /* y */
            memset(o2, 0, n * 4);
            float *dx = calloc(n, 4);
            k->tanh_bwd(n, o1, b, dx);
            ref->tanh_bwd(n, o1, b, o2);
            assert_close("tanh backward", k->name, n, dx, o2, 1e-6f, 2.4e-7f);
            free(dx);
            free(a);
            free(b);
            free(o1);
            free(o2);
        }
    }
}

Test(kernels, softmax_and_layernorm_match_scalar) {
    const gl_kernels *ref = &gl_kernels_scalar;
    for (int isa = GL_ISA_AVX2; isa < GL_ISA_COUNT; isa++) {
        const gl_kernels *k = level(isa);
        if (!k) continue;
        for (size_t s = 0; s < N_SIZES; s++) {
            size_t rows = 3, cols = sizes[s], n = rows * cols;
            float *x = malloc(n * 4), *y1 = malloc(n * 4), *y2 = malloc(n * 4), *w = malloc(cols * 4), *b = malloc(cols * 4);
            float m1[3], m2[3], r1[3], r2[3];
            fill(x, n, 7, -20, 20);
            k->softmax_rows(rows, cols, x, y1);
            ref->softmax_rows(rows, cols, x, y2);
            assert_close("softmax", k->name, n, y1, y2, 1e-7f, 1e-5f);
            fill(x, n, 8, -3, 5);
            fill(w, cols, 9, 0.5f, 1.5f);
            fill(b, cols, 10, -1, 1);
            k->layernorm_rows(rows, cols, x, w, b, 1e-5f, y1, m1, r1);
            ref->layernorm_rows(rows, cols, x, w, b, 1e-5f, y2, m2, r2);
            assert_close("layernorm", k->name, n, y1, y2, 1e-5f, 1e-5f);
            assert_close("layernorm mean", k->name, rows, m1, m2, 1e-6f, 1e-5f);
            assert_close("layernorm rstd", k->name, rows, r1, r2, 0, 1e-4f);
            free(x);
            free(y1);
            free(y2);
            free(w);
            free(b);
        }
    }
}

/* Softmax of a row with -inf entries (masked attention) gives exact zeros there, as the reference does. */
Test(kernels, softmax_masked_row) {
    float x[19], y[19];
    for (int j = 0; j < 19; j++) x[j] = j < 5 ? (float)j : -INFINITY;
    gl_kern()->softmax_rows(1, 19, x, y);
    float sum = 0;
    for (int j = 0; j < 19; j++) sum += y[j];
    cr_assert_float_eq(sum, 1.0f, 1e-6f);
    for (int j = 5; j < 19; j++) cr_assert(y[j] == 0.0f, "masked entry %d is %g", j, (double)y[j]);
}

/* GEMM: |C - C_ref| <= 2 K u (|A| |B|)_ij + tiny, the standard forward error bound of a length-K dot product
 * (u = 2^-24), computed per element in double; both sides sum the same products in different orders. */
static void check_gemm(const gl_kernels *k, int ta, int tb, int M, int N, int K, float alpha, float beta) {
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2; /* leading dims larger than the matrix */
    size_t asz = (size_t)(ta ? K : M) * lda, bsz = (size_t)(tb ? N : K) * ldb, csz = (size_t)M * ldc;
    float *A = malloc(asz * 4), *B = malloc(bsz * 4), *C1 = malloc(csz * 4), *C2 = malloc(csz * 4);
    fill(A, asz, 11, -1, 1);
    fill(B, bsz, 12, -1, 1);
    fill(C1, csz, 13, -1, 1);
    if (beta == 0.0f)
        for (size_t i = 0; i < csz; i++) C1[i] = NAN; /* beta = 0 must not read C */
    memcpy(C2, C1, csz * 4);
    gl_gemm_with(k, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
    gl_gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double absdot = 0;
            for (int p = 0; p < K; p++)
                absdot += fabs(ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p]) *
                          fabs(tb ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j]);
            double bound = 2.0 * (K + 2) * 5.96e-8 * (fabs(alpha) * absdot + 2.0) + 1e-30;
            float c1 = C1[(size_t)i * ldc + j], c2 = C2[(size_t)i * ldc + j];
            cr_assert(fabs((double)c1 - c2) <= bound, "gemm %s ta=%d tb=%d M=%d N=%d K=%d: C[%d][%d] = %.9g, ref %.9g",
                      k->name, ta, tb, M, N, K, i, j, (double)c1, (double)c2);
        }
    for (int i = 0; i < M; i++) /* padding between rows untouched */
        for (int j = N; j < ldc; j++)
            cr_assert(memcmp(&C1[(size_t)i * ldc + j], &C2[(size_t)i * ldc + j], 4) == 0, "gemm wrote outside C");
    free(A);
    free(B);
    free(C1);
    free(C2);
}

Test(kernels, gemm_matches_reference_all_levels_and_transposes) {
    const int odd[] = {1, 3, 7, 17, 33, 127};
    for (int isa = 0; isa < GL_ISA_COUNT; isa++) {
        const gl_kernels *k = level(isa);
        if (!k) continue;
        for (int t = 0; t < 4; t++)
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b += 2) {
                    check_gemm(k, t & 1, t >> 1, odd[a], odd[5 - a], odd[b], 1.0f, 0.0f);
                    check_gemm(k, t & 1, t >> 1, odd[b], odd[a], odd[5 - b], 0.5f, 1.0f);
                }
        /* several K blocks, M and N blocks with ragged edges, alpha and beta both general */
        check_gemm(k, 0, 0, 300, 70, 600, -1.5f, 0.25f);
        check_gemm(k, 1, 1, 45, 3100, 257, 1.0f, 1.0f);
    }
}

/* A few rows of A (M <= 64) with B stored K x N and N a multiple of NR: B is read in place, not packed. Both paths
 * must give the same bits (same products, same order), on every level, including a K split into two blocks and a
 * ragged last row tile; and agree with the reference. */
Test(kernels, gemm_reads_b_in_place_for_few_rows_with_the_packed_paths_bits) {
    int M = 23, N = 128, K = 1000;
    float *A = malloc((size_t)M * K * 4), *B = malloc((size_t)K * N * 4), *Bt = malloc((size_t)N * K * 4),
          *C1 = malloc((size_t)M * N * 4), *C2 = malloc((size_t)M * N * 4);
    fill(A, (size_t)M * K, 31, -1, 1);
    fill(B, (size_t)K * N, 32, -1, 1);
    for (int p = 0; p < K; p++)
        for (int j = 0; j < N; j++) Bt[(size_t)j * K + p] = B[(size_t)p * N + j];
    for (int isa = 0; isa < GL_ISA_COUNT; isa++) {
        const gl_kernels *k = level(isa);
        if (!k) continue;
        cr_assert_eq(N % k->gemm_nr, 0);
        gl_gemm_with(k, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);  /* in place */
        gl_gemm_with(k, 0, 1, M, N, K, 1.0f, A, K, Bt, K, 0.0f, C2, N); /* B^T stored: packed */
        cr_assert(memcmp(C1, C2, (size_t)M * N * 4) == 0, "%s: in-place and packed B differ", k->name);
        check_gemm(k, 0, 0, M, N, K, 0.5f, 1.0f);
        check_gemm(k, 0, 0, 64, 2 * k->gemm_nr, 40, 1.0f, 0.0f);
    }
    free(A), free(B), free(Bt), free(C1), free(C2);
}

/* The micro-kernel with A read in place (flash attention's P v and dS k) is the packed one's body with other
 * strides: the same products in the same order, so the same bits, on every level; and the reference's values. */
Test(kernels, gemm_micro_rows_matches_the_packed_micro_kernel) {
    enum { KC = 77, LDA = 90 };
    for (int isa = 0; isa < GL_ISA_COUNT; isa++) {
        const gl_kernels *k = level(isa);
        if (!k) continue;
        int mr = k->gemm_mr, nr = k->gemm_nr;
        float *A = malloc((size_t)mr * LDA * 4), *panel = malloc((size_t)mr * KC * 4), *B = malloc((size_t)KC * nr * 4);
        float *C1 = malloc((size_t)mr * nr * 4), *C2 = malloc((size_t)mr * nr * 4), *ref = malloc((size_t)mr * nr * 4);
        fill(A, (size_t)mr * LDA, 41, -1, 1);
        fill(B, (size_t)KC * nr, 42, -1, 1);
        fill(C1, (size_t)mr * nr, 43, -1, 1);
        memcpy(C2, C1, (size_t)mr * nr * 4);
        memcpy(ref, C1, (size_t)mr * nr * 4);
        gl_gemm_pack_a(mr, 0, A, LDA, 0, mr, 0, KC, panel);
        k->gemm_micro(KC, panel, B, (size_t)nr, C1, (size_t)nr, 0.5f, 1.0f);
        k->gemm_micro_rows(KC, A, LDA, B, (size_t)nr, C2, (size_t)nr, 0.5f, 1.0f);
        cr_assert(memcmp(C1, C2, (size_t)mr * nr * 4) == 0, "%s: gemm_micro_rows differs from gemm_micro", k->name);
        gl_gemm_ref(0, 0, mr, nr, KC, 0.5f, A, LDA, B, nr, 1.0f, ref, nr);
        assert_close("gemm_micro_rows", k->name, (size_t)mr * nr, C2, ref, 1e-5f, 1e-5f);
        free(A), free(panel), free(B), free(C1), free(C2), free(ref);
    }
}

Test(kernels, gemm_is_bitwise_identical_across_thread_counts) {
    int M = 250, N = 333, K = 700;
    float *A = malloc((size_t)M * K * 4), *B = malloc((size_t)K * N * 4), *C1 = malloc((size_t)M * N * 4),
          *C2 = malloc((size_t)M * N * 4);
    fill(A, (size_t)M * K, 21, -1, 1);
    fill(B, (size_t)K * N, 22, -1, 1);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    gl_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    omp_set_num_threads(2);
    gl_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    omp_set_num_threads(saved);
    cr_assert(memcmp(C1, C2, (size_t)M * N * 4) == 0, "1-thread and 2-thread GEMM differ");
    /* the M = 1 path (matrix-vector, split into row blocks) too, both layouts of B */
    for (int tb = 0; tb < 2; tb++) {
        omp_set_num_threads(1);
        gl_gemm(0, tb, 1, N, K, 1.0f, A, K, B, tb ? K : N, 0.0f, C1, N);
        omp_set_num_threads(2);
        gl_gemm(0, tb, 1, N, K, 1.0f, A, K, B, tb ? K : N, 0.0f, C2, N);
        cr_assert(memcmp(C1, C2, (size_t)N * 4) == 0, "1-thread and 2-thread matrix-vector products differ (tb=%d)", tb);
    }
    free(A);
    free(B);
    free(C1);
    free(C2);
}

Test(kernels, dispatch_honours_environment_override) {
    /* Criterion runs each test in a fresh process, so the level has not been chosen yet */
    setenv("GRADLAB_KERNELS", "scalar", 1);
    cr_assert(gl_isa_active() == GL_ISA_SCALAR);
    gl_isa best = gl_isa_supported();
    cr_assert(gl_isa_set(GL_ISA_SCALAR) == GL_ISA_SCALAR);
    cr_assert_str_eq(gl_kern()->name, "scalar");
    cr_assert(gl_isa_set(GL_ISA_AVX512) == best, "a level above the CPU's is clamped");
    cr_assert_str_eq(gl_kern()->name, gl_isa_name(best));
}

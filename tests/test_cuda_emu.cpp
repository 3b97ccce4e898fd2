/* The CUDA kernels (kernels/cuda/, the .cu files) run through the host emulation of the CUDA execution model
 * (kernels/cuda/emu/cuda_emu.h: blocks of real threads, __syncthreads barriers, warp shuffles, shared memory) and
 * compared with the CPU kernels and ops on the same inputs. A GPU is not needed; `make CUDA=1 test-cuda` runs
 * the same comparisons on a real one. Tolerances: the kernels sum in other orders than the CPU (warp
 * butterflies, blocks), so sums of n terms differ by about n * 1e-7 relative. */
#include <criterion/criterion.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

extern "C" {
#include "kernels.h"
#include "rng.h"
}
#include "cuda_ref.h"
#include "kernels_cuda.h"

static std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
    std::vector<float> v(n);
    gl_rng r;
    gl_rng_seed(&r, seed);
    for (auto &x : v) x = scale * gl_rng_normal(&r);
    return v;
}

static void expect_close(const char *what, const float *got, const float *want, size_t n, float atol, float rtol) {
    for (size_t i = 0; i < n; i++)
        cr_assert(std::fabs(got[i] - want[i]) <= atol + rtol * std::fabs(want[i]), "%s[%zu]: cuda %.7g, cpu %.7g", what,
                  i, (double)got[i], (double)want[i]);
}

Test(cuda_emu, elementwise_and_gelu) {
    const size_t n = 1000; /* not a multiple of the block size */
    auto a = randn(n, 1, 2.0f), b = randn(n, 2), dy = randn(n, 3);
    std::vector<float> out(n), y_cpu(n), dx(n, 0.5f), dx_cpu(n, 0.5f), acc(b);
    gl_cuda_add(n, a.data(), b.data(), out.data());
    for (size_t i = 0; i < n; i++) cr_assert(out[i] == a[i] + b[i]);
    gl_cuda_axpy(n, -0.5f, a.data(), acc.data());
    for (size_t i = 0; i < n; i++) cr_assert(acc[i] == b[i] + -0.5f * a[i]);
    const gl_kernels *ref = gl_kern_for(GL_ISA_SCALAR);
    gl_cuda_gelu_fwd(n, a.data(), out.data());
    ref->gelu_fwd(n, a.data(), y_cpu.data());
    expect_close("gelu", out.data(), y_cpu.data(), n, 1e-6f, 1e-6f);
    gl_cuda_gelu_bwd(n, a.data(), dy.data(), dx.data());
    ref->gelu_bwd(n, a.data(), dy.data(), dx_cpu.data());
    expect_close("gelu backward", dx.data(), dx_cpu.data(), n, 1e-6f, 1e-6f);
}

Test(cuda_emu, sums_in_a_fixed_order) {
    for (size_t n : {size_t(1), size_t(255), size_t(4096), size_t(10001)}) {
        auto x = randn(n, 4 + n);
        std::vector<float> scratch(gl_cuda_sum_scratch(n) + 4);
        float got = 0, got2 = 0;
        double want = 0, want_sq = 0;
        for (float v : x) want += v, want_sq += (double)v * v;
        gl_cuda_sum(n, x.data(), scratch.data(), &got);
        cr_assert(std::fabs(got - want) < 1e-5 * (1 + std::sqrt((double)n)), "n %zu: %g vs %g", n, got, want);
        gl_cuda_sum(n, x.data(), scratch.data(), &got2);
        cr_assert(got == got2, "same inputs, same bits");
        const float *bufs[2] = {x.data(), x.data()};
        size_t lens[2] = {n, n / 2};
        double want_two = want_sq;
        for (size_t i = 0; i < n / 2; i++) want_two += (double)x[i] * x[i];
        std::vector<float> scratch2(gl_cuda_sum_scratch(n) + gl_cuda_sum_scratch(n / 2) + 4);
        gl_cuda_sum_squares(2, bufs, lens, scratch2.data(), &got);
        cr_assert(std::fabs(got - want_two) < 1e-5 * want_two + 1e-6, "n %zu: %g vs %g", n, got, want_two);
        float half = 0.5f;
        std::vector<float> y(x);
        gl_cuda_scale(n, &half, y.data());
        for (size_t i = 0; i < n; i++) cr_assert(y[i] == 0.5f * x[i]);
    }
}

Test(cuda_emu, layernorm_forward_and_backward) {
    const size_t rows = 13, cols = 100;
    auto x = randn(rows * cols, 5, 2.0f), w = randn(cols, 6), b = randn(cols, 7), dy = randn(rows * cols, 8);
    std::vector<float> y(rows * cols), y_cpu(rows * cols), mean(rows), rstd(rows), mean_cpu(rows), rstd_cpu(rows);
    gl_cuda_layernorm_fwd(rows, cols, x.data(), w.data(), b.data(), 1e-5f, y.data(), mean.data(), rstd.data());
    gl_kern_for(GL_ISA_SCALAR)->layernorm_rows(rows, cols, x.data(), w.data(), b.data(), 1e-5f, y_cpu.data(),
                                               mean_cpu.data(), rstd_cpu.data());
    expect_close("layernorm y", y.data(), y_cpu.data(), rows * cols, 1e-5f, 1e-5f);
    expect_close("layernorm mean", mean.data(), mean_cpu.data(), rows, 1e-6f, 1e-5f);
    expect_close("layernorm rstd", rstd.data(), rstd_cpu.data(), rows, 1e-6f, 1e-5f);

    /* the backward against the op's backward on the CPU (core/ops_nn.c) */
    std::vector<float> dx(rows * cols, 0.0f), dw(cols, 0.0f), db(cols, 0.0f), rdx(rows * cols), rdw(cols), rdb(cols);
    ref_layernorm_grads((int)rows, (int)cols, x.data(), w.data(), b.data(), dy.data(), rdx.data(), rdw.data(), rdb.data());
    gl_cuda_layernorm_bwd(rows, cols, x.data(), w.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dw.data(),
                          db.data());
    expect_close("layernorm dx", dx.data(), rdx.data(), rows * cols, 1e-4f, 1e-4f);
    expect_close("layernorm dw", dw.data(), rdw.data(), cols, 1e-4f, 1e-4f);
    expect_close("layernorm db", db.data(), rdb.data(), cols, 1e-4f, 1e-4f);
}

Test(cuda_emu, embedding_forward_and_backward_with_repeated_ids) {
    const size_t V = 11, C = 37, n = 9;
    int32_t ids[n] = {3, 0, 10, 3, 3, 7, 0, 1, 10};
    auto w = randn(V * C, 9), dout = randn(n * C, 10);
    std::vector<float> out(n * C), dw(V * C, 0.25f), want(V * C, 0.25f);
    gl_cuda_embedding_fwd(n, C, ids, w.data(), out.data());
    for (size_t i = 0; i < n; i++) cr_assert(memcmp(&out[i * C], &w[ids[i] * C], C * 4) == 0);
    gl_cuda_embedding_bwd(n, C, ids, dout.data(), dw.data());
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < C; j++) want[ids[i] * C + j] += dout[i * C + j];
    expect_close("embedding dweight", dw.data(), want.data(), V * C, 1e-6f, 1e-6f);
}

Test(cuda_emu, fused_cross_entropy_matches_the_cpu_op) {
    const size_t rows = 7, V = 300; /* V beyond one block's 256 threads */
    auto x = randn(rows * V, 11, 3.0f);
    int32_t targets[rows] = {0, 299, 5, -1, 77, 77, 256};
    std::vector<float> lse(rows), row_loss(rows), dx(rows * V, 0.0f);
    gl_cuda_cross_entropy_fwd(rows, V, x.data(), targets, -1, lse.data(), row_loss.data());
    double total = 0;
    for (float l : row_loss) total += l;
    std::vector<float> rdx(rows * V);
    float ref = ref_cross_entropy((int)rows, (int)V, x.data(), targets, -1, rdx.data());
    cr_assert(std::fabs(total / 6 - ref) < 1e-5, "mean loss %g vs cpu %g", total / 6, (double)ref);
    cr_assert(row_loss[3] == 0.0f, "ignored row");
    gl_cuda_cross_entropy_bwd(rows, V, x.data(), targets, -1, lse.data(), 1.0f / 6, dx.data());
    expect_close("cross-entropy dx", dx.data(), rdx.data(), rows * V, 1e-6f, 1e-4f);
}

Test(cuda_emu, adamw_matches_the_cpu_kernel_bitwise) {
    const size_t n = 777;
    auto w = randn(n, 12), g = randn(n, 13), m = randn(n, 14, 0.1f), v = randn(n, 15, 0.1f);
    for (auto &x : v) x = std::fabs(x);
    std::vector<float> w2(w), m2(m), v2(v);
    gl_cuda_adam_update(n, w.data(), g.data(), m.data(), v.data(), 1e-3f, 0.9f, 0.99f, 1e-8f, 0.0f, 0.1f, 0.19f, 0.0199f);
    gl_kern_for(GL_ISA_SCALAR)->adam_update(n, w2.data(), g.data(), m2.data(), v2.data(), 1e-3f, 0.9f, 0.99f, 1e-8f,
                                            0.0f, 0.1f, 0.19f, 0.0199f);
    expect_close("adamw w", w.data(), w2.data(), n, 0, 1e-6f);
    expect_close("adamw m", m.data(), m2.data(), n, 0, 1e-6f);
    expect_close("adamw v", v.data(), v2.data(), n, 0, 1e-6f);
}

/* both kernels against the CPU op, causal and not, with T across several flash tiles and an odd head size */
Test(cuda_emu, attention_naive_and_flash_match_the_cpu_op) {
    struct { int B, T, C, H, causal; } cases[] = {{2, 5, 16, 2, 1}, {1, 70, 24, 2, 1}, {1, 37, 12, 3, 0}, {1, 33, 128, 1, 1}};
    for (auto &c : cases) {
        size_t nq = (size_t)c.B * c.T * 3 * c.C, no = (size_t)c.B * c.T * c.C, np = (size_t)c.B * c.H * c.T * c.T;
        auto qkv = randn(nq, 20 + c.T), dout = randn(no, 30 + c.T);
        std::vector<float> out_ref(no), dqkv_ref(nq);
        ref_attention(c.B, c.T, c.C, c.H, c.causal, qkv.data(), dout.data(), out_ref.data(), dqkv_ref.data());
        char what[96];
        /* naive */
        std::vector<float> out(no), P(np), dS(np), dqkv(nq, 0.0f);
        gl_cuda_attention_naive_fwd(c.B, c.T, c.C, c.H, c.causal, qkv.data(), out.data(), P.data());
        snprintf(what, sizeof what, "naive out T=%d C=%d H=%d causal=%d", c.T, c.C, c.H, c.causal);
        expect_close(what, out.data(), out_ref.data(), no, 1e-5f, 1e-4f);
        gl_cuda_attention_naive_bwd(c.B, c.T, c.C, c.H, c.causal, qkv.data(), P.data(), dout.data(), dS.data(), dqkv.data());
        snprintf(what, sizeof what, "naive dqkv T=%d C=%d H=%d causal=%d", c.T, c.C, c.H, c.causal);
        expect_close(what, dqkv.data(), dqkv_ref.data(), nq, 1e-4f, 1e-3f);
        /* flash */
        std::vector<float> fout(no), lse((size_t)c.B * c.H * c.T), D((size_t)c.B * c.H * c.T), fdqkv(nq, 0.0f);
        gl_cuda_attention_flash_fwd(c.B, c.T, c.C, c.H, c.causal, qkv.data(), fout.data(), lse.data());
        snprintf(what, sizeof what, "flash out T=%d C=%d H=%d causal=%d", c.T, c.C, c.H, c.causal);
        expect_close(what, fout.data(), out_ref.data(), no, 1e-5f, 1e-4f);
        gl_cuda_attention_flash_bwd(c.B, c.T, c.C, c.H, c.causal, qkv.data(), fout.data(), lse.data(), dout.data(),
                                    D.data(), fdqkv.data());
        snprintf(what, sizeof what, "flash dqkv T=%d C=%d H=%d causal=%d", c.T, c.C, c.H, c.causal);
        expect_close(what, fdqkv.data(), dqkv_ref.data(), nq, 1e-4f, 1e-3f);
    }
}

Test(cuda_emu, gemm_follows_the_cpu_contract) {
    const int M = 19, N = 23, K = 31;
    auto a = randn((size_t)M * K, 40), b = randn((size_t)K * N, 41), c0 = randn((size_t)M * N, 42);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            std::vector<float> c(c0), want(c0);
            gl_cuda_gemm(ta, tb, M, N, K, 0.5f, a.data(), ta ? M : K, b.data(), tb ? K : N, 2.0f, c.data(), N);
            gl_gemm_ref(ta, tb, M, N, K, 0.5f, a.data(), ta ? M : K, b.data(), tb ? K : N, 2.0f, want.data(), N);
            expect_close("gemm", c.data(), want.data(), (size_t)M * N, 1e-4f, 1e-5f);
        }
}

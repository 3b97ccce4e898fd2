/* The CUDA kernels (kernels/cuda/, the .cu files) against the CPU kernels and ops on the same inputs. Built two
 * ways from this one file: with the host emulation of the CUDA execution model (kernels/cuda/emu/cuda_emu.h:
 * blocks of real threads, __syncthreads barriers, warp shuffles, shared memory) in `make test`, and against the
 * nvcc-built kernels on a real GPU by `make CUDA=1 test-cuda`. Data goes through device buffers either way.
 * Tolerances: the kernels sum in other orders than the CPU (warp butterflies, blocks), so sums of n terms differ
 * by about n * 1e-7 relative. */
#include <criterion/criterion.h>

#include <cmath>
#include <csignal>
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

/* a device copy of a host vector; get() copies it back */
template <class T> struct dev {
    T *p;
    size_t n;
    explicit dev(const std::vector<T> &h) : p((T *)gl_cuda_alloc(h.size() * sizeof(T))), n(h.size()) {
        gl_cuda_upload(p, h.data(), n * sizeof(T));
    }
    explicit dev(size_t count, T fill = T()) : dev(std::vector<T>(count, fill)) {}
    dev(const dev &) = delete;
    ~dev() { gl_cuda_free(p); }
    std::vector<T> get() const {
        std::vector<T> h(n);
        gl_cuda_download(h.data(), p, n * sizeof(T));
        return h;
    }
};
typedef dev<float> dfloat;

static void expect_close(const char *what, const float *got, const float *want, size_t n, float atol, float rtol) {
    for (size_t i = 0; i < n; i++)
        cr_assert(std::fabs(got[i] - want[i]) <= atol + rtol * std::fabs(want[i]), "%s[%zu]: cuda %.7g, cpu %.7g", what,
                  i, (double)got[i], (double)want[i]);
}

Test(cuda_emu, elementwise_copy_and_gelu) {
    const size_t n = 1000; /* not a multiple of the block size */
    auto a = randn(n, 1, 2.0f), b = randn(n, 2), dy = randn(n, 3);
    dfloat da(a), db(b), ddy(dy), out(n), dx(n, 0.5f);
    gl_cuda_add(n, da.p, db.p, out.p);
    auto o = out.get();
    for (size_t i = 0; i < n; i++) cr_assert(o[i] == a[i] + b[i]);
    gl_cuda_axpy(n, -0.5f, da.p, db.p);
    auto acc = db.get();
    for (size_t i = 0; i < n; i++) cr_assert(acc[i] == b[i] + -0.5f * a[i]);
    gl_cuda_mul(n, da.p, ddy.p, out.p);
    o = out.get();
    for (size_t i = 0; i < n; i++) cr_assert(o[i] == a[i] * dy[i]);
    gl_cuda_mul_acc(n, da.p, ddy.p, out.p);
    o = out.get();
    for (size_t i = 0; i < n; i++) cr_assert(o[i] == a[i] * dy[i] + a[i] * dy[i]);
    gl_cuda_copy(out.p, da.p, n * sizeof(float));
    cr_assert(out.get() == a, "device-to-device copy");
    const gl_kernels *ref = gl_kern_for(GL_ISA_SCALAR);
    std::vector<float> y_cpu(n), dx_cpu(n, 0.5f);
    gl_cuda_gelu_fwd(n, da.p, out.p);
    ref->gelu_fwd(n, a.data(), y_cpu.data());
    expect_close("gelu", out.get().data(), y_cpu.data(), n, 1e-6f, 1e-6f);
    gl_cuda_gelu_bwd(n, da.p, ddy.p, dx.p);
    ref->gelu_bwd(n, a.data(), dy.data(), dx_cpu.data());
    expect_close("gelu backward", dx.get().data(), dx_cpu.data(), n, 1e-6f, 1e-6f);
}

Test(cuda_emu, sums_in_a_fixed_order) {
    for (size_t n : {size_t(1), size_t(255), size_t(4096), size_t(10001)}) {
        auto x = randn(n, 4 + n);
        dfloat dx(x), scratch(gl_cuda_sum_scratch(n) + gl_cuda_sum_scratch(n / 2) + 4), out(1);
        double want = 0, want_two = 0;
        for (float v : x) want += v, want_two += (double)v * v;
        for (size_t i = 0; i < n / 2; i++) want_two += (double)x[i] * x[i];
        gl_cuda_sum(n, dx.p, scratch.p, out.p);
        float got = out.get()[0];
        cr_assert(std::fabs(got - want) < 1e-5 * (1 + std::sqrt((double)n)), "n %zu: %g vs %g", n, got, want);
        gl_cuda_sum(n, dx.p, scratch.p, out.p);
        cr_assert(out.get()[0] == got, "same inputs, same bits");
        const float *bufs[2] = {dx.p, dx.p};
        size_t lens[2] = {n, n / 2};
        gl_cuda_sum_squares(2, bufs, lens, scratch.p, out.p);
        got = out.get()[0];
        cr_assert(std::fabs(got - want_two) < 1e-5 * want_two + 1e-6, "n %zu: %g vs %g", n, got, want_two);
        dfloat half(1, 0.5f);
        gl_cuda_scale(n, half.p, dx.p);
        auto y = dx.get();
        for (size_t i = 0; i < n; i++) cr_assert(y[i] == 0.5f * x[i]);
    }
}

Test(cuda_emu, layernorm_forward_and_backward) {
    const size_t rows = 13, cols = 100;
    auto x = randn(rows * cols, 5, 2.0f), w = randn(cols, 6), b = randn(cols, 7), dy = randn(rows * cols, 8);
    dfloat dx_(x), dw_(w), db_(b), ddy(dy), y(rows * cols), mean(rows), rstd(rows);
    std::vector<float> y_cpu(rows * cols), mean_cpu(rows), rstd_cpu(rows);
    gl_cuda_layernorm_fwd(rows, cols, dx_.p, dw_.p, db_.p, 1e-5f, y.p, mean.p, rstd.p);
    gl_kern_for(GL_ISA_SCALAR)->layernorm_rows(rows, cols, x.data(), w.data(), b.data(), 1e-5f, y_cpu.data(),
                                               mean_cpu.data(), rstd_cpu.data());
    expect_close("layernorm y", y.get().data(), y_cpu.data(), rows * cols, 1e-5f, 1e-5f);
    expect_close("layernorm mean", mean.get().data(), mean_cpu.data(), rows, 1e-6f, 1e-5f);
    expect_close("layernorm rstd", rstd.get().data(), rstd_cpu.data(), rows, 1e-6f, 1e-5f);
    /* the backward against the op's backward on the CPU (core/ops_nn.c) */
    std::vector<float> rdx(rows * cols), rdw(cols), rdb(cols);
    ref_layernorm_grads((int)rows, (int)cols, x.data(), w.data(), b.data(), dy.data(), rdx.data(), rdw.data(), rdb.data());
    dfloat gx(rows * cols), gw(cols), gb(cols);
    gl_cuda_layernorm_bwd(rows, cols, dx_.p, dw_.p, mean.p, rstd.p, ddy.p, gx.p, gw.p, gb.p);
    expect_close("layernorm dx", gx.get().data(), rdx.data(), rows * cols, 1e-4f, 1e-4f);
    expect_close("layernorm dw", gw.get().data(), rdw.data(), cols, 1e-4f, 1e-4f);
    expect_close("layernorm db", gb.get().data(), rdb.data(), cols, 1e-4f, 1e-4f);
}

Test(cuda_emu, embedding_forward_and_backward_with_repeated_ids) {
    const size_t V = 11, C = 37, n = 9;
    std::vector<int32_t> ids = {3, 0, 10, 3, 3, 7, 0, 1, 10};
    auto w = randn(V * C, 9), dout = randn(n * C, 10);
    dev<int32_t> dids(ids);
    dfloat dw(w), ddout(dout), out(n * C), gw(V * C, 0.25f);
    gl_cuda_embedding_fwd(n, C, dids.p, dw.p, out.p);
    auto o = out.get();
    for (size_t i = 0; i < n; i++) cr_assert(memcmp(&o[i * C], &w[ids[i] * C], C * 4) == 0);
    gl_cuda_embedding_bwd(n, C, dids.p, ddout.p, gw.p);
    std::vector<float> want(V * C, 0.25f);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < C; j++) want[ids[i] * C + j] += dout[i * C + j];
    expect_close("embedding dweight", gw.get().data(), want.data(), V * C, 1e-6f, 1e-6f);
}

Test(cuda_emu, fused_cross_entropy_matches_the_cpu_op) {
    const size_t rows = 7, V = 300; /* V beyond one block's 256 threads */
    auto x = randn(rows * V, 11, 3.0f);
    std::vector<int32_t> targets = {0, 299, 5, -1, 77, 77, 256};
    dfloat dx_(x), lse(rows), row_loss(rows), g(rows * V);
    dev<int32_t> dt(targets);
    gl_cuda_cross_entropy_fwd(rows, V, dx_.p, dt.p, -1, lse.p, row_loss.p);
    auto rl = row_loss.get();
    double total = 0;
    for (float l : rl) total += l;
    std::vector<float> rdx(rows * V);
    float ref = ref_cross_entropy((int)rows, (int)V, x.data(), targets.data(), -1, rdx.data());
    cr_assert(std::fabs(total / 6 - ref) < 1e-5, "mean loss %g vs cpu %g", total / 6, (double)ref);
    cr_assert(rl[3] == 0.0f, "ignored row");
    gl_cuda_cross_entropy_bwd(rows, V, dx_.p, dt.p, -1, lse.p, 1.0f / 6, g.p);
    expect_close("cross-entropy dx", g.get().data(), rdx.data(), rows * V, 1e-6f, 1e-4f);
}

Test(cuda_emu, adamw_matches_the_cpu_kernel) {
    const size_t n = 777;
    auto w = randn(n, 12), g = randn(n, 13), m = randn(n, 14, 0.1f), v = randn(n, 15, 0.1f);
    for (auto &x : v) x = std::fabs(x);
    dfloat dw(w), dg(g), dm(m), dv(v);
    gl_cuda_adam_update(n, dw.p, dg.p, dm.p, dv.p, 1e-3f, 0.9f, 0.99f, 1e-8f, 0.0f, 0.1f, 0.19f, 0.0199f);
    gl_kern_for(GL_ISA_SCALAR)->adam_update(n, w.data(), g.data(), m.data(), v.data(), 1e-3f, 0.9f, 0.99f, 1e-8f,
                                            0.0f, 0.1f, 0.19f, 0.0199f);
    /* nvcc contracts b1 m + (1 - b1) g into an FMA, the scalar CPU build does not: where the two terms nearly cancel
     * the results differ by an ulp or two of the terms (about 1e-8 here; seen on an H200: m 0.003311042 vs 0.003311045),
     * a large share of a small result. The bound allows a few ulps of the terms; a wrong formula is off by far more. */
    expect_close("adamw w", dw.get().data(), w.data(), n, 0, 1e-6f);
    expect_close("adamw m", dm.get().data(), m.data(), n, 1e-7f, 1e-6f);
    expect_close("adamw v", dv.get().data(), v.data(), n, 1e-7f, 1e-6f);
}

/* both kernels against the CPU op, causal and not, with T across several flash tiles and the largest head size */
Test(cuda_emu, attention_naive_and_flash_match_the_cpu_op) {
    struct { int B, T, C, H, causal; } cases[] = {{2, 5, 16, 2, 1}, {1, 70, 24, 2, 1}, {1, 37, 12, 3, 0}, {1, 33, 128, 1, 1}};
    for (auto &c : cases) {
        size_t nq = (size_t)c.B * c.T * 3 * c.C, no = (size_t)c.B * c.T * c.C, np = (size_t)c.B * c.H * c.T * c.T;
        size_t nr = (size_t)c.B * c.H * c.T;
        auto qkv = randn(nq, 20 + c.T), dout = randn(no, 30 + c.T);
        std::vector<float> out_ref(no), dqkv_ref(nq);
        ref_attention(c.B, c.T, c.C, c.H, c.causal, qkv.data(), dout.data(), out_ref.data(), dqkv_ref.data());
        dfloat dq(qkv), ddout(dout), out(no), P(np), dS(np), g(nq), fout(no), lse(nr), D(nr), fg(nq);
        char what[96];
        gl_cuda_attention_naive_fwd(c.B, c.T, c.C, c.H, c.causal, dq.p, out.p, P.p);
        snprintf(what, sizeof what, "naive out T=%d C=%d H=%d causal=%d", c.T, c.C, c.H, c.causal);
        expect_close(what, out.get().data(), out_ref.data(), no, 1e-5f, 1e-4f);
        gl_cuda_attention_naive_bwd(c.B, c.T, c.C, c.H, c.causal, dq.p, P.p, ddout.p, dS.p, g.p);
        snprintf(what, sizeof what, "naive dqkv T=%d C=%d H=%d causal=%d", c.T, c.C, c.H, c.causal);
        expect_close(what, g.get().data(), dqkv_ref.data(), nq, 1e-4f, 1e-3f);
        gl_cuda_attention_flash_fwd(c.B, c.T, c.C, c.H, c.causal, dq.p, fout.p, lse.p);
        snprintf(what, sizeof what, "flash out T=%d C=%d H=%d causal=%d", c.T, c.C, c.H, c.causal);
        expect_close(what, fout.get().data(), out_ref.data(), no, 1e-5f, 1e-4f);
        gl_cuda_attention_flash_bwd(c.B, c.T, c.C, c.H, c.causal, dq.p, fout.p, lse.p, ddout.p, D.p, fg.p);
        snprintf(what, sizeof what, "flash dqkv T=%d C=%d H=%d causal=%d", c.T, c.C, c.H, c.causal);
        expect_close(what, fg.get().data(), dqkv_ref.data(), nq, 1e-4f, 1e-3f);
    }
}

Test(cuda_emu, bias_column_blocks_zero_and_clip_factor) {
    const size_t rows = 37, cols = 70; /* bias_grad: one thread per column, rows summed in order */
    auto y = randn(rows * cols, 21), b = randn(cols, 22), db0 = randn(cols, 23);
    dfloat dy(y), dbias(b), dgrad(db0);
    gl_cuda_add_bias(rows, cols, dbias.p, dy.p);
    auto got = dy.get();
    for (size_t i = 0; i < rows * cols; i++) cr_assert(got[i] == y[i] + b[i % cols], "add_bias[%zu]", i);
    gl_cuda_bias_grad(rows, cols, dy.p, dgrad.p);
    auto g = dgrad.get();
    for (size_t j = 0; j < cols; j++) {
        float s = 0.0f;
        for (size_t r = 0; r < rows; r++) s += got[r * cols + j];
        cr_assert(g[j] == db0[j] + s, "bias_grad[%zu]: %g vs %g", j, (double)g[j], (double)(db0[j] + s));
    }
    /* axpy_rows: columns 5..5+W of each row of a [rows, cols] matrix += 0.5 x [rows, W] */
    const size_t W = 11;
    auto x = randn(rows * W, 24);
    dfloat dx(x);
    gl_cuda_axpy_rows(rows, W, 0.5f, dx.p, W, dy.p + 5, cols);
    auto after = dy.get();
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++) {
            float want = got[r * cols + j] + (j >= 5 && j < 5 + W ? 0.5f * x[r * W + j - 5] : 0.0f);
            cr_assert(after[r * cols + j] == want, "axpy_rows[%zu, %zu]", r, j);
        }
    gl_cuda_zero(dy.p, rows * cols * sizeof(float));
    for (float v : dy.get()) cr_assert(v == 0.0f);
    /* clip factor: gl_clip_grad_norm's rule from a device sum of squares */
    for (float ss : {100.0f, 0.25f}) {
        dfloat dss(std::vector<float>{ss}), factor(1);
        gl_cuda_clip_factor(dss.p, 1.0f, factor.p);
        float want = ss > 1.0f ? 1.0f / (std::sqrt(ss) + 1e-6f) : 1.0f;
        cr_assert(std::fabs(factor.get()[0] - want) < 1e-7f, "clip factor for %g: %g, want %g", (double)ss,
                  (double)factor.get()[0], (double)want);
    }
}

/* the decode step against gl_attention_step, position by position over a growing cache (2 heads of 16) */
Test(cuda_emu, attention_decode_step_matches_the_cpu_op) {
    const int C = 32, H = 2, rows = 40;
    std::vector<float> kc((size_t)rows * C), vc((size_t)rows * C), out_cpu(C);
    dfloat dk((size_t)rows * C), dv((size_t)rows * C), out((size_t)C), scores((size_t)H * rows);
    for (int pos = 0; pos < rows; pos++) {
        auto qkv = randn(3 * (size_t)C, 100 + pos);
        dfloat dq(qkv);
        gl_cuda_attention_step(C, H, pos, dq.p, dk.p, dv.p, scores.p, out.p);
        ref_attention_step(C, H, pos, qkv.data(), kc.data(), vc.data(), out_cpu.data());
        expect_close("decode step", out.get().data(), out_cpu.data(), (size_t)C, 1e-5f, 1e-5f);
    }
    expect_close("k cache", dk.get().data(), kc.data(), kc.size(), 0.0f, 0.0f);
    expect_close("v cache", dv.get().data(), vc.data(), vc.size(), 0.0f, 0.0f);
}

/* the device draw against gl_sample_token on the same uniform: greedy and temperature, V below and above the
 * block's 256 threads */
Test(cuda_emu, sampling_on_the_device_picks_the_cpu_token) {
    for (int V : {50, 257, 5000})
        for (float temperature : {0.0f, 0.7f, 1.3f}) {
            auto logits = randn((size_t)V, (uint64_t)V + 7, 3.0f);
            if (V == 257) logits[100] = logits[200] = 20.0f; /* a tie for the maximum: the lower id wins */
            dfloat dl(logits);
            dev<int32_t> tok((size_t)1);
            gl_rng rng;
            gl_rng_seed(&rng, 3);
            for (int draw = 0; draw < 200; draw++) {
                gl_rng before = rng;
                double u = temperature > 0.0f ? (double)gl_rng_uniform(&before) : 0.0;
                int want = ref_sample_token(logits.data(), V, temperature, &rng);
                gl_cuda_sample(V, dl.p, temperature, u, tok.p);
                cr_assert(tok.get()[0] == want, "V %d, T %g, draw %d: cuda %d, cpu %d", V, (double)temperature, draw,
                          tok.get()[0], want);
            }
        }
}

Test(cuda_emu, gemm_follows_the_cpu_contract) {
    const int M = 19, N = 23, K = 31;
    auto a = randn((size_t)M * K, 40), b = randn((size_t)K * N, 41), c0 = randn((size_t)M * N, 42);
    dfloat da(a), db(b);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            std::vector<float> want(c0);
            dfloat c(c0);
            gl_cuda_gemm(ta, tb, M, N, K, 0.5f, da.p, ta ? M : K, db.p, tb ? K : N, 2.0f, c.p, N);
            gl_gemm_ref(ta, tb, M, N, K, 0.5f, a.data(), ta ? M : K, b.data(), tb ? K : N, 2.0f, want.data(), N);
            expect_close("gemm", c.get().data(), want.data(), (size_t)M * N, 1e-4f, 1e-5f);
        }
}

/* the whole training step through the op layer: the same gpt_loss / backward / clipping / AdamW code with the
 * parameters on the CUDA device against the CPU, 5 steps from the same weights on the same batch (2 x 12 tokens;
 * 2 x 40 with flash attention: two 32-row tiles) */
static void expect_same_training(int bias, int flash, float dropout, int lora = 0) {
    enum { STEPS = 5 };
    float cpu[STEPS], gpu[STEPS], diff;
    ref_gpt_steps(bias, flash, dropout, lora, STEPS, cpu, gpu, &diff);
    for (int s = 0; s < STEPS; s++)
        cr_assert(std::fabs(cpu[s] - gpu[s]) < 1e-4f * std::fabs(cpu[s]),
                  "bias %d flash %d dropout %g step %d: cpu loss %.6f, cuda %.6f", bias, flash, (double)dropout, s,
                  (double)cpu[s], (double)gpu[s]);
    cr_assert(cpu[STEPS - 1] < cpu[0], "the loss falls over the steps (%.4f -> %.4f)", (double)cpu[0],
              (double)cpu[STEPS - 1]);
    /* AdamW moves every weight by about lr (1e-2) per step whatever its gradient's size, so for weights with
     * near-zero gradients the rounding of other summation orders can turn the step: allow a tenth of one step */
    cr_assert(diff < 1e-3f, "bias %d flash %d: weights differ by %g after %d steps", bias, flash, (double)diff, STEPS);
}

Test(cuda_emu, gpt_training_steps_match_the_cpu_model) {
    expect_same_training(0, 0, 0.0f);
    expect_same_training(1, 0, 0.0f);
}

Test(cuda_emu, gpt_training_with_flash_attention_and_dropout_matches_the_cpu) {
    expect_same_training(1, 1, 0.0f);
    expect_same_training(0, 0, 0.2f); /* the device uses the CPU's dropout masks */
    expect_same_training(1, 1, 0.2f);
}

/* LoRA on the device: the base frozen (no gradient buffers), gradients into the adapters' column blocks */
Test(cuda_emu, lora_training_matches_the_cpu) { expect_same_training(1, 0, 0.0f, 1); }

Test(cuda_emu, kv_cache_decoding_matches_the_cpu) {
    enum { N = 20 };
    int32_t cpu[4 * N], gpu[4 * N];
    float diff = ref_gpt_cached_logits(N, cpu, gpu);
    cr_assert(diff < 1e-4f, "logits through the KV cache differ by %g", (double)diff);
    static const char *const run[4] = {"greedy, no cache", "greedy, cache", "T 0.8, no cache", "T 0.8, cache"};
    for (int i = 0; i < 4 * N; i++)
        cr_assert(cpu[i] == gpu[i], "token %d (%s): cpu %d, cuda %d", i % N, run[i / N], cpu[i], gpu[i]);
}

/* a GGUF Llama on the device: RMSNorm, RoPE, SwiGLU, grouped-query attention over the device cache (prompt and
 * single steps), the dequantized weights through cuBLAS's GEMM */
Test(cuda_emu, llama_from_gguf_matches_the_cpu) {
    enum { N = 12 };
    int32_t cpu[N], gpu[N];
    float diff = ref_llama_logits(N, cpu, gpu);
    cr_log_info("llama on the device: logits within %g of the cpu's", (double)diff);
    cr_assert(diff < 2e-4f, "logits differ by %g", (double)diff);
    for (int i = 0; i < N; i++) cr_assert(cpu[i] == gpu[i], "greedy token %d: cpu %d, cuda %d", i, cpu[i], gpu[i]);
}

/* continuous batching (serve's decode step) on the device: per-sequence rope and attention, rows concatenated */
Test(cuda_emu, llama_batch_decoding_matches_the_cpu) {
    float diff = ref_llama_batch_logits();
    cr_log_info("llama batch on the device: logits within %g of the cpu's", (double)diff);
    cr_assert(diff < 2e-4f, "batched logits differ by %g", (double)diff);
}

Test(cuda_emu, an_op_without_a_cuda_kernel_stops_with_a_message, .exit_code = 1) { ref_op_without_cuda_path(); }
Test(cuda_emu, host_access_to_a_device_tensor_stops_with_a_message, .exit_code = 1) {
    ref_host_access_to_a_device_tensor();
}

#ifdef GL_CUDA_EMU
/* ---- the emulation harness itself (only in the emulated build) ---- */
#include "emu/cuda_emu.h"

/* thread 0 publishes v through shared memory; the others copy what they see, after a barrier or not */
__global__ void publish_kernel(float v, bool barrier, float *seen) {
    __shared__ float value;
    if (threadIdx.x == 0) value = v;
    if (barrier) __syncthreads();
    seen[threadIdx.x] = value;
}

Test(cuda_emu, harness_runs_readers_before_a_low_writer_when_the_barrier_is_missing) {
    std::vector<float> seen(64);
    GL_LAUNCH(publish_kernel, 1, 64, 0, 1.0f, true, seen.data());
    for (float x : seen) cr_assert(x == 1.0f, "with the barrier every thread sees the value");
    GL_LAUNCH(publish_kernel, 1, 64, 0, 2.0f, false, seen.data());
    cr_assert(seen[0] == 2.0f);
    for (int t = 1; t < 64; t++) /* descending order: they ran before thread 0 wrote, on every run */
        cr_assert(seen[t] == 1.0f, "without the barrier thread %d read %g, not the stale 1", t, (double)seen[t]);
}

/* half a warp at __syncthreads, the other half at a warp exchange: no barrier can ever complete */
__global__ void divergent_barrier_kernel(float *out) {
    if (threadIdx.x < 16) __syncthreads();
    else out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

Test(cuda_emu, harness_stops_on_a_divergent_barrier, .signal = SIGABRT) {
    std::vector<float> out(32);
    GL_LAUNCH(divergent_barrier_kernel, 1, 32, 0, out.data());
}
#endif

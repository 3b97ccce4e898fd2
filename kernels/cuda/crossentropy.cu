/* Fused softmax + cross-entropy over rows of V logits (V is 65 characters or 50,257 GPT-2 tokens): one block per
 * row. The forward finds the row's maximum and the sum of exponentials with block reductions (fixed order) and
 * writes the log-sum-exp, which the backward reuses to form the softmax without storing it. */
#include "cuda_common.h"

static const unsigned THREADS = 256;

__global__ void cross_entropy_fwd_kernel(size_t V, const float *x, const int32_t *targets, int ignore, float *lse,
                                         float *row_loss) {
    size_t r = blockIdx.x;
    const float *xr = x + r * V;
    float m = -INFINITY;
    for (size_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = gl_block_reduce<true>(m);
    float s = 0.0f;
    for (size_t j = threadIdx.x; j < V; j += blockDim.x) s += expf(xr[j] - m);
    s = gl_block_reduce<false>(s);
    if (threadIdx.x == 0) {
        float l = m + logf(s);
        lse[r] = l;
        row_loss[r] = targets[r] == ignore ? 0.0f : l - xr[targets[r]];
    }
}

__global__ void cross_entropy_bwd_kernel(size_t V, const float *x, const int32_t *targets, int ignore, const float *lse,
                                         float scale, float *dx) {
    size_t r = blockIdx.x;
    if (targets[r] == ignore) return;
    const float *xr = x + r * V;
    float *dr = dx + r * V, l = lse[r];
    for (size_t j = threadIdx.x; j < V; j += blockDim.x)
        dr[j] += scale * (expf(xr[j] - l) - ((int32_t)j == targets[r] ? 1.0f : 0.0f));
}

extern "C" void gl_cuda_cross_entropy_fwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore,
                                          float *lse, float *row_loss) {
    if (!rows) return;
    GL_LAUNCH(cross_entropy_fwd_kernel, (unsigned)rows, THREADS, 0, V, x, targets, ignore, lse, row_loss);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_cross_entropy_bwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore,
                                          const float *lse, float scale, float *dx) {
    if (!rows) return;
    GL_LAUNCH(cross_entropy_bwd_kernel, (unsigned)rows, THREADS, 0, V, x, targets, ignore, lse, scale, dx);
    GL_CUDA_LAUNCHED();
}

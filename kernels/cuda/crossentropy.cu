/* Fused softmax + cross-entropy over rows of V logits (V is 65 characters or 50,257 GPT-2 tokens): one block per
 * row. The forward finds the row's maximum and the sum of exponentials with block reductions (fixed order) and
 * writes the log-sum-exp, which the backward reuses to form the softmax without storing it. */
#include "cuda_common.h"

static const unsigned THREADS = 256;

/* reduce v over the block with op (sum or max); every thread gets the result */
template <bool MAX> __device__ float block_reduce_all(float v) {
    __shared__ float part[32];
    __shared__ float result;
    unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
    v = MAX ? gl_warp_max(v) : gl_warp_sum(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float u = lane < warps ? part[lane] : (MAX ? -INFINITY : 0.0f);
        u = MAX ? gl_warp_max(u) : gl_warp_sum(u);
        if (lane == 0) result = u;
    }
    __syncthreads();
    float out = result;
    __syncthreads(); /* part and result may be reused by the next call */
    return out;
}

__global__ void cross_entropy_fwd_kernel(size_t V, const float *x, const int32_t *targets, int ignore, float *lse,
                                         float *row_loss) {
    size_t r = blockIdx.x;
    const float *xr = x + r * V;
    float m = -INFINITY;
    for (size_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_reduce_all<true>(m);
    float s = 0.0f;
    for (size_t j = threadIdx.x; j < V; j += blockDim.x) s += expf(xr[j] - m);
    s = block_reduce_all<false>(s);
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

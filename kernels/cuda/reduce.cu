/* Sums in a fixed order (no atomics): each block reduces a slice to one partial, then one block adds the partials.
 * The slices depend only on n, so a result is the same on every run. */
#include "cuda_common.h"

static const unsigned THREADS = 256;
static const size_t PER_BLOCK = 4096; /* elements per block in the first stage */

__global__ void partial_sums(size_t n, const float *x, int square, float *partial) {
    size_t begin = blockIdx.x * PER_BLOCK, end = begin + PER_BLOCK < n ? begin + PER_BLOCK : n;
    float s = 0.0f;
    for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += square ? x[i] * x[i] : x[i];
    s = gl_block_reduce<false>(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void final_sum(size_t n, const float *partial, float *out) {
    float s = 0.0f;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
    s = gl_block_reduce<false>(s);
    if (threadIdx.x == 0) *out = s;
}

extern "C" size_t gl_cuda_sum_scratch(size_t n) { return n ? (n + PER_BLOCK - 1) / PER_BLOCK : 1; }

extern "C" void gl_cuda_sum(size_t n, const float *x, float *scratch, float *out) {
    size_t blocks = gl_cuda_sum_scratch(n);
    if (!n) {
        GL_CUDA_CHECK(cudaMemset(out, 0, sizeof(float)));
        return;
    }
    GL_LAUNCH(partial_sums, (unsigned)blocks, THREADS, 0, n, x, 0, scratch);
    GL_CUDA_LAUNCHED();
    GL_LAUNCH(final_sum, 1, THREADS, 0, blocks, (const float *)scratch, out);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_sum_squares(int n_bufs, const float *const *bufs, const size_t *lens, float *scratch,
                                    float *out) {
    size_t at = 0;
    for (int k = 0; k < n_bufs; k++) {
        if (!lens[k]) continue;
        size_t blocks = gl_cuda_sum_scratch(lens[k]);
        GL_LAUNCH(partial_sums, (unsigned)blocks, THREADS, 0, lens[k], bufs[k], 1, scratch + at);
        GL_CUDA_LAUNCHED();
        at += blocks;
    }
    if (!at) {
        GL_CUDA_CHECK(cudaMemset(out, 0, sizeof(float)));
        return;
    }
    GL_LAUNCH(final_sum, 1, THREADS, 0, at, (const float *)scratch, out);
    GL_CUDA_LAUNCHED();
}

__global__ void scale_kernel(size_t n, const float *factor, float *x) {
    float f = *factor;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] *= f;
}

extern "C" void gl_cuda_scale(size_t n, const float *factor, float *x) {
    unsigned blocks = gl_blocks((long long)n, THREADS);
    GL_LAUNCH(scale_kernel, blocks < 1 ? 1 : blocks > 4096 ? 4096 : blocks, THREADS, 0, n, factor, x);
    GL_CUDA_LAUNCHED();
}

/* the gradient clip's factor from the sum of squares, on the device: no copy back to the host */
__global__ void clip_factor_kernel(const float *sum_squares, float max_norm, float *factor) {
    float norm = sqrtf(*sum_squares);
    *factor = max_norm > 0.0f && norm > max_norm ? max_norm / (norm + 1e-6f) : 1.0f;
}

extern "C" void gl_cuda_clip_factor(const float *sum_squares, float max_norm, float *factor) {
    GL_LAUNCH(clip_factor_kernel, 1, 1, 0, sum_squares, max_norm, factor);
    GL_CUDA_LAUNCHED();
}

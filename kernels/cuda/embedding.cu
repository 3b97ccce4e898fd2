/* Embedding lookups: one block per looked-up row, its threads across the columns. The backward adds rows of the
 * output gradient into the weight gradient with atomicAdd, because several positions may hold the same id; the
 * order of those additions is not fixed, so this is the one kernel whose GPU result may differ in the last bits
 * from run to run. */
#include "cuda_common.h"

__global__ void embedding_fwd_kernel(size_t cols, const int32_t *ids, const float *weight, float *out) {
    const float *src = weight + (size_t)ids[blockIdx.x] * cols;
    for (size_t j = threadIdx.x; j < cols; j += blockDim.x) out[blockIdx.x * cols + j] = src[j];
}

__global__ void embedding_bwd_kernel(size_t cols, const int32_t *ids, const float *dout, float *dweight) {
    float *dst = dweight + (size_t)ids[blockIdx.x] * cols;
    for (size_t j = threadIdx.x; j < cols; j += blockDim.x) atomicAdd(dst + j, dout[blockIdx.x * cols + j]);
}

extern "C" void gl_cuda_embedding_fwd(size_t n, size_t cols, const int32_t *ids, const float *weight, float *out) {
    if (!n) return;
    GL_LAUNCH(embedding_fwd_kernel, (unsigned)n, 128, 0, cols, ids, weight, out);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_embedding_bwd(size_t n, size_t cols, const int32_t *ids, const float *dout, float *dweight) {
    if (!n) return;
    GL_LAUNCH(embedding_bwd_kernel, (unsigned)n, 128, 0, cols, ids, dout, dweight);
    GL_CUDA_LAUNCHED();
}

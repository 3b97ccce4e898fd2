/* What every gradlab .cu file shares: the runtime (real, or the host emulation of emu/cuda_emu.h when GL_CUDA_EMU
 * is defined), the launch macro, error checks, and warp/block reductions. */
#ifndef GRADLAB_CUDA_COMMON_H
#define GRADLAB_CUDA_COMMON_H

#ifdef GL_CUDA_EMU
#include "emu/cuda_emu.h"
#else
#include <cuda_runtime.h>
#define GL_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#define GL_LAUNCH(kernel, grid, block, shared_bytes, ...) kernel<<<(grid), (block), (shared_bytes)>>>(__VA_ARGS__)
#endif

#include <stdio.h>
#include <stdlib.h>

#include "kernels_cuda.h"

/* a failed runtime call or launch is fatal: the message names the call and the file and line */
#define GL_CUDA_CHECK(call)                                                                                   \
    do {                                                                                                      \
        cudaError_t gl_err_ = (call);                                                                         \
        if (gl_err_ != cudaSuccess) {                                                                         \
            fprintf(stderr, "gradlab cuda: %s failed at %s:%d: %s\n", #call, __FILE__, __LINE__,             \
                    cudaGetErrorString(gl_err_));                                                             \
            exit(1);                                                                                          \
        }                                                                                                     \
    } while (0)
#define GL_CUDA_LAUNCHED() GL_CUDA_CHECK(cudaGetLastError())

static inline unsigned gl_blocks(long long n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

/* sum of v over the 32 lanes of a warp, in every lane (butterfly: the same order in every lane) */
__device__ __forceinline__ float gl_warp_sum(float v) {
    for (int m = 16; m > 0; m /= 2) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}
__device__ __forceinline__ float gl_warp_max(float v) {
    for (int m = 16; m > 0; m /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, m));
    return v;
}

/* max (MAX) or sum of v over the whole block, returned to every thread: warp butterflies, then the first warp
 * over the warp results. Every thread of the block must call it (it has barriers). */
template <bool MAX> __device__ float gl_block_reduce(float v) {
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

#endif

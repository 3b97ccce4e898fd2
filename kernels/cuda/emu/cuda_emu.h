/* A small host emulation of the CUDA execution model, for testing gradlab's .cu kernels without a GPU (the idea of
 * nvcc's old device-emulation mode). The .cu files are compiled as host C++20 with GL_CUDA_EMU defined:
 *
 *   launch      GL_LAUNCH(kernel, grid, block, shared_bytes, args...) runs the grid's blocks one after another;
 *               each block's threads are real host threads (std::thread), so a missing barrier can show up as a
 *               wrong result - when the host's scheduling happens to expose it (this is not a race detector).
 *   indices     threadIdx / blockIdx are thread_local; blockDim / gridDim are the current launch's.
 *   __shared__  `static`: one copy shared by the block's threads (blocks never overlap, so one copy suffices);
 *               dynamic shared memory (GL_DYNAMIC_SHARED) is a per-launch buffer of the requested size.
 *   barriers    __syncthreads() is a std::barrier over the block's threads.
 *   warps       threads 32k .. 32k+31 of a block form a warp; __shfl_*_sync exchange values through a per-warp
 *               buffer between two warp barriers, so every lane of the warp must call them together (as the
 *               _sync variants demand on hardware). The mask argument is not checked.
 *   atomics     atomicAdd / atomicMax on host memory with compiler atomics.
 *   memory      cudaMalloc / cudaMemcpy / cudaMemset / cudaFree on host memory; streams and events do not exist.
 *
 * Limits: no warp-synchronous behaviour without __shfl/__syncthreads (threads really are independent); no
 * cooperative groups, textures, tensor cores or half types; block size up to 1024; speed is irrelevant (tests use
 * small grids). It exists only for tests: the library and the programs never include it.
 */
#ifndef GRADLAB_CUDA_EMU_H
#define GRADLAB_CUDA_EMU_H

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

namespace gl_emu {
struct block_state {
    std::barrier<> *block_barrier;
    std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
    std::vector<uint64_t> warp_exchange; /* 32 slots per warp */
    std::vector<unsigned char> dynamic_shared;
};
inline dim3 grid_dim, block_dim;
inline block_state *block;
inline thread_local dim3 thread_idx, block_idx;

inline unsigned linear_thread() { return thread_idx.x + block_dim.x * (thread_idx.y + block_dim.y * thread_idx.z); }

/* The block's threads are started once per launch and walk the grid's blocks in order together: a barrier after
 * each block keeps the blocks apart (the next one starts when every thread has finished this one), so `static`
 * shared memory is never used by two blocks at once. */
inline void launch(dim3 grid, dim3 blk, size_t shared_bytes, const std::function<void()> &body) {
    unsigned n = blk.x * blk.y * blk.z;
    if (n == 0 || n > 1024) std::abort();
    grid_dim = grid;
    block_dim = blk;
    std::barrier<> bar((std::ptrdiff_t)n), between((std::ptrdiff_t)n);
    block_state st;
    st.block_barrier = &bar;
    unsigned warps = (n + 31) / 32;
    for (unsigned w = 0; w < warps; w++)
        st.warp_barriers.emplace_back(new std::barrier<>((std::ptrdiff_t)(w + 1 < warps ? 32 : n - 32 * w)));
    st.warp_exchange.assign(32 * warps, 0);
    st.dynamic_shared.assign(shared_bytes + 16, 0);
    block = &st;
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (unsigned t = 0; t < n; t++)
        threads.emplace_back([&, t] {
            thread_idx = dim3(t % blk.x, (t / blk.x) % blk.y, t / (blk.x * blk.y));
            for (unsigned bz = 0; bz < grid.z; bz++)
                for (unsigned by = 0; by < grid.y; by++)
                    for (unsigned bx = 0; bx < grid.x; bx++) {
                        block_idx = dim3(bx, by, bz);
                        body();
                        between.arrive_and_wait();
                    }
        });
    for (auto &th : threads) th.join();
    block = nullptr;
}

template <class T> T shuffle(T v, int (*source)(int lane, int arg), int arg, int width) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    unsigned t = linear_thread(), warp = t / 32, lane = t % 32;
    unsigned in_warp = (unsigned)std::min<long>(32, (long)(block_dim.x * block_dim.y * block_dim.z) - 32L * warp);
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    block->warp_exchange[32 * warp + lane] = bits;
    block->warp_barriers[warp]->arrive_and_wait();
    int group = (int)lane / width * width, src = source((int)lane % width, arg);
    T out = v;
    if (src >= 0 && src < width && (unsigned)(group + src) < in_warp) std::memcpy(&out, &block->warp_exchange[32 * warp + group + src], sizeof out);
    block->warp_barriers[warp]->arrive_and_wait(); /* nobody overwrites a slot before every lane has read */
    return out;
}
inline int src_down(int lane, int d) { return lane + d; }
inline int src_up(int lane, int d) { return lane - d; }
inline int src_xor(int lane, int m) { return lane ^ m; }
inline int src_idx(int, int s) { return s; }
} // namespace gl_emu

#define threadIdx gl_emu::thread_idx
#define blockIdx gl_emu::block_idx
#define blockDim gl_emu::block_dim
#define gridDim gl_emu::grid_dim
#define warpSize 32

inline void __syncthreads() { gl_emu::block->block_barrier->arrive_and_wait(); }
template <class T> T __shfl_down_sync(unsigned, T v, int d, int w = 32) { return gl_emu::shuffle(v, gl_emu::src_down, d, w); }
template <class T> T __shfl_up_sync(unsigned, T v, int d, int w = 32) { return gl_emu::shuffle(v, gl_emu::src_up, d, w); }
template <class T> T __shfl_xor_sync(unsigned, T v, int m, int w = 32) { return gl_emu::shuffle(v, gl_emu::src_xor, m, w); }
template <class T> T __shfl_sync(unsigned, T v, int s, int w = 32) { return gl_emu::shuffle(v, gl_emu::src_idx, s, w); }

inline float atomicAdd(float *p, float v) {
    float expected, desired;
    __atomic_load(p, &expected, __ATOMIC_SEQ_CST);
    do desired = expected + v;
    while (!__atomic_compare_exchange(p, &expected, &desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return expected;
}
inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

/* ---- the runtime API on host memory ---- */
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
inline cudaError_t cudaMalloc(void **p, size_t n) { return (*p = std::malloc(n ? n : 1)) ? cudaSuccess : cudaErrorMemoryAllocation; }
inline cudaError_t cudaFree(void *p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemset(void *d, int v, size_t n) { std::memset(d, v, n); return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "out of memory"; }

#define GL_DYNAMIC_SHARED(type, name) type *name = reinterpret_cast<type *>(gl_emu::block->dynamic_shared.data())
#define GL_LAUNCH(kernel, grid, block, shared_bytes, ...) \
    gl_emu::launch((grid), (block), (shared_bytes), [&] { kernel(__VA_ARGS__); })

#endif

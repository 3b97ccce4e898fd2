/* A small host emulation of the CUDA execution model, for testing gradlab's .cu kernels without a GPU (the idea of
 * nvcc's old device-emulation mode). The .cu files are compiled as host C++20 with GL_CUDA_EMU defined:
 *
 *   launch      GL_LAUNCH(kernel, grid, block, shared_bytes, args...) runs the grid's blocks one after another.
 *               A block's threads are fibers (ucontext) on the calling thread: each runs until it finishes or
 *               waits at a barrier, then the next one runs. They run in DESCENDING thread order, so when a
 *               barrier is missing between a write by a low thread (thread 0, lane 0: the usual writer of a
 *               block's result) and reads by the others, the readers run first and see stale data - the same
 *               way on every run. The schedule is deterministic: a result never depends on the host's timing.
 *   indices     threadIdx / blockIdx are set before each fiber resumes; blockDim / gridDim are the launch's.
 *   __shared__  `static`: one copy shared by the block's threads (blocks never overlap, so one copy suffices);
 *               dynamic shared memory (GL_DYNAMIC_SHARED) is a per-launch buffer of the requested size.
 *   barriers    __syncthreads() parks the fiber until every unfinished thread of the block is parked there. A
 *               barrier that can never complete (some threads wait at __syncthreads while others wait at a
 *               warp exchange) stops the program with a message: divergent barriers are caught.
 *   warps       threads 32k .. 32k+31 of a block form a warp; __shfl_*_sync exchange values through a per-warp
 *               buffer between two warp barriers, so every lane of the warp must call them together (as the
 *               _sync variants demand on hardware). The mask argument is not checked.
 *   atomics     atomicAdd on host memory (fibers never interleave inside one, so plain arithmetic would do).
 *   memory      cudaMalloc / cudaMemcpy / cudaMemset / cudaFree on host memory; streams and events do not exist.
 *
 * Limits: no warp-synchronous behaviour without __shfl/__syncthreads (threads really are independent); no
 * cooperative groups, textures, tensor cores or half types; block size up to 1024; 256 KiB of stack per thread.
 * A missing barrier is caught only when the descending order exposes it (not a race detector). It exists only for
 * tests: the library and the programs never include it. Under AddressSanitizer the fiber switches are announced
 * to it (__sanitizer_start/finish_switch_fiber).
 */
#ifndef GRADLAB_CUDA_EMU_H
#define GRADLAB_CUDA_EMU_H

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <ucontext.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define GL_EMU_ASAN 1
#endif

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
enum fiber_state { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };
struct fiber {
    ucontext_t ctx;
    fiber_state state;
};
struct block_state {
    std::vector<uint64_t> warp_exchange; /* 32 slots per warp */
    std::vector<unsigned char> dynamic_shared;
};
constexpr size_t STACK_BYTES = 256 << 10;

inline dim3 grid_dim, block_dim, thread_idx, block_idx;
inline block_state *block;
inline std::vector<fiber> fibers;
inline std::vector<std::unique_ptr<char[]>> stacks; /* kept across launches: stacks are allocated once */
inline fiber *current;
inline unsigned current_index;
inline ucontext_t scheduler;
inline const std::function<void()> *body;
#ifdef GL_EMU_ASAN
inline const void *scheduler_stack;
inline size_t scheduler_stack_size;
#endif

inline unsigned linear_thread() { return thread_idx.x + block_dim.x * (thread_idx.y + block_dim.y * thread_idx.z); }

/* fiber -> scheduler: park with `state` (or finish with DONE) */
inline void park(fiber_state state) {
    current->state = state;
#ifdef GL_EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(state == DONE ? nullptr : &fake, scheduler_stack, scheduler_stack_size);
    swapcontext(&current->ctx, &scheduler);
    __sanitizer_finish_switch_fiber(fake, &scheduler_stack, &scheduler_stack_size);
#else
    swapcontext(&current->ctx, &scheduler);
#endif
}

inline void fiber_main() {
#ifdef GL_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &scheduler_stack, &scheduler_stack_size);
#endif
    (*body)();
    park(DONE); /* never resumed */
}

/* scheduler -> fiber t */
inline void resume(unsigned t) {
    current = &fibers[t];
    current_index = t;
    thread_idx = dim3(t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y));
#ifdef GL_EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, stacks[t].get(), STACK_BYTES);
    swapcontext(&scheduler, &current->ctx);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    swapcontext(&scheduler, &current->ctx);
#endif
}

/* One block: start every thread, then run the runnable ones in descending order until all are parked; release a
 * barrier whose every unfinished participant is parked at it; repeat until all are done. */
/* a fresh context on its own stack, starting at fiber_main (getcontext returns only once here: the context is
 * entered through makecontext's entry, never resumed at this point) */
__attribute__((noinline)) inline void prepare(fiber *f, char *stack) {
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = stack;
    f->ctx.uc_stack.ss_size = STACK_BYTES;
    f->ctx.uc_link = nullptr;
    makecontext(&f->ctx, fiber_main, 0);
    f->state = RUNNABLE;
}

inline void run_block(unsigned n) {
    for (unsigned t = 0; t < n; t++) prepare(&fibers[t], stacks[t].get());
    unsigned warps = (n + 31) / 32;
    for (;;) {
        for (unsigned t = n; t-- > 0;)
            if (fibers[t].state == RUNNABLE) resume(t);
        unsigned done = 0, at_block = 0;
        for (unsigned t = 0; t < n; t++) done += fibers[t].state == DONE, at_block += fibers[t].state == AT_BLOCK_BARRIER;
        if (done == n) return;
        bool released = false;
        if (at_block == n - done) {
            for (unsigned t = 0; t < n; t++)
                if (fibers[t].state == AT_BLOCK_BARRIER) fibers[t].state = RUNNABLE;
            released = true;
        }
        for (unsigned w = 0; w < warps && !released; w++) {
            unsigned lo = 32 * w, hi = lo + 32 < n ? lo + 32 : n, live = 0, waiting = 0;
            for (unsigned t = lo; t < hi; t++) live += fibers[t].state != DONE, waiting += fibers[t].state == AT_WARP_BARRIER;
            if (waiting && waiting == live) {
                for (unsigned t = lo; t < hi; t++)
                    if (fibers[t].state == AT_WARP_BARRIER) fibers[t].state = RUNNABLE;
                released = true;
            }
        }
        if (!released) {
            fprintf(stderr, "cuda_emu: block (%u, %u, %u): a barrier can never complete (%u threads at "
                            "__syncthreads, the others at a warp exchange): divergent barriers\n",
                    block_idx.x, block_idx.y, block_idx.z, at_block);
            std::abort();
        }
    }
}

inline void launch(dim3 grid, dim3 blk, size_t shared_bytes, const std::function<void()> &kernel_body) {
    unsigned n = blk.x * blk.y * blk.z;
    if (n == 0 || n > 1024) {
        fprintf(stderr, "cuda_emu: a block of %u threads (1 to 1024 allowed)\n", n);
        std::abort();
    }
    grid_dim = grid;
    block_dim = blk;
    block_state st;
    st.warp_exchange.assign(32 * ((n + 31) / 32), 0);
    st.dynamic_shared.assign(shared_bytes + 16, 0);
    block = &st;
    body = &kernel_body;
    if (fibers.size() < n) fibers.resize(n);
    while (stacks.size() < n) stacks.emplace_back(new char[STACK_BYTES]);
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                block_idx = dim3(bx, by, bz);
                run_block(n);
            }
    block = nullptr;
}

template <class T> T shuffle(T v, int (*source)(int lane, int arg), int arg, int width) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    unsigned t = linear_thread(), warp = t / 32, lane = t % 32;
    unsigned in_warp = (unsigned)std::min<long>(32, (long)(block_dim.x * block_dim.y * block_dim.z) - 32L * warp);
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    block->warp_exchange[32 * warp + lane] = bits;
    park(AT_WARP_BARRIER);
    int group = (int)lane / width * width, src = source((int)lane % width, arg);
    T out = v;
    if (src >= 0 && src < width && (unsigned)(group + src) < in_warp) std::memcpy(&out, &block->warp_exchange[32 * warp + group + src], sizeof out);
    park(AT_WARP_BARRIER); /* nobody overwrites a slot before every lane has read */
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

inline void __syncthreads() { gl_emu::park(gl_emu::AT_BLOCK_BARRIER); }
template <class T> T __shfl_down_sync(unsigned, T v, int d, int w = 32) { return gl_emu::shuffle(v, gl_emu::src_down, d, w); }
template <class T> T __shfl_up_sync(unsigned, T v, int d, int w = 32) { return gl_emu::shuffle(v, gl_emu::src_up, d, w); }
template <class T> T __shfl_xor_sync(unsigned, T v, int m, int w = 32) { return gl_emu::shuffle(v, gl_emu::src_xor, m, w); }
template <class T> T __shfl_sync(unsigned, T v, int s, int w = 32) { return gl_emu::shuffle(v, gl_emu::src_idx, s, w); }

inline float atomicAdd(float *p, float v) {
    float old = *p;
    *p = old + v;
    return old;
}
inline int atomicAdd(int *p, int v) {
    int old = *p;
    *p = old + v;
    return old;
}
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

/* Elementwise kernels: one thread per element, grid-stride loops so any n fits any grid. */
#include "cuda_common.h"

#define GELU_SCALE 0.7978845608028654f
#define GELU_CUBIC 0.044715f

static const unsigned THREADS = 256;

__global__ void add_kernel(size_t n, const float *a, const float *b, float *out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

__global__ void axpy_kernel(size_t n, float alpha, const float *x, float *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += alpha * x[i];
}

__global__ void mul_kernel(size_t n, const float *a, const float *b, float *out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] * b[i];
}

__global__ void mul_acc_kernel(size_t n, const float *a, const float *b, float *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += a[i] * b[i];
}

/* y[r, j] += alpha x[r, j] for j < width, rows with their own strides (column blocks: LoRA's updates) */
__global__ void axpy_rows_kernel(size_t rows, size_t width, float alpha, const float *x, size_t ldx, float *y,
                                 size_t ldy) {
    size_t n = rows * width;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i / width * ldy + i % width] += alpha * x[i / width * ldx + i % width];
}

/* y[r, j] = x[r, j]: a block of columns copied (slices and concatenations) */
__global__ void copy_rows_kernel(size_t rows, size_t width, const float *x, size_t ldx, float *y, size_t ldy) {
    size_t n = rows * width;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i / width * ldy + i % width] = x[i / width * ldx + i % width];
}

__global__ void gelu_fwd_kernel(size_t n, const float *x, float *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(GELU_SCALE * (v + GELU_CUBIC * v * v * v)));
    }
}

__global__ void gelu_bwd_kernel(size_t n, const float *x, const float *dy, float *dx) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i], t = tanhf(GELU_SCALE * (v + GELU_CUBIC * v * v * v));
        dx[i] += dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * v * v));
    }
}

/* enough blocks to fill a large GPU, never more than the data needs */
static unsigned grid_for(size_t n) {
    unsigned b = gl_blocks((long long)n, THREADS);
    return b < 1 ? 1 : b > 4096 ? 4096 : b;
}

extern "C" void gl_cuda_add(size_t n, const float *a, const float *b, float *out) {
    GL_LAUNCH(add_kernel, grid_for(n), THREADS, 0, n, a, b, out);
    GL_CUDA_LAUNCHED();
}
extern "C" void gl_cuda_axpy(size_t n, float alpha, const float *x, float *y) {
    GL_LAUNCH(axpy_kernel, grid_for(n), THREADS, 0, n, alpha, x, y);
    GL_CUDA_LAUNCHED();
}
extern "C" void gl_cuda_mul(size_t n, const float *a, const float *b, float *out) {
    GL_LAUNCH(mul_kernel, grid_for(n), THREADS, 0, n, a, b, out);
    GL_CUDA_LAUNCHED();
}
extern "C" void gl_cuda_mul_acc(size_t n, const float *a, const float *b, float *y) {
    GL_LAUNCH(mul_acc_kernel, grid_for(n), THREADS, 0, n, a, b, y);
    GL_CUDA_LAUNCHED();
}
extern "C" void gl_cuda_axpy_rows(size_t rows, size_t width, float alpha, const float *x, size_t ldx, float *y,
                                  size_t ldy) {
    GL_LAUNCH(axpy_rows_kernel, grid_for(rows * width), THREADS, 0, rows, width, alpha, x, ldx, y, ldy);
    GL_CUDA_LAUNCHED();
}
extern "C" void gl_cuda_copy_rows(size_t rows, size_t width, const float *x, size_t ldx, float *y, size_t ldy) {
    if (rows * width == 0) return;
    GL_LAUNCH(copy_rows_kernel, grid_for(rows * width), THREADS, 0, rows, width, x, ldx, y, ldy);
    GL_CUDA_LAUNCHED();
}
extern "C" void gl_cuda_gelu_fwd(size_t n, const float *x, float *y) {
    GL_LAUNCH(gelu_fwd_kernel, grid_for(n), THREADS, 0, n, x, y);
    GL_CUDA_LAUNCHED();
}
extern "C" void gl_cuda_gelu_bwd(size_t n, const float *x, const float *dy, float *dx) {
    GL_LAUNCH(gelu_bwd_kernel, grid_for(n), THREADS, 0, n, x, dy, dx);
    GL_CUDA_LAUNCHED();
}

/* ---- AdamW: one thread per weight ---- */
__global__ void adam_kernel(size_t n, float *w, const float *g, float *m, float *v, float lr, float beta1, float beta2,
                            float eps, float l2, float decoupled, float bc1, float bc2) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i] + l2 * w[i], wi = w[i] - lr * decoupled * w[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        w[i] = wi - lr * (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps);
    }
}

extern "C" void gl_cuda_adam_update(size_t n, float *w, const float *g, float *m, float *v, float lr, float beta1,
                                    float beta2, float eps, float l2, float decoupled, float bc1, float bc2) {
    GL_LAUNCH(adam_kernel, grid_for(n), THREADS, 0, n, w, g, m, v, lr, beta1, beta2, eps, l2, decoupled, bc1, bc2);
    GL_CUDA_LAUNCHED();
}

/* ---- bias: y[r, j] += b[j]; its gradient db[j] += sum over rows of dy[r, j] (one thread per column, rows in
 * order: a fixed order, no atomics) ---- */
__global__ void add_bias_kernel(size_t rows, size_t cols, const float *b, float *y) {
    size_t n = rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % cols];
}

__global__ void bias_grad_kernel(size_t rows, size_t cols, const float *dy, float *db) {
    size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float s = 0.0f;
    for (size_t r = 0; r < rows; r++) s += dy[r * cols + j];
    db[j] += s;
}

extern "C" void gl_cuda_add_bias(size_t rows, size_t cols, const float *b, float *y) {
    GL_LAUNCH(add_bias_kernel, grid_for(rows * cols), THREADS, 0, rows, cols, b, y);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_bias_grad(size_t rows, size_t cols, const float *dy, float *db) {
    GL_LAUNCH(bias_grad_kernel, gl_blocks((long long)cols, 128), 128, 0, rows, cols, dy, db);
    GL_CUDA_LAUNCHED();
}

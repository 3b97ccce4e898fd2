/* LayerNorm over rows: one warp per row (a row of GPT widths is a few hundred floats: 32 lanes stride over it).
 * The weight and bias gradients are sums over rows, done by a second kernel with one thread per column looping
 * over the rows in order: coalesced reads and a fixed summation order, no atomics. */
#include "cuda_common.h"

static const unsigned WARPS_PER_BLOCK = 4;

__global__ void layernorm_fwd_kernel(size_t rows, size_t cols, const float *x, const float *w, const float *b, float eps,
                                     float *y, float *mean, float *rstd) {
    size_t r = blockIdx.x * (size_t)WARPS_PER_BLOCK + threadIdx.x / 32;
    unsigned lane = threadIdx.x % 32;
    if (r >= rows) return; /* whole warps leave together: the shuffles below stay complete */
    const float *xr = x + r * cols;
    float s = 0.0f;
    for (size_t j = lane; j < cols; j += 32) s += xr[j];
    float m = gl_warp_sum(s) / (float)cols, ss = 0.0f;
    for (size_t j = lane; j < cols; j += 32) ss += (xr[j] - m) * (xr[j] - m);
    float rs = rsqrtf(gl_warp_sum(ss) / (float)cols + eps);
    for (size_t j = lane; j < cols; j += 32) {
        float n = (xr[j] - m) * rs;
        y[r * cols + j] = n * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f);
    }
    if (lane == 0) {
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
    }
}

/* dx = rstd * (dn - mean(dn) - n * mean(dn * n)) with n = (x - mean) * rstd and dn = dy * w */
__global__ void layernorm_dx_kernel(size_t rows, size_t cols, const float *x, const float *w, const float *mean,
                                    const float *rstd, const float *dy, float *dx) {
    size_t r = blockIdx.x * (size_t)WARPS_PER_BLOCK + threadIdx.x / 32;
    unsigned lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float *xr = x + r * cols, *dyr = dy + r * cols;
    float m = mean[r], rs = rstd[r], a = 0.0f, c = 0.0f;
    for (size_t j = lane; j < cols; j += 32) {
        float dn = dyr[j] * (w ? w[j] : 1.0f);
        a += dn;
        c += dn * (xr[j] - m) * rs;
    }
    a = gl_warp_sum(a) / (float)cols;
    c = gl_warp_sum(c) / (float)cols;
    for (size_t j = lane; j < cols; j += 32) {
        float dn = dyr[j] * (w ? w[j] : 1.0f);
        dx[r * cols + j] += rs * (dn - a - (xr[j] - m) * rs * c);
    }
}

__global__ void layernorm_dwdb_kernel(size_t rows, size_t cols, const float *x, const float *mean, const float *rstd,
                                      const float *dy, float *dw, float *db) {
    size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float sw = 0.0f, sb = 0.0f;
    for (size_t r = 0; r < rows; r++) {
        float g = dy[r * cols + j];
        sw += g * (x[r * cols + j] - mean[r]) * rstd[r];
        sb += g;
    }
    if (dw) dw[j] += sw;
    if (db) db[j] += sb;
}

extern "C" void gl_cuda_layernorm_fwd(size_t rows, size_t cols, const float *x, const float *w, const float *b,
                                      float eps, float *y, float *mean, float *rstd) {
    GL_LAUNCH(layernorm_fwd_kernel, gl_blocks((long long)rows, WARPS_PER_BLOCK), 32 * WARPS_PER_BLOCK, 0, rows, cols,
              x, w, b, eps, y, mean, rstd);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_layernorm_bwd(size_t rows, size_t cols, const float *x, const float *w, const float *mean,
                                      const float *rstd, const float *dy, float *dx, float *dw, float *db) {
    if (dx) {
        GL_LAUNCH(layernorm_dx_kernel, gl_blocks((long long)rows, WARPS_PER_BLOCK), 32 * WARPS_PER_BLOCK, 0, rows,
                  cols, x, w, mean, rstd, dy, dx);
        GL_CUDA_LAUNCHED();
    }
    if (dw || db) {
        GL_LAUNCH(layernorm_dwdb_kernel, gl_blocks((long long)cols, 128), 128, 0, rows, cols, x, mean, rstd, dy, dw, db);
        GL_CUDA_LAUNCHED();
    }
}

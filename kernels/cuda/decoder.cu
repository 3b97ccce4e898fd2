/* What a Llama-family decoder adds on the GPU (core/ops_decoder.c dispatches here for CUDA tensors): RMSNorm (one
 * warp per row, as layernorm), rotary embeddings (one thread per rotated pair), SwiGLU (one thread per element),
 * and grouped-query attention over a KV cache (one block per query row and head). Inference only: the decoder's
 * weights arrive dequantized to fp32 once (models/llama.c llama_to), so the matrix products are cuBLAS's. */
#include "cuda_common.h"

static const unsigned NORM_WARPS = 4, THREADS = 128;

__global__ void rmsnorm_fwd_kernel(size_t rows, size_t cols, const float *x, const float *w, float eps, float *y) {
    size_t r = blockIdx.x * (size_t)NORM_WARPS + threadIdx.x / 32;
    unsigned lane = threadIdx.x % 32;
    if (r >= rows) return; /* whole warps leave together */
    const float *xr = x + r * cols;
    float ss = 0.0f;
    for (size_t j = lane; j < cols; j += 32) ss += xr[j] * xr[j];
    float rs = 1.0f / sqrtf(gl_warp_sum(ss) / (float)cols + eps);
    for (size_t j = lane; j < cols; j += 32) y[r * cols + j] = xr[j] * rs * w[j];
}

/* pair i of head h in row t: (x[2i], x[2i+1]) rotated by (pos0 + t) base^(-2i / rope_dim), in place */
__global__ void rope_kernel(int T, int n_head, int hd, int pos0, float base, int rope_dim, float *x) {
    int pairs = rope_dim / 2;
    long long id = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (id >= (long long)T * n_head * pairs) return;
    int i = (int)(id % pairs), h = (int)(id / pairs % n_head), t = (int)(id / pairs / n_head);
    float theta = (float)(pos0 + t) * powf(base, -2.0f * (float)i / (float)rope_dim), c = cosf(theta), s = sinf(theta);
    float *p = x + ((size_t)t * n_head + h) * hd + 2 * i, a = p[0], b = p[1];
    p[0] = a * c - b * s;
    p[1] = a * s + b * c;
}

__global__ void swiglu_kernel(size_t n, const float *a, const float *b, float *y) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) y[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

/* keys into rows pos.. of k_cache [capacity, Ckv]; values into columns pos.. of v_cache [Ckv, capacity] */
__global__ void kv_append_kernel(int T, int Ckv, int pos, int capacity, const float *k, const float *v, float *k_cache,
                                 float *v_cache) {
    long long id = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (id >= (long long)T * Ckv) return;
    int t = (int)(id / Ckv), i = (int)(id % Ckv);
    k_cache[(size_t)(pos + t) * Ckv + i] = k[id];
    v_cache[(size_t)i * capacity + pos + t] = v[id];
}

/* block (t, h): scores of q[t, head h] against keys 0 .. pos + t of kv head h / group, softmax, then each thread
 * one or more output dimensions as a dot product along the transposed values */
__global__ void gqa_attend_kernel(int n_head, int group, int hd, int Cq, int Ckv, int pos, int capacity, int n_keys,
                                  const float *q, const float *k_cache, const float *v_cache, float *scores,
                                  float *out) {
    int t = blockIdx.x / n_head, h = blockIdx.x % n_head, g = h / group, last = pos + t;
    const float *qh = q + (size_t)t * Cq + (size_t)h * hd;
    float *sc = scores + (size_t)blockIdx.x * n_keys, scale = 1.0f / sqrtf((float)hd), m = -INFINITY;
    for (int j = threadIdx.x; j <= last; j += blockDim.x) {
        const float *kj = k_cache + (size_t)j * Ckv + (size_t)g * hd;
        float s = 0.0f;
        for (int i = 0; i < hd; i++) s += qh[i] * kj[i];
        sc[j] = s * scale;
        m = fmaxf(m, sc[j]);
    }
    m = gl_block_reduce<true>(m);
    float sum = 0.0f;
    for (int j = threadIdx.x; j <= last; j += blockDim.x) {
        sc[j] = expf(sc[j] - m);
        sum += sc[j];
    }
    float inv = 1.0f / gl_block_reduce<false>(sum); /* its barriers also publish every sc[j] to the block */
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        const float *vi = v_cache + (size_t)(g * hd + i) * capacity;
        float o = 0.0f;
        for (int j = 0; j <= last; j++) o += sc[j] * vi[j];
        out[(size_t)t * Cq + (size_t)h * hd + i] = o * inv;
    }
}

extern "C" void gl_cuda_rmsnorm_fwd(size_t rows, size_t cols, const float *x, const float *w, float eps, float *y) {
    GL_LAUNCH(rmsnorm_fwd_kernel, gl_blocks((long long)rows, NORM_WARPS), 32 * NORM_WARPS, 0, rows, cols, x, w, eps, y);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_rope(int T, int n_head, int hd, int pos0, float base, int rope_dim, float *x) {
    long long n = (long long)T * n_head * (rope_dim / 2);
    GL_LAUNCH(rope_kernel, gl_blocks(n, THREADS), THREADS, 0, T, n_head, hd, pos0, base, rope_dim, x);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_swiglu(size_t n, const float *a, const float *b, float *y) {
    GL_LAUNCH(swiglu_kernel, gl_blocks((long long)n, THREADS), THREADS, 0, n, a, b, y);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_attention_gqa(int T, int n_head, int n_kv_head, int hd, int pos, int capacity, const float *q,
                                      const float *k, const float *v, float *k_cache, float *v_cache, float *scores,
                                      float *out) {
    int Cq = n_head * hd, Ckv = n_kv_head * hd;
    GL_LAUNCH(kv_append_kernel, gl_blocks((long long)T * Ckv, THREADS), THREADS, 0, T, Ckv, pos, capacity, k, v, k_cache,
              v_cache);
    GL_CUDA_LAUNCHED();
    GL_LAUNCH(gqa_attend_kernel, (unsigned)(T * n_head), THREADS, 0, n_head, n_head / n_kv_head, hd, Cq, Ckv, pos,
              capacity, pos + T, q, k_cache, v_cache, scores, out);
    GL_CUDA_LAUNCHED();
}

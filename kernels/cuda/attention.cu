/* Multi-head self-attention on the fused qkv layout of the CPU op (core/ops_attention.c): qkv [B, T, 3C] holds
 * q, k, v side by side, head h in columns h*hs .. h*hs+hs-1 of each; out [B, T, C]; scale 1/sqrt(hs).
 *
 * naive:  one block per query row (b, h, i); its threads take the keys j, then the head dimensions. The row's
 *         probabilities P[b, h, i, :] are written out and kept for the backward.
 * flash:  one thread per query row, a block per tile of FLASH_ROWS rows of one (b, h); key and value tiles of
 *         FLASH_KEYS rows are staged in shared memory and consumed with the online softmax (running max m,
 *         running sum l, rescaled accumulator); only each row's log-sum-exp is kept. The backward recomputes the
 *         probabilities from it: one kernel per key tile accumulates dk and dv over all query rows, another per
 *         query tile accumulates dq over all keys, so every sum has a fixed order and no atomics are needed.
 * Head sizes up to 128 (the accumulators live in each thread's registers/local memory). */
#include "cuda_common.h"

#define MAX_HS 128
#define FLASH_ROWS 32
#define FLASH_KEYS 32

struct geometry {
    int B, T, C, H, hs, causal;
    float scale;
};

__device__ __forceinline__ const float *q_row(const float *qkv, const geometry &g, int b, int t, int h) {
    return qkv + ((size_t)b * g.T + t) * 3 * g.C + h * g.hs;
}

/* the (tile of rows, head, batch) a block of the flash kernels works on: blocks run over tiles fastest */
struct tile_pos {
    int tile, h, b;
};
__device__ __forceinline__ tile_pos tile_of_block(const geometry &g, int rows_per_tile) {
    int tiles = (g.T + rows_per_tile - 1) / rows_per_tile;
    return {(int)(blockIdx.x % tiles), (int)(blockIdx.x / tiles) % g.H, (int)(blockIdx.x / (tiles * g.H))};
}

/* ---------------- naive ---------------- */

__global__ void naive_fwd_kernel(geometry g, const float *qkv, float *out, float *P) {
    int i = blockIdx.x % g.T, h = (blockIdx.x / g.T) % g.H, b = blockIdx.x / (g.T * g.H);
    int keys = g.causal ? i + 1 : g.T;
    const float *q = q_row(qkv, g, b, i, h);
    float *p = P + (((size_t)b * g.H + h) * g.T + i) * g.T;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < g.T; j += blockDim.x) {
        float s = -INFINITY;
        if (j < keys) {
            const float *k = q_row(qkv, g, b, j, h) + g.C;
            s = 0.0f;
            for (int d = 0; d < g.hs; d++) s += q[d] * k[d];
            s *= g.scale;
        }
        p[j] = s;
        m = fmaxf(m, s);
    }
    float row_max = gl_block_reduce<true>(m), s = 0.0f;
    for (int j = threadIdx.x; j < g.T; j += blockDim.x) {
        float e = j < keys ? expf(p[j] - row_max) : 0.0f;
        p[j] = e;
        s += e;
    }
    float row_sum = gl_block_reduce<false>(s);
    float inv = 1.0f / row_sum;
    for (int j = threadIdx.x; j < g.T; j += blockDim.x) p[j] *= inv;
    __syncthreads();
    for (int d = threadIdx.x; d < g.hs; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < keys; j++) acc += p[j] * q_row(qkv, g, b, j, h)[2 * g.C + d];
        out[((size_t)b * g.T + i) * g.C + h * g.hs + d] = acc;
    }
}

/* per query row: dP = dout . v_j, dS = P (dP - sum_j P dP) into dS; dq += scale dS k */
__global__ void naive_bwd_rows_kernel(geometry g, const float *qkv, const float *P, const float *dout, float *dS,
                                      float *dqkv) {
    int i = blockIdx.x % g.T, h = (blockIdx.x / g.T) % g.H, b = blockIdx.x / (g.T * g.H);
    int keys = g.causal ? i + 1 : g.T;
    const float *p = P + (((size_t)b * g.H + h) * g.T + i) * g.T, *go = dout + ((size_t)b * g.T + i) * g.C + h * g.hs;
    float *ds = dS + (((size_t)b * g.H + h) * g.T + i) * g.T;
    float part = 0.0f;
    for (int j = threadIdx.x; j < g.T; j += blockDim.x) {
        float dp = 0.0f;
        if (j < keys) {
            const float *v = q_row(qkv, g, b, j, h) + 2 * g.C;
            for (int d = 0; d < g.hs; d++) dp += go[d] * v[d];
        }
        ds[j] = dp;
        part += p[j] * dp;
    }
    float row_dot = gl_block_reduce<false>(part);
    for (int j = threadIdx.x; j < g.T; j += blockDim.x) ds[j] = j < keys ? p[j] * (ds[j] - row_dot) : 0.0f;
    __syncthreads();
    float *dq = dqkv + ((size_t)b * g.T + i) * 3 * g.C + h * g.hs;
    for (int d = threadIdx.x; d < g.hs; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < keys; j++) acc += ds[j] * q_row(qkv, g, b, j, h)[g.C + d];
        dq[d] += g.scale * acc;
    }
}

/* per key row j: dk += scale sum_i dS_ij q_i, dv += sum_i P_ij dout_i */
__global__ void naive_bwd_cols_kernel(geometry g, const float *qkv, const float *P, const float *dout, const float *dS,
                                      float *dqkv) {
    int j = blockIdx.x % g.T, h = (blockIdx.x / g.T) % g.H, b = blockIdx.x / (g.T * g.H);
    size_t base = ((size_t)b * g.H + h) * g.T;
    float *dk = dqkv + ((size_t)b * g.T + j) * 3 * g.C + g.C + h * g.hs, *dv = dk + g.C;
    for (int d = threadIdx.x; d < g.hs; d += blockDim.x) {
        float ak = 0.0f, av = 0.0f;
        for (int i = g.causal ? j : 0; i < g.T; i++) {
            ak += dS[(base + i) * g.T + j] * q_row(qkv, g, b, i, h)[d];
            av += P[(base + i) * g.T + j] * dout[((size_t)b * g.T + i) * g.C + h * g.hs + d];
        }
        dk[d] += g.scale * ak;
        dv[d] += av;
    }
}

/* ---------------- flash ---------------- */

__global__ void flash_fwd_kernel(geometry g, const float *qkv, float *out, float *lse) {
    tile_pos at = tile_of_block(g, FLASH_ROWS);
    int tile = at.tile, h = at.h, b = at.b;
    int i = tile * FLASH_ROWS + threadIdx.x;
    __shared__ float ks[FLASH_KEYS * MAX_HS], vs[FLASH_KEYS * MAX_HS];
    float q[MAX_HS], acc[MAX_HS], m = -INFINITY, l = 0.0f;
    bool live = i < g.T;
    for (int d = 0; d < g.hs; d++) {
        q[d] = live ? q_row(qkv, g, b, i, h)[d] * g.scale : 0.0f;
        acc[d] = 0.0f;
    }
    int last_key = g.causal ? (tile + 1) * FLASH_ROWS : g.T; /* keys past the tile's last row are all masked */
    if (last_key > g.T) last_key = g.T;
    for (int k0 = 0; k0 < last_key; k0 += FLASH_KEYS) {
        int n = last_key - k0 < FLASH_KEYS ? last_key - k0 : FLASH_KEYS;
        __syncthreads(); /* the previous tile is consumed */
        for (int e = threadIdx.x; e < n * g.hs; e += blockDim.x) {
            int r = e / g.hs, d = e % g.hs;
            const float *row = q_row(qkv, g, b, k0 + r, h);
            ks[r * g.hs + d] = row[g.C + d];
            vs[r * g.hs + d] = row[2 * g.C + d];
        }
        __syncthreads();
        if (!live) continue;
        for (int r = 0; r < n; r++) {
            int j = k0 + r;
            if (g.causal && j > i) break;
            float s = 0.0f;
            for (int d = 0; d < g.hs; d++) s += q[d] * ks[r * g.hs + d];
            float m_new = fmaxf(m, s), correction = expf(m - m_new), p = expf(s - m_new);
            l = l * correction + p;
            for (int d = 0; d < g.hs; d++) acc[d] = acc[d] * correction + p * vs[r * g.hs + d];
            m = m_new;
        }
    }
    if (!live) return;
    float inv = 1.0f / l;
    for (int d = 0; d < g.hs; d++) out[((size_t)b * g.T + i) * g.C + h * g.hs + d] = acc[d] * inv;
    lse[((size_t)b * g.H + h) * g.T + i] = m + logf(l);
}

/* D_i = dout_i . out_i per (b, h, i): the softmax backward's row term */
__global__ void flash_rowdot_kernel(geometry g, const float *out, const float *dout, float *D) {
    size_t n = (size_t)g.B * g.H * g.T;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(e % g.T), h = (int)(e / g.T % g.H), b = (int)(e / ((size_t)g.T * g.H));
        size_t at = ((size_t)b * g.T + i) * g.C + h * g.hs;
        float s = 0.0f;
        for (int d = 0; d < g.hs; d++) s += dout[at + d] * out[at + d];
        D[e] = s;
    }
}

/* for query row i and key row j: the probability p_ij recomputed from row i's log-sum-exp, and
 * ds_ij = p_ij (dout_i . v_j - D_i), the score's gradient (before the scale) */
__device__ __forceinline__ void flash_p_ds(const geometry &g, const float *q, const float *k, const float *go,
                                           const float *v, float lse_i, float D_i, float *p, float *ds) {
    float s = 0.0f, dp = 0.0f;
    for (int d = 0; d < g.hs; d++) s += q[d] * k[d], dp += go[d] * v[d];
    *p = expf(s * g.scale - lse_i);
    *ds = *p * (dp - D_i);
}

/* one thread per key row j: dk_j, dv_j over all query rows (recomputing p_ij from the log-sum-exp) */
__global__ void flash_dkdv_kernel(geometry g, const float *qkv, const float *lse, const float *D, const float *dout,
                                  float *dqkv) {
    tile_pos at = tile_of_block(g, FLASH_KEYS);
    int tile = at.tile, h = at.h, b = at.b;
    int j = tile * FLASH_KEYS + threadIdx.x;
    if (j >= g.T) return;
    const float *k = q_row(qkv, g, b, j, h) + g.C, *v = k + g.C;
    float dk[MAX_HS], dv[MAX_HS];
    for (int d = 0; d < g.hs; d++) dk[d] = dv[d] = 0.0f;
    size_t bh = ((size_t)b * g.H + h) * g.T;
    for (int i = g.causal ? j : 0; i < g.T; i++) {
        const float *q = q_row(qkv, g, b, i, h), *go = dout + ((size_t)b * g.T + i) * g.C + h * g.hs;
        float p, ds;
        flash_p_ds(g, q, k, go, v, lse[bh + i], D[bh + i], &p, &ds);
        for (int d = 0; d < g.hs; d++) dv[d] += p * go[d], dk[d] += ds * q[d];
    }
    float *gk = dqkv + ((size_t)b * g.T + j) * 3 * g.C + g.C + h * g.hs, *gv = gk + g.C;
    for (int d = 0; d < g.hs; d++) gk[d] += g.scale * dk[d], gv[d] += dv[d];
}

/* one thread per query row i: dq_i over its keys */
__global__ void flash_dq_kernel(geometry g, const float *qkv, const float *lse, const float *D, const float *dout,
                                float *dqkv) {
    tile_pos at = tile_of_block(g, FLASH_ROWS);
    int tile = at.tile, h = at.h, b = at.b;
    int i = tile * FLASH_ROWS + threadIdx.x;
    if (i >= g.T) return;
    const float *q = q_row(qkv, g, b, i, h), *go = dout + ((size_t)b * g.T + i) * g.C + h * g.hs;
    size_t bh = ((size_t)b * g.H + h) * g.T;
    float dq[MAX_HS];
    for (int d = 0; d < g.hs; d++) dq[d] = 0.0f;
    for (int j = 0; j < (g.causal ? i + 1 : g.T); j++) {
        const float *k = q_row(qkv, g, b, j, h) + g.C, *v = k + g.C;
        float p, ds;
        flash_p_ds(g, q, k, go, v, lse[bh + i], D[bh + i], &p, &ds);
        for (int d = 0; d < g.hs; d++) dq[d] += ds * k[d];
    }
    float *gq = dqkv + ((size_t)b * g.T + i) * 3 * g.C + h * g.hs;
    for (int d = 0; d < g.hs; d++) gq[d] += g.scale * dq[d];
}

/* ---------------- host side ---------------- */

static geometry make_geometry(int B, int T, int C, int H, int causal) {
    geometry g = {B, T, C, H, C / H, causal, 0.0f};
    if (C % H != 0 || g.hs > MAX_HS) {
        fprintf(stderr, "gradlab cuda: attention needs head size C / H <= %d dividing C (C %d, H %d)\n", MAX_HS, C, H);
        exit(1);
    }
    g.scale = 1.0f / sqrtf((float)g.hs);
    return g;
}

/* ---------------- one decoding step against a KV cache ----------------
 * One block per head: its threads take the cached keys 0..pos for the scores (kept in scratch), the block reduces
 * max and sum, then the threads take the head dimensions and sum p_j v_j over j in order. */
__global__ void decode_step_kernel(int C, int hs, int pos, float scale, const float *qkv, const float *k_cache,
                                   const float *v_cache, float *scores, float *out) {
    int h = blockIdx.x;
    const float *q = qkv + h * hs;
    float *sc = scores + (size_t)h * (pos + 1);
    float m = -INFINITY;
    for (int j = threadIdx.x; j <= pos; j += blockDim.x) {
        const float *k = k_cache + (size_t)j * C + h * hs;
        float s = 0.0f;
        for (int d = 0; d < hs; d++) s += q[d] * k[d];
        sc[j] = s * scale;
        m = fmaxf(m, sc[j]);
    }
    float row_max = gl_block_reduce<true>(m), sum = 0.0f;
    for (int j = threadIdx.x; j <= pos; j += blockDim.x) {
        sc[j] = expf(sc[j] - row_max);
        sum += sc[j];
    }
    float inv = 1.0f / gl_block_reduce<false>(sum); /* its barriers also publish every thread's sc[j] */
    for (int d = threadIdx.x; d < hs; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j <= pos; j++) acc += sc[j] * inv * v_cache[(size_t)j * C + h * hs + d];
        out[h * hs + d] = acc;
    }
}

extern "C" void gl_cuda_attention_step(int C, int H, int pos, const float *qkv, float *k_cache, float *v_cache,
                                       float *scores, float *out) {
    geometry g = make_geometry(1, 1, C, H, 0);
    gl_cuda_copy(k_cache + (size_t)pos * C, qkv + C, (size_t)C * sizeof(float));
    gl_cuda_copy(v_cache + (size_t)pos * C, qkv + 2 * C, (size_t)C * sizeof(float));
    GL_LAUNCH(decode_step_kernel, (unsigned)H, 128, 0, C, g.hs, pos, g.scale, qkv, (const float *)k_cache,
              (const float *)v_cache, scores, out);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_attention_naive_fwd(int B, int T, int C, int H, int causal, const float *qkv, float *out,
                                            float *P) {
    geometry g = make_geometry(B, T, C, H, causal);
    GL_LAUNCH(naive_fwd_kernel, (unsigned)(B * H * T), 128, 0, g, qkv, out, P);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_attention_naive_bwd(int B, int T, int C, int H, int causal, const float *qkv, const float *P,
                                            const float *dout, float *dS, float *dqkv) {
    geometry g = make_geometry(B, T, C, H, causal);
    GL_LAUNCH(naive_bwd_rows_kernel, (unsigned)(B * H * T), 128, 0, g, qkv, P, dout, dS, dqkv);
    GL_CUDA_LAUNCHED();
    GL_LAUNCH(naive_bwd_cols_kernel, (unsigned)(B * H * T), 64, 0, g, qkv, P, dout, (const float *)dS, dqkv);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_attention_flash_fwd(int B, int T, int C, int H, int causal, const float *qkv, float *out,
                                            float *lse) {
    geometry g = make_geometry(B, T, C, H, causal);
    unsigned tiles = (unsigned)((T + FLASH_ROWS - 1) / FLASH_ROWS);
    GL_LAUNCH(flash_fwd_kernel, tiles * B * H, FLASH_ROWS, 0, g, qkv, out, lse);
    GL_CUDA_LAUNCHED();
}

extern "C" void gl_cuda_attention_flash_bwd(int B, int T, int C, int H, int causal, const float *qkv, const float *out,
                                            const float *lse, const float *dout, float *D, float *dqkv) {
    geometry g = make_geometry(B, T, C, H, causal);
    size_t rows = (size_t)B * H * T;
    unsigned blocks = gl_blocks((long long)rows, 256);
    GL_LAUNCH(flash_rowdot_kernel, blocks > 4096 ? 4096 : blocks, 256, 0, g, out, dout, D);
    GL_CUDA_LAUNCHED();
    unsigned key_tiles = (unsigned)((T + FLASH_KEYS - 1) / FLASH_KEYS), row_tiles = (unsigned)((T + FLASH_ROWS - 1) / FLASH_ROWS);
    GL_LAUNCH(flash_dkdv_kernel, key_tiles * B * H, FLASH_KEYS, 0, g, qkv, lse, (const float *)D, dout, dqkv);
    GL_CUDA_LAUNCHED();
    GL_LAUNCH(flash_dq_kernel, row_tiles * B * H, FLASH_ROWS, 0, g, qkv, lse, (const float *)D, dout, dqkv);
    GL_CUDA_LAUNCHED();
}

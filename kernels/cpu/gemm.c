/* GEMM driver: packing, cache blocking and threads around the SIMD micro-kernel of vec.c.
 *
 * Loop nest (Goto/BLIS order), C is M x N:
 *   for jc in N by NC:              B panel  KC x NC  -> packed once, shared by all threads (fits L3)
 *     for pc in K by KC:
 *       pack B[pc.., jc..] into NR-wide column panels
 *       parallel for ic in M by MC: A block  MC x KC  -> packed per thread into MR-tall row panels (fits L2)
 *         for jr in NC by NR:       one packed B micro-panel (KC x NR) stays in L1 across the ir loop
 *           for ir in MC by MR:     micro-kernel: MR x NR tile += A micro-panel * B micro-panel
 * Packing reads A and B through their strides, so A*B, A*B^T, A^T*B and A^T*B^T cost the same and no transpose
 * is ever materialised. Each C element is summed over k in a fixed order (KC blocks in order, k in order inside),
 * independent of how row blocks are shared among threads: results are bitwise identical for any thread count.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"

/* KC: depth of one packed block. Long K blocks mean fewer passes over C (each pass after the first reads and
 * rewrites the C tile); measured on Zen 5, 768 ran ~10% faster than 256. The B micro-panel (KC x NR) then lives
 * in L2 rather than L1, which the L2 bandwidth covers. MC is sized so the A block (MC x KC) takes about half of
 * a 1 MiB L2. NC bounds the shared B panel (KC x NC floats, a few MiB of L3). */
#ifndef GEMM_KC
#define GEMM_KC 768
#endif
#ifndef GEMM_A_BLOCK_BYTES
#define GEMM_A_BLOCK_BYTES (512 * 1024)
#endif
enum { GEMM_MC_MAX = 264, GEMM_NC = 3072, GEMM_MAX_TILE = 16 * 64 };
/* up to this many rows of A, a B stored K x N is not packed (gemm_driver) */
#ifndef GEMM_DIRECT_M
#define GEMM_DIRECT_M 64
#endif

/* element (i, p) of op(A), M x K */
static inline float a_at(int trans, const float *A, int lda, int i, int p) {
    return trans ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
}
/* element (p, j) of op(B), K x N */
static inline float b_at(int trans, const float *B, int ldb, int p, int j) {
    return trans ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
}

void gl_gemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float sum = 0.0f;
            for (int p = 0; p < K; p++) sum += a_at(trans_a, A, lda, i, p) * b_at(trans_b, B, ldb, p, j);
            float *c = &C[(size_t)i * ldc + j];
            *c = beta == 0.0f ? alpha * sum : alpha * sum + beta * *c;
        }
}

/* Packing walks the source along its contiguous dimension (rows of a row-major matrix) and scatters into the
 * panel, so a transposed operand is packed as fast as a plain one. */

/* op(A)[i0 : i0+mc, p0 : p0+kc] -> panels of MR rows; each panel stores column p as MR consecutive floats,
 * zero-padded past the last row so the micro-kernel never branches. */
static void pack_a(int mr, int trans, const float *A, int lda, int i0, int mc, int p0, int kc, float *dst) {
    for (int ir = 0; ir < mc; ir += mr, dst += (size_t)mr * kc) {
        int rows = mc - ir < mr ? mc - ir : mr;
        if (rows < mr) memset(dst, 0, (size_t)mr * kc * sizeof(float));
        if (!trans) /* A is M x K: rows are contiguous in A; transpose 16 columns at a time so the panel
                     * lines being written stay in L1 */
            for (int pb = 0; pb < kc; pb += 16) {
                int pe = pb + 16 < kc ? pb + 16 : kc;
                for (int i = 0; i < rows; i++) {
                    const float *src = A + (size_t)(i0 + ir + i) * lda + p0;
                    for (int p = pb; p < pe; p++) dst[(size_t)p * mr + i] = src[p];
                }
            }
        else /* A is stored K x M: column p of the panel is contiguous (a few floats: a loop, not a memcpy call) */
            for (int p = 0; p < kc; p++) {
                const float *src = A + (size_t)(p0 + p) * lda + i0 + ir;
                float *d = dst + (size_t)p * mr;
                for (int i = 0; i < rows; i++) d[i] = src[i];
            }
    }
}

/* op(B)[p0 : p0+kc, j0 : j0+cols] -> one panel of NR columns; it stores row p as NR consecutive floats. */
static void pack_b_panel(int nr, int trans, const float *B, int ldb, int p0, int kc, int j0, int cols, float *dst) {
    if (cols < nr) memset(dst, 0, (size_t)nr * kc * sizeof(float));
    if (!trans) /* B is K x N: row p of the panel is contiguous in B */
        for (int p = 0; p < kc; p++) memcpy(dst + (size_t)p * nr, B + (size_t)(p0 + p) * ldb + j0, (size_t)cols * 4);
    else /* B is stored N x K: columns of the panel are contiguous in B; 16 rows of the panel at a time */
        for (int pb = 0; pb < kc; pb += 16) {
            int pe = pb + 16 < kc ? pb + 16 : kc;
            for (int j = 0; j < cols; j++) {
                const float *src = B + (size_t)(j0 + j) * ldb + p0;
                for (int p = pb; p < pe; p++) dst[(size_t)p * nr + j] = src[p];
            }
        }
}

void gl_gemm_pack_a(int mr, int trans, const float *A, int lda, int i0, int mc, int p0, int kc, float *dst) {
    pack_a(mr, trans, A, lda, i0, mc, p0, kc, dst);
}

void gl_gemm_pack_b(int nr, int trans, const float *B, int ldb, int p0, int kc, int j0, int cols, float *dst) {
    pack_b_panel(nr, trans, B, ldb, p0, kc, j0, cols, dst);
}

/* Where B comes from: a dense matrix, or NF4 codes dequantised while packing. */
typedef struct {
    const float *dense;
    int ldb;
    const gl_nf4 *nf4;
} b_source;

/* the NF4 form of pack_b_panel: the same panel, with each contiguous run of W decoded straight into place */
static void pack_b_panel_nf4(int nr, int trans, const gl_nf4 *W, int p0, int kc, int j0, int cols, float *dst) {
    if (cols < nr) memset(dst, 0, (size_t)nr * kc * sizeof(float));
    if (!trans) /* W is K x N: row p of the panel is a run of W's row p0 + p */
        for (int p = 0; p < kc; p++) gl_nf4_dequantize_run(W, (int64_t)(p0 + p) * W->cols + j0, cols, dst + (size_t)p * nr);
    else { /* W is N x K: column j of the panel is a run of W's row j0 + j */
        float run[GEMM_KC];
        for (int j = 0; j < cols; j++) {
            gl_nf4_dequantize_run(W, (int64_t)(j0 + j) * W->cols + p0, kc, run);
            for (int p = 0; p < kc; p++) dst[(size_t)p * nr + j] = run[p];
        }
    }
}

static void pack_b(const b_source *b, int nr, int trans, int p0, int kc, int j0, int cols, float *dst) {
    if (b->nf4) pack_b_panel_nf4(nr, trans, b->nf4, p0, kc, j0, cols, dst);
    else pack_b_panel(nr, trans, b->dense, b->ldb, p0, kc, j0, cols, dst);
}

/* C tile (rows x cols of an MR x NR result) = alpha * tile + beta * C; beta == 0 never reads C */
static void store_tile(const float *tile, int nr, int rows, int cols, float alpha, float beta, float *C, int ldc) {
    for (int i = 0; i < rows; i++) {
        float *c = C + (size_t)i * ldc;
        const float *t = tile + i * nr;
        if (beta == 0.0f)
            for (int j = 0; j < cols; j++) c[j] = alpha * t[j];
        else if (beta == 1.0f)
            for (int j = 0; j < cols; j++) c[j] += alpha * t[j];
        else
            for (int j = 0; j < cols; j++) c[j] = alpha * t[j] + beta * c[j];
    }
}

/* Packing buffers grow once to the largest size seen and are then reused, so a training step's GEMMs do not
 * allocate. They are per calling thread: ops may run small GEMMs from inside their own parallel loops. A thread
 * that ends (an OpenMP pool torn down, a caller's own thread) frees its set through the key's destructor. */
typedef struct {
    float *buf[GL_SCRATCH_SLOTS];
    size_t cap[GL_SCRATCH_SLOTS];
} scratch_set;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_set_free(void *p) {
    scratch_set *set = p;
    for (int i = 0; i < GL_SCRATCH_SLOTS; i++) free(set->buf[i]);
    free(set);
}
static void scratch_key_create(void) {
    if (pthread_key_create(&scratch_key, scratch_set_free) != 0) abort();
}

float *gl_kernel_scratch(int which, size_t floats) {
    static _Thread_local scratch_set *set;
    if (!set) {
        pthread_once(&scratch_once, scratch_key_create);
        if (!(set = calloc(1, sizeof *set)) || pthread_setspecific(scratch_key, set) != 0) abort();
    }
    if (floats > set->cap[which]) {
        free(set->buf[which]);
        set->buf[which] = aligned_alloc(64, (floats * 4 + 63) / 64 * 64);
        if (!set->buf[which]) abort();
        set->cap[which] = floats;
    }
    return set->buf[which];
}

/* C[0, :] = alpha * op(A)[0, :] op(B) + beta * C: one row. Packing would copy B for a single use, so B is
 * streamed in place: with B stored N x K (trans_b) each output is a dot product along a row of B; with B stored
 * K x N, fixed blocks of rows are summed separately (each a contiguous stream) and then added in order. Either
 * way every output is summed in a fixed order, whatever the thread count. */
static void gemv(const gl_kernels *k, int trans_a, int trans_b, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C) {
    float a_local[4096];
    const float *a = A;
    float *a_buf = NULL;
    if (trans_a) { /* op(A) is 1 x K with A stored K x 1: gather the strided column */
        a_buf = K <= 4096 ? a_local : malloc((size_t)K * sizeof(float));
        for (int p = 0; p < K; p++) a_buf[p] = A[(size_t)p * lda];
        a = a_buf;
    }
    int big = (double)N * K > 1 << 16;
    if (trans_b) {
#pragma omp parallel for schedule(static) if (big && !omp_in_parallel())
        for (int j = 0; j < N; j++) {
            float s = alpha * k->dot((size_t)K, a, B + (size_t)j * ldb);
            C[j] = beta == 0.0f ? s : s + beta * C[j];
        }
    } else {
        /* B is cut into fixed blocks of KROWS rows; each block's partial row-sum is one contiguous stream of
         * B, and threads take whole blocks. The partials are then added in block order, so the result does not
         * depend on the thread count. */
        enum { KROWS = 64 };
        int blocks = (K + KROWS - 1) / KROWS;
        float *part = gl_kernel_scratch(2, (size_t)blocks * N);
#pragma omp parallel for schedule(static) if (big && !omp_in_parallel())
        for (int bk = 0; bk < blocks; bk++) {
            float *acc = part + (size_t)bk * N;
            int p1 = (bk + 1) * KROWS < K ? (bk + 1) * KROWS : K;
            memset(acc, 0, (size_t)N * sizeof(float));
            for (int p = bk * KROWS; p < p1; p++) k->axpy((size_t)N, a[p], B + (size_t)p * ldb, acc);
        }
        for (int bk = 1; bk < blocks; bk++) k->axpy((size_t)N, 1.0f, part + (size_t)bk * N, part);
        for (int j = 0; j < N; j++) C[j] = beta == 0.0f ? alpha * part[j] : alpha * part[j] + beta * C[j];
    }
    if (a_buf && a_buf != a_local) free(a_buf);
}

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

static void gemm_driver(const gl_kernels *k, int trans_a, int trans_b, int M, int N, int K, float alpha,
                        const float *A, int lda, const b_source *B, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) { /* nothing to multiply: C = beta * C */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    if (M == 1 && B->dense) {
        gemv(k, trans_a, trans_b, N, K, alpha, A, lda, B->dense, B->ldb, beta, C);
        return;
    }
    const int mr = k->gemm_mr, nr = k->gemm_nr;
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
    if ((double)M * N * K < 64.0 * 64 * 64) nthreads = 1; /* thread start-up costs more than the work */
    if (omp_in_parallel()) nthreads = 1;                   /* called from a caller's parallel loop */
#endif
    int k_blocks = (K + GEMM_KC - 1) / GEMM_KC;
    int kc_max = (K + k_blocks - 1) / k_blocks; /* equal K blocks: K = 1536 is 768 + 768, K = 1000 is 500 + 500 */
    /* MC: as large as the L2 budget allows, with M split evenly so the last row block is not a sliver */
    int mc_max = GEMM_A_BLOCK_BYTES / (4 * kc_max);
    if (mc_max > GEMM_MC_MAX) mc_max = GEMM_MC_MAX;
    mc_max = mc_max < mr ? mr : mc_max / mr * mr;
    int n_ablocks = (M + mc_max - 1) / mc_max;
    if (n_ablocks > 1 && M >= nthreads * mr * 4) n_ablocks = round_up(n_ablocks, nthreads); /* same work per thread */
    int mc = round_up((M + n_ablocks - 1) / n_ablocks, mr);
    n_ablocks = (M + mc - 1) / mc;
    /* Work items are (column range, row block). With few row blocks (small M) the B panel's columns are split
     * among threads too, so each thread reuses its B micro-panels over a whole A block instead of half of one. */
    int jsplit = n_ablocks >= 2 * nthreads ? 1 : nthreads;
    int nc_max = N < GEMM_NC ? round_up(N, nr) : GEMM_NC;

    size_t a_floats = (size_t)round_up(mc * kc_max, 16);
    float *b_packed = gl_kernel_scratch(0, (size_t)nc_max * kc_max);
    float *a_packed = gl_kernel_scratch(1, a_floats * (size_t)nthreads);

    for (int jc = 0; jc < N; jc += GEMM_NC) {
        int nc = N - jc < GEMM_NC ? N - jc : GEMM_NC;
        for (int pc = 0; pc < K; pc += kc_max) {
            int kc = K - pc < kc_max ? K - pc : kc_max;
            float beta_here = pc == 0 ? beta : 1.0f;
            int n_bpanels = (nc + nr - 1) / nr;
            /* Few rows of A use each B panel only a few times: then packing B (reading and writing all of it) costs
             * more than the products, and a B stored K x N is read in place, its rows ldb apart (same sums). */
            bool direct = B->dense && !trans_b && M <= GEMM_DIRECT_M && nc % nr == 0;
#pragma omp parallel num_threads(nthreads)
            {
#pragma omp for schedule(static)
                for (int jp = 0; jp < (direct ? 0 : n_bpanels); jp++) {
                    int cols = nc - jp * nr < nr ? nc - jp * nr : nr;
                    pack_b(B, nr, trans_b, pc, kc, jc + jp * nr, cols, b_packed + (size_t)jp * nr * kc);
                }
                int tid = 0;
#ifdef _OPENMP
                tid = omp_get_thread_num();
#endif
                float *a_mine = a_packed + a_floats * (size_t)tid;
                float tile[GEMM_MAX_TILE] __attribute__((aligned(64)));
#pragma omp for schedule(static)
                for (int item = 0; item < jsplit * n_ablocks; item++) {
                    int js = item / n_ablocks, ib = item % n_ablocks;
                    int panels_per_split = (n_bpanels + jsplit - 1) / jsplit;
                    int jr_begin = js * panels_per_split * nr, jr_end = (js + 1) * panels_per_split * nr;
                    if (jr_end > nc) jr_end = nc;
                    if (jr_begin >= jr_end) continue;
                    int ic = ib * mc;
                    int mcur = M - ic < mc ? M - ic : mc;
                    pack_a(mr, trans_a, A, lda, ic, mcur, pc, kc, a_mine);
                    for (int jr = jr_begin; jr < jr_end; jr += nr) {
                        int cols = nc - jr < nr ? nc - jr : nr;
                        const float *bp = direct ? B->dense + (size_t)pc * B->ldb + jc + jr : b_packed + (size_t)(jr / nr) * nr * kc;
                        size_t ldb = direct ? (size_t)B->ldb : (size_t)nr;
                        for (int ir = 0; ir < mcur; ir += mr) {
                            int rows = mcur - ir < mr ? mcur - ir : mr;
                            float *c = C + (size_t)(ic + ir) * ldc + jc + jr;
                            if (rows == mr && cols == nr) {
                                k->gemm_micro(kc, a_mine + (size_t)ir * kc, bp, ldb, c, (size_t)ldc, alpha, beta_here);
                            } else { /* edge tile: compute in full, store the part inside C */
                                k->gemm_micro(kc, a_mine + (size_t)ir * kc, bp, ldb, tile, (size_t)nr, 1.0f, 0.0f);
                                store_tile(tile, nr, rows, cols, alpha, beta_here, c, ldc);
                            }
                        }
                    }
                }
            }
        }
    }
}

void gl_gemm_with(const gl_kernels *k, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    b_source b = {B, ldb, NULL};
    gemm_driver(k, trans_a, trans_b, M, N, K, alpha, A, lda, &b, beta, C, ldc);
}

void gl_gemm_nf4(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const gl_nf4 *W,
                 float beta, float *C, int ldc) {
    if ((trans_b ? W->rows != N || W->cols != K : W->rows != K || W->cols != N)) abort(); /* callers check shapes */
    b_source b = {NULL, 0, W};
    gemm_driver(gl_kern(), trans_a, trans_b, M, N, K, alpha, A, lda, &b, beta, C, ldc);
}

void gl_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
             int ldb, float beta, float *C, int ldc) {
    gl_gemm_with(gl_kern(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

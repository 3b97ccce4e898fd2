/* bench-gemm: GFLOP/s of gradlab's GEMM against OpenBLAS's cblas_sgemm, side by side in one process.
 *
 * For each thread count, shape and transposition case, the two run alternately (ours, OpenBLAS, ours, ...);
 * each pair gives a ratio ours/OpenBLAS and the table shows the median ratio, so a slow phase of this noisy
 * machine hits both sides of a pair. Results also go to a JSON file (written to a temp name, then renamed).
 * Peak fp32 = cores x 2 FMA units x 16 lanes x 2 flops x GHz, the GHz measured by timing dependent adds (the
 * boost clock; /proc/cpuinfo's "cpu MHz" shows the base clock here, under which OpenBLAS appeared to beat the
 * peak) unless --ghz is given.
 *
 * Both libraries park their worker threads by spinning for a while after each call (OpenBLAS ~2^28 cycles by
 * default, libgomp its spin count). Alternating calls on 2 cores, the spinning workers of one would steal the
 * other's second core (we measured ours at 18 GFLOP/s instead of 300 that way). So `make bench-gemm` runs with
 * OPENBLAS_THREAD_TIMEOUT=4 and OMP_WAIT_POLICY=passive: both sides' workers sleep as soon as a call ends, and
 * each call pays the same small wake-up cost. The program warns when either is missing.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "bench_util.h"
#include "kernels.h"

void openblas_set_num_threads(int);

typedef struct {
    int M, K, N;
} shape;

static shape shapes[] = {{2048, 384, 1152}, {2048, 384, 1536}, {2048, 1536, 384},
                               {256, 768, 2304},  {256, 768, 50304}, {2048, 2048, 2048}};
static const char *const case_names[] = {"A.B", "A.B^T", "A^T.B"};

/* The clock the cores actually run at (boost included): time a chain of dependent 1-cycle integer adds.
 * Four adds per loop iteration on one register take four cycles; the loop counter runs alongside. Best of 5. */
static double measured_ghz(void) {
#if defined(__x86_64__)
    double best = 0.0;
    for (int rep = 0; rep < 5; rep++) {
        uint64_t x = 0, n = 100000000;
        double t0 = bench_now();
        __asm__ volatile("1:\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tsub $4, %1\n\tjnz 1b"
                         : "+r"(x), "+r"(n));
        double ghz = 100000000.0 / (bench_now() - t0) / 1e9;
        if (ghz > best) best = ghz;
    }
    return best;
#else
    return 0.0;
#endif
}

static double cpu_ghz(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    double mhz = 0.0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "cpu MHz", 7) == 0) {
            char *colon = strchr(line, ':');
            if (colon) mhz = atof(colon + 1);
            break;
        }
    if (f) fclose(f);
    return mhz > 0 ? mhz / 1000.0 : 2.0;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--threads 1,2] [--pairs N] [--quick] [--ghz F] [--json PATH]\n"
            "  --threads  comma-separated thread counts (default 1,2)\n"
            "  --pairs    alternating ours/OpenBLAS pairs per case (default 5)\n"
            "  --quick    only the first two shapes\n"
            "  --shape    one shape MxKxN instead of the list (e.g. 256x768x2304)\n"
            "  --ghz      clock used for the peak (default: measured with a dependent-add loop)\n"
            "  --json     also write the figures here\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv) {
    int threads[8] = {1, 2}, n_threads = 2, pairs = 5, n_shapes = (int)(sizeof shapes / sizeof *shapes);
    double ghz = 0.0;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = 0;
            for (char *tok = strtok(argv[++i], ","); tok && n_threads < 8; tok = strtok(NULL, ",")) {
                threads[n_threads] = atoi(tok);
                if (threads[n_threads] < 1) usage(argv[0]);
                n_threads++;
            }
        } else if (!strcmp(argv[i], "--pairs") && i + 1 < argc) {
            pairs = gl_flag_int("bench_gemm", "--pairs", argv[++i], 1, 1e6);
            if (pairs < 1 || pairs > 101) usage(argv[0]);
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%dx%d", &shapes[0].M, &shapes[0].K, &shapes[0].N) != 3 || shapes[0].M < 1 ||
                shapes[0].K < 1 || shapes[0].N < 1)
                usage(argv[0]);
            n_shapes = 1;
        } else if (!strcmp(argv[i], "--quick")) {
            n_shapes = 2;
        } else if (!strcmp(argv[i], "--ghz") && i + 1 < argc) {
            ghz = gl_flag_number("bench_gemm", "--ghz", argv[++i], 0.1, 100);
            if (ghz <= 0) usage(argv[0]);
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else {
            usage(argv[0]);
        }
    }
    const char *ghz_source = "--ghz";
    if (ghz <= 0.0) {
        ghz = measured_ghz();
        ghz_source = "measured: a chain of dependent 1-cycle adds";
        if (ghz <= 0.0) {
            ghz = cpu_ghz();
            ghz_source = "cpu MHz in /proc/cpuinfo";
        }
    }
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    const char *ob_timeout = getenv("OPENBLAS_THREAD_TIMEOUT"), *wait_policy = getenv("OMP_WAIT_POLICY");
    if (!ob_timeout || !wait_policy || strcmp(wait_policy, "passive") != 0)
        fprintf(stderr, "bench_gemm: warning: run with OPENBLAS_THREAD_TIMEOUT=4 OMP_WAIT_POLICY=passive (as make "
                        "bench-gemm does), or each library's spinning workers slow the other down\n");
    if (getenv("OPENBLAS_CORETYPE"))
        fprintf(stderr, "bench_gemm: warning: OPENBLAS_CORETYPE=%s holds OpenBLAS to that core type; unset it to "
                        "measure the peer at its best\n", getenv("OPENBLAS_CORETYPE"));
    printf("gradlab GEMM benchmark: kernels %s, OpenBLAS %s\n", gl_isa_name(gl_isa_active()), OPENBLAS_VERSION);
    printf("peak fp32 per core = 2 FMA units x 16 lanes x 2 flops x %.2f GHz (%s) = %.0f GFLOP/s; %d cores online\n",
           ghz, ghz_source, 64.0 * ghz, cores);
    printf("each row: median of %d alternating pairs; ratio = median of pairwise ours/OpenBLAS\n\n", pairs);
    printf("%3s %-18s %-6s %9s %9s %7s %7s %7s %9s\n", "thr", "M x K x N", "case", "ours GF", "blas GF", "ratio",
           "ours%pk", "blas%pk", "max|diff|");

    gl_json_writer jw, *js = bench_json_open(&jw, json_path, "bench_gemm");
    if (json_path && !js) return 1;
    if (js) {
        char peer[64];
        snprintf(peer, sizeof peer, "OpenBLAS %s", OPENBLAS_VERSION);
        gl_jw_string(js, "kernels", gl_isa_name(gl_isa_active()));
        gl_jw_string(js, "peer", peer);
        gl_jw_string(js, "ghz_source", ghz_source);
        gl_jw_number(js, "ghz", ghz);
        gl_jw_number(js, "peak_gflops_per_core", 64.0 * ghz);
        gl_jw_int(js, "pairs", pairs);
        gl_jw_array(js, "results");
    }
    for (int ti = 0; ti < n_threads; ti++) {
        int nt = threads[ti];
        omp_set_num_threads(nt);
        openblas_set_num_threads(nt);
        double peak = 64.0 * ghz * nt;
        double ratios_all[64];
        int n_ratios = 0;
        for (int si = 0; si < n_shapes; si++) {
            int M = shapes[si].M, K = shapes[si].K, N = shapes[si].N;
            float *A = malloc((size_t)M * K * 4), *B = malloc((size_t)K * N * 4);
            float *C1 = malloc((size_t)M * N * 4), *C2 = malloc((size_t)M * N * 4);
            srand(1234);
            for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)rand() / RAND_MAX - 0.5f;
            for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)rand() / RAND_MAX - 0.5f;
            for (int c = 0; c < 3; c++) {
                int ta = c == 2, tb = c == 1;
                int lda = ta ? M : K, ldb = tb ? K : N;
                double flops = 2.0 * M * N * K, t_ours[101], t_blas[101], ratio[101];
                for (int r = -1; r < pairs; r++) { /* r = -1 warms both up */
                    double t0 = bench_now();
                    gl_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C1, N);
                    double t1 = bench_now();
                    double t2 = bench_now();
                    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                                K, 1.0f, A, lda, B, ldb, 0.0f, C2, N);
                    double t3 = bench_now();
                    if (r < 0) continue;
                    t_ours[r] = t1 - t0;
                    t_blas[r] = t3 - t2;
                    ratio[r] = t_blas[r] / t_ours[r];
                }
                double diff = 0.0;
                for (size_t i = 0; i < (size_t)M * N; i++) diff = fmax(diff, fabs((double)C1[i] - C2[i]));
                double gf_ours = flops / bench_median(t_ours, pairs) / 1e9, gf_blas = flops / bench_median(t_blas, pairs) / 1e9;
                double rmed = bench_median(ratio, pairs);
                ratios_all[n_ratios++] = rmed;
                char dims[32];
                snprintf(dims, sizeof dims, "%dx%dx%d", M, K, N);
                printf("%3d %-18s %-6s %9.1f %9.1f %7.2f %6.0f%% %6.0f%% %9.2e\n", nt, dims, case_names[c], gf_ours,
                       gf_blas, rmed, 100 * gf_ours / peak, 100 * gf_blas / peak, diff);
                fflush(stdout);
                if (js) {
                    gl_jw_object(js, NULL);
                    gl_jw_int(js, "threads", nt);
                    gl_jw_int(js, "M", M);
                    gl_jw_int(js, "K", K);
                    gl_jw_int(js, "N", N);
                    gl_jw_string(js, "case", case_names[c]);
                    gl_jw_number(js, "ours_gflops", gf_ours);
                    gl_jw_number(js, "openblas_gflops", gf_blas);
                    gl_jw_number(js, "ratio", rmed);
                    gl_jw_number(js, "ours_peak_fraction", gf_ours / peak);
                    gl_jw_number(js, "openblas_peak_fraction", gf_blas / peak);
                    gl_jw_number(js, "max_abs_diff", diff);
                    gl_jw_end(js);
                }
            }
            free(A);
            free(B);
            free(C1);
            free(C2);
        }
        printf("%3d threads: median ratio ours/OpenBLAS over all cases = %.3f\n\n", nt, bench_median(ratios_all, n_ratios));
        if (js) {
            gl_jw_object(js, NULL);
            gl_jw_int(js, "threads", nt);
            gl_jw_number(js, "summary_median_ratio", bench_median(ratios_all, n_ratios));
            gl_jw_end(js);
        }
    }
    if (!bench_json_close(js, json_path, "bench_gemm")) return 1;
    return 0;
}

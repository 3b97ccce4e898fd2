/* Our HNSW (retrieval/hnsw.c) on a vector set given as raw float32 files, for bench/bench_hnsw.py, which runs
 * hnswlib and faiss on the same files: builds the graph (or loads one saved by an earlier run), then for each
 * efSearch searches every query one at a time on one thread and reports recall@k against the given true
 * neighbours and microseconds per query, as one JSON object on stdout.
 *   ./build/bench_hnsw --base F --n N --queries F --nq Q --dims D --truth F --k 10 [--M 16] [--ef-construction 200]
 *                      [--ef 10,16,32,64] [--graph FILE (loaded if it exists, else written)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cli.h"
#include "hnsw.h"
#include "io.h"

static float *read_floats(const char *path, size_t count) {
    unsigned char *data;
    size_t len;
    char err[512];
    if (!gl_read_whole_file(path, &data, &len, err, sizeof err)) fprintf(stderr, "bench_hnsw: %s\n", err), exit(1);
    if (len != count * sizeof(float))
        fprintf(stderr, "bench_hnsw: %s has %zu bytes, expected %zu\n", path, len, count * sizeof(float)), exit(1);
    return (float *)data;
}

int main(int argc, char **argv) {
    const char *base = NULL, *queries = NULL, *truth = NULL, *graph_path = NULL, *efs = "10,16,32,64,128";
    int n = 0, nq = 0, dims = 0, k = 10;
    hnsw_params hp = HNSW_DEFAULTS;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--base")) base = v;
        else if (!strcmp(f, "--queries")) queries = v;
        else if (!strcmp(f, "--truth")) truth = v;
        else if (!strcmp(f, "--graph")) graph_path = v;
        else if (!strcmp(f, "--ef")) efs = v;
        else if (!strcmp(f, "--n")) n = gl_flag_int("bench_hnsw", f, v, 1, 1e8);
        else if (!strcmp(f, "--nq")) nq = gl_flag_int("bench_hnsw", f, v, 1, 1e7);
        else if (!strcmp(f, "--dims")) dims = gl_flag_int("bench_hnsw", f, v, 1, 65536);
        else if (!strcmp(f, "--k")) k = gl_flag_int("bench_hnsw", f, v, 1, 1000);
        else if (!strcmp(f, "--M")) hp.M = gl_flag_int("bench_hnsw", f, v, 2, 64);
        else if (!strcmp(f, "--ef-construction")) hp.ef_construction = gl_flag_int("bench_hnsw", f, v, 1, 10000);
        else fprintf(stderr, "bench_hnsw: unknown flag '%s'\n", f), exit(2);
    }
    if (!base || !queries || !truth || !n || !nq || !dims) fprintf(stderr, "bench_hnsw: see the usage at the top of bench/bench_hnsw.c\n"), exit(2);
    float *x = read_floats(base, (size_t)n * dims), *q = read_floats(queries, (size_t)nq * dims);
    int *gt = (int *)read_floats(truth, (size_t)nq * k); /* int32, the same size as float32 */
    char err[512];
    hnsw *g = NULL;
    double build_s = 0;
    unsigned char *bytes;
    size_t len;
    if (graph_path && gl_read_whole_file(graph_path, &bytes, &len, err, sizeof err)) {
        g = hnsw_deserialize(bytes, len, x, n, dims, err, sizeof err);
        if (!g) fprintf(stderr, "bench_hnsw: %s: %s\n", graph_path, err), exit(1);
        free(bytes);
    } else {
        double t0 = bench_now();
        g = hnsw_build(x, n, dims, hp);
        build_s = bench_now() - t0;
        if (graph_path) {
            bytes = hnsw_serialize(g, &len);
            FILE *f = fopen(graph_path, "wb");
            if (!f || fwrite(bytes, 1, len, f) != len || fclose(f)) fprintf(stderr, "bench_hnsw: cannot write %s\n", graph_path), exit(1);
            free(bytes);
        }
    }
    printf("{\"build_s\": %.3f, \"M\": %d, \"ef_construction\": %d, \"points\": [", build_s, hp.M, hp.ef_construction);
    int *ids = malloc((size_t)k * sizeof *ids);
    int first = 1;
    for (const char *p = efs; *p;) {
        int ef = atoi(p);
        double t0 = bench_now();
        long hits = 0;
        for (int i = 0; i < nq; i++) {
            int got = hnsw_search(g, q + (size_t)i * dims, k, ef, ids, NULL);
            for (int a = 0; a < got; a++)
                for (int b = 0; b < k; b++) hits += ids[a] == gt[(size_t)i * k + b];
        }
        double us = (bench_now() - t0) * 1e6 / nq;
        printf("%s{\"ef\": %d, \"recall\": %.4f, \"us_per_query\": %.2f}", first ? "" : ", ", ef, (double)hits / ((double)nq * k), us);
        first = 0;
        p += strcspn(p, ",");
        if (*p == ',') p++;
    }
    printf("]}\n");
    free(ids), free(x), free(q), free(gt);
    hnsw_free(g);
    return 0;
}

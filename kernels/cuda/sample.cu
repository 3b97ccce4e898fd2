/* Picking the next token on the device, so generation copies one int back per token instead of the logits. One
 * block of SAMPLE_THREADS: the argmax (first index of the largest logit, as gl_sample_token), then for temperature
 * sampling the weights exp((x - max) / T) summed in double over contiguous chunks, a prefix over the chunks, and one
 * thread walking the chunk where u * total falls - the CPU's rule, summed in a different order. */
#include "cuda_common.h"

#define SAMPLE_THREADS 256

__global__ void sample_kernel(int V, const float *x, float temperature, double u, int32_t *token) {
    __shared__ float best_v[SAMPLE_THREADS];
    __shared__ int best_i[SAMPLE_THREADS];
    __shared__ double part[SAMPLE_THREADS];
    int t = threadIdx.x, n = blockDim.x;
    float bv = -INFINITY;
    int bi = V;
    for (int i = t; i < V; i += n)
        if (bi == V || x[i] > bv) bv = x[i], bi = i;
    best_v[t] = bv, best_i[t] = bi;
    __syncthreads();
    for (int stride = n / 2; stride > 0; stride /= 2) { /* larger value wins; a tie goes to the lower index */
        if (t < stride) {
            float ov = best_v[t + stride];
            int oi = best_i[t + stride];
            if (oi < V && (best_i[t] == V || ov > best_v[t] || (ov == best_v[t] && oi < best_i[t])))
                best_v[t] = ov, best_i[t] = oi;
        }
        __syncthreads();
    }
    int best = best_i[0];
    float top = best_v[0];
    if (temperature <= 0.0f) {
        if (t == 0) *token = best;
        return;
    }
    int chunk = (V + n - 1) / n, lo = t * chunk, hi = lo + chunk < V ? lo + chunk : V;
    double s = 0.0;
    for (int i = lo; i < hi; i++) s += (double)expf((x[i] - top) / temperature);
    part[t] = s;
    __syncthreads();
    if (t != 0) return;
    double total = 0.0;
    for (int k = 0; k < n; k++) total += part[k];
    double target = u * total, acc = 0.0;
    for (int k = 0; k < n; k++) {
        if (k + 1 < n && acc + part[k] <= target) { /* not in this chunk */
            acc += part[k];
            continue;
        }
        int end = (k + 1) * chunk < V ? (k + 1) * chunk : V;
        for (int i = k * chunk; i < end; i++) {
            acc += (double)expf((x[i] - top) / temperature);
            if (target < acc) {
                *token = i;
                return;
            }
        }
    }
    *token = V - 1;
}

extern "C" void gl_cuda_sample(int V, const float *logits, float temperature, double u, int32_t *token) {
    GL_LAUNCH(sample_kernel, 1, SAMPLE_THREADS, 0, V, logits, temperature, u, token);
    GL_CUDA_LAUNCHED();
}

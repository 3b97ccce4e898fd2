/* Matrix multiply through cuBLAS. gradlab is row-major and cuBLAS column-major: a row-major M x N matrix is the
 * column-major N x M one, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T, i.e. cublasSgemm with the
 * operands swapped and the same transpose flags. In the emulation the call goes to gradlab's CPU GEMM. */
#include "cuda_common.h"

#ifdef GL_CUDA_EMU
extern "C" void gl_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc);
extern "C" void gl_cuda_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                             const float *B, int ldb, float beta, float *C, int ldc) {
    gl_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#else
#include <cublas_v2.h>

static cublasHandle_t handle(void) {
    static cublasHandle_t h = NULL;
    if (!h && cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "gradlab cuda: cublasCreate failed (is a GPU present?)\n");
        exit(1);
    }
    return h;
}

extern "C" void gl_cuda_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                             const float *B, int ldb, float beta, float *C, int ldc) {
    cublasStatus_t st = cublasSgemm(handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                    N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc);
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "gradlab cuda: cublasSgemm failed (status %d)\n", (int)st);
        exit(1);
    }
}
#endif

/* Device memory for C callers (the core and the tests are C or plain C++): thin wrappers of the runtime that stop
 * with a message on failure. In the emulation "device" memory is host memory. */
#include "cuda_common.h"

extern "C" int gl_cuda_available(void) {
#ifdef GL_CUDA_EMU
    return 1;
#else
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
#endif
}

extern "C" void *gl_cuda_alloc(size_t bytes) {
    void *p = NULL;
    GL_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 4));
    return p;
}
extern "C" void gl_cuda_free(void *p) {
    if (p) GL_CUDA_CHECK(cudaFree(p));
}
extern "C" void gl_cuda_upload(void *device, const void *host, size_t bytes) {
    GL_CUDA_CHECK(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice));
}
extern "C" void gl_cuda_download(void *host, const void *device, size_t bytes) {
    GL_CUDA_CHECK(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost));
}
extern "C" void gl_cuda_zero(void *device, size_t bytes) { GL_CUDA_CHECK(cudaMemset(device, 0, bytes)); }
extern "C" void gl_cuda_copy(void *dst, const void *src, size_t bytes) {
    GL_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}
extern "C" void gl_cuda_synchronize(void) { GL_CUDA_CHECK(cudaDeviceSynchronize()); }

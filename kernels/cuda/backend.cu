/* The CUDA kernels as one table for the op layer (see kernels_cuda.h): linking this object is what gives a build
 * its CUDA device. */
#include "cuda_common.h"

extern "C" const gl_cuda_kernels gl_cuda_backend = {
#define GL_CUDA_FILL(name, ret, args) .name = gl_cuda_##name,
    GL_CUDA_KERNELS(GL_CUDA_FILL)
#undef GL_CUDA_FILL
};
static_assert(sizeof(gl_cuda_kernels) == GL_CUDA_KERNEL_COUNT * sizeof(void (*)(void)),
              "gl_cuda_kernels has a slot outside GL_CUDA_KERNELS");

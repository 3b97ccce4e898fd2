/* `make CUDA=1 test-cuda` asks this first: exit 0 when a CUDA device can be used, 3 (with the reason) when not. */
#include <stdio.h>

#include "kernels_cuda.h"

int main(void) {
    if (gl_cuda_available()) return 0;
    fprintf(stderr, "no usable CUDA device (no GPU, or no driver)\n");
    return 3;
}

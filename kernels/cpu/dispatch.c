/* Run-time choice of the kernel level: what the CPU supports, lowered by GRADLAB_KERNELS if set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static const char *const isa_names[GL_ISA_COUNT] = {"scalar", "avx2", "avx512"};
static int active = -1;

const char *gl_isa_name(gl_isa isa) { return (unsigned)isa < GL_ISA_COUNT ? isa_names[isa] : "unknown"; }

gl_isa gl_isa_supported(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return GL_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GL_ISA_AVX2;
#endif
    return GL_ISA_SCALAR;
}

gl_isa gl_isa_set(gl_isa isa) {
    gl_isa best = gl_isa_supported();
    active = (int)(isa > best ? best : isa);
    return (gl_isa)active;
}

gl_isa gl_isa_active(void) {
    if (active >= 0) return (gl_isa)active;
    gl_isa want = gl_isa_supported();
    const char *env = getenv("GRADLAB_KERNELS");
    if (env && *env) {
        int found = 0;
        for (int i = 0; i < GL_ISA_COUNT; i++)
            if (strcmp(env, isa_names[i]) == 0) {
                if ((gl_isa)i > want)
                    fprintf(stderr, "gradlab: GRADLAB_KERNELS=%s but this CPU only supports %s; using %s\n", env,
                            isa_names[want], isa_names[want]);
                else
                    want = (gl_isa)i;
                found = 1;
            }
        if (!found)
            fprintf(stderr, "gradlab: GRADLAB_KERNELS=%s is not one of scalar, avx2, avx512; using %s\n", env,
                    isa_names[want]);
    }
    return gl_isa_set(want);
}

const gl_kernels *gl_kern_for(gl_isa isa) {
    if (isa > gl_isa_supported()) return NULL;
    switch (isa) {
    case GL_ISA_AVX512: return &gl_kernels_avx512;
    case GL_ISA_AVX2: return &gl_kernels_avx2;
    default: return &gl_kernels_scalar;
    }
}

const gl_kernels *gl_kern(void) { return gl_kern_for(gl_isa_active()); }

/* gradlab's random numbers: xoshiro256** (Blackman & Vigna), seeded through splitmix64.
 *
 * Everything random in gradlab (weight init, dropout masks, data sampling) draws from a gl_rng passed in
 * explicitly, so a run is a pure function of its seeds. The generator state is four 64-bit words and can be
 * saved in a checkpoint and restored to continue the same stream.
 *   uniform:  the top 24 bits of a draw, scaled to [0, 1) - every float in the range is equally likely.
 *   normal:   Box-Muller on two uniforms (one value per call; no cached spare, so the state alone is the stream).
 */
#ifndef GRADLAB_RNG_H
#define GRADLAB_RNG_H

#include <stdint.h>

typedef struct gl_rng {
    uint64_t s[4];
} gl_rng;

void gl_rng_seed(gl_rng *r, uint64_t seed);
uint64_t gl_rng_u64(gl_rng *r);
/* uniform integer in [0, n), n > 0, without modulo bias */
uint64_t gl_rng_below(gl_rng *r, uint64_t n);
/* uniform float in [0, 1) */
float gl_rng_uniform(gl_rng *r);
/* standard normal */
float gl_rng_normal(gl_rng *r);

#endif

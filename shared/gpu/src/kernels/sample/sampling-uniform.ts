// The sampler's random number: a counter-based hash of (seed, counter), so a draw depends on nothing but the
// request's seed and the token's output index (not on the batch, the row, or earlier draws). The TS and WGSL
// versions below are the same integer arithmetic and must stay identical.
//
// pcg_hash is the PCG-RXS-M-XS output permutation used as a hash (Jarzynski & Olano, "Hash Functions for GPU
// Rendering", JCGT 2020); it is a bijection on u32, so one seed never repeats a value over 2^32 counters.
// u = top 24 bits / 2^24: exactly representable in f32, in [0, 1).

function pcgHash(v: number): number {
  const state = (Math.imul(v, 747796405) + 2891336453) >>> 0;
  const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** Uniform in [0, 1) with 24 bits, from u32 seed and counter; the GPU sampler computes the same number. */
export function samplingUniform(seed: number, counter: number): number {
  const h = pcgHash((pcgHash(seed >>> 0) + (counter >>> 0)) >>> 0);
  return (h >>> 8) / 16777216;
}

/** WGSL of `sampling_uniform(seed, counter) -> f32`, prepended to the sampler's shader. */
export const SAMPLING_UNIFORM_WGSL = /* wgsl */ `
fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
fn sampling_uniform(seed: u32, counter: u32) -> f32 {
  return f32(pcg_hash(pcg_hash(seed) + counter) >> 8u) * (1.0 / 16777216.0);
}
`;

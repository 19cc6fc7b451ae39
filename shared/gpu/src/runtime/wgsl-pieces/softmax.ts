// The online softmax's common ground in every attention kernel (prefill and decode, portable and tensor-core):
// scores in base 2 (pre-multiplied by scale·log2 e), a running max m and sum l per query row, and what a KV split
// reports for the merge. How each kernel rescales its accumulators (at once, or lazily past a threshold) stays
// with the kernel: their layouts differ.
export const onlineSoftmax = /* wgsl */ `
// A finite "minus infinity" for masked scores and the running max's start: exp2(MASKED - m) is 0 for any real m,
// MASKED - MASKED is not NaN, and nothing becomes inf.
const MASKED: f32 = -1.0e30;
// The base-2 log-sum-exp of a row's scores from its running max and sum; MASKED where the row saw no key, so that
// an empty split weighs 0 in the merge.
fn softmax_lse2(m: f32, l: f32) -> f32 {
  return select(MASKED, m + log2(l), l > 0.0);
}
`;
